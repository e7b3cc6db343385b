"""The web view's runs page at scale (issue 17, item 6): its first screen over many runs, side by
side with `guildctl runs`, all measured in this invocation.

    python bench/view.py [--runs 100000] [--repeat 5] [--keep] [--json]

1. A temp GUILD_HOME with --runs runs in Guild 0.9's format (flags and scalars), written by
   ../shared/tools/make-guild-runs.py as bench/runs.py does; a guildd on it, waited for until
   its index holds every run (the index build's time is a figure).
2. `guildctl view --no-open --json`: the page's URL with its token.
3. Each figure below after one warm-up, --repeat times, as median / p90 / max:
   a. `guildctl runs` (its first screen, the 20 latest), the whole command as a user runs it:
      the baseline every other figure is a ratio to;
   b. GET /api/runs?page=1&per=50 from this process (a new connection each time), to the
      whole JSON body;
   c. the same sorted by a scalar (sort=loss&order=asc) and filtered (op=train);
   d. the page's first screen in headless Chromium (Playwright): from page.goto(URL with the
      token) to the first runs-table row (`tr[data-run-id]`) visible, in a fresh browser
      context each time (cold: no cookie, no cache; the token's redirect included), and warm
      (in an open page, from `location.hash = '#/runs'` after leaving for #/queue), with
      the page's own timings of the cold load (its /api/runs fetch, DOMContentLoaded);
   e. a deep page: page 2000 of 50 (the last page when there are fewer runs);
   and, to say where the API's time goes, the daemon's ListRuns over gRPC from this process
   for the first page, the sorted, the filtered and the deep page (the request each of those
   makes, HTTP and JSON aside).
4. The daemon is stopped and the temp dir removed (unless --keep).

The issue's target: the page's cold first screen under 1 s over 100,000 runs; the table says
whether it holds (a reading, nothing is asserted). The answers are checked against each other:
the API's first 20 runs are the ones `guildctl runs` shows, the page shows the API's first
page in its order, the sort puts make-guild-runs.py's best run (lowest loss) first and the
totals count every run. Progress goes to stderr; with --json the table goes to stderr too and
stdout holds one JSON object.
"""

import argparse
import http.client
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Callable, TextIO

import psutil

from benchlib import exe_beside_python, fmt_s, log, median, percentile, print_table, report, start_guildd, stop_process, yes

if TYPE_CHECKING:
    from guildctl.client import Client

REPO = pathlib.Path(__file__).resolve().parent.parent
MAKE_RUNS = REPO.parent / "shared" / "tools" / "make-guild-runs.py"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ROW = "table[data-testid=runs-table] tr[data-run-id]"
PER = 50
DEEP_PAGE = 2000
CLI_SHOWS = 20  # `guildctl runs` lists the 20 latest
TARGET_S = 1.0
INDEX_TIMEOUT_S = 3600
PAGE_TIMEOUT_MS = 60_000
CLI_ROW = re.compile(r"^\[\d+:([0-9a-f]{8})\]")
# name -> query of GET /api/runs (the deep page's is filled in from the run count)
API_QUERIES = {
    "first page": {"page": 1, "per": PER},
    "sorted by loss": {"page": 1, "per": PER, "sort": "loss", "order": "asc"},
    "filtered by op": {"page": 1, "per": PER, "op": "train"},
}


class Bench:
    """Paths, environment and daemon of one invocation (all under one temp dir)."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.home = root / "guild-home"
        self.guildctl = exe_beside_python("guildctl", "view.py")
        self.guildd = exe_beside_python("guildd", "view.py")
        base = {k: v for k, v in os.environ.items() if k not in ("GUILD_HOME", "VIRTUAL_ENV", "GUILD_SIMULATED_GPUS")}
        self.env = dict(base, GUILD_HOME=str(self.home), GUILDCTL_NO_AUTOSTART="1")
        self.daemon: "subprocess.Popen[bytes] | None" = None

    def ctl(self, *args: str) -> list[str]:
        return [self.guildctl, *args]


def deep_page(runs: int) -> int:
    """Page DEEP_PAGE of PER, or the last page when there are fewer runs: the deepest page the
    listing has up to DEEP_PAGE, so a small bench still reads from its far end."""
    return max(1, min(DEEP_PAGE, math.ceil(runs / PER)))


def stats(samples: list[float]) -> dict:
    """n, median, p90 and max of `samples` (and the samples, for --json)."""
    return {"n": len(samples), "median": median(samples), "p90": percentile(samples, 90), "max": max(samples, default=None),
            "samples": samples}


def repeated(fn: "Callable[[], tuple[float, Any]]", repeat: int) -> tuple[dict, Any]:
    """`fn()` -> (seconds, answer), once to warm up and `repeat` times measured: the figures
    and the last answer."""
    fn()
    samples, answer = [], None
    for _ in range(repeat):
        elapsed, answer = fn()
        samples.append(elapsed)
    return stats(samples), answer


# The home and the daemon


def make_home(b: Bench, runs: int) -> float:
    """Writes the runs (Guild 0.9's format, as bench/runs.py's homes); the seconds it took."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(MAKE_RUNS), str(b.home), str(runs)], check=True, capture_output=True)
    return time.perf_counter() - t0


def start_daemon(b: Bench) -> None:
    b.daemon = start_guildd(b.guildd, b.guildctl, b.home, b.env, b.root / "guildd.stderr")


def stop_daemon(b: Bench) -> None:
    stop_process(b.daemon)


def daemon_rss_mb(b: Bench) -> float:
    return psutil.Process(b.daemon.pid).memory_info().rss / 2**20


def client(b: Bench) -> "Client":
    from guildctl.client import Client

    return Client(b.home, autostart=False)


def wait_indexed(b: Bench, runs: int) -> None:
    """Until the daemon is ready and its index lists every run."""
    from guild_common.pb import guild_pb2 as pb

    c = client(b)
    try:
        deadline = time.monotonic() + INDEX_TIMEOUT_S
        while True:
            ready = c.call("GetDaemonInfo", pb.GetDaemonInfoRequest()).ready
            if ready and c.list_runs(limit=1)[1] >= runs:
                return
            if b.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("guildd did not index %d runs (see %s)" % (runs, b.home / "guildd.log"))
            time.sleep(0.2)
    finally:
        c.close()


def start_view(b: Bench) -> dict:
    """`guildctl view --no-open --json`: {"url", "host", "port", "token"}."""
    r = subprocess.run(b.ctl("view", "--no-open", "--json"), env=b.env, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("guildctl view failed (%d): %s" % (r.returncode, r.stderr.strip()))
    return json.loads(r.stdout)


# a. The CLI


def time_cli(b: Bench, repeat: int) -> tuple[dict, list[str]]:
    """`guildctl runs` as a user runs it: the figures and the short ids it showed."""

    def once():
        t0 = time.perf_counter()
        r = subprocess.run(b.ctl("runs"), env=b.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError("guildctl runs failed (%d): %s" % (r.returncode, r.stderr.strip()))
        return elapsed, [m.group(1) for m in map(CLI_ROW.match, r.stdout.splitlines()) if m]

    return repeated(once, repeat)


# b, c, e. The API


def api_get(view: dict, query: dict) -> tuple[float, dict]:
    """GET /api/runs?QUERY with the token as a bearer: the seconds to the whole body, and the
    JSON. A new connection each time, as a page's first request makes."""
    path = "/api/runs?" + urllib.parse.urlencode(query)
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(view["host"], view["port"], timeout=120)
    try:
        conn.request("GET", path, headers={"Authorization": "Bearer " + view["token"]})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    elapsed = time.perf_counter() - t0
    if resp.status != 200:
        raise RuntimeError("GET %s: %d %s" % (path, resp.status, body[:200].decode(errors="replace")))
    return elapsed, json.loads(body)


def time_api(view: dict, runs: int, repeat: int) -> tuple[dict, dict]:
    """Figures and last answer of each API query, the deep page's included."""
    queries = dict(API_QUERIES, **{"deep page": {"page": deep_page(runs), "per": PER}})
    figures, answers = {}, {}
    for name, query in queries.items():
        figures[name], answers[name] = repeated(lambda q=query: api_get(view, q), repeat)
        log("  GET /api/runs %s: median %s" % (urllib.parse.urlencode(query), fmt_s(figures[name]["median"])))
    return figures, answers


def time_rpc(b: Bench, runs: int, repeat: int) -> dict:
    """The daemon's ListRuns over gRPC from this process for what the API's pages need: where
    the API's time goes, HTTP and JSON aside."""
    from guild_common.pb import guild_pb2 as pb

    requests = {
        "first page": pb.ListRunsRequest(limit=PER, with_scalars=True),
        "sorted by loss": pb.ListRunsRequest(limit=PER, min="loss", with_scalars=True),
        "filtered by op": pb.ListRunsRequest(filter=pb.RunFilter(ops=["train"]), limit=PER, with_scalars=True),
        "deep page": pb.ListRunsRequest(limit=PER, offset=(deep_page(runs) - 1) * PER, with_scalars=True),
    }
    c = client(b)
    try:
        figures = {}
        for name, req in requests.items():
            def once(req=req):
                t0 = time.perf_counter()
                resp = c.call("ListRuns", req)
                return time.perf_counter() - t0, len(resp.runs)

            figures[name], _count = repeated(once, repeat)
            log("  ListRuns, %s: median %s" % (name, fmt_s(figures[name]["median"])))
        return figures
    finally:
        c.close()


# d. The page


PAGE_TIMINGS_JS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const runs = performance.getEntriesByType('resource').filter(e => e.name.includes('/api/runs'));
  return {dom_loaded: nav ? nav.domContentLoadedEventEnd / 1000 : null,
          api_runs: runs.length ? runs[0].duration / 1000 : null};
}"""


def time_page(view: dict, repeat: int) -> dict:
    """The runs page's first screen in headless Chromium, cold and warm; the rows it showed
    and its pager's text."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            cold, dom, fetch = [], [], []
            page = ctx = None
            for i in range(repeat + 1):
                if ctx is not None:
                    ctx.close()
                ctx = browser.new_context()
                page = ctx.new_page()
                t0 = time.perf_counter()
                page.goto(view["url"], wait_until="commit", timeout=PAGE_TIMEOUT_MS)
                page.wait_for_selector(ROW, state="visible", timeout=PAGE_TIMEOUT_MS)
                elapsed = time.perf_counter() - t0
                if i:  # the first is the warm-up
                    cold.append(elapsed)
                    timings = page.evaluate(PAGE_TIMINGS_JS)
                    dom.append(timings["dom_loaded"])
                    fetch.append(timings["api_runs"])
            rows = page.eval_on_selector_all(ROW, "rows => rows.map(r => r.dataset.runId)")
            pager = page.inner_text("[data-testid=pager]")
            warm = []
            for i in range(repeat + 1):
                page.evaluate("location.hash = '#/queue'")
                page.wait_for_selector(ROW, state="hidden", timeout=PAGE_TIMEOUT_MS)
                t0 = time.perf_counter()
                page.evaluate("location.hash = '#/runs'")
                page.wait_for_selector(ROW, state="visible", timeout=PAGE_TIMEOUT_MS)
                if i:
                    warm.append(time.perf_counter() - t0)
            ctx.close()
        finally:
            browser.close()
    known = [x for x in fetch if x is not None]
    return {"cold": stats(cold), "warm": stats(warm), "dom_loaded": stats([x for x in dom if x is not None]),
            "api_runs_fetch": stats(known), "rows": rows, "pager": pager}


# The checks


def checks(view: dict, runs: int, best: str, cli_ids: list[str], answers: dict, page: dict) -> dict:
    """Whether the answers agree: {what: bool}."""
    first = [r["id"] for r in answers["first page"]["runs"]]
    deep = answers["deep page"]
    deep_indexes = [r["index"] for r in deep["runs"]]
    start = (deep["page"] - 1) * PER + 1
    rows = page["rows"]
    same_page = api_get(view, {"page": 1, "per": len(rows)})[1]["runs"] if rows else []
    return {
        "the API counts every run": all(a["total"] == runs for a in answers.values()),
        "the API's first runs are the ones `guildctl runs` shows": [i[:8] for i in first[:CLI_SHOWS]] == cli_ids,
        "the sort by loss puts the best run first": bool(answers["sorted by loss"]["runs"])
        and answers["sorted by loss"]["runs"][0]["id"] == best,
        "the deep page holds its runs": deep_indexes == list(range(start, min(start + PER, runs + 1))),
        "the page shows the API's first page": bool(rows) and rows == [r["id"] for r in same_page],
        "the pager counts every run": any(s in page["pager"] for s in ("%d runs" % runs, "{:,} runs".format(runs))),
    }


# One invocation


def run_bench(root: pathlib.Path, runs: int, repeat: int) -> dict:
    """Every figure over a home of `runs` runs made under `root` (left there; the caller
    removes it). The daemon is stopped before this returns."""
    b = Bench(root)
    res: dict = {"runs": runs, "repeat": repeat, "cpus": os.cpu_count()}
    log("writing %d runs with %s" % (runs, MAKE_RUNS.name))
    res["make_runs_s"] = make_home(b, runs)
    best = (b.home / ".best-run").read_text().strip()
    try:
        t0 = time.perf_counter()
        start_daemon(b)
        wait_indexed(b, runs)
        res["index_build_s"] = time.perf_counter() - t0
        log("guildd indexed %d runs in %.1f s" % (runs, res["index_build_s"]))
        view = start_view(b)
        log("serving at %s:%s" % (view["host"], view["port"]))
        res["cli"], cli_ids = time_cli(b, repeat)
        log("  guildctl runs: median %s" % fmt_s(res["cli"]["median"]))
        res["api"], answers = time_api(view, runs, repeat)
        res["deep_page"] = answers["deep page"]["page"]
        res["rpc"] = time_rpc(b, runs, repeat)
        page = time_page(view, repeat)
        log("  page: cold median %s, warm median %s" % (fmt_s(page["cold"]["median"]), fmt_s(page["warm"]["median"])))
        res["page"] = {k: page[k] for k in ("cold", "warm", "dom_loaded", "api_runs_fetch")}
        res["page_rows"], res["pager"] = len(page["rows"]), page["pager"]
        res["checks"] = checks(view, runs, best, cli_ids, answers, page)
        res["daemon_rss_mb"] = daemon_rss_mb(b)
    finally:
        stop_daemon(b)
    res["ratio_page_to_cli"] = res["page"]["cold"]["median"] / res["cli"]["median"]
    res["page_under_target"] = res["page"]["cold"]["median"] < TARGET_S
    return res


# Report


def spread(s: dict) -> str:
    return "%s / %s / %s" % (fmt_s(s["median"]), fmt_s(s["p90"]), fmt_s(s["max"]))


def print_report(res: dict, out: TextIO) -> None:
    cli = res["cli"]["median"]

    def row(name: str, s: dict, target: str = "", met: str = "") -> tuple:
        return (name, spread(s), fmt_s(cli), "%.2gx" % (s["median"] / cli), target, met)

    rows = [(f"{res['runs']} runs: `guildctl runs` (a)", spread(res["cli"]), "", "", "", "")]
    for name, s in res["api"].items():
        page = res["deep_page"] if name == "deep page" else 1
        rows.append(row(f"GET /api/runs {name}: page {page}, {PER} a page" + (" (e)" if name == "deep page" else ""), s))
    for name, s in res["rpc"].items():
        rows.append(row(f"  its ListRuns over gRPC: {name}", s))
    cold = res["page"]["cold"]
    rows.append(row("page first screen, cold (d)", cold, "< 1 s", yes(res["page_under_target"])))
    rows.append(row("  its DOMContentLoaded", res["page"]["dom_loaded"]))
    if res["page"]["api_runs_fetch"]["n"]:
        rows.append(row("  its /api/runs fetch", res["page"]["api_runs_fetch"]))
    rows.append(row("page first screen, warm (#/runs again)", res["page"]["warm"]))
    print("times: median / p90 / max of %d; baseline: `guildctl runs`, median" % res["repeat"], file=out)
    print_table(rows, out)
    print("", file=out)
    print("page (d) / guildctl runs (a): %.1fx; the page's cold first screen %s 1 s over %d runs (%s)"
          % (res["ratio_page_to_cli"], "under" if res["page_under_target"] else "NOT under", res["runs"],
             fmt_s(cold["median"])), file=out)
    print("the page showed %d rows; pager: %r" % (res["page_rows"], res["pager"]), file=out)
    for what, ok in res["checks"].items():
        print("check: %s: %s" % (what, yes(ok)), file=out)
    print("index build %.1f s (make-guild-runs %.1f s); daemon RSS after %.0f MB; %d CPUs"
          % (res["index_build_s"], res["make_runs_s"], res["daemon_rss_mb"], res["cpus"]), file=out)


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000, metavar="N", help="runs in the home (default %(default)s)")
    ap.add_argument("--repeat", type=int, default=5, metavar="N", help="measured repeats of each figure (default %(default)s)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (the home)")
    ap.add_argument("--json", action="store_true", help="print a JSON object on stdout (the table then goes to stderr)")
    args = ap.parse_args(argv)
    if args.runs < CLI_SHOWS or args.repeat < 1:
        ap.error("--runs must be >= %d and --repeat >= 1" % CLI_SHOWS)
    root = pathlib.Path(tempfile.mkdtemp(prefix="guildd-bench-view-"))
    log("bench dir %s" % root)
    try:
        res = run_bench(root, args.runs, args.repeat)
    finally:
        if args.keep:
            log("kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    report(res, args.json, print_report)
    return 0 if all(res["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
