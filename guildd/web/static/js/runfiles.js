// A run's files: a directory at a time (click a directory to descend, a file to view it).

import { act, get, runPath } from "./api.js";
import { h, fill, fmtBytes } from "./dom.js";

/**
 * The entries directly inside `dir`, from a listing (paths relative to the run dir) that
 * holds deeper paths and `dir` itself too, as the server lists a directory recursively;
 * directories first, then by name.
 */
export function childrenOf(entries, dir) {
  const prefix = dir ? `${dir.replace(/\/+$/, "")}/` : "";
  const byName = new Map();
  for (const e of entries) {
    let rel = e.path.replace(/\/+$/, "");
    if (prefix && !rel.startsWith(prefix)) continue;
    rel = rel.slice(prefix.length);
    if (!rel) continue;
    const slash = rel.indexOf("/");
    if (slash < 0) {
      byName.set(rel, { name: rel, path: prefix + rel, is_dir: e.is_dir, is_link: e.is_link,
        size: e.size });
    } else if (!byName.has(rel.slice(0, slash))) {
      const name = rel.slice(0, slash);
      byName.set(name, { name, path: prefix + name, is_dir: true, is_link: false, size: null });
    }
  }
  return [...byName.values()].sort((a, b) =>
    (a.is_dir === b.is_dir ? a.name.localeCompare(b.name) : a.is_dir ? -1 : 1));
}

/** The files pane of one run: returns {el, refresh()}. */
export function filesPane(runId) {
  let dir = "";
  let viewing = null;
  const crumbs = h("div", { class: "crumbs" });
  const list = h("ul", { class: "files" });
  const caption = h("div", { class: "file-caption" });
  const view = h("pre", { "data-testid": "file-view", class: "file-view", hidden: true });
  const el = h("div", { class: "files-pane" },
    h("div", { "data-testid": "run-files", class: "files-list" }, crumbs, list),
    h("div", { class: "file-pane" }, caption, view));

  function drawCrumbs() {
    const parts = dir ? dir.split("/") : [];
    const go = (d) => h("button", { type: "button", class: "link",
      on: { click: () => enter(d) } }, d ? d.split("/").pop() : "run dir");
    fill(crumbs, go(""), parts.map((_, i) => ["/", go(parts.slice(0, i + 1).join("/"))]));
  }

  function enter(d) {
    dir = d;
    return act(refresh);
  }

  async function open(entry) {
    viewing = entry.path;
    const file = await act(() => get(runPath(runId, "/file"), { path: entry.path }));
    if (!file || viewing !== entry.path) return;
    // The listing's size is the file's; the answer's counts only what was read (1 MiB at most).
    const notes = [fmtBytes(entry.size ?? file.size)];
    if (file.binary) notes.push("binary: not shown");
    if (file.truncated) notes.push("only the first 1 MiB is shown");
    fill(caption, h("span", { class: "mono" }, file.path), h("span", { class: "muted" },
      ` (${notes.join(", ")})`));
    view.textContent = file.binary ? "" : file.text;
    view.hidden = file.binary;
    view.scrollTop = 0;
    for (const li of list.children) li.classList.toggle("open", li.dataset.path === viewing);
  }

  async function refresh() {
    const answer = await get(runPath(runId, "/files"), dir ? { path: dir } : null);
    drawCrumbs();
    const entries = childrenOf(answer.files, dir);
    fill(list, entries.length ? entries.map((e) => h("li", {
      class: `${e.is_dir ? "dir" : "file"}${e.path === viewing ? " open" : ""}`,
      dataset: { path: e.path } },
    h("button", { type: "button", class: "link", "data-testid": e.is_dir ? "file-dir" : "file",
      on: { click: () => (e.is_dir ? enter(e.path) : open(e)) } },
    e.is_dir ? `${e.name}/` : e.name),
    e.is_link ? h("span", { class: "muted" }, " (link)") : null,
    e.is_dir ? null : h("span", { class: "size" }, fmtBytes(e.size))))
      : h("li", { class: "muted" }, dir ? "(empty directory)" : "(no files)"));
  }

  return { el, refresh };
}
