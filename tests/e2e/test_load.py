"""Many clients at once against one daemon (issue 16, item 2; bench/load.py is the big version
with the latency figures): every client's operations succeed, and every run a client staged
or labelled is there and right afterwards, with ~200 staged runs present."""

import concurrent.futures
import json
import random

import pytest

from guildctl import api
from tests.conftest import wait_for
from tests.e2e.conftest import Guild, write

CLIENTS = 4
OPS = 25
STAGED = 200
KINDS = ("stage", "runs --json", "runs info", "queue --json", "label", "watch")
TICKER = """
import time
for i in range(1, 100001):
    print("tick %d" % i, flush=True)
    time.sleep(0.05)
"""


@pytest.fixture
def g(tmp_path):
    proj = tmp_path / "proj"
    write(proj, {"noop.py": "pass\n", "ticker.py": TICKER})
    guild = Guild(tmp_path / "guild-home", proj)
    guild.start_daemon()
    yield guild
    guild.stop()


def client(g, ticker, no):
    """One client: OPS guildctl commands from a seeded mix. Returns (errors, {run id: label})."""
    rng = random.Random(no)
    mine, errors = {}, []
    for i in range(OPS):
        kind = rng.choice(KINDS) if mine else "stage"
        if kind == "stage":
            label = f"c{no} op{i}"
            r = g.ctl("run", "noop.py", "--stage", "-y", "--label", label, check=False)
            run_id = next((w for w in r.stdout.split() if len(w) == 32), None)
            if run_id:
                mine[run_id] = label
        elif kind == "label":
            run_id, label = rng.choice(sorted(mine)), f"c{no} relabelled op{i}"
            r = g.ctl("label", "--set", label, run_id, "-y", check=False)
            if r.returncode == 0:
                mine[run_id] = label
        elif kind == "watch":
            with g.popen("watch", ticker, "--tail", "2", stdout=-1, stderr=-1, text=True) as p:
                lines = [p.stdout.readline() for _ in range(2)]
                p.terminate()
            ok = all(line.startswith("tick ") for line in lines)
            errors += [] if ok else [f"watch read {lines!r}"]
            continue
        else:
            args = {"runs --json": ["runs", "--json"], "runs info": ["runs", "info", rng.choice([ticker, *mine]), "--json"],
                    "queue --json": ["queue", "--json"]}[kind]
            r = g.ctl(*args, check=False)
            if r.returncode == 0:
                json.loads(r.stdout)
        if r.returncode != 0:
            errors.append(f"{kind}: exit {r.returncode}: {r.stderr.strip()}")
    return errors, mine


def test_many_clients_at_once_lose_nothing_with_many_staged_runs(g):
    session = api.connect(g.home, autostart=False)
    try:
        for i in range(STAGED):
            session.run("noop.py", cwd=g.project, stage=True, label=f"pre {i}")
        ticker = session.run("ticker.py", cwd=g.project, background=True).id
    finally:
        session.close()
    wait_for(lambda: "tick 2" in g.ctl("cat", ticker, "--output").stdout, what="the ticker's first lines")

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:  # each op is its own guildctl process
        results = list(pool.map(lambda no: client(g, ticker, no), range(CLIENTS)))

    assert [e for errors, _ in results for e in errors] == []
    runs = {r["id"]: r for r in json.loads(g.ctl("runs", "--all", "--json").stdout)}
    expected = {run_id: label for _, mine in results for run_id, label in mine.items()}
    assert expected and {run_id: (runs[run_id]["status"], runs[run_id]["label"]) for run_id in expected if run_id in runs} \
        == {run_id: ("staged", label) for run_id, label in expected.items()}
    pre = sorted(r["label"] for r in runs.values() if r["label"].startswith("pre "))
    assert pre == sorted(f"pre {i}" for i in range(STAGED))
    assert len(runs) == STAGED + 1 + len(expected)
    assert runs[ticker]["status"] == "running"
    g.ctl("stop", ticker, "-y")
    ticks = g.ctl("cat", ticker, "--output").stdout.split("\n")
    ticks = [line for line in ticks if line]
    assert ticks == [f"tick {i}" for i in range(1, len(ticks) + 1)]  # the ticker's output, whole and in order
