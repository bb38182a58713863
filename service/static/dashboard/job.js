// One job: live loss/accuracy curves, the kept checkpoints, and per-layer weight heatmaps and
// histograms of a chosen checkpoint (the best one first).
import { el, ending, fmt, getBlob, getJSON, getJSONIfFound, percentDone, postJSON, requireKey, showError, streamEvents } from "./api.js";
import { asMatrix, heatmap, histogram, kernelGrid, lineChart } from "./charts.js";
import { loadDiagnostics } from "./diagnostics.js";

const page = document.getElementById("main").dataset;
const jobId = page.jobId;
// store/statuses.py owns the list; the page is rendered with it.
const TERMINAL = new Set(page.terminalStatuses.split(" "));
const history = new Map(); // epoch -> metrics
let job = null;
let shownCheckpoint = null;

function series(name) {
  const points = (key) => [...history.values()].filter((m) => typeof m[key] === "number").map((m) => [m.epoch, m[key]]);
  return [
    { name: `train ${name}`, cls: `train-${name}`, points: points(name) },
    { name: `val ${name}`, cls: `val-${name}`, points: points(`val_${name}`) },
  ];
}

function drawCharts() {
  const epochs = [...history.keys()].sort((a, b) => a - b);
  const sorted = new Map(epochs.map((e) => [e, history.get(e)]));
  history.clear();
  for (const [e, m] of sorted) history.set(e, m);
  const marks = [];
  const best = (job && job.best) || {};
  if (best.epoch) marks.push({ x: best.epoch, label: "best", cls: "best" });
  if (job && job.stop_reason === "early_stopping") {
    marks.push({ x: (job.progress || {}).epoch, label: "early stop", cls: "stop" });
  }
  const logY = document.getElementById("log-loss").checked;
  lineChart(document.getElementById("loss-chart"), series("loss"), { marks, logY });
  // A regression has no accuracy: no empty panel for it.
  const accuracy = series("accuracy");
  document.getElementById("accuracy-figure").hidden = !accuracy.some((s) => s.points.length);
  lineChart(document.getElementById("accuracy-chart"), accuracy, { marks });
  const lr = [...history.values()].filter((m) => typeof m.lr === "number").map((m) => [m.epoch, m.lr]);
  lineChart(document.getElementById("lr-chart"), [{ name: "learning rate", cls: "lr", points: lr }]);
}
document.getElementById("log-loss").onchange = () => drawCharts();

// The learning metrics; lr and seconds are in the metrics endpoint for whoever wants them.
function shownMetrics(values) {
  return ["loss", "accuracy", "val_loss", "val_accuracy"].filter((k) => typeof (values || {})[k] === "number")
    .map((k) => `${k} ${fmt(values[k])}`).join(", ");
}

function drawSummary() {
  const p = job.progress || {};
  const best = job.best || {};
  const why = ending(job);
  document.getElementById("job-title").textContent = `${job.name || job.id}`;
  const summary = document.getElementById("job-summary");
  summary.replaceChildren(
    el("span", { class: `status status-${job.status}`, id: "job-status", text: job.status }),
    ` ${job.id} · epoch ${p.epoch || 0}/${p.epochs || "?"}${why ? ` · ${why}` : ""}`,
    best.epoch ? ` · best epoch ${best.epoch}: ${shownMetrics(best)}` : "",
    ...lineage(), ...warningCount());
  document.getElementById("job-progress-bar").style.width = `${percentDone(job)}%`;
}

// The diagnostics' warnings, listed in full above the diagnostics charts.
function warningCount() {
  const n = (job.warnings || []).length;
  if (!n) return [];
  return [" · ", el("a", { href: "#diagnostics", class: "warning-count", id: "warning-count",
    text: `⚠ ${n} warning${n > 1 ? "s" : ""}` })];
}

// Where the job comes from (a fork's parent) and whether a reproduction matched it.
function lineage() {
  const parts = [];
  const jobLink = (id) => el("a", { href: `/jobs/${encodeURIComponent(id)}`, class: "lineage", text: id });
  if (job.parent) {
    parts.push(" · forked from ", jobLink(job.parent.job_id),
      ` at epoch ${job.parent.epoch} (${job.parent.optimizer_state})`);
  }
  if (job.sweep_id) {
    parts.push(" · a trial of sweep ", el("a", { href: `/sweeps/${encodeURIComponent(job.sweep_id)}`,
      class: "lineage", text: job.sweep_id }));
  }
  const r = job.reproduction;
  if (r) {
    const verdict = r.identical === null ? "pending" : r.identical ? "identical"
      : `differs from epoch ${r.first_divergent_epoch}`;
    parts.push(r.of ? " · reproduces " : " · reproduced by ", jobLink(r.of || r.by), ` (${verdict})`);
  }
  return parts;
}

// A child job from this checkpoint: "keep" trains on to the epoch asked for, as a resume would.
async function fork(checkpoint) {
  const epochs = Number(prompt(`Train on from epoch ${checkpoint.epoch} (keeping the optimizer's state) to epoch:`,
    String(Math.max((job.progress || {}).epochs || 0, checkpoint.epoch) + 10)));
  if (!Number.isInteger(epochs) || epochs <= checkpoint.epoch) return;
  try {
    const child = await postJSON(`/v1/jobs/${jobId}/fork`, {
      checkpoint_id: checkpoint.id, optimizer_state: "keep", overrides: { training: { epochs } } });
    location.href = `/jobs/${encodeURIComponent(child.id)}`;
  } catch (error) {
    showError(error.message);
  }
}

async function loadMetrics() {
  let after = 0;
  for (;;) {
    const page = await getJSON(`/v1/jobs/${jobId}/metrics?after_epoch=${after}`);
    for (const item of page.items) history.set(item.epoch, item);
    if (!page.next_cursor) break;
    after = Number(page.next_cursor);
  }
  drawCharts();
}

async function download(checkpoint, link) {
  try {
    const blob = await getBlob(`/v1/checkpoints/${checkpoint.id}/weights.npz`);
    link.href = URL.createObjectURL(blob);
    link.download = `${checkpoint.id}.npz`;
    link.onclick = null;
    link.click();
  } catch (error) {
    showError(error.message);
  }
}

async function loadCheckpoints() {
  const page = await getJSON(`/v1/jobs/${jobId}/checkpoints`);
  const rows = page.items.map((c) => {
    const link = el("a", { href: "#", class: "download", text: "weights.npz" });
    link.onclick = (event) => { event.preventDefault(); download(c, link); };
    const show = el("button", { type: "button", class: "show-weights", text: "weights" });
    show.onclick = () => showWeights(c);
    const forkButton = el("button", { type: "button", class: "fork", text: "fork" });
    forkButton.onclick = () => fork(c);
    const metrics = shownMetrics(c.metrics);
    return el("tr", { "data-checkpoint-id": c.id },
      el("td", { text: c.id }), el("td", { text: String(c.epoch) }), el("td", { text: c.kind }),
      el("td", { text: metrics }), el("td", { text: `${(c.size_bytes / 1024).toFixed(1)} KiB` }),
      el("td", {}, link, " ", show, " ", forkButton));
  });
  document.querySelector("#checkpoints tbody").replaceChildren(...rows);
  const first = page.items.find((c) => c.kind === "best") || page.items[page.items.length - 1];
  if (first && (!shownCheckpoint || !page.items.some((c) => c.id === shownCheckpoint))) await showWeights(first);
}

async function showWeights(checkpoint) {
  shownCheckpoint = checkpoint.id;
  const detail = await getJSON(`/v1/checkpoints/${checkpoint.id}`);
  const box = document.getElementById("layers");
  box.replaceChildren();
  document.getElementById("weights").hidden = false;
  document.getElementById("weights-checkpoint").textContent = `${checkpoint.id} (epoch ${checkpoint.epoch}, ${checkpoint.kind})`;
  for (const stats of detail.layers || []) {
    if (!stats.name.endsWith(".weight")) continue;
    const layer = await getJSON(`/v1/checkpoints/${checkpoint.id}/layers/${encodeURIComponent(stats.name)}`);
    const matrix = asMatrix(layer.values, layer.shape);
    const figure = el("figure", { class: "layer", "data-layer": stats.name });
    const conv = layer.shape.length === 4;
    figure.append(el("figcaption", {
      text: `${stats.name} [${layer.shape.join("×")}] mean ${fmt(stats.mean)} std ${fmt(stats.std)} ` +
            `min ${fmt(stats.min)} max ${fmt(stats.max)} ‖W‖F ${fmt(stats.frobenius)}`,
    }));
    if (conv) kernelGrid(figure, layer.values, layer.shape);
    else heatmap(figure, matrix);
    histogram(figure, matrix.flat);
    box.append(figure);
  }
}

// A learning-rate range test (POST /v1/jobs:lr_range_test): its loss against the rate on a
// log axis, the suggested rate marked. Other jobs answer 404: the section stays hidden.
async function loadRangeTest() {
  const test = await getJSONIfFound(`/v1/jobs/${jobId}/lr_range_test`);
  if (!test) return;
  document.getElementById("lr-range").hidden = false;
  const rate = (v) => String(Number(v.toPrecision(4))); // 1e-7, 0.00005, 0.6093
  // The y axis stops at the stop rule's line, 4x the lowest smoothed loss: the blow-up past
  // it would flatten the descent the suggestion is read from.
  const ceiling = 4 * (test.min_smoothed_loss ?? Infinity);
  const points = (key) => test.series.filter((p) => p[key] <= ceiling).map((p) => [p.lr, p[key]]);
  const s = test.suggestion;
  const marks = s ? [{ x: s.lr, label: `suggested ${rate(s.lr)}`, cls: "suggested" }] : [];
  lineChart(document.getElementById("lr-range-chart"), [
    { name: "loss", cls: "range-loss", points: points("loss") },
    { name: "smoothed loss", cls: "range-smoothed", points: points("smoothed_loss") },
  ], { xLabel: "learning rate", logX: true, marks });
  const off = test.series.filter((p) => p.loss > ceiling).length;
  const done = test.series.length ? `${test.series.length} of ${test.steps} batches` : "not run yet";
  document.getElementById("lr-range-summary").textContent =
    `${rate(test.min_lr)} → ${rate(test.max_lr)} over ${test.steps} batches · ${done}` +
    (test.stop_reason ? ` · stopped: ${test.stop_reason}` : "") +
    (s ? ` · suggested learning rate ${rate(s.lr)}` : test.series.length ? " · no rate suggested: the loss never fell" : "") +
    (off ? ` · ${off} loss${off > 1 ? "es" : ""} above 4× the lowest smoothed loss off the chart` : "");
}

async function refreshJob() {
  job = await getJSON(`/v1/jobs/${jobId}`);
  drawSummary();
  document.getElementById("job-spec").textContent = JSON.stringify(job.spec, null, 2);
  return job;
}

// Live updates: the stream replays the job's past events, then follows it. Opened before the
// first loads finish, so a running job's page never misses an epoch between the two.
function follow() {
  let streamed = 0; // epochs that arrived through the stream (the end-to-end test reads it)
  let checkpointsDue = 0;
  const refreshCheckpoints = () => {
    // At most every 2 s: a replay of many epochs must not turn into a burst of requests.
    if (Date.now() < checkpointsDue) return;
    checkpointsDue = Date.now() + 2000;
    loadCheckpoints().catch((error) => showError(error.message));
    loadDiagnostics(jobId).catch((error) => showError(error.message));
  };
  return streamEvents(`/v1/jobs/${jobId}/events`, async (event) => {
    if (event.event === "epoch") {
      document.body.dataset.streamedEpochs = String(++streamed);
      history.set(event.data.epoch, event.data);
      drawCharts();
      job.progress = { epoch: event.data.epoch, epochs: event.data.epochs };
      drawSummary();
      refreshCheckpoints();
    } else if (event.event === "status") {
      await refreshJob();
    }
  }, async () => TERMINAL.has((await refreshJob()).status));
}

async function main() {
  await requireKey();
  let following = null;
  try {
    await refreshJob();
    if (!TERMINAL.has(job.status)) following = follow();
    await loadMetrics();
    await loadDiagnostics(jobId);
    await loadCheckpoints();
    await loadRangeTest();
  } catch (error) {
    showError(error.message);
    return;
  }
  if (following) {
    await following;
    await loadMetrics();
    await loadDiagnostics(jobId);
    await loadCheckpoints();
    await loadRangeTest();
  }
  document.body.dataset.ready = "1";
}

main();
