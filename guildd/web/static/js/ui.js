// In-page confirmation and text input. Browsers' own confirm/prompt block the page (and the
// live updates) and tests can't drive them reliably, so both are a small form over the page.

import { h, fill } from "./dom.js";

let pending = null;

function overlay() {
  return document.getElementById("overlay");
}

function close(result) {
  const box = overlay();
  box.hidden = true;
  fill(box);
  if (pending) {
    const done = pending;
    pending = null;
    done(result);
  }
}

function open(content, resolve) {
  if (pending) close(null);
  pending = resolve;
  const box = overlay();
  fill(box, h("div", { class: "dialog", role: "dialog", "aria-modal": "true" }, content));
  box.hidden = false;
}

document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && pending) close(null);
});

/**
 * Ask for a line of text. Resolves to the text (trimmed of nothing: labels may keep spaces),
 * or null when cancelled.
 */
export function ask(title, { value = "", help = "", okText = "OK", type = "text" } = {}) {
  return new Promise((resolve) => {
    const input = h("input", { name: "value", type, value, autocomplete: "off" });
    const form = h("form", { "data-testid": "prompt", class: "prompt",
      on: { submit: (ev) => { ev.preventDefault(); close(input.value); } } },
    h("label", {}, h("span", { class: "dialog-title" }, title), input),
    help ? h("p", { class: "help" }, help) : null,
    h("div", { class: "dialog-buttons" },
      h("button", { type: "button", "data-testid": "prompt-cancel",
        on: { click: () => close(null) } }, "Cancel"),
      h("button", { type: "submit", class: "primary", "data-testid": "prompt-ok" }, okText)));
    open(form, resolve);
    input.focus();
    input.select();
  });
}

/** Ask yes or no. Resolves to true only when the user clicks the OK button. */
export function confirmAction(message, { okText = "OK", danger = false, details = [] } = {}) {
  return new Promise((resolve) => {
    const ok = h("button", { type: "button", class: danger ? "danger" : "primary",
      "data-testid": "confirm-ok", on: { click: () => close(true) } }, okText);
    const body = h("div", { class: "confirm", "data-testid": "confirm" },
      h("p", { class: "dialog-title" }, message),
      details.length ? h("ul", { class: "confirm-details" },
        details.slice(0, 10).map((d) => h("li", {}, d)),
        details.length > 10 ? h("li", {}, `and ${details.length - 10} more`) : null) : null,
      h("div", { class: "dialog-buttons" },
        h("button", { type: "button", "data-testid": "confirm-cancel",
          on: { click: () => close(false) } }, "Cancel"),
        ok));
    open(body, (r) => resolve(r === true));
    ok.focus();
  });
}
