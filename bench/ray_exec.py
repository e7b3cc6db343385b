"""Ray executor benchmark: what `guildctl run --executor ray` costs over submitting the same
script with `ray job submit` directly, on the same local Ray head.

    python bench/ray_exec.py [--runs 5] [--address http://127.0.0.1:8265] [--keep] [--json]

1. A Ray head of its own (`ray start --head` in a temp dir, its own ports, stopped after; only
   its processes), unless --address names one; a guildd on a temp GUILD_HOME.
2. Submit-to-start latency, --runs times each way: the script's first line is the wall-clock
   time it started. guildd: `guildctl run first.py --executor ray:ADDR --background`; direct:
   `ray job submit --no-wait --working-dir . -- python first.py`. Latency = the script's start
   minus the moment the submitting command returned (and minus the moment it was invoked).
3. Per-run overhead: --runs short runs one after another, each waited for: `guildctl run
   short.py --executor ray:ADDR -y` (streams the output, returns at the end) against `ray job
   submit --working-dir . -- python short.py` (which also waits and streams the log); the wall
   time of each, and, for reference, the same run on this box (`guildctl run short.py -y`).

Figures: medians and p90s; ratio = guildd / direct. Nothing is asserted. Progress goes to
stderr; with --json the table goes to stderr and stdout holds one JSON object.
"""

import argparse
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import benchlib

FIRST = "import time\nprint('t', time.time(), flush=True)\n"
SHORT = "import time\nx = 1\nprint('loss:', x)\ntime.sleep(0.2)\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Head:
    """A Ray head of the bench's own, found again by its temp dir and GCS port to stop only it."""

    def __init__(self, ray):
        self.temp_dir = tempfile.mkdtemp(prefix="benchray", dir="/tmp")
        self.port, dashboard = free_port(), free_port()
        self.address = f"http://127.0.0.1:{dashboard}"
        ports = [arg for option in ("--ray-client-server-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                                    "--runtime-env-agent-port", "--metrics-export-port")
                 for arg in (option, str(free_port()))]
        subprocess.run([ray, "start", "--head", "--temp-dir", self.temp_dir, "--port", str(self.port), "--dashboard-host",
                        "127.0.0.1", "--dashboard-port", str(dashboard), "--num-cpus", "2", "--num-gpus", "0",
                        "--include-dashboard", "true", "--disable-usage-stats", *ports], check=True, capture_output=True)
        deadline = time.monotonic() + 60
        while not answers(self.address):
            if time.monotonic() > deadline:
                raise RuntimeError("the Ray head's job API did not answer")
            time.sleep(0.2)

    def stop(self):
        import psutil

        procs = {}
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if self.temp_dir in cmd or f":{self.port}" in cmd:
                procs[proc.pid] = proc
                try:
                    procs.update({c.pid: c for c in proc.children(recursive=True)})
                except psutil.Error:
                    pass
        for proc in procs.values():
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(list(procs.values()), timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def answers(address):
    try:
        with urllib.request.urlopen(f"{address}/api/jobs/", timeout=2):
            return True
    except OSError:
        return False


def first_line_time(text):
    for line in text.splitlines():
        if line.startswith("t "):
            return float(line.split()[1])
    return None


def wait_file_time(path, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            t = first_line_time(path.read_text())
            if t is not None:
                return t
        time.sleep(0.02)
    raise RuntimeError(f"no first line in {path}")


def guildd_latency(guildctl, env, proj, home, address):
    invoked = time.time()
    r = subprocess.run([guildctl, "run", "first.py", "--executor", f"ray:{address}", "--background", "-y"], cwd=proj, env=env,
                       capture_output=True, text=True, check=True)
    returned = time.time()
    run_id = r.stdout.split(" as ")[1].split()[0]
    started = wait_file_time(home / "runs" / run_id / ".guild" / "output")
    subprocess.run([guildctl, "watch", run_id], cwd=proj, env=env, capture_output=True)  # its end, before the next
    return started - returned, started - invoked


def direct_latency(ray, proj, address, n):
    invoked = time.time()
    sid = f"bench-{os.getpid()}-{n}-{time.monotonic_ns()}"
    subprocess.run([ray, "job", "submit", "--address", address, "--submission-id", sid, "--no-wait", "--working-dir", ".",
                    "--", sys.executable, "first.py"], cwd=proj, capture_output=True, check=True)
    returned = time.time()
    deadline = time.monotonic() + 120
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    while True:
        started = first_line_time(client.get_job_logs(sid))
        if started is not None:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {sid} wrote no first line")
        time.sleep(0.02)
    while str(client.get_job_status(sid)) not in ("SUCCEEDED", "FAILED", "STOPPED"):
        time.sleep(0.05)
    return started - returned, started - invoked


def timed(cmd, **kw):
    t0 = time.monotonic()
    subprocess.run(cmd, capture_output=True, check=True, **kw)
    return time.monotonic() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, metavar="N", help="runs each way, for each figure (default 5)")
    parser.add_argument("--address", help="an existing Ray head's dashboard (default: start one)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs")
    parser.add_argument("--json", action="store_true", help="print a JSON object on stdout (the table then goes to stderr)")
    args = parser.parse_args()
    guildd = benchlib.exe_beside_python("guildd", "ray_exec.py")
    guildctl = benchlib.exe_beside_python("guildctl", "ray_exec.py")
    ray = benchlib.exe_beside_python("ray", "ray_exec.py")
    base = pathlib.Path(tempfile.mkdtemp(prefix="bench-ray-"))
    home, proj = base / "home", base / "proj"
    proj.mkdir()
    (proj / "first.py").write_text(FIRST)
    (proj / "short.py").write_text(SHORT)
    env = {**os.environ, "GUILD_HOME": str(home), "GUILDCTL_NO_AUTOSTART": "1"}
    head = None if args.address else Head(ray)
    address = args.address or head.address
    daemon = None
    try:
        daemon = benchlib.start_guildd(guildd, guildctl, home, env, base / "guildd.stderr")
        subprocess.run([guildctl, "run", "first.py", "--executor", f"ray:{address}", "-y"], cwd=proj, env=env, capture_output=True)  # warm
        res = {"runs": args.runs, "address": address}
        lat = {"guildd": [], "direct": []}
        for i in range(args.runs):
            benchlib.log(f"latency {i + 1}/{args.runs}")
            lat["guildd"].append(guildd_latency(guildctl, env, proj, home, address))
            lat["direct"].append(direct_latency(ray, proj, address, i))
        for way in ("guildd", "direct"):
            res[f"latency_{way}_after_return_s"] = benchlib.median([a for a, _ in lat[way]])
            res[f"latency_{way}_after_invoke_s"] = benchlib.median([b for _, b in lat[way]])
            res[f"latency_{way}_after_invoke_p90_s"] = benchlib.percentile([b for _, b in lat[way]], 90)
        walls = {"guildd": [], "direct": [], "local": []}
        for i in range(args.runs):
            benchlib.log(f"overhead {i + 1}/{args.runs}")
            walls["guildd"].append(timed([guildctl, "run", "short.py", "--executor", f"ray:{address}", "-y"], cwd=proj, env=env))
            walls["direct"].append(timed([ray, "job", "submit", "--address", address, "--working-dir", ".", "--",
                                          sys.executable, "short.py"], cwd=proj))
            walls["local"].append(timed([guildctl, "run", "short.py", "-y"], cwd=proj, env=env))
        for way, xs in walls.items():
            res[f"wall_{way}_s"] = benchlib.median(xs)
            res[f"wall_{way}_p90_s"] = benchlib.percentile(xs, 90)
        benchlib.report(res, args.json, print_report)
    finally:
        benchlib.stop_process(daemon)
        if head is not None:
            head.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def ratio(a, b):
    return "-" if not a or not b else "%.2fx" % (a / b)


def print_report(res, out):
    print(f"Ray executor: {res['runs']} runs each way, head {res['address']}", file=out)
    rows = []
    for label, key in (("submit->first line, after the command returned", "after_return"),
                       ("submit->first line, from the command's start", "after_invoke")):
        g, d = res[f"latency_guildd_{key}_s"], res[f"latency_direct_{key}_s"]
        rows.append((label + " (median)", benchlib.fmt_s(g), benchlib.fmt_s(d), ratio(g, d), "-", "-"))
    g, d = res["latency_guildd_after_invoke_p90_s"], res["latency_direct_after_invoke_p90_s"]
    rows.append(("submit->first line, from the command's start (p90)", benchlib.fmt_s(g), benchlib.fmt_s(d), ratio(g, d), "-", "-"))
    g, d = res["wall_guildd_s"], res["wall_direct_s"]
    rows.append(("wall of one short run, waited for (median)", benchlib.fmt_s(g), benchlib.fmt_s(d), ratio(g, d), "<= 1.5x",
                 benchlib.yes(g <= 1.5 * d)))
    rows.append(("per-run overhead over ray job submit (median)", benchlib.fmt_s(g - d), "-", "-", "-", "-"))
    rows.append(("same run on this box, no Ray (median)", benchlib.fmt_s(res["wall_local_s"]), "-", "-", "-", "-"))
    benchlib.print_table(rows, out)
    print("baseline: `ray job submit` (the CLI) on the same head, the same script", file=out)


if __name__ == "__main__":
    main()
