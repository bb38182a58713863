// The sweep page's two charts, plain SVG like charts.js: the metric against one parameter
// (a scatter, one point per trial) and the epochs each trial ran with its rung reports.
import { extent, niceStep, svg, tick } from "./charts.js";

// points: [{x, y, cls, label, href}]. x is a number, or with `categories` an index into
// them (a choice of strings or booleans); `logX` puts x on a log10 axis (log_uniform).
export function scatterChart(container, points, { xLabel, yLabel, categories = null, logX = false,
  width = 360, height = 240 } = {}) {
  const pad = { left: 52, right: 14, top: 12, bottom: 40 };
  const fx = logX ? Math.log10 : (x) => x;
  const usable = points.filter((p) => Number.isFinite(p.y) && Number.isFinite(p.x) && (!logX || p.x > 0));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "scatter", role: "img", "data-param": xLabel });
  container.replaceChildren(root);
  if (!usable.length) {
    root.append(svg("text", { x: width / 2, y: height / 2, class: "empty", "text-anchor": "middle" }, "no trial values yet"));
    return root;
  }
  let [x0, x1] = categories ? [-0.5, categories.length - 0.5] : extent(usable.map((p) => fx(p.x)));
  let [y0, y1] = extent(usable.map((p) => p.y));
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const step = niceStep((y1 - y0) / 4);
  y0 = Math.floor(y0 / step) * step;
  y1 = Math.ceil(y1 / step) * step;
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const sx = (x) => pad.left + ((x - x0) / (x1 - x0)) * w;
  const sy = (y) => pad.top + (1 - (y - y0) / (y1 - y0)) * h;
  const axes = svg("g", { class: "axes" });
  for (let i = 0; i <= Math.round((y1 - y0) / step); i++) {
    const yv = y0 + step * i;
    axes.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: sy(yv), y2: sy(yv), class: "grid-line" }));
    axes.append(svg("text", { x: pad.left - 6, y: sy(yv) + 4, "text-anchor": "end" }, tick(yv)));
  }
  // A numeric axis' end ticks align inward, so neither is cut off at the chart's edge.
  const xTicks = categories ? categories.map((c, i) => [i, String(c), "middle"])
    : [[x0, "start"], [(x0 + x1) / 2, "middle"], [x1, "end"]].map(([xv, anchor]) => [xv, tick(logX ? 10 ** xv : xv), anchor]);
  for (const [xv, label, anchor] of xTicks) {
    axes.append(svg("text", { x: sx(xv), y: height - 22, "text-anchor": anchor }, label));
  }
  axes.append(svg("text", { x: pad.left + w / 2, y: height - 4, "text-anchor": "middle", class: "axis-label" },
    `${xLabel}${logX ? " (log)" : ""}`));
  axes.append(svg("text", { x: 12, y: pad.top + h / 2, "text-anchor": "middle", class: "axis-label",
    transform: `rotate(-90 12 ${pad.top + h / 2})` }, yLabel));
  root.append(axes);
  for (const p of usable) {
    const dot = svg("circle", { cx: sx(categories ? p.x : fx(p.x)).toFixed(1), cy: sy(p.y).toFixed(1), r: 4.5,
      class: `point ${p.cls}` });
    dot.append(svg("title", {}, p.label));
    const link = svg("a", { href: p.href });
    link.append(dot);
    root.append(link);
  }
  return root;
}

// trials: [{index, epochs, cls, label, href, reports: [{rung, continues}]}]; rungs: the rung
// epochs reported anywhere in the sweep; epochs: the base spec's (the axis' end).
export function epochBars(container, trials, { rungs = [], epochs, width = 1100, row = 20 } = {}) {
  const pad = { left: 70, right: 150, top: 18, bottom: 8 };
  const w = width - pad.left - pad.right;
  const height = pad.top + pad.bottom + trials.length * row;
  const sx = (e) => pad.left + (e / Math.max(epochs, 1)) * w;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "epoch-bars", role: "img" });
  container.replaceChildren(root);
  for (const rung of [...rungs, epochs]) {
    root.append(svg("line", { x1: sx(rung), x2: sx(rung), y1: pad.top - 4, y2: height - pad.bottom, class: "rung-line" }));
    root.append(svg("text", { x: sx(rung), y: pad.top - 6, "text-anchor": "middle" }, String(rung)));
  }
  trials.forEach((t, i) => {
    const y = pad.top + i * row;
    const bar = svg("g", { class: "trial-bar", "data-trial": String(t.index), "data-epochs": String(t.epochs) });
    const label = svg("a", { href: t.href });
    label.append(svg("text", { x: pad.left - 8, y: y + row * 0.7, "text-anchor": "end" }, `trial ${t.index}`));
    bar.append(label);
    const rect = svg("rect", { x: pad.left, y: y + 3, width: Math.max(0, sx(t.epochs) - pad.left), height: row - 6,
      class: `bar ${t.cls}` });
    rect.append(svg("title", {}, t.label));
    bar.append(rect);
    for (const r of t.reports) {
      bar.append(svg("text", { x: sx(r.rung), y: y + row * 0.72, "text-anchor": "middle",
        class: r.continues ? "rung-pass" : "rung-pruned" }, r.continues ? "✓" : "✕"));
    }
    bar.append(svg("text", { x: sx(epochs) + 8, y: y + row * 0.7 }, t.label));
    root.append(bar);
  });
  return root;
}
