// A batch (#/batches/ID): its trials with their flags and objective, the objective by trial
// number, and the objective against each flag.

import { get, showError } from "./api.js";
import { h, fill, link, fmtValue, statusBadge } from "./dom.js";
import { flagPlot, objectivePlot } from "./plots.js";

function trialsTable(b) {
  return h("table", { "data-testid": "trials-table", class: "grid" },
    h("thead", {}, h("tr", {}, h("th", { class: "num" }, "trial"), h("th", {}, "run"),
      h("th", {}, "status"), b.flag_names.map((f) => h("th", { class: "flag" }, f)),
      h("th", { class: "num" }, `${b.objective.column || "objective"}` +
        (b.objective.column ? (b.objective.maximize ? " (max)" : " (min)") : "")))),
    h("tbody", {}, b.trials.length ? b.trials.map((t) => h("tr", { "data-run-id": t.run.id },
      h("td", { "data-col": "number", class: "num" }, t.number),
      h("td", { "data-col": "id", class: "mono" }, link(`/runs/${t.run.id}`, t.run.short_id)),
      h("td", { "data-col": "status" }, statusBadge(t.run.status)),
      b.flag_names.map((f) => h("td", { "data-col": `flag:${f}`, class: "flag" },
        fmtValue((t.run.flags || {})[f]))),
      h("td", { "data-col": "objective", class: "num" }, fmtValue(t.objective))))
      : h("tr", { class: "empty" }, h("td", { colspan: 4 + b.flag_names.length },
        "No trials yet."))));
}

/** Mount the batch view of run `path[1]`. */
export function mountBatch(container, { path }) {
  const runId = path[1];
  const head = h("div");
  const table = h("div", { class: "table-wrap" });
  const plots = h("div", { class: "plots" });
  let made = [];
  let shape = "";

  function drawPlots(b) {
    // Rebuilt only when a trial's objective or flags changed; a refetch otherwise keeps them.
    const next = JSON.stringify([b.objective, b.flag_names,
      b.trials.map((t) => [t.number, t.objective, t.run.flags])]);
    if (next === shape) return;
    shape = next;
    for (const p of made) p.destroy();
    made = [];
    plots.replaceChildren();
    const objEl = h("div", { "data-testid": "plot-objective", class: "plot" },
      h("div", { class: "plot-title" }, `${b.objective.column || "objective"} by trial`));
    plots.append(objEl);
    made.push(objectivePlot(objEl, b.trials, b.objective));
    for (const f of b.flag_names) {
      const el = h("div", { "data-testid": "plot-flag", "data-flag": f, class: "plot" },
        h("div", { class: "plot-title" }, `${b.objective.column || "objective"} vs `,
          h("span", { class: "mono" }, f)));
      plots.append(el);
      made.push(flagPlot(el, f, b.trials, b.objective));
    }
  }

  async function load() {
    const b = await get(`/api/batches/${encodeURIComponent(runId)}`);
    fill(head, h("h1", {}, "Batch ", link(`/runs/${b.run.id}`, b.run.short_id,
      { class: "mono" }), ` ${b.run.op} `, statusBadge(b.run.status)),
    h("p", { class: "muted" }, `${b.trials.length} trial${b.trials.length === 1 ? "" : "s"}`,
      b.objective.column ? ` · objective: ${b.objective.maximize ? "maximize" : "minimize"} ` +
        b.objective.column : " · no objective column",
      b.trials.length ? [" · ", link(`/compare?runs=${b.trials.map((t) => t.run.id).join(",")}`,
        "compare the trials", { "data-testid": "compare-trials" })] : null));
    fill(table, trialsTable(b));
    drawPlots(b);
  }

  fill(container, head, table, plots);
  load().catch(showError);
  return { refresh: load, dispose: () => { for (const p of made) p.destroy(); } };
}
