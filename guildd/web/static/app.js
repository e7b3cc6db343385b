// guildctl view: the page. Hash routes pick a view; one EventSource on /api/events tells the
// current view to refetch (at most once a second) whenever runs, scalars or the queue change.
//
// A view is mount(container, {path, params, refresh}) -> {refresh(): Promise, dispose()}: its
// refresh updates what the view shows in place, so a live update keeps the user's scroll,
// selection and any form they have open; the `refresh` it is given refetches it now (after an
// action) through the same guard that keeps two refetches from overlapping.

import { loadSession, showError } from "./js/api.js";
import { fill, h } from "./js/dom.js";
import { mountRuns } from "./js/runs.js";
import { mountRun } from "./js/run.js";
import { mountQueue } from "./js/queue.js";
import { mountGpus } from "./js/gpus.js";
import { mountBatch } from "./js/batch.js";
import { mountCompare } from "./js/compare.js";

const REFRESH_INTERVAL_MS = 1000;

let current = null;
let lastRefresh = 0;
let refreshTimer = null;
let refreshing = false;

/** Split "#/runs/abc?x=1" into path segments and query parameters. */
function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/runs";
  const qi = raw.indexOf("?");
  const path = (qi < 0 ? raw : raw.slice(0, qi)).split("/").filter(Boolean)
    .map(decodeURIComponent);
  const params = new URLSearchParams(qi < 0 ? "" : raw.slice(qi + 1));
  return { path, params };
}

function pickView(path) {
  const [head, arg] = path;
  if (head === "runs" && arg) return [mountRun, "runs"];
  if (head === "queue") return [mountQueue, "queue"];
  if (head === "gpus") return [mountGpus, "gpus"];
  if (head === "batches" && arg) return [mountBatch, "runs"];
  if (head === "compare") return [mountCompare, "runs"];
  return [mountRuns, "runs"];
}

function route() {
  if (current) current.dispose();
  clearTimeout(refreshTimer);
  refreshTimer = null;
  showError(null);
  const target = parseHash();
  const [mount, nav] = pickView(target.path);
  for (const a of document.querySelectorAll("nav.main a")) {
    a.classList.toggle("active", a.dataset.nav === nav);
  }
  const container = fill(document.getElementById("view"));
  current = mount(container, { ...target, refresh: refreshNow });
  lastRefresh = Date.now();
}

async function refreshNow() {
  if (!current) return;
  if (refreshing) {
    scheduleRefresh();
    return;
  }
  refreshing = true;
  lastRefresh = Date.now();
  const view = current;
  try {
    await view.refresh();
  } catch (e) {
    if (view === current) showError(e);
  } finally {
    refreshing = false;
  }
}

/** Refetch the current view, throttled to one refetch per REFRESH_INTERVAL_MS. */
export function scheduleRefresh() {
  if (refreshTimer) return;
  const wait = Math.max(0, lastRefresh + REFRESH_INTERVAL_MS - Date.now());
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refreshNow();
  }, wait);
}

function listen() {
  const events = new EventSource("/api/events");
  events.addEventListener("changed", scheduleRefresh);
  events.addEventListener("open", () => {
    document.body.classList.remove("offline");
  });
  events.addEventListener("error", () => {
    // EventSource reconnects by itself; a refetch on reconnect catches what was missed.
    document.body.classList.add("offline");
  });
}

async function start() {
  try {
    const session = await loadSession();
    const user = document.querySelector("[data-testid=user]");
    fill(user, session.user, session.admin ? h("span", { class: "tag" }, "admin") : null);
    user.title = `guildd ${session.version || ""} · ${session.home || ""}` +
      (session.shared ? " · shared" : "");
  } catch (e) {
    showError(e);
    return;
  }
  window.addEventListener("hashchange", route);
  route();
  listen();
}

start();
