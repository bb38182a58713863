// Plain SVG charts: line curves, weight heatmaps and histograms. No library: each chart is a
// few dozen elements whose classes the end-to-end test looks for.

const SVG = "http://www.w3.org/2000/svg";
const MAX_CELLS = 64; // heatmap side: larger matrices are shown as block means

export function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

export function extent(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}

export function tick(value) {
  if (!Number.isFinite(value)) return "";
  const a = Math.abs(value);
  if (a !== 0 && (a < 0.01 || a >= 1e4)) return value.toExponential(1);
  return String(Number(value.toPrecision(3))); // 0.30000000000000004 -> "0.3"
}

// The round step (1, 2 or 5 times a power of ten) nearest above `raw`.
export function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw));
  const m = raw / power;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * power;
}

// series: [{name, cls, points: [[x, y], ...]}]; draws every finite point, one <path> each.
// Options: logY / logX (a log10 axis; non-positive values are left out), marks ([{x, label}]:
// dashed vertical lines, e.g. the best epoch, in data units), hlines ([y, ...]: dashed
// horizontal lines inside the y range, e.g. the edges of a healthy band), include ([y, ...]:
// values the y range spans, e.g. 0 and 1 for a share), empty (the text when nothing can be
// drawn). Every point carries a <title>: its value on hover.
export function lineChart(container, series, { width = 520, height = 260, xLabel = "epoch", logY = false, logX = false, marks = [], hlines = [], include = [], empty = "no epochs yet" } = {}) {
  const pad = { left: 52, right: 12, top: 28, bottom: 34 }; // the legend sits above the plot
  const fy = logY ? Math.log10 : (y) => y; // plotted y
  const fx = logX ? Math.log10 : (x) => x; // plotted x
  const usable = ([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0) && (!logX || x > 0);
  const all = series.flatMap((s) => s.points).filter(usable).map(([x, y]) => [fx(x), fy(y)]);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "line-chart", role: "img" });
  container.replaceChildren(root);
  if (!all.length) {
    root.append(svg("text", { x: width / 2, y: height / 2, class: "empty", "text-anchor": "middle" }, empty));
    return root;
  }
  let [x0, x1] = extent(all.map((p) => p[0]));
  const drawable = (y) => Number.isFinite(y) && (!logY || y > 0);
  const levels = hlines.filter(drawable).map(fy);
  let [y0, y1] = extent([...all.map((p) => p[1]), ...levels, ...include.filter(drawable).map(fy)]);
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { // a constant (a fixed learning rate): half its size either side, not ±0.5
    const half = logY || y0 === 0 ? 0.5 : Math.abs(y0) / 2;
    y0 -= half; y1 += half;
  }
  const step = niceStep((y1 - y0) / 4);
  y0 = Math.floor(y0 / step) * step; // the axis spans whole steps: ticks are round numbers
  y1 = Math.ceil(y1 / step) * step;
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const sx = (x) => pad.left + ((x - x0) / (x1 - x0)) * w;
  const sy = (y) => pad.top + (1 - (y - y0) / (y1 - y0)) * h;
  const axes = svg("g", { class: "axes" });
  const ticks = Math.round((y1 - y0) / step);
  for (let i = 0; i <= ticks; i++) {
    const yv = y0 + step * i;
    axes.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: sy(yv), y2: sy(yv), class: "grid-line" }));
    axes.append(svg("text", { x: pad.left - 6, y: sy(yv) + 4, "text-anchor": "end" }, tick(logY ? 10 ** yv : yv)));
  }
  for (const level of levels) {
    axes.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: sy(level), y2: sy(level), class: "hline" }));
  }
  for (const mark of marks) {
    const mx = logX && mark.x > 0 ? fx(mark.x) : logX ? NaN : mark.x;
    if (!Number.isFinite(mx) || mx < x0 || mx > x1) continue;
    axes.append(svg("line", { x1: sx(mx), x2: sx(mx), y1: pad.top, y2: pad.top + h, class: `mark ${mark.cls || ""}` }));
    const right = sx(mx) > pad.left + 0.75 * w; // label on the left of a line near the edge
    axes.append(svg("text", { x: sx(mx) + (right ? -3 : 3), y: pad.top + 10, class: "mark-label", "text-anchor": right ? "end" : "start" }, mark.label));
  }
  if (logX) { // the powers of ten in range (every other one past eight of them): round ticks
    const first = Math.ceil(x0);
    const every = Math.floor(x1) - first >= 8 ? 2 : 1;
    for (let p = first; p <= x1; p += every) {
      axes.append(svg("text", { x: sx(p), y: height - 16, "text-anchor": "middle", class: "x-tick" }, tick(10 ** p)));
    }
  } else {
    for (const xv of [x0, Math.round((x0 + x1) / 2), x1]) {
      axes.append(svg("text", { x: sx(xv), y: height - 16, "text-anchor": "middle" }, String(Math.round(xv))));
    }
  }
  axes.append(svg("text", { x: pad.left + w / 2, y: height - 2, "text-anchor": "middle", class: "axis-label" }, xLabel));
  root.append(axes);
  const legend = svg("g", { class: "legend" });
  series.forEach((s, i) => {
    const pts = s.points.filter(usable);
    if (!pts.length) return;
    const d = pts.map(([x, y], j) => `${j ? "L" : "M"}${sx(fx(x)).toFixed(1)},${sy(fy(y)).toFixed(1)}`).join(" ");
    root.append(svg("path", { d, class: `curve ${s.cls}`, "data-points": pts.length, fill: "none" }));
    const dots = svg("g", { class: `dots ${s.cls}` });
    for (const [x, y] of pts) {
      const dot = svg("circle", { cx: sx(fx(x)).toFixed(1), cy: sy(fy(y)).toFixed(1), r: 3, class: "dot" });
      const shownX = logX ? Number(x.toPrecision(4)) : x;
      dot.append(svg("title", {}, `${s.name} · ${xLabel} ${shownX}: ${Number(y.toPrecision(5))}`));
      dots.append(dot);
    }
    root.append(dots);
    const lx = pad.left + i * 140;
    legend.append(svg("line", { x1: lx, x2: lx + 20, y1: 10, y2: 10, class: `curve ${s.cls}` }));
    legend.append(svg("text", { x: lx + 25, y: 14 }, s.name));
  });
  root.append(legend);
  return root;
}

// A weight array as rows x cols: dense (in, out) as is; conv (out, in, kh, kw) as out x in*kh*kw.
export function asMatrix(values, shape) {
  const flat = values.flat(Infinity);
  if (shape.length === 1) return { rows: 1, cols: shape[0], flat };
  const rows = shape[0];
  return { rows, cols: flat.length / rows, flat };
}

function blockMeans({ rows, cols, flat }) {
  const br = Math.ceil(rows / MAX_CELLS);
  const bc = Math.ceil(cols / MAX_CELLS);
  const outRows = Math.ceil(rows / br);
  const outCols = Math.ceil(cols / bc);
  const cells = [];
  for (let i = 0; i < outRows; i++) {
    for (let j = 0; j < outCols; j++) {
      let sum = 0;
      let n = 0;
      for (let r = i * br; r < Math.min(rows, (i + 1) * br); r++) {
        for (let c = j * bc; c < Math.min(cols, (j + 1) * bc); c++) { sum += flat[r * cols + c]; n++; }
      }
      cells.push({ i, j, value: sum / n });
    }
  }
  return { outRows, outCols, cells, block: [br, bc] };
}

function diverging(value, scale) {
  const t = scale > 0 ? Math.max(-1, Math.min(1, value / scale)) : 0;
  const fade = Math.round(255 * (1 - Math.abs(t)));
  return t >= 0 ? `rgb(255,${fade},${fade})` : `rgb(${fade},${fade},255)`;
}

// Conv kernels (out, in, kh, kw) as a grid: one row per filter, one kh x kw tile per input
// channel, so each filter's spatial pattern is visible. Too many tiles: the block-mean heatmap.
export function kernelGrid(container, values, shape, { cell = 6, gap = 2, maxTiles = 512 } = {}) {
  const [out, inp, kh, kw] = shape;
  if (out * inp > maxTiles) return heatmap(container, asMatrix(values, shape));
  const flat = values.flat(Infinity);
  const [lo, hi] = extent(flat);
  const scale = Math.max(Math.abs(lo), Math.abs(hi));
  const tw = kw * cell + gap;
  const th = kh * cell + gap;
  const root = svg("svg", { viewBox: `0 0 ${inp * tw} ${out * th}`, class: "kernels", width: inp * tw, height: out * th });
  for (let o = 0; o < out; o++) {
    for (let c = 0; c < inp; c++) {
      const tile = svg("g", { class: "kernel", transform: `translate(${c * tw},${o * th})` });
      tile.append(svg("title", {}, `filter ${o}, input channel ${c}`));
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          const v = flat[((o * inp + c) * kh + i) * kw + j];
          tile.append(svg("rect", { x: j * cell, y: i * cell, width: cell, height: cell, class: "heat-cell", fill: diverging(v, scale) }));
        }
      }
      root.append(tile);
    }
  }
  container.append(root);
  return root;
}

export function heatmap(container, matrix, { size = 240 } = {}) {
  const { outRows, outCols, cells, block } = blockMeans(matrix);
  const [lo, hi] = extent(matrix.flat);
  const scale = Math.max(Math.abs(lo), Math.abs(hi));
  const cw = size / Math.max(outRows, outCols);
  const root = svg("svg", {
    viewBox: `0 0 ${outCols * cw} ${outRows * cw}`, class: "heatmap", width: outCols * cw,
    height: outRows * cw, "data-block": block.join("x"),
  });
  for (const { i, j, value } of cells) {
    const rect = svg("rect", { x: j * cw, y: i * cw, width: cw, height: cw, class: "heat-cell", fill: diverging(value, scale) });
    rect.append(svg("title", {}, `[${i * block[0]}, ${j * block[1]}] ${tick(value)}`));
    root.append(rect);
  }
  container.append(root);
  return root;
}

export function histogram(container, flat, { bins = 30, width = 260, height = 140 } = {}) {
  const [lo, hi] = extent(flat);
  const span = hi - lo || 1;
  const counts = new Array(bins).fill(0);
  for (const v of flat) counts[Math.min(bins - 1, Math.floor(((v - lo) / span) * bins))]++;
  const top = extent(counts)[1];
  const bw = width / bins;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height + 16}`, class: "histogram", width, height: height + 16 });
  counts.forEach((count, k) => {
    const bh = top ? (count / top) * height : 0;
    const bar = svg("rect", { x: k * bw + 0.5, y: height - bh, width: bw - 1, height: bh, class: "hist-bar" });
    bar.append(svg("title", {}, `${tick(lo + (span * k) / bins)} .. ${tick(lo + (span * (k + 1)) / bins)}: ${count}`));
    root.append(bar);
  });
  root.append(svg("text", { x: 0, y: height + 13 }, tick(lo)));
  root.append(svg("text", { x: width, y: height + 13, "text-anchor": "end" }, tick(hi)));
  container.append(root);
  return root;
}
