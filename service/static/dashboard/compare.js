// Jobs side by side: overlaid validation curves, the spec paths that differ, best and last.
import { el, fmt, getJSON, requireKey, showError } from "./api.js";
import { lineChart } from "./charts.js";

const ids = (new URLSearchParams(location.search).get("ids") || "").split(",").filter(Boolean);

async function history(id) {
  const items = [];
  let after = 0;
  for (;;) {
    const page = await getJSON(`/v1/jobs/${id}/metrics?after_epoch=${after}`);
    items.push(...page.items);
    if (!page.next_cursor) return items;
    after = Number(page.next_cursor);
  }
}

function curves(jobs, histories, key) {
  // One curve per job; the palette classes cycle so each job keeps its colour on both charts.
  return jobs.map((job, i) => ({
    name: job.name ? `${job.name} (${job.id.slice(-6)})` : job.id,
    cls: `run-${i % 6}`,
    points: histories[i].filter((m) => typeof m[key] === "number").map((m) => [m.epoch, m[key]]),
  }));
}

function header(table, first, jobs) {
  table.querySelector("thead").replaceChildren(el("tr", {}, el("th", { text: first }),
    ...jobs.map((j) => el("th", {}, el("a", { href: `/jobs/${encodeURIComponent(j.id)}`,
      text: j.name ? `${j.name} (${j.id.slice(-6)})` : j.id })))));
}

async function main() {
  if (ids.length < 2) {
    showError("pick at least two jobs on the job list (or open /compare?ids=JOB1,JOB2)");
    return;
  }
  const comparison = await getJSON(`/v1/jobs:compare?ids=${ids.map(encodeURIComponent).join(",")}`);
  const jobs = comparison.jobs;
  document.getElementById("compare-ids").textContent = jobs.map((j) => j.id).join(" · ");
  const histories = await Promise.all(jobs.map((j) => history(j.id)));
  lineChart(document.getElementById("compare-loss"), curves(jobs, histories, "val_loss"));
  lineChart(document.getElementById("compare-accuracy"), curves(jobs, histories, "val_accuracy"));

  const diff = document.getElementById("spec-diff");
  header(diff, "spec path", jobs);
  diff.querySelector("tbody").replaceChildren(...comparison.spec_differences.map((d) =>
    el("tr", { class: "diff-row", "data-path": d.path }, el("td", {}, el("code", { text: d.path })),
      ...jobs.map((j) => el("td", { text: d.values[j.id] === null ? "—" : JSON.stringify(d.values[j.id]) })))));
  document.getElementById("no-diff").hidden = comparison.spec_differences.length > 0;

  const metrics = document.getElementById("metric-table");
  header(metrics, "metric", jobs);
  metrics.querySelector("tbody").replaceChildren(...Object.entries(comparison.metrics).map(([name, byJob]) =>
    el("tr", { class: "metric-row" }, el("td", { text: name }), ...jobs.map((j) => {
      const m = byJob[j.id];
      if (!m) return el("td");
      return el("td", { text: m.best === null ? `last ${fmt(m.last)}` : `${fmt(m.best)} (${m.best_epoch}) / ${fmt(m.last)}` });
    }))));
  document.getElementById("main").dataset.ready = "1";
}

requireKey().then(() => main().catch((error) => showError(error.message)));
