// One sweep: status counts and best so far, the metric against each parameter, the epochs
// each trial ran (with the rungs it passed or was pruned at), and the trials with links to
// their jobs. The sweep's event stream replays its past and follows it live: rung reports
// come from it, and every other event reloads the sweep and its trials (at most once a second).
import { el, fmt, getJSON, readEvents, requireKey, showError, streamEvents } from "./api.js";
import { epochBars, scatterChart } from "./sweep_charts.js";

const page = document.getElementById("main").dataset;
const sweepId = page.sweepId;
// store/statuses.py owns the list; the page is rendered with it.
const TERMINAL = new Set(page.terminalStatuses.split(" "));
const path = `/v1/sweeps/${encodeURIComponent(sweepId)}`;
const COUNTS = ["total", "queued", "running", "succeeded", "pruned", "failed"];
const reports = new Map(); // trial index -> Map(rung -> went on?)
let sweep = null;
let trials = [];

const jobHref = (t) => (t.job_id ? `/jobs/${encodeURIComponent(t.job_id)}` : "#");
const shown = (value) => (typeof value === "number" ? fmt(value) : JSON.stringify(value));

// The metric trials are ranked by: the best's, else the name in the trials' own values.
function metricName() {
  if (sweep.best) return sweep.best.metric;
  const first = trials.find((t) => t.best);
  return first ? Object.keys(first.best).find((k) => k !== "epoch") : "metric";
}

function trialValue(t) {
  return t.best ? t.best[metricName()] : undefined;
}

async function reload() {
  sweep = await getJSON(path);
  const items = [];
  let cursor = null;
  do {
    const got = await getJSON(`${path}/trials?limit=500${cursor ? `&cursor=${cursor}` : ""}`);
    items.push(...got.items);
    cursor = got.next_cursor;
  } while (cursor);
  trials = items;
  draw();
  return sweep;
}

function drawSummary() {
  const spec = sweep.spec;
  const search = spec.search;
  const scheduler = spec.scheduler
    ? `ASHA on ${spec.scheduler.metric} (${spec.scheduler.mode}), grace ${spec.scheduler.grace_epochs}, η ${spec.scheduler.reduction_factor}`
    : "no scheduler";
  document.getElementById("sweep-title").textContent = sweep.name || sweep.id;
  document.getElementById("sweep-summary").replaceChildren(
    el("span", { class: `status status-${sweep.status}`, id: "sweep-status", text: sweep.status }),
    ` ${sweep.id} · ${search.method} search, seed ${search.seed}, ${search.max_trials} trials, ` +
    `${search.max_concurrent} at once · ${scheduler} · epochs ${sweep.epochs_run} of ${sweep.epochs_budget}` +
    (sweep.stop_reason ? ` · ${sweep.stop_reason}` : ""));
  document.getElementById("trial-counts").replaceChildren(...COUNTS.map((k) =>
    el("span", { class: `count count-${k}`, "data-count": k }, el("b", { text: String(sweep.trials[k]) }), ` ${k}`)));
  const best = sweep.best;
  const box = document.getElementById("sweep-best");
  if (!best) {
    box.textContent = "No trial has finished with a value yet.";
  } else {
    box.replaceChildren("Best so far: ", el("a", { href: jobHref(best), id: "best-trial", text: `trial ${best.trial}` }),
      ` · ${best.metric} `, el("b", { text: fmt(best.value) }), ` at epoch ${best.epoch} · `,
      Object.entries(best.params).map(([k, v]) => `${k} = ${shown(v)}`).join(", "));
  }
  const ended = sweep.trials.succeeded + sweep.trials.pruned + sweep.trials.failed;
  const done = TERMINAL.has(sweep.status) ? 100 : (100 * ended) / Math.max(search.max_trials, 1);
  document.getElementById("sweep-progress-bar").style.width = `${done}%`;
  document.getElementById("sweep-spec").textContent = JSON.stringify(spec, null, 2);
}

function drawScatters() {
  const metric = metricName();
  for (const node of document.querySelectorAll(".metric-name")) node.textContent = metric;
  const figures = Object.entries(sweep.spec.space).sort(([a], [b]) => a.localeCompare(b)).map(([param, dist]) => {
    const numeric = !dist.choice || dist.choice.every((v) => typeof v === "number");
    const categories = numeric ? null : dist.choice.map((v) => JSON.stringify(v));
    const points = trials.filter((t) => param in t.params && typeof trialValue(t) === "number").map((t) => ({
      x: categories ? categories.indexOf(JSON.stringify(t.params[param])) : t.params[param],
      y: trialValue(t),
      cls: `point-${t.status}`,
      href: jobHref(t),
      label: `trial ${t.index} (${t.status}) · ${param} ${shown(t.params[param])} · ${metric} ${fmt(trialValue(t))}`,
    }));
    const figure = el("figure", { class: "scatter-figure" });
    scatterChart(figure, points, { xLabel: param, yLabel: metric, categories, logX: "log_uniform" in dist });
    return figure;
  });
  document.getElementById("scatters").replaceChildren(...figures);
}

function drawBars() {
  const epochs = Math.round(sweep.epochs_budget / Math.max(sweep.spec.search.max_trials, 1));
  const rungs = [...new Set([...reports.values()].flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
  const rows = trials.map((t) => {
    const mine = [...(reports.get(t.index) || new Map()).entries()].sort(([a], [b]) => a - b)
      .map(([rung, goesOn]) => ({ rung, continues: goesOn }));
    const pruned = mine.find((r) => !r.continues);
    return {
      index: t.index, epochs: t.epochs_run, cls: `bar-${t.status}`, href: jobHref(t), reports: mine,
      label: pruned ? `pruned at ${pruned.rung}` : `${t.status} · ${t.epochs_run} epochs`,
    };
  });
  epochBars(document.getElementById("epoch-bars"), rows, { rungs, epochs });
}

function drawTable() {
  const metric = metricName();
  const params = Object.keys(sweep.spec.space).sort();
  const table = document.getElementById("trials");
  table.querySelector("thead").replaceChildren(el("tr", {},
    ...["trial", "status", ...params, metric, "best epoch", "epochs", "attempts", "stop reason", "job"]
      .map((name) => el("th", {}, params.includes(name) ? el("code", { text: name }) : name))));
  table.querySelector("tbody").replaceChildren(...trials.map((t) => el("tr", { "data-trial": String(t.index), class: "trial-row" },
    el("td", { text: String(t.index) }),
    el("td", {}, el("span", { class: `status status-${t.status}`, text: t.status })),
    ...params.map((p) => el("td", { text: p in t.params ? shown(t.params[p]) : "—" })),
    el("td", { text: fmt(trialValue(t)) }),
    el("td", { text: t.best ? fmt(t.best.epoch) : "" }),
    el("td", { text: String(t.epochs_run) }),
    el("td", { text: String(t.attempts) }),
    el("td", { text: t.stop_reason || "" }),
    el("td", {}, t.job_id ? el("a", { href: jobHref(t), class: "trial-job", text: t.job_id }) : ""))));
}

function draw() {
  drawSummary();
  drawScatters();
  drawBars();
  drawTable();
}

function record(event) {
  if (event.event !== "rung_reported") return;
  const { trial, rung } = event.data;
  if (!reports.has(trial)) reports.set(trial, new Map());
  reports.get(trial).set(rung, event.data.continues);
  document.body.dataset.rungReports = String([...reports.values()].reduce((n, m) => n + m.size, 0));
}

// Live: rung reports are drawn as they come; anything else reloads, at most once a second.
function follow() {
  let due = null;
  const later = () => {
    if (due) return;
    due = setTimeout(() => { due = null; reload().catch((error) => showError(error.message)); }, 1000);
  };
  return streamEvents(`${path}/events`, (event) => {
    record(event);
    if (event.event === "rung_reported" && trials.length) drawBars();
    later();
  }, async () => TERMINAL.has((await getJSON(path)).status));
}

async function main() {
  await requireKey();
  try {
    // A running sweep's stream is opened before the first loads finish (as the job page's),
    // so nothing between the two is missed; a finished one's events are read whole.
    const following = TERMINAL.has((await getJSON(path)).status) ? null : follow();
    if (!following) (await readEvents(`${path}/events`)).forEach(record);
    await reload();
    if (following) {
      await following;
      await reload();
    }
  } catch (error) {
    showError(error.message);
    return;
  }
  document.getElementById("main").dataset.ready = "1";
}

main();
