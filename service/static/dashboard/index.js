// The job list: refreshed every few seconds while the page is open.
import { el, ending, fmt, getJSON, percentDone, requireKey, showError } from "./api.js";

const REFRESH_MS = 3000;
const selected = new Set(); // job ids ticked for comparison; kept across refreshes

function updateCompare() {
  const button = document.getElementById("compare");
  button.disabled = selected.size < 2;
  button.onclick = () => { location.href = `/compare?ids=${[...selected].map(encodeURIComponent).join(",")}`; };
}

function row(job) {
  const latest = job.latest || {};
  const progress = job.progress || {};
  const link = el("a", { href: `/jobs/${encodeURIComponent(job.id)}`, text: job.id });
  const pct = Math.round(percentDone(job));
  const pick = el("input", { type: "checkbox", class: "pick", value: job.id, "aria-label": `select ${job.id}` });
  if (selected.has(job.id)) pick.checked = true;
  pick.onchange = () => { pick.checked ? selected.add(job.id) : selected.delete(job.id); updateCompare(); };
  return el("tr", { "data-job-id": job.id },
    el("td", {}, pick),
    el("td", {}, link),
    el("td", { text: job.name || "" }),
    el("td", {}, el("span", { class: `status status-${job.status}`, text: job.status })),
    el("td", { text: `${progress.epoch || 0}/${progress.epochs || "?"} (${pct}%)` }),
    el("td", { text: fmt(latest.loss) }),
    el("td", { text: fmt(latest.val_loss) }),
    el("td", { text: fmt(latest.val_accuracy) }),
    el("td", { class: "ending", text: ending(job) }),
    el("td", { text: (job.created_at || "").replace("T", " ").slice(0, 19) }));
}

async function refresh() {
  try {
    const page = await getJSON("/v1/jobs?limit=100");
    document.querySelector("#jobs tbody").replaceChildren(...page.items.map(row));
    document.getElementById("no-jobs").hidden = page.items.length > 0;
    document.getElementById("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

requireKey().then(async () => {
  await refresh();
  setInterval(refresh, REFRESH_MS);
});
