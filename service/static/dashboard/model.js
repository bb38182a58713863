// One model: its versions (metrics, provenance, downloads), its aliases and their history.
import { el, fmt, getBlob, getJSON, requireKey, showError } from "./api.js";

const name = document.getElementById("main").dataset.modelName;
const path = `/v1/models/${encodeURIComponent(name)}`;

function downloadLink(text, url, filename) {
  const link = el("a", { href: "#", class: "download", text });
  link.onclick = async (event) => {
    event.preventDefault();
    try {
      link.href = URL.createObjectURL(await getBlob(url));
      link.download = filename;
      link.onclick = null;
      link.click();
    } catch (error) {
      showError(error.message);
    }
  };
  return link;
}

function metrics(values) {
  return ["loss", "accuracy", "val_loss", "val_accuracy"].filter((k) => typeof (values || {})[k] === "number")
    .map((k) => `${k} ${fmt(values[k])}`).join(", ");
}

async function main() {
  const [model, versions] = await Promise.all([getJSON(path), getJSON(`${path}/versions`)]);
  document.getElementById("model-summary").textContent =
    `${model.description || ""} · ${versions.items.length} version(s) · aliases: ` +
    (Object.entries(model.aliases).map(([a, v]) => `${a} → v${v}`).join(", ") || "none");
  document.querySelector("#versions tbody").replaceChildren(...versions.items.map((v) =>
    el("tr", { "data-version": String(v.version) },
      el("td", { text: `v${v.version}` }),
      el("td", { text: v.aliases.join(", ") }),
      el("td", { text: metrics(v.metrics) }),
      el("td", {}, v.job_id ? el("a", { href: `/jobs/${encodeURIComponent(v.job_id)}`, text: v.job_id }) : ""),
      el("td", { text: v.checkpoint_id }),
      el("td", { text: (v.created_at || "").replace("T", " ").slice(0, 19) }),
      el("td", {}, downloadLink("weights.npz", `/v1/checkpoints/${v.checkpoint_id}/weights.npz`, `${name}-v${v.version}.npz`),
        " ", downloadLink("model.onnx", `/v1/checkpoints/${v.checkpoint_id}/model.onnx`, `${name}-v${v.version}.onnx`)))));

  const aliases = new Set(Object.keys(model.aliases));
  const box = document.getElementById("alias-history");
  const tables = [];
  for (const alias of aliases) {
    const history = await getJSON(`${path}/aliases/${encodeURIComponent(alias)}/history`);
    tables.push(el("h3", { text: alias }), el("table", { class: "grid alias-history", "data-alias": alias },
      el("thead", {}, el("tr", {}, el("th", { text: "version" }), el("th", { text: "from" }), el("th", { text: "to" }))),
      el("tbody", {}, ...history.items.map((h) => el("tr", {},
        el("td", { text: `v${h.version}` }), el("td", { text: h.from.replace("T", " ").slice(0, 19) }),
        el("td", { text: h.to ? h.to.replace("T", " ").slice(0, 19) : "now" }))))));
  }
  box.replaceChildren(...(tables.length ? tables : [el("p", { class: "hint", text: "No aliases yet." })]));
  document.getElementById("main").dataset.ready = "1";
}

requireKey().then(() => main().catch((error) => showError(error.message)));
