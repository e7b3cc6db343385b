// Compare (#/compare?runs=ID,ID): the selected runs side by side, one row each, as
// `guildctl compare` shows them. Clicking a header sorts the rows here in the page.

import { get, showError } from "./api.js";
import { h, fill, link, fmtTime, fmtValue, numericColumn, statusBadge } from "./dom.js";

const TIME_HEADERS = new Set(["started", "stopped"]);

/** Compare two cells for sorting: nulls last, numbers as numbers, the rest as text. */
export function compareCells(a, b) {
  if (a === null || a === undefined) return b === null || b === undefined ? 0 : 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

/** A cell's content: the run column links to the run, status is a badge, times are local. */
function cellContent(col, v, runId) {
  if (col.kind === "core" && col.header === "run") return link(`/runs/${runId}`, fmtValue(v));
  if (col.kind === "core" && col.header === "status" && v) return statusBadge(String(v));
  if (col.kind === "core" && TIME_HEADERS.has(col.header) && typeof v === "number" && v > 1e11) {
    return fmtTime(v);
  }
  return fmtValue(v);
}

/** Mount the compare view. */
export function mountCompare(container, { params }) {
  const ids = (params.get("runs") || "").split(",").filter(Boolean);
  const table = h("table", { "data-testid": "compare-table", class: "grid compare" });
  let data = null;
  let sortCol = -1;
  let asc = true;

  function draw() {
    const rows = [...data.rows];
    if (sortCol >= 0) {
      rows.sort((x, y) => (asc ? 1 : -1) * compareCells(x.cells[sortCol], y.cells[sortCol]));
    }
    // The server's columns normally include the run's id; a link column is added otherwise.
    const linked = data.columns.some((c) => c.kind === "core" && c.header === "run");
    // A column of numbers is right-aligned, its header too.
    const thClass = data.columns.map((c, i) => `sortable kind-${c.kind}` +
      (numericColumn(rows.map((r) => r.cells[i])) ? " num" : ""));
    fill(table, h("thead", {}, h("tr", {}, linked ? null : h("th", {}, "run"),
      data.columns.map((c, i) =>
      h("th", { class: thClass[i], title: c.kind, on: { click: () => {
        asc = sortCol === i ? !asc : true;
        sortCol = i;
        draw();
      } } }, c.header, sortCol === i ? h("span", { class: "arrow" }, asc ? " ▲" : " ▼")
        : null)))),
    h("tbody", {}, rows.map((r) => h("tr", { "data-run-id": r.run_id },
      linked ? null : h("td", { class: "mono" }, link(`/runs/${r.run_id}`, r.run_id.slice(0, 8))),
      r.cells.map((v, i) => h("td", { class: `kind-${data.columns[i].kind}` +
        (typeof v === "number" ? " num" : ""),
      "data-col": `${data.columns[i].kind}:${data.columns[i].header}` },
      cellContent(data.columns[i], v, r.run_id)))))));
  }

  async function load() {
    if (!ids.length) {
      fill(table, h("tbody", {}, h("tr", {}, h("td", { class: "muted" },
        "No runs selected: pick runs in the runs table, then Compare."))));
      return;
    }
    data = await get("/api/compare", { runs: ids.join(",") });
    draw();
  }

  fill(container, h("h1", {}, `Compare ${ids.length} run${ids.length === 1 ? "" : "s"}`),
    h("p", {}, link("/runs", "‹ back to runs")), h("div", { class: "table-wrap tall" }, table));
  load().catch(showError);
  return { refresh: load, dispose: () => {} };
}
