// The registered models: latest version and where each alias points.
import { el, getJSON, requireKey, showError } from "./api.js";

async function main() {
  const page = await getJSON("/v1/models");
  document.querySelector("#models tbody").replaceChildren(...page.items.map((m) =>
    el("tr", { "data-model": m.name },
      el("td", {}, el("a", { href: `/models/${encodeURIComponent(m.name)}`, text: m.name })),
      el("td", { text: m.latest_version ? `v${m.latest_version}` : "" }),
      el("td", { text: Object.entries(m.aliases).map(([a, v]) => `${a} → v${v}`).join(", ") }),
      el("td", { text: m.description || "" }),
      el("td", { text: (m.created_at || "").replace("T", " ").slice(0, 19) }))));
  document.getElementById("no-models").hidden = page.items.length > 0;
  document.getElementById("main").dataset.ready = "1";
}

requireKey().then(() => main().catch((error) => showError(error.message)));
