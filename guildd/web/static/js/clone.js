// The clone form: a new run like this one, with every flag editable as the CLI's NAME=VALUE.

import { act, post } from "./api.js";
import { h } from "./dom.js";

// Strings that YAML (the CLI's flag parser) would read as something else.
const NOT_PLAIN = /^(?:[-+]?(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|yes|no|true|false|on|off|y|n|null|~)$/i;

/**
 * A flag value as text that the CLI parses back to the same value: booleans as yes/no (as
 * Guild writes them), null as "null", lists as flow YAML, and strings that would read as a
 * number, a boolean or null quoted.
 */
export function encodeFlag(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number") return String(v);
  if (Array.isArray(v)) return `[${v.map(encodeFlag).join(", ")}]`;
  if (typeof v === "object") return JSON.stringify(v);
  const s = String(v);
  if (s === "" || NOT_PLAIN.test(s) || /^[[{'"!&*#|>%@`]|: | #|^- /.test(s)) {
    return `'${s.replace(/'/g, "''")}'`;
  }
  return s;
}

/**
 * The clone form for `run`. Only flags the user changed are sent, so the others keep their
 * exact values (a float like 1.0 would otherwise come back as the integer 1).
 */
export function cloneForm(run, onCancel) {
  const names = Object.keys(run.flags || {}).sort();
  const initial = new Map(names.map((n) => [n, encodeFlag(run.flags[n])]));
  const label = h("input", { name: "label", type: "text", value: "",
    placeholder: "default: from the flags" });
  const startNow = h("input", { name: "start", type: "checkbox", checked: true });
  const form = h("form", { "data-testid": "clone-form", class: "clone-form" },
    h("h3", {}, `Clone ${run.short_id} (${run.op})`),
    names.length ? h("table", { class: "grid flags" }, h("tbody", {},
      names.map((n) => h("tr", {}, h("th", { class: "mono" }, n),
        h("td", {}, h("input", { name: `flag:${n}`, type: "text", value: initial.get(n),
          class: "mono", autocomplete: "off" }))))))
      : h("p", { class: "muted" }, "This run has no flags."),
    h("label", { class: "row" }, h("span", {}, "label"), label),
    h("label", { class: "check" }, startNow, "start now (otherwise staged)"),
    h("div", { class: "dialog-buttons" },
      h("button", { type: "button", "data-testid": "clone-cancel", on: { click: onCancel } },
        "Cancel"),
      h("button", { type: "submit", class: "primary", "data-testid": "clone-submit" },
        "Clone")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const flags = {};
    for (const n of names) {
      const value = form.elements.namedItem(`flag:${n}`).value;
      if (value !== initial.get(n)) flags[n] = value;
    }
    const submit = form.querySelector("[data-testid=clone-submit]");
    submit.disabled = true;
    const answer = await act(() => post("/api/clone",
      { run: run.id, flags, label: label.value, start: startNow.checked }));
    submit.disabled = false;
    if (answer) location.hash = `/runs/${answer.run.id}`;
  });
  return form;
}
