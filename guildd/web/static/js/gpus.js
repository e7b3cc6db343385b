// The GPUs (#/gpus): memory and utilization of each, which run holds it (the queue's
// holdings), and the processes on it: our runs linked to their pages, others labelled foreign.

import { get, showError } from "./api.js";
import { h, fill, link, bar, fmtBytes } from "./dom.js";

function processRow(p) {
  return h("tr", { "data-pid": p.pid, class: p.run_id ? "ours" : "foreign" },
    h("td", { class: "num mono" }, p.pid),
    h("td", {}, p.user || "?"),
    h("td", { class: "num" }, fmtBytes(p.used_memory)),
    h("td", {}, p.run_id ? link(`/runs/${p.run_id}`, p.run_id.slice(0, 8), { class: "mono" })
      : h("span", { class: "tag foreign", "data-testid": "foreign" }, "foreign")));
}

function heldBy(holdings) {
  return holdings.length ? h("p", { class: "held", "data-testid": "gpu-held" }, "held by ",
    holdings.map((x, i) => [i ? ", " : "", "run ",
      link(`/runs/${x.run_id}`, x.run_id.slice(0, 8), { class: "mono" }), ` (${x.user})`]))
    : null;
}

function gpuCard(g, holdings) {
  const memFraction = g.memory_total ? g.memory_used / g.memory_total : 0;
  const util = g.utilization;
  return h("div", { class: "gpu panel", "data-testid": "gpu", "data-index": g.index },
    h("h2", {}, `GPU ${g.index}`, h("span", { class: "muted" }, ` ${g.name}`)),
    h("div", { class: "muted mono small" }, g.uuid),
    h("div", { class: "bars" },
      h("span", {}, "memory"),
      bar(memFraction, `${fmtBytes(g.memory_used)} / ${fmtBytes(g.memory_total)}`,
        { "data-testid": "gpu-memory" }),
      h("span", {}, "utilization"),
      bar(util < 0 ? null : util / 100, util < 0 ? "unknown" : `${util}%`,
        { "data-testid": "gpu-util" })),
    heldBy(holdings.filter((x) => x.devices.map(String).some((d) =>
      d === String(g.index) || d === g.uuid))),
    g.processes.length ? h("table", { class: "grid processes" },
      h("thead", {}, h("tr", {}, ["pid", "user", "memory", "run"].map((t) => h("th", {}, t)))),
      h("tbody", {}, g.processes.map(processRow)))
      : h("p", { class: "muted" }, "No processes."));
}

/** Mount the GPUs view. */
export function mountGpus(container) {
  const summary = h("p", { class: "muted" });
  const cards = h("div", { class: "gpus" });

  async function load() {
    const [r, queue] = await Promise.all([get("/api/gpus"), get("/api/queue")]);
    fill(summary, `backend: ${r.backend || "none"}${r.reason ? ` (${r.reason})` : ""} · ` +
      `${r.cpu_count} CPUs · memory ${fmtBytes(r.memory_available)} free of ` +
      `${fmtBytes(r.memory_total)}`);
    fill(cards, r.gpus.length ? r.gpus.map((g) => gpuCard(g, queue.holdings))
      : h("p", { class: "muted" }, "No GPUs found on this machine."));
  }

  fill(container, h("h1", {}, "GPUs"), summary, cards);
  load().catch(showError);
  return { refresh: load, dispose: () => {} };
}
