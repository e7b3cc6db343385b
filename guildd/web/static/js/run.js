// A run's page (#/runs/ID): header, the actions its status allows, flags, scalars with a chart
// of each one's history, the live output, files, attributes, and the clone form.

import { act, get, post, runPath, showError } from "./api.js";
import { h, fill, link, fmtData, fmtTime, fmtValue, runDuration, statusBadge } from "./dom.js";
import { cancelRuns, deleteRuns, labelRuns, markRuns, setPriority, stopRuns, tagRuns }
  from "./actions.js";
import { cloneForm } from "./clone.js";
import { filesPane } from "./runfiles.js";
import { outputPane } from "./runoutput.js";
import { scalarPlot } from "./plots.js";

const WAITING = new Set(["staged", "pending"]);

/** Which actions apply to a run in this status (pure: the buttons follow it). */
export function runActions(run) {
  const waiting = run.queued || WAITING.has(run.status);
  const actions = [];
  if (run.status === "running") actions.push("stop");
  if (waiting) actions.push("start", "priority", "cancel");
  actions.push("label", "tag", "mark", "clone", "delete");
  return actions;
}

// Attributes the page already shows in its header, flags table or run details.
const SHOWN_ELSEWHERE = new Set(["exit_status", "flags", "id", "label", "sourcecode_digest",
  "started", "stopped", "tags", "user"]);
// Guild writes these as microseconds since the epoch.
const MICROSECOND_TIMES = new Set(["initialized", "staged", "started", "stopped"]);

/**
 * The attributes table's rows, [key, text] by key: those shown elsewhere on the page left out,
 * Guild's microsecond times as local date-times, structured values as short YAML-like text.
 */
export function attrRows(attrs) {
  return Object.keys(attrs || {}).filter((k) => !SHOWN_ELSEWHERE.has(k)).sort().map((k) => {
    const v = attrs[k];
    if (MICROSECOND_TIMES.has(k) && typeof v === "number") return [k, fmtTime(v / 1000)];
    return [k, fmtData(v)];
  });
}

function kvTable(testid, rows, empty) {
  return h("table", { "data-testid": testid, class: "grid kv" }, h("tbody", {},
    rows.length ? rows.map(([k, v]) => h("tr", {}, h("th", { class: "mono" }, k),
      h("td", { class: "mono" }, v)))
      : h("tr", {}, h("td", { class: "muted" }, empty))));
}

/** An object's entries by key, each value through `fmt`. */
const sortedRows = (obj, fmt) => Object.keys(obj || {}).sort().map((k) => [k, fmt(obj[k])]);

function scalarsTable(summaries) {
  // A value and the step it was logged at, "0.125 (7)": which step is whose stays clear.
  const at = (v, step) => h("td", { class: "num" }, fmtValue(v),
    step === null || step === undefined ? null : h("span", { class: "step" }, ` (${step})`));
  return h("table", { "data-testid": "run-scalars", class: "grid scalars" },
    h("thead", {}, h("tr", {}, h("th", {}, "tag"),
      ["last (step)", "min (step)", "max (step)", "count"].map((t) => h("th", { class: "num" },
        t)))),
    h("tbody", {}, summaries.length ? summaries.map((s) => h("tr", { "data-tag": s.tag },
      h("th", { class: "mono" }, s.tag), at(s.last, s.last_step), at(s.min, s.min_step),
      at(s.max, s.max_step), h("td", { class: "num" }, fmtValue(s.count))))
      : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No scalars yet."))));
}

function details(run) {
  const rows = [["id", run.id], ["run dir", run.run_dir], ["opref", run.opref],
    ["command", run.command], ["source digest", run.sourcecode_digest],
    ["vcs commit", run.vcs_commit], ["from", run.from], ["pid", run.pid],
    ["exit status", run.exit_status]];
  return h("table", { class: "grid kv" }, h("tbody", {}, rows.filter(([, v]) =>
    v !== null && v !== undefined && v !== "").map(([k, v]) =>
    h("tr", {}, h("th", {}, k), h("td", { class: "mono" }, fmtValue(v))))));
}

function section(title, ...body) {
  return h("section", { class: "panel" }, h("h2", {}, title), ...body);
}

/** Mount the page of run `path[1]`. */
export function mountRun(container, { path, refresh }) {
  const runId = path[1];
  let run = null;
  let timer = null;
  let cloneOpen = false;
  const plots = new Map();
  const head = h("div", { class: "run-head" });
  const actions = h("div", { class: "actions" });
  const waitInfo = h("p", { class: "wait-info", hidden: true });
  const cloneSlot = h("div", { class: "clone-slot" });
  const flags = h("div");
  const scalars = h("div");
  const plotGrid = h("div", { class: "plots" });
  const attrs = h("div");
  const extra = h("div");
  const files = filesPane(runId);
  const output = outputPane(runId, () => refresh());

  const done = async (answer) => {
    if (answer !== undefined) await refresh();
  };
  const button = (name, text, fn, cls) => h("button", { type: "button",
    "data-testid": `action-${name}`, class: cls || null, on: { click: fn } }, text);
  const handlers = {
    stop: () => button("stop", "Stop", async () => done(await stopRuns([run])), "danger"),
    start: () => button("start", "Start now", async () => done(await act(() =>
      post("/api/start", { run: run.id }))), "primary"),
    priority: () => button("priority", "Priority…", async () =>
      done(await setPriority([run], run.priority))),
    cancel: () => button("cancel", "Cancel (leave queue)", async () =>
      done(await cancelRuns([run]))),
    label: () => button("label", "Label…", async () => done(await labelRuns([run]))),
    tag: () => button("tag", "Tags…", async () => done(await tagRuns([run]))),
    mark: () => button("mark", run.marked ? "Unmark" : "Mark", async () =>
      done(await markRuns([run], run.marked))),
    clone: () => button("clone", "Clone…", () => {
      cloneOpen = !cloneOpen;
      fill(cloneSlot, cloneOpen ? cloneForm(run, () => { cloneOpen = false; fill(cloneSlot); })
        : null);
    }),
    delete: () => button("delete", "Delete", async () => {
      const answer = await deleteRuns([run], run.deleted);
      if (answer !== undefined) location.hash = "/runs";
    }, "danger"),
  };

  function drawHead() {
    const meta = [["user", run.user], ["started", fmtTime(run.started)],
      ["time", runDuration(run) && h("span", { class: "duration" }, runDuration(run))],
      ["stopped", fmtTime(run.stopped)],
      ["tags", (run.tags || []).map((t) => h("span", { class: "tag" }, t))]];
    fill(head,
      h("h1", {}, h("span", { class: "mono" }, run.short_id), " ", run.op, " ",
        statusBadge(run.status, { "data-testid": "run-status" }),
        run.marked ? h("span", { class: "tag", title: "marked" }, "★ marked") : null,
        run.deleted ? h("span", { class: "tag" }, "in the trash") : null),
      run.label ? h("p", { class: "run-label", "data-testid": "run-label" }, run.label) : null,
      h("dl", { class: "meta" }, meta.filter(([, v]) => v && (!Array.isArray(v) || v.length))
        .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      run.is_batch ? h("p", {}, link(`/batches/${run.id}`, "Trials and plots of this batch ›",
        { "data-testid": "batch-link" })) : null);
    fill(actions, runActions(run).map((a) => handlers[a]()));
  }

  async function drawWait() {
    if (!(run.queued || WAITING.has(run.status))) {
      waitInfo.hidden = true;
      return;
    }
    const queue = await get("/api/queue");
    const entry = queue.entries.find((e) => e.run.id === run.id);
    run.priority = entry ? entry.priority : 0;
    fill(waitInfo, entry ? `Waiting in the queue: position ${entry.position}, ` +
      `priority ${entry.priority}${entry.reason ? ` — ${entry.reason}` : ""}`
      : "Staged: not in the queue. Start it now, or clone it.");
    waitInfo.hidden = false;
  }

  function drawPlots(series) {
    const seen = new Set();
    for (const s of series) {
      seen.add(s.tag);
      const existing = plots.get(s.tag);
      if (existing) {
        existing.plot.setData(s);
        continue;
      }
      const el = h("div", { "data-testid": "plot", "data-tag": s.tag, class: "plot" },
        h("div", { class: "plot-title mono" }, s.tag));
      plotGrid.append(el);
      plots.set(s.tag, { el, plot: scalarPlot(el, s) });
    }
    for (const [tag, p] of plots) {
      if (!seen.has(tag)) {
        p.plot.destroy();
        p.el.remove();
        plots.delete(tag);
      }
    }
  }

  function drawAttrs() {
    const open = new Set([...attrs.querySelectorAll("details[open]")].map((d) => d.dataset.key));
    const more = (key, title, body) => h("details", { "data-key": key, open: open.has(key) },
      h("summary", {}, title), body);
    fill(attrs, kvTable("run-attrs", attrRows(run.attrs), "No other attributes."),
      more("details", "Run details", details(run)),
      Object.keys(run.deps || {}).length ? more("deps", "Dependencies",
        h("pre", { class: "mono small deps" }, fmtData(run.deps))) : null,
      more("env", "Environment", kvTable("run-env", sortedRows(run.env, String),
        "None recorded.")));
    fill(extra, (run.comments || []).length ? section("Comments", h("ul", { class: "comments" },
      run.comments.map((c) => h("li", {}, h("div", { class: "muted" },
        `${c.user}@${c.host} ${fmtTime(c.time)}`), h("div", { class: "comment" }, c.body)))))
      : null);
  }

  async function load() {
    const [answer, scalarData] = await Promise.all([get(runPath(runId)),
      get(runPath(runId, "/scalars"))]);
    const wasRunning = run && run.status === "running";
    run = answer.run;
    drawHead();
    fill(flags, kvTable("run-flags", sortedRows(run.flags, fmtValue), "No flags."));
    fill(scalars, scalarsTable(run.scalar_summaries || []));
    drawPlots(scalarData.series || []);
    drawAttrs();
    await Promise.all([files.refresh(), drawWait()]);
    // A restarted run streams again; an ended one already said so.
    if (run.status === "running" && !wasRunning && !output.streaming()) output.start();
  }

  fill(container, head, actions, waitInfo, cloneSlot,
    h("div", { class: "two-col" }, section("Flags", flags), section("Scalars", scalars)),
    plotGrid,
    section("Output", output.el),
    section("Files", files.el),
    section("Attributes", attrs),
    extra);
  output.start();
  load().catch((e) => {
    if (e.status === 404) output.stop();  // no such run: nothing will ever stream
    showError(e);
  });
  timer = setInterval(() => {
    const d = head.querySelector(".duration");
    if (run && run.status === "running" && d) d.textContent = runDuration(run);
  }, 1000);
  return {
    refresh: load,
    dispose: () => {
      clearInterval(timer);
      output.stop();
      for (const p of plots.values()) p.plot.destroy();
    },
  };
}
