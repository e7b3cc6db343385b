// The runs table (#/runs): Guild's `runs` filters, flag and scalar columns, sorting, paging and
// actions on a selection. Filters, sort and page live in the hash, so reload and back work.

import { get, showError } from "./api.js";
import { h, fill, link, fmtTime, fmtValue, numericColumn, runDuration, statusBadge }
  from "./dom.js";
import { deleteRuns, labelRuns, stopRuns, tagRuns } from "./actions.js";

const PER_PAGE = 50;
const STATUSES = ["running", "completed", "error", "terminated", "staged", "pending"];
const TEXT_FILTERS = [
  ["op", "operation", "train.py"],
  ["label", "label", "text in label"],
  ["tag", "tag", "tag"],
  ["filter", "filter", "loss < 0.3 and lr = 0.1"],
  ["started", "started", "last hour, today..."],
];
const FLAGS_PARAMS = [["marked", "marked"], ["unmarked", "unmarked"],
  ["unlabeled", "unlabeled"], ["deleted", "trash"]];
const STARTED_HINTS = ["last hour", "last 2 hours", "today", "yesterday", "this week",
  "last week", "last 3 days", "this month"];

// The selection outlives a page change or a refetch: the user may pick runs on several pages.
const selected = new Map();

/** Hash query for the runs route: only the filters that are set, page 1 left out. */
export function runsHash(params) {
  const q = new URLSearchParams();
  for (const [k, v] of params) if (v !== "" && !(k === "page" && v === "1")) q.append(k, v);
  const s = q.toString();
  return s ? `/runs?${s}` : "/runs";
}

/** The next sort when a header is clicked: the same column flips, a new one starts sensibly. */
export function nextSort(current, order, col) {
  if (current === col) return { sort: col, order: order === "asc" ? "desc" : "asc" };
  return { sort: col, order: col === "started" ? "desc" : "asc" };
}

/** Go to a runs route; the same route again refetches (setting the same hash does nothing). */
function go(route, refresh) {
  if (location.hash === `#${route}`) refresh();
  else location.hash = route;
}

function filterForm(params, refresh) {
  const form = h("form", { "data-testid": "runs-filter", class: "filters" });
  for (const [name, title, placeholder] of TEXT_FILTERS) {
    form.append(h("label", {}, h("span", {}, title),
      h("input", { name, type: "text", value: params.get(name) || "", placeholder,
        list: name === "started" ? "started-hints" : null, class: `f-${name}` })));
  }
  form.append(h("datalist", { id: "started-hints" },
    STARTED_HINTS.map((v) => h("option", { value: v }))));
  const wanted = new Set(params.getAll("status"));
  form.append(h("fieldset", { class: "checks" }, h("legend", {}, "status"),
    STATUSES.map((s) => h("label", { class: `check status-text-${s}` },
      h("input", { type: "checkbox", name: "status", value: s, checked: wanted.has(s) }), s))));
  form.append(h("fieldset", { class: "checks" }, h("legend", {}, "show"),
    FLAGS_PARAMS.map(([name, title]) => h("label", { class: "check" },
      h("input", { type: "checkbox", name, value: "1", checked: params.get(name) === "1" }),
      title))));
  form.append(h("div", { class: "filter-buttons" },
    h("button", { type: "submit", class: "primary", "data-testid": "filter-apply" }, "Apply"),
    h("a", { href: "#/runs", class: "button", "data-testid": "filter-clear" }, "Clear")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (String(v).trim()) next.append(k, String(v).trim());
    for (const k of ["sort", "order"]) if (params.get(k)) next.set(k, params.get(k));
    go(runsHash(next), refresh);
  });
  return form;
}

/** Whether a flag's column on this page holds numbers only (then it is right-aligned). */
function numericFlag(data, flag) {
  return numericColumn(data.runs.map((r) => (r.flags || {})[flag]));
}

function header(data, params) {
  const sort = params.get("sort") || "started";
  const order = params.get("order") || (sort === "started" ? "desc" : "asc");
  const th = (title, col, cls) => {
    const attrs = { class: cls || null, title };
    if (col) {
      attrs["data-sort"] = col;
      attrs.class = `${cls || ""} sortable`;
      if (col === sort) attrs["aria-sort"] = order === "asc" ? "ascending" : "descending";
      attrs.on = { click: () => {
        const next = new URLSearchParams(params);
        const s = nextSort(sort, order, col);
        next.set("sort", s.sort);
        next.set("order", s.order);
        next.delete("page");
        location.hash = runsHash(next);
      } };
    }
    return h("th", attrs, title, col === sort ? h("span", { class: "arrow" },
      order === "asc" ? " ▲" : " ▼") : null);
  };
  const pageIds = data.runs.map((r) => r.id);
  const all = h("input", { type: "checkbox", "data-testid": "select-page",
    title: "select the runs on this page",
    checked: pageIds.length > 0 && pageIds.every((id) => selected.has(id)) });
  return { all, row: h("tr", {}, h("th", { class: "sel" }, all), th("#", null, "num"),
    th("id"), th("operation"), th("started", "started"), th("time", null, "num"), th("status"),
    th("label"), th("tags"),
    data.flag_columns.map((f) => th(f, `=${f}`, numericFlag(data, f) ? "flag num" : "flag")),
    data.scalar_columns.map((s) => th(s, s, "scalar num"))) };
}

function row(run, data, onSelect) {
  const box = h("input", { type: "checkbox", "data-testid": "select-run",
    checked: selected.has(run.id), on: { change: (ev) => onSelect(run, ev.target.checked) } });
  const tr = h("tr", { "data-run-id": run.id, class: run.marked ? "marked" : null },
    h("td", { class: "sel" }, box),
    h("td", { "data-col": "index", class: "num" }, run.index ?? ""),
    h("td", { "data-col": "id", class: "mono" }, link(`/runs/${run.id}`, run.short_id)),
    h("td", { "data-col": "op" }, link(`/runs/${run.id}`, run.op)),
    h("td", { "data-col": "started", class: "time" }, fmtTime(run.started)),
    h("td", { "data-col": "time", class: "num" }, runDuration(run)),
    h("td", { "data-col": "status" }, statusBadge(run.status)),
    h("td", { "data-col": "label", class: "label",
      title: (run.label || "").length > 40 ? run.label : null }, run.label || ""),
    h("td", { "data-col": "tags" }, (run.tags || []).map((t) => h("span", { class: "tag" }, t))),
    data.flag_columns.map((f) => {
      const text = fmtValue((run.flags || {})[f]);
      return h("td", { "data-col": `flag:${f}`, class: numericFlag(data, f) ? "flag num" : "flag",
        title: text.length > 30 ? text : null }, text);
    }),
    data.scalar_columns.map((s) => h("td", { "data-col": `scalar:${s}`, class: "num" },
      fmtValue((run.scalars || {})[s]))));
  if (run.marked) tr.title = "marked";
  return tr;
}

/** Mount the runs table for the hash's filters. */
export function mountRuns(container, { params, refresh }) {
  const page = Math.max(1, Number.parseInt(params.get("page") || "1", 10) || 1);
  const table = h("table", { "data-testid": "runs-table", class: "grid runs" });
  const pager = h("div", { "data-testid": "pager", class: "pager" });
  const count = h("span", { class: "sel-count" });
  const buttons = {};

  const selectedRuns = () => [...selected.values()];
  const syncToolbar = () => {
    const n = selected.size;
    fill(count, n ? `${n} selected` : "none selected",
      n ? h("button", { type: "button", class: "link", "data-testid": "select-none",
        on: { click: () => { selected.clear(); redraw(); } } }, "clear") : null);
    for (const b of Object.values(buttons)) b.disabled = n === 0;
  };
  const onSelect = (run, on) => {
    if (on) selected.set(run.id, run);
    else selected.delete(run.id);
    redraw();
  };
  const afterAction = async (answer, clear) => {
    if (answer === undefined) return;
    if (clear) selected.clear();
    await refresh();
  };
  const trash = params.get("deleted") === "1";
  const tool = (testid, text, fn, cls) => {
    buttons[testid] = h("button", { type: "button", "data-testid": testid, class: cls || null,
      disabled: true, on: { click: fn } }, text);
    return buttons[testid];
  };
  const toolbar = h("div", { class: "toolbar" }, count,
    tool("compare-selected", "Compare", () => {
      location.hash = `/compare?runs=${selectedRuns().map((r) => r.id).join(",")}`;
    }),
    tool("stop-selected", "Stop", async () => afterAction(await stopRuns(selectedRuns()), true)),
    tool("label-selected", "Label…", async () => afterAction(await labelRuns(selectedRuns()))),
    tool("tag-selected", "Tag…", async () => afterAction(await tagRuns(selectedRuns()))),
    tool("delete-selected", trash ? "Delete permanently" : "Delete",
      async () => afterAction(await deleteRuns(selectedRuns(), trash), true), "danger"),
    pager);

  let last = null;
  function redraw() {
    if (!last) return;
    // Keep the selected runs' objects fresh (their labels show in confirmations).
    for (const r of last.runs) if (selected.has(r.id)) selected.set(r.id, r);
    const head = header(last, params);
    head.all.addEventListener("change", (ev) => {
      for (const r of last.runs) {
        if (ev.target.checked) selected.set(r.id, r);
        else selected.delete(r.id);
      }
      redraw();
    });
    const body = h("tbody", {}, last.runs.length ? last.runs.map((r) => row(r, last, onSelect))
      : h("tr", { class: "empty" }, h("td", { colspan: 9 + last.flag_columns.length +
        last.scalar_columns.length }, trash ? "The trash is empty." : "No runs match.")));
    fill(table, h("thead", {}, head.row), body);
    const pages = Math.max(1, Math.ceil(last.total / last.per));
    const go = (p) => {
      const next = new URLSearchParams(params);
      next.set("page", String(p));
      location.hash = runsHash(next);
    };
    fill(pager, h("span", { class: "total" }, `${last.total} run${last.total === 1 ? "" : "s"}`),
      h("button", { type: "button", "data-testid": "page-prev", disabled: last.page <= 1,
        on: { click: () => go(last.page - 1) } }, "‹ prev"),
      h("span", { class: "page-of" }, `page ${last.page} of ${pages}`),
      h("button", { type: "button", "data-testid": "page-next", disabled: last.page >= pages,
        on: { click: () => go(last.page + 1) } }, "next ›"));
    syncToolbar();
  }

  async function load() {
    const q = new URLSearchParams(params);
    q.set("page", String(page));
    q.set("per", String(PER_PAGE));
    last = await get("/api/runs", q);
    redraw();
  }

  fill(container, h("h1", {}, trash ? "Runs in the trash" : "Runs"), filterForm(params, refresh),
    toolbar, h("div", { class: "table-wrap tall" }, table));
  syncToolbar();
  load().catch(showError);
  return { refresh: load, dispose: () => {} };
}
