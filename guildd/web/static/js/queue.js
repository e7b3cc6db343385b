// The queue (#/queue): waiting runs in order, why each waits, priority and cancel; which runs
// hold which GPUs; each user's share.

import { act, get, post, showError } from "./api.js";
import { h, fill, link, fmtTime, statusBadge } from "./dom.js";
import { cancelRuns } from "./actions.js";

// Columns of numbers: right-aligned, their headers too, so each header sits over its digits.
const NUMERIC_HEADERS = new Set(["#", "priority", "GPUs", "GPUs held", "share", "waiting"]);

/** When a waiting run is expected to start, as `guildctl queue` says it: "starts in ~12 min",
 * "starts now", "unknown" (no duration known for a run it waits for). */
function fmtEta(ms) {
  if (ms === null || ms === undefined) return "unknown";
  const left = (ms - Date.now()) / 1000;
  if (left < 1) return "starts now";
  if (left < 60) return `starts in ~${Math.round(left)} s`;
  if (left < 3600) return `starts in ~${Math.round(left / 60)} min`;
  if (left < 48 * 3600) return `starts in ~${(left / 3600).toFixed(1)} h`;
  return `starts in ~${Math.round(left / 86400)} days`;
}

function entryRow(e, after) {
  const bump = (delta, testid, text, title) => h("button", { type: "button", class: "small",
    "data-testid": testid, title, on: { click: async () => after(await act(() =>
      post("/api/priority", { runs: [e.run.id], priority: e.priority + delta }))) } }, text);
  return h("tr", { "data-run-id": e.run.id },
    h("td", { "data-col": "position", class: "num" }, e.position),
    h("td", { "data-col": "id", class: "mono" }, link(`/runs/${e.run.id}`, e.run.short_id)),
    h("td", { "data-col": "op" }, link(`/runs/${e.run.id}`, e.run.op)),
    h("td", { "data-col": "label", class: "label" }, e.run.label || ""),
    h("td", { "data-col": "status" }, statusBadge(e.run.status)),
    h("td", { "data-col": "user" }, e.run.user),
    h("td", { "data-col": "priority", class: "num" }, e.priority),
    h("td", { "data-col": "gpus", class: "num" }, e.gpus || ""),
    h("td", { "data-col": "queue" }, e.queue || ""),
    h("td", { "data-col": "queued", class: "time" }, fmtTime(e.queued)),
    h("td", { "data-col": "eta", title: e.eta === null ? null : fmtTime(e.eta) }, fmtEta(e.eta)),
    h("td", { "data-col": "reason", class: "reason" }, e.reason || ""),
    h("td", {}, h("div", { class: "row-actions" },
      bump(1, "priority-up", "▲", "raise priority"),
      bump(-1, "priority-down", "▼", "lower priority"),
      h("button", { type: "button", class: "small", "data-testid": "cancel",
        title: "take it out of the queue",
        on: { click: async () => after(await cancelRuns([e.run])) } }, "cancel"))));
}

/** Mount the queue view. */
export function mountQueue(container, { refresh }) {
  const banner = h("div", { class: "banner", "data-testid": "queue-paused", hidden: true },
    "Queue processing is paused: staged runs wait until 'guildctl queue start'.");
  const table = h("table", { "data-testid": "queue-table", class: "grid" });
  const holdings = h("div");
  const users = h("div");
  const after = async (answer) => {
    if (answer !== undefined) await refresh();
  };

  async function load() {
    const q = await get("/api/queue");
    banner.hidden = !q.paused;
    fill(table, h("thead", {}, h("tr", {}, ["#", "id", "operation", "label", "status", "user",
      "priority", "GPUs", "queue", "queued", "expected", "why it waits", ""].map((t) => h("th", {
      class: NUMERIC_HEADERS.has(t) ? "num" : null }, t)))),
    h("tbody", {}, q.entries.length ? q.entries.map((e) => entryRow(e, after))
      : h("tr", { class: "empty" }, h("td", { colspan: 13 }, "No runs are waiting."))));
    fill(holdings, h("table", { class: "grid compact", "data-testid": "holdings-table" },
      h("thead", {}, h("tr", {}, ["run", "user", "devices"].map((t) => h("th", {}, t)))),
      h("tbody", {}, q.holdings.length ? q.holdings.map((x) => h("tr", {
        "data-run-id": x.run_id },
      h("td", { class: "mono" }, link(`/runs/${x.run_id}`, x.run_id.slice(0, 8))),
      h("td", {}, x.user), h("td", { class: "mono" }, x.devices.length ? `GPU ${x.devices.join(", ")}` : "(none)")))
        : h("tr", {}, h("td", { colspan: 3, class: "muted" }, "No run holds a GPU.")))));
    const list = q.users || [];
    fill(users, list.length ? h("table", { class: "grid compact" },
      h("thead", {}, h("tr", {}, ["user", "GPUs held", "share", "waiting"]
        .map((t) => h("th", { class: NUMERIC_HEADERS.has(t) ? "num" : null }, t)))),
      h("tbody", {}, list.map((u) => h("tr", {}, h("td", {}, u.user),
        h("td", { class: "num" }, u.gpus_held), h("td", { class: "num" }, `${Math.round(u.share * 100)}%`),
        h("td", { class: "num" }, u.waiting)))))
      : h("p", { class: "muted" }, "No user holds or waits for GPUs."));
  }

  fill(container, h("h1", {}, "Queue"), banner, h("div", { class: "table-wrap" }, table),
    h("section", { class: "panel" }, h("h2", {}, "Running runs holding GPUs"), holdings),
    h("section", { class: "panel" }, h("h2", {}, "Users"), users));
  load().catch(showError);
  return { refresh: load, dispose: () => {} };
}
