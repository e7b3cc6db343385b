// The server's JSON API (see the contract): GETs, POSTs with the CSRF header, and the error
// banner every failure lands in.

import { h, fill } from "./dom.js";

let csrf = "";

/** An answer the server refused: its {"error"} line and HTTP status. */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function answer(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch (e) {
    body = null;
  }
  if (!resp.ok) {
    let msg = body && body.error ? body.error : `${resp.status} ${resp.statusText}`;
    if (resp.status === 401 && !/guildctl view/.test(msg)) {
      msg += ": open the URL that 'guildctl view' printed";
    }
    throw new ApiError(msg, resp.status);
  }
  if (body === null) throw new ApiError(`bad answer from ${resp.url}`, resp.status);
  return body;
}

async function request(url, init) {
  let resp;
  try {
    resp = await fetch(url, { credentials: "same-origin", ...init });
  } catch (e) {
    throw new ApiError("cannot reach the server (is guildd running?)", 0);
  }
  return answer(resp);
}

/** GET a JSON endpoint; params (object or URLSearchParams) become the query string. */
export function get(path, params) {
  const q = params ? new URLSearchParams(params).toString() : "";
  return request(q ? `${path}?${q}` : path, { headers: { Accept: "application/json" } });
}

/** POST JSON with the session's CSRF token. */
export function post(path, body) {
  return request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Guild-CSRF": csrf },
    body: JSON.stringify(body),
  });
}

/** Fetch the session once at load: the user and the CSRF token every POST carries. */
export async function loadSession() {
  const session = await get("/api/session");
  csrf = session.csrf;
  return session;
}

/** Show an error (an Error or a string) in the banner; null hides it. */
export function showError(err) {
  const box = document.querySelector("[data-testid=error]");
  if (err === null) {
    box.hidden = true;
    fill(box);
    return;
  }
  const msg = err instanceof Error ? err.message : String(err);
  fill(box, h("span", { class: "error-text" }, msg),
    h("button", { type: "button", class: "link", "aria-label": "dismiss",
      on: { click: () => showError(null) } }, "×"));
  box.hidden = false;
}

/**
 * Run an action (a function returning a promise): the banner is cleared first and shows the
 * failure if there is one. Resolves to the action's value, or undefined when it failed.
 */
export async function act(fn) {
  showError(null);
  try {
    return await fn();
  } catch (e) {
    showError(e);
    return undefined;
  }
}

/** Encode a run id for a URL path segment. */
export function runPath(id, rest) {
  return `/api/runs/${encodeURIComponent(id)}${rest || ""}`;
}
