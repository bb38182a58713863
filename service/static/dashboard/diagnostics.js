// A job's per-layer diagnostics (GET /v1/jobs/{id}/diagnostics, docs/diagnostics.md): one
// chart per quantity with a curve per layer, and the job's warnings above them.
import { el, getJSON } from "./api.js";
import { lineChart } from "./charts.js";

// The healthy band of the update ratio: core/diagnostics.py's UPDATE_RATIO_RANGE (the
// warnings themselves come from the server; this only draws the band's edges).
const RATIO_BAND = [1e-5, 1e-1];
const CHARTS = [
  { key: "weight_norm", id: "diag-weight-norm" },
  { key: "grad_norm", id: "diag-grad-norm" },
  { key: "update_ratio", id: "diag-update-ratio", logY: true, hlines: RATIO_BAND },
  { key: "dead_fraction", id: "diag-dead-fraction", include: [0, 1] },
];

function layerName(series) {
  return `layer ${series.layer} ${series.type || ""}`.trim();
}

export function drawWarnings(warnings) {
  const list = document.getElementById("diag-warnings");
  list.replaceChildren(...(warnings || []).map((w) => el("li", {
    class: `diag-warning ${w.kind}`, "data-layer": String(w.layer), "data-kind": w.kind,
    text: `epoch ${w.epoch}: ${w.message}`,
  })));
  list.hidden = !list.children.length;
}

export function drawDiagnostics(body) {
  // Nothing yet (a queued job, a range test that never ends an epoch): no section until an
  // epoch brings rows. Switched off: the section says so, without empty charts.
  const none = !body.layers.length;
  document.getElementById("diagnostics").hidden = body.enabled && none;
  document.getElementById("diag-off").hidden = body.enabled;
  document.getElementById("diag-charts").hidden = none;
  drawWarnings(body.warnings);
  for (const chart of CHARTS) {
    const series = body.layers.filter((s) => Array.isArray(s[chart.key])).map((s, i) => ({
      name: layerName(s),
      cls: `layer-series s${i % 6}`,
      points: s.epochs.map((epoch, k) => [epoch, s[chart.key][k]]).filter(([, v]) => typeof v === "number"),
    }));
    const figure = document.getElementById(chart.id).closest("figure");
    figure.hidden = !series.length; // no ReLU layer: no dead-units panel
    // A log axis cannot show 0: say so rather than "no epochs" (an update too small for the
    // weights' precision leaves them exactly unchanged).
    const zeros = series.some((s) => s.points.some(([, v]) => v === 0));
    lineChart(document.getElementById(chart.id), series, {
      logY: chart.logY, hlines: chart.hlines || [], include: chart.include || [],
      empty: chart.logY && zeros ? "every value is 0: the weights did not change" : "no epochs yet",
    });
  }
}

export async function loadDiagnostics(jobId) {
  const body = await getJSON(`/v1/jobs/${jobId}/diagnostics`);
  drawDiagnostics(body);
  return body;
}
