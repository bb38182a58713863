// The sweeps: status, trial counts and best so far; refreshed every few seconds.
import { el, fmt, getJSON, requireKey, showError } from "./api.js";

const REFRESH_MS = 3000;

function row(sweep) {
  const t = sweep.trials;
  const best = sweep.best;
  return el("tr", { "data-sweep-id": sweep.id },
    el("td", {}, el("a", { href: `/sweeps/${encodeURIComponent(sweep.id)}`, text: sweep.id })),
    el("td", { text: sweep.name || "" }),
    el("td", {}, el("span", { class: `status status-${sweep.status}`, text: sweep.status })),
    el("td", { text: String(t.total) }), el("td", { text: String(t.succeeded) }),
    el("td", { text: String(t.pruned) }), el("td", { text: String(t.failed) }),
    el("td", { text: best ? `${best.metric} ${fmt(best.value)} (trial ${best.trial})` : "" }),
    el("td", { text: `${sweep.epochs_run} / ${sweep.epochs_budget}` }),
    el("td", { text: (sweep.created_at || "").replace("T", " ").slice(0, 19) }));
}

async function refresh() {
  try {
    const page = await getJSON("/v1/sweeps?limit=100");
    document.querySelector("#sweeps tbody").replaceChildren(...page.items.map(row));
    document.getElementById("no-sweeps").hidden = page.items.length > 0;
    document.getElementById("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.getElementById("main").dataset.ready = "1";
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

requireKey().then(async () => {
  await refresh();
  setInterval(refresh, REFRESH_MS);
});
