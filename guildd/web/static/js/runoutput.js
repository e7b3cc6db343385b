// A run's live output: /api/runs/ID/output streamed into a <pre>, stderr in its own colour,
// kept scrolled to the bottom unless the user scrolled up, and capped so a chatty run can't
// eat the tab's memory.

import { runPath } from "./api.js";
import { h } from "./dom.js";

const MAX_CHARS = 2 * 1024 * 1024;
const TAIL_LINES = 500;
const RECONNECT_MS = 3000;

/**
 * The output pane of one run. onEnded(run) is called once the stream says the run ended.
 * Returns {el, start(), stop(), streaming()}.
 */
export function outputPane(runId, onEnded) {
  const pre = h("pre", { "data-testid": "run-output", class: "output", tabindex: "0" });
  const note = h("p", { class: "help", hidden: true }, "Earlier output is cut here (over 2 MB); " +
    "'guildctl cat RUN --output' prints all of it.");
  const el = h("div", { class: "output-wrap" }, note, pre);
  let source = null;
  let timer = null;
  let total = 0;
  let ended = false;

  function append(text, stderr) {
    if (!text) return;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    const lastChild = pre.lastChild;
    if (lastChild && lastChild.dataset.stderr === String(stderr)) {
      lastChild.firstChild.appendData(text);
    } else {
      pre.append(h("span", { class: stderr ? "stderr" : "stdout", dataset: { stderr } }, text));
    }
    total += text.length;
    while (total > MAX_CHARS && pre.firstChild) {
      const first = pre.firstChild.firstChild;
      const excess = total - MAX_CHARS;
      if (pre.firstChild !== pre.lastChild && first.length <= excess) {
        total -= first.length;
        pre.firstChild.remove();
      } else {
        // Cut at a line end so the first line shown is whole.
        const cut = first.data.indexOf("\n", Math.min(excess, first.length - 1));
        const n = cut < 0 ? excess : cut + 1;
        first.deleteData(0, n);
        total -= n;
      }
      note.hidden = false;
    }
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  function stop() {
    clearTimeout(timer);
    timer = null;
    if (source) source.close();
    source = null;
  }

  function start() {
    stop();
    pre.replaceChildren();
    total = 0;
    ended = false;
    note.hidden = true;
    source = new EventSource(runPath(runId, `/output?tail=${TAIL_LINES}`));
    source.addEventListener("output", (ev) => {
      const data = JSON.parse(ev.data);
      append(data.text, Boolean(data.stderr));
    });
    source.addEventListener("ended", (ev) => {
      ended = true;
      stop();
      onEnded(JSON.parse(ev.data).run);
    });
    source.addEventListener("error", () => {
      // The browser would reconnect and the server replay the tail: start over cleanly instead.
      if (ended) return;
      stop();
      timer = setTimeout(start, RECONNECT_MS);
    });
  }

  return { el, start, stop, streaming: () => source !== null || timer !== null };
}
