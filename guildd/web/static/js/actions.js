// Actions on one or more runs, shared by the runs table (its selection) and a run's page. Each
// asks in-page first (confirmation or a line of text), posts, and resolves to the server's
// answer, or undefined when the user cancelled or the server refused (the banner says why).

import { act, post } from "./api.js";
import { ask, confirmAction } from "./ui.js";

/** How a run is named in a confirmation: short id, op and label. */
export function describe(run) {
  return [run.short_id || run.id.slice(0, 8), run.op, run.label].filter(Boolean).join("  ");
}

/**
 * Split a tag edit ("a b -c") into tags to add and tags to remove: a leading "-" removes.
 * Pure, so the prompt's grammar is plain.
 */
export function parseTagEdit(text) {
  const add = [];
  const remove = [];
  for (const word of text.split(/[\s,]+/).filter(Boolean)) {
    if (word.startsWith("-") && word.length > 1) remove.push(word.slice(1));
    else add.push(word);
  }
  return { add, remove };
}

const ids = (runs) => runs.map((r) => r.id);

export async function stopRuns(runs) {
  const ok = await confirmAction(`Stop ${runs.length} run${runs.length === 1 ? "" : "s"}?`,
    { okText: "Stop", danger: true, details: runs.map(describe) });
  if (!ok) return undefined;
  return act(() => post("/api/stop", { runs: ids(runs) }));
}

export async function deleteRuns(runs, permanent) {
  const what = `${runs.length} run${runs.length === 1 ? "" : "s"}`;
  const ok = await confirmAction(
    permanent ? `Permanently delete ${what}? This cannot be undone.` : `Delete ${what}?`,
    { okText: permanent ? "Delete permanently" : "Delete", danger: true,
      details: runs.map(describe) });
  if (!ok) return undefined;
  return act(() => post("/api/delete", { runs: ids(runs), permanent: Boolean(permanent) }));
}

export async function labelRuns(runs) {
  const value = await ask(runs.length === 1 ? "Label" : `Label for ${runs.length} runs`, {
    value: runs.length === 1 ? runs[0].label || "" : "",
    help: "An empty label clears it.", okText: "Set label" });
  if (value === null) return undefined;
  return act(() => post("/api/label", { runs: ids(runs), label: value }));
}

export async function tagRuns(runs) {
  const current = [...new Set(runs.flatMap((r) => r.tags || []))];
  const value = await ask("Tags", {
    help: "Tags to add, separated by spaces; -NAME removes one." +
      (current.length ? ` Now: ${current.join(" ")}` : ""),
    okText: "Apply" });
  if (value === null) return undefined;
  const edit = parseTagEdit(value);
  if (!edit.add.length && !edit.remove.length) return undefined;
  return act(() => post("/api/tag", { runs: ids(runs), ...edit }));
}

export async function markRuns(runs, clear) {
  return act(() => post("/api/mark", { runs: ids(runs), clear: Boolean(clear) }));
}

export async function setPriority(runs, current) {
  const value = await ask("Priority", { value: String(current ?? 0), type: "number",
    help: "Higher runs first among waiting runs.", okText: "Set priority" });
  if (value === null) return undefined;
  const priority = Number.parseInt(value, 10);
  if (!Number.isFinite(priority)) return act(async () => {
    throw new Error(`priority must be a whole number, not '${value}'`);
  });
  return act(() => post("/api/priority", { runs: ids(runs), priority }));
}

export async function cancelRuns(runs) {
  return act(() => post("/api/cancel", { runs: ids(runs) }));
}
