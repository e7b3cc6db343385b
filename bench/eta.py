"""ETA benchmark: how far `guildctl queue`'s expected start times are from when runs really start,
on a replayed queue: a real guildd on simulated GPUs, runs of a few operations whose durations
are known but noisy (short sleeps), so that the daemon's history is what it would be on a box.

    python bench/eta.py [--runs 16] [--gpus 2] [--history 3] [--noise 0.25] [--interval 1.0]
                        [--seed 1] [--keep] [--json]

1. A guildd on a temp GUILD_HOME with GUILD_SIMULATED_GPUS=<gpus>x80G, queue processing on.
2. History: --history completed runs of each operation (OPS: name -> mean seconds), staged
   and run through the queue like the rest.
3. The replayed queue: --runs runs, each of a random operation, `--gpus 1` (every fifth
   `--gpus 2`), sleeping the operation's mean times a lognormal noise factor (sigma --noise),
   staged one after another with `guildctl run ... --stage -y` while the GPUs are busy.
4. Every --interval seconds until the queue is empty, ListQueue (in this process, over gRPC):
   each waiting run's eta_us, its position, and the time asked. The first snapshot that shows
   a run is its prediction "when queued".
5. Afterwards, each run's real start (the `started` attr, µs) from `guildctl runs --json`.

6. The estimate's own cost: guildd.eta.estimate called here on --cost-queued waiting runs (1 or
   2 GPUs each, durations of a few operations) on 8 GPUs, all held: p50 and max of COST_CALLS.

Figures: the absolute error |eta - real start| (seconds), median and p90, over the predictions
made when queued and over every snapshot; the error relative to the wait still ahead
(|eta - start| / (start - asked), for a wait of at least a second); each by position in the queue
(1, 2-3, 4-7, 8+); and how many predictions were unknown. The noise puts a floor under the
error: a run's own duration is off by about --noise of it, and a run's wait sums the errors of
those ahead of it.

Nothing is asserted. It makes its own temp dirs, never touches ~/.guild, and stops the daemon it
started. Progress goes to stderr; with --json the table goes to stderr and stdout holds one JSON
object.
"""

import argparse
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import exe_beside_python, log, median, percentile, report, start_guildd, stop_process

OPS = {"short.py": 2.0, "medium.py": 4.0, "long.py": 6.0}  # operation -> mean seconds
SLEEPER = "import time\nsleep = 1.0\ntime.sleep(sleep)\n"
BUCKETS = ((1, 1, "1"), (2, 3, "2-3"), (4, 7, "4-7"), (8, 10**9, "8+"))
DRAIN_TIMEOUT_S = 900
NOT_ENDED = ("staged", "pending", "running")
COST_CALLS = 5


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=16)
    p.add_argument("--gpus", type=int, default=2)
    p.add_argument("--history", type=int, default=3, help="completed runs of each operation before the queue")
    p.add_argument("--noise", type=float, default=0.25, help="sigma of the lognormal factor on each run's duration")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between snapshots of the queue")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cost-queued", type=int, default=2000, help="waiting runs for the estimate's cost")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rng = random.Random(args.seed)
    root = pathlib.Path(tempfile.mkdtemp(prefix="bench-eta-"))
    bench = Bench(root, args.gpus)
    try:
        bench.start()
        log(f"history: {args.history} run(s) of each of {', '.join(OPS)}")
        history = [bench.stage(op, OPS[op] * _noise(rng, args.noise), 1) for op in OPS for _ in range(args.history)]
        bench.wait_ended(history)
        log(f"queue: {args.runs} runs on {args.gpus} GPUs, snapshots every {args.interval} s")
        snapshots, queued = bench.replay(rng, args)
        starts = bench.starts(queued)
        res = figures(snapshots, queued, starts)
        res.update(runs=args.runs, gpus=args.gpus, history=args.history, noise=args.noise, seed=args.seed)
        res["cost"] = estimate_cost(args.cost_queued, rng)
        report(res, args.json, print_report)
    finally:
        bench.stop()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _noise(rng, sigma):
    return rng.lognormvariate(0, sigma)


class Bench:
    """The daemon, its project, and the calls made to it."""

    def __init__(self, root, gpus):
        self.root = root
        self.project = root / "project"
        self.home = root / "home"
        self.project.mkdir()
        self.home.mkdir()
        for op in OPS:
            (self.project / op).write_text(SLEEPER)
        self.guildctl = exe_beside_python("guildctl", "eta.py")
        self.guildd = exe_beside_python("guildd", "eta.py")
        base = {k: v for k, v in os.environ.items() if k not in ("GUILD_HOME", "VIRTUAL_ENV", "GUILD_SIMULATED_GPUS")}
        self.env = dict(base, GUILD_HOME=str(self.home), GUILDCTL_NO_AUTOSTART="1", GUILD_SIMULATED_GPUS=f"{gpus}x80G")
        self.daemon = None
        self.client = None

    def start(self):
        self.daemon = start_guildd(self.guildd, self.guildctl, self.home, self.env, self.root / "guildd.err")
        from guildctl.client import Client
        self.client = Client(self.home, autostart=False)
        self.ctl("queue", "start")

    def stop(self):
        if self.client is not None:
            self.client.stop_runs()  # every running run (a bench cut short leaves some)
        stop_process(self.daemon)

    def ctl(self, *args, check=True):
        r = subprocess.run([self.guildctl, *args], cwd=self.project, env=self.env, capture_output=True, text=True)
        if check and r.returncode:
            raise RuntimeError(f"guildctl {' '.join(args)}: {r.stderr.strip()}")
        return r

    def stage(self, op, seconds, gpus):
        r = self.ctl("run", op, f"sleep={seconds:.3f}", "--gpus", str(gpus), "--stage", "-y")
        return r.stdout.split(" staged as ")[1].split()[0]

    def wait_ended(self, ids):
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while any(self.client.get_run(i).status in NOT_ENDED for i in ids):
            if time.monotonic() > deadline:
                raise RuntimeError("runs did not end")
            time.sleep(0.25)

    def snapshot(self):
        """(when asked, µs; [(run id, position, eta µs or None)])."""
        asked = time.time_ns() // 1000
        msg = self.client.list_queue()
        return asked, [(e.run.id, e.position, e.eta_us if e.HasField("eta_us") else None) for e in msg.entries]

    def replay(self, rng, args):
        """Stages the queue, a snapshot after each run staged and every `interval` seconds until
        it is empty: (snapshots, {run id: (op, seconds)})."""
        queued, snapshots = {}, []
        for n in range(args.runs):
            op = rng.choice(sorted(OPS))
            seconds = OPS[op] * _noise(rng, args.noise)
            queued[self.stage(op, seconds, 2 if n % 5 == 4 else 1)] = (op, seconds)
            snapshots.append(self.snapshot())
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            snap = self.snapshot()
            snapshots.append(snap)
            if not snap[1] and all(self.client.get_run(i).status not in ("staged", "pending") for i in queued):
                break
            time.sleep(args.interval)
        self.wait_ended(list(queued))
        return snapshots, queued

    def starts(self, ids):
        return {i: self.client.get_run(i).started_us for i in ids}


def figures(snapshots, queued, starts):
    """The error figures (see the module doc) from the snapshots and the real starts."""
    first, every = [], []  # (position, abs error s, relative error or None); None error: unknown
    seen = set()
    for asked, entries in snapshots:
        for run_id, position, eta in entries:
            start = starts.get(run_id)
            if not start:
                continue
            error = None if eta is None else abs(eta - start) / 1e6
            wait = (start - asked) / 1e6
            relative = error / wait if error is not None and wait >= 1 else None
            row = (position, error, relative)
            every.append(row)
            if run_id not in seen:
                seen.add(run_id)
                first.append(row)
    return {"when_queued": _summary(first), "every_snapshot": _summary(every), "snapshots": len(snapshots),
            "predictions": len(every)}


def estimate_cost(queued, rng):
    """{queued, p50_ms, max_ms} of guildd.eta.estimate on `queued` waiting runs, 8 GPUs all held."""
    from guildd import eta, scheduler
    now = time.time_ns() // 1000
    gpus = tuple(scheduler.GpuState(i, 80 * 2**30, 0) for i in range(8))
    running = tuple(scheduler.Holding(f"h{i}", "u0", (i,), started_us=now - i * 10**6) for i in range(8))
    entries = [scheduler.Entry(f"e{n:05d}", f"u{n % 4}", scheduler.Request(gpus=1 + (n % 5 == 4)), seq=n)
               for n in range(queued)]
    ops = [eta.Expected(tuple(int(m * _noise(rng, 0.25) * 10**6) for _ in range(20))) for m in (60, 300, 1200)]
    expected = {r: ops[n % 3] for n, r in enumerate([e.run_id for e in entries] + [h.run_id for h in running])}
    box = scheduler.Box(gpus=gpus, running=running)
    times = []
    for _ in range(COST_CALLS):
        started = time.perf_counter()
        eta.estimate(entries, box, expected, now)
        times.append(time.perf_counter() - started)
    return {"queued": queued, "p50_ms": median(times) * 1000, "max_ms": max(times) * 1000}


def _summary(rows):
    def stats(subset):
        errors = [e for _, e, _ in subset if e is not None]
        relative = [r for _, _, r in subset if r is not None]
        return {"n": len(subset), "unknown": sum(e is None for _, e, _ in subset),
                "abs_p50_s": median(errors), "abs_p90_s": percentile(errors, 90),
                "rel_p50": median(relative), "rel_p90": percentile(relative, 90)}

    out = {"all": stats(rows)}
    for low, high, name in BUCKETS:
        out[f"position {name}"] = stats([r for r in rows if low <= r[0] <= high])
    return out


def print_report(res, out):
    print(f"ETA error: {res['runs']} runs on {res['gpus']} simulated GPUs, {res['history']} earlier runs per "
          f"operation, noise sigma {res['noise']}, {res['snapshots']} snapshots, {res['predictions']} predictions",
          file=out)
    head = ("predictions", "where", "n", "unknown", "abs p50", "abs p90", "rel p50", "rel p90")
    rows = []
    for kind in ("when_queued", "every_snapshot"):
        for where, s in res[kind].items():
            rows.append((kind.replace("_", " "), where, s["n"], s["unknown"], _s(s["abs_p50_s"]), _s(s["abs_p90_s"]),
                         _pct(s["rel_p50"]), _pct(s["rel_p90"])))
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    print("  ".join("%-*s" % (w, h) for w, h in zip(widths, head)), file=out)
    for r in rows:
        print("  ".join("%-*s" % (w, v) for w, v in zip(widths, r)).rstrip(), file=out)
    cost = res["cost"]
    print(f"estimate cost, {cost['queued']} waiting on 8 held GPUs: p50 {cost['p50_ms']:.0f} ms, "
          f"max {cost['max_ms']:.0f} ms ({COST_CALLS} calls)", file=out)


def _s(x):
    return "-" if x is None else f"{x:.2f} s"


def _pct(x):
    return "-" if x is None else f"{x:.0%}"


if __name__ == "__main__":
    sys.exit(main())
