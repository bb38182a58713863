// The tenant's webhooks, each with its delivery attempts (newest first).
import { el, fmt, getJSON, requireKey, showError } from "./api.js";

function attemptRow(a) {
  const answer = a.status_code !== null ? String(a.status_code) : a.error || "";
  return el("tr", { class: `delivery delivery-${a.state}` },
    el("td", { text: (a.started_at || "").replace("T", " ").slice(0, 19) }),
    el("td", { text: a.event_type }), el("td", {}, el("code", { text: a.event_id })),
    el("td", { text: String(a.attempt) }), el("td", { text: answer }),
    el("td", { text: `${fmt(a.duration_ms)} ms` }), el("td", { text: a.state }));
}

async function main() {
  const hooks = (await getJSON("/v1/webhooks")).items;
  const sections = [];
  for (const hook of hooks) {
    const deliveries = (await getJSON(`/v1/webhooks/${hook.id}/deliveries`)).items;
    sections.push(el("div", { class: "webhook", "data-webhook": hook.id },
      el("h2", {}, el("code", { text: hook.url })),
      el("p", { class: "hint", text: `${hook.id} · ${hook.events.join(", ")}${hook.description ? ` · ${hook.description}` : ""}` }),
      el("table", { class: "grid" },
        el("thead", {}, el("tr", {}, ...["when", "event", "event id", "attempt", "answer", "took", "state"].map((t) => el("th", { text: t })))),
        el("tbody", {}, ...deliveries.map(attemptRow)))));
  }
  document.getElementById("webhooks").replaceChildren(...sections);
  document.getElementById("no-webhooks").hidden = hooks.length > 0;
  document.getElementById("main").dataset.ready = "1";
}

requireKey().then(() => main().catch((error) => showError(error.message)));
