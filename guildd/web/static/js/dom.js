// Element building and value formatting shared by every view.
//
// Everything shown goes through textContent (h's string children): labels, flag values, file
// contents and output are written by users, so no data ever reaches innerHTML.

/**
 * Make an element. attrs: plain attributes, plus `class`, `dataset` (object), `on` (object of
 * event handlers) and DOM properties for `checked`, `disabled`, `value`. Children: nodes,
 * strings (as text), numbers, or null/false (skipped); arrays are flattened.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "on") {
      for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    } else if (key === "checked" || key === "disabled" || key === "value") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link to a hash route. */
export function link(route, text, attrs) {
  return h("a", { href: "#" + route, ...(attrs || {}) }, text);
}

const pad = (n) => String(n).padStart(2, "0");

/** Local date-time like Guild prints it ("2026-12-05 01:12:03"); "" for null. */
export function fmtTime(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A duration as Python's timedelta prints it, as Guild shows run times ("0:01:23"). */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return "";
  let s = Math.floor(ms / 1000);
  const days = Math.floor(s / 86400);
  s -= days * 86400;
  const hms = `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
  return days ? `${days} day${days === 1 ? "" : "s"}, ${hms}` : hms;
}

/** A run's duration: started to stopped, or to now while it runs. */
export function runDuration(run) {
  if (!run.started) return "";
  const end = run.stopped || (run.status === "running" ? Date.now() : null);
  return end === null ? "" : fmtDuration(end - run.started);
}

/** A number compact enough for a table cell; other values as text. */
export function fmtValue(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v) || !Number.isFinite(v)) return String(v);
    const abs = Math.abs(v);
    if (abs !== 0 && (abs < 1e-4 || abs >= 1e7)) return v.toExponential(4);
    return String(Number(v.toPrecision(6)));
  }
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

const INLINE_MAX = 80;

function dataScalar(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "string") return v === "" ? "''" : v;
  return String(v);
}

/** A list or mapping of scalars on one line ("a, b" / "a: 1, b: x"); null for nested data. */
function dataInline(v) {
  if (v === null || typeof v !== "object") return dataScalar(v);
  const vals = Array.isArray(v) ? v : Object.values(v);
  if (vals.some((x) => x !== null && typeof x === "object")) return null;
  if (Array.isArray(v)) return v.length ? v.map(dataScalar).join(", ") : "[]";
  const keys = Object.keys(v);
  return keys.length ? keys.map((k) => `${k}: ${dataScalar(v[k])}`).join(", ") : "{}";
}

/** A flat list stays on one line (the cell wraps it); a flat mapping only while it is short. */
function inlineFits(v, one) {
  return one !== null && (Array.isArray(v) || one.length <= INLINE_MAX);
}

function dataBlock(v, indent) {
  const entries = Array.isArray(v) ? v.map((x) => ["-", x])
    : Object.entries(v).map(([k, x]) => [`${k}:`, x]);
  return entries.flatMap(([key, x]) => {
    const one = dataInline(x);
    if (x === null || typeof x !== "object" || inlineFits(x, one)) return [`${indent}${key} ${one}`];
    return [`${indent}${key}`, ...dataBlock(x, `${indent}  `)];
  });
}

/**
 * Structured data (attrs, deps) as short YAML-like text a reader scans: scalars as they are,
 * a flat list or mapping on one line ("a: 1, b: x"), anything nested or long one entry a line,
 * indented, so no one has to read a JSON blob.
 */
export function fmtData(v) {
  if (v === null || v === undefined) return "";
  if (typeof v !== "object") return dataScalar(v);
  const one = dataInline(v);
  return inlineFits(v, one) ? one : dataBlock(v, "").join("\n");
}

/** Whether a column holds numbers only (ignoring blanks): then it is right-aligned, header too. */
export function numericColumn(values) {
  const present = values.filter((v) => v !== null && v !== undefined && v !== "");
  return present.length > 0 && present.every((v) => typeof v === "number");
}

/** Bytes as B / KiB / MiB / GiB. */
export function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** The status badge: its colour comes from the status class in app.css. */
export function statusBadge(status, attrs) {
  return h("span", { class: `status status-${status}`, ...(attrs || {}) }, status);
}

/** A horizontal bar (0..1) with a caption, for GPU memory and utilization. */
export function bar(fraction, caption, attrs) {
  const f = fraction === null ? 0 : Math.max(0, Math.min(1, fraction));
  const level = f > 0.9 ? "high" : f > 0.6 ? "mid" : "low";
  return h("div", { class: "bar", ...(attrs || {}) },
    h("div", { class: `bar-fill bar-${level}`, style: `width: ${(f * 100).toFixed(1)}%` }),
    h("span", { class: "bar-caption" }, caption));
}
