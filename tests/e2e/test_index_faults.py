"""A damaged index loses nothing: with the daemon stopped (cleanly, or killed with -9), the
index is truncated, filled with garbage, deleted, left from an older layout, or its WAL,
shared-memory or journal file is damaged; the daemon started again lists every run with its
label, mark, tags, comments, status and scalars as before. A damaged index is kept aside, and
guildd.log says so. Run dirs added or removed by hand while the daemon runs are noticed by the
next listing."""

import json
import os
import pathlib
import shutil
import signal
import sqlite3

import pytest

from guild_common import home as homelib
from tests.e2e.conftest import Guild

# Prints the same scalars every time (compare must read the same before and after).
TRAIN = """\
x = 0.1
print("step: 1")
print("loss: %f" % (x * 2))
print("acc: %f" % (x / 3))
print("step: 2")
print("loss: %f" % (x * 1.5))
print("acc: %f" % (x / 2))
"""

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "guild09-home"
GUILD09_RUN = "ac5039342a1841bebb458fe1d2d546b7"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A stopped GUILD_HOME holding runs of every kind: labeled, tagged, commented, marked,
    a batch with its trials, a staged run and a run in the trash."""
    base = tmp_path_factory.mktemp("index-faults")
    project = base / "proj"
    project.mkdir()
    (project / "train.py").write_text(TRAIN)
    g = Guild(base / "guild-home", project)
    g.start_daemon()
    try:
        g.ctl("run", "train.py", "x=0.3", "-y")
        first = g.runs()[0]["id"]
        g.ctl("run", "train.py", "x=0.5", "--label", "best", "-y")
        best = g.runs()[0]["id"]
        g.ctl("run", "train.py", "x=[0.1,0.2]", "--keep-batch", "-y")
        g.ctl("run", "train.py", "x=0.7", "--stage", "-y")
        g.ctl("run", "train.py", "x=0.9", "-y")
        g.ctl("runs", "rm", "1", "-y")
        g.ctl("label", first, "--set", "hello", "-y")
        g.ctl("tag", first, "-a", "baseline", "-y")
        g.ctl("comment", first, "-a", "a note", "-y")
        g.ctl("mark", best, "-y")
        g.snapshot = _snapshot(g)
    finally:
        g.stop()
    return g


def _snapshot(g):
    """What a user sees of the runs: the list (live and trash, with labels, marks, tags,
    comments, flags, status and scalars) and the compare table; GUILD_HOME written as
    $HOME, so that copies of one home compare equal."""
    shown = [g.ctl(*args, "--json").stdout for args in (("runs",), ("runs", "-d"), ("compare",))]
    return [json.loads(text.replace(str(g.home), "$HOME")) for text in shown]


def _late_changes(g):
    """Changes made just before the daemon stops: after a kill -9 they are only in the WAL."""
    runs = g.runs()
    labeled = next(r["id"] for r in runs if r["label"] == "hello")
    staged = next(r["id"] for r in runs if r["status"] == "staged")
    g.ctl("label", labeled, "--set", "hello again", "-y")
    g.ctl("tag", staged, "-a", "late", "-y")
    g.ctl("comment", staged, "-a", "late note", "-y")
    g.ctl("mark", staged, "-y")


def _cut(path, keep):
    with open(path, "r+b") as f:
        f.truncate(keep(os.path.getsize(path)))


def _garbage(path, size=64 * 1024):
    path.write_bytes(os.urandom(size))


def _older_layout(path):
    """An index of layout 3 (no event files, no comments), holding a wrong row for a real run."""
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, op_name TEXT, opref TEXT, status TEXT, label TEXT,"
        " created_us INTEGER, started_us INTEGER, stopped_us INTEGER, exit_status INTEGER, marked INTEGER,"
        " deleted INTEGER);"
        "CREATE TABLE scalars (run_id TEXT, tag TEXT, last_val REAL, PRIMARY KEY (run_id, tag));"
    )
    run_id = sorted(os.listdir(path.parent / "runs"))[0]
    db.execute("INSERT INTO runs VALUES (?, 'old', '', 'running', 'stale label', 1, 1, 0, NULL, 0, 0)", (run_id,))
    db.execute("INSERT INTO scalars VALUES (?, 'loss', 99.0)", (run_id,))
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()


def _wal(path):
    return pathlib.Path(f"{path}-wal")


def _copy(template, tmp_path):
    home = tmp_path / "guild-home"
    shutil.copytree(template.home, home, ignore=shutil.ignore_patterns("*.sock", "guildd.lock"))
    return Guild(home, template.project)


# name: (the damage done to the index at `path`, what guildd.log says)
STOPPED = {
    "index emptied": (lambda p: _cut(p, lambda n: 0), None),
    "index cut in half": (lambda p: _cut(p, lambda n: n // 2), "is damaged"),
    "index of garbage": (_garbage, "is damaged"),
    "index deleted": (lambda p: p.unlink(), None),
    "index of an older layout": (_older_layout, "has layout 3"),
    "index with a stray garbage journal": (lambda p: _garbage(pathlib.Path(f"{p}-journal"), 5000), None),
}


@pytest.mark.parametrize("damage, logged", STOPPED.values(), ids=STOPPED.keys())
def test_a_damaged_index_of_a_stopped_daemon_loses_no_run(template, tmp_path, damage, logged):
    g = _copy(template, tmp_path)
    index = homelib.index_path(g.home)
    damage(index)
    damaged = index.read_bytes() if logged == "is damaged" else None
    g.start_daemon()
    try:
        assert _snapshot(g) == template.snapshot
    finally:
        g.stop()
    log = (g.home / "guildd.log").read_text()
    if logged:
        assert logged in log
    if damaged is not None:
        # Kept aside, not deleted: the damaged file is there to look at, and the log says where.
        kept = [p for p in g.home.iterdir() if p.name.startswith(f"{index.name}.damaged-") and not p.name.endswith("-wal")]
        assert [p.read_bytes() for p in kept] == [damaged]
        assert f"kept aside as {kept[0]}" in log


# name: (the damage done after a kill -9 to the index at `path`, which leaves its WAL behind)
KILLED = {
    "WAL cut in half": lambda p: _cut(_wal(p), lambda n: n // 2),
    "WAL of garbage": lambda p: _garbage(_wal(p)),
    "WAL deleted": lambda p: _wal(p).unlink(),
    "index and WAL deleted": lambda p: [p.unlink(), _wal(p).unlink()],
    "shared memory of garbage": lambda p: _garbage(pathlib.Path(f"{p}-shm"), 32768),
}


@pytest.mark.parametrize("damage", KILLED.values(), ids=KILLED.keys())
def test_a_damaged_index_after_kill_9_loses_no_run(template, tmp_path, damage):
    g = _copy(template, tmp_path)
    g.start_daemon()
    try:
        _late_changes(g)
        before = _snapshot(g)
        g.kill_daemon(signal.SIGKILL)
        damage(homelib.index_path(g.home))
        g.start_daemon()
        assert _snapshot(g) == before
    finally:
        g.stop()


def test_run_dirs_added_and_removed_by_hand_are_noticed(template, tmp_path):
    g = _copy(template, tmp_path)
    home = g.home
    g.start_daemon()
    try:
        before = {r["id"] for r in g.runs()}
        # A run Guild AI wrote, copied in by hand, is listed with what it holds.
        shutil.copytree(FIXTURES / "runs" / GUILD09_RUN, home / "runs" / GUILD09_RUN)
        added = {r["id"]: r for r in g.runs()}
        assert set(added) == before | {GUILD09_RUN}
        assert (added[GUILD09_RUN]["status"], added[GUILD09_RUN]["flags"]["x"]) == ("completed", 0.2)
        # A run dir removed by hand is gone from the next listing.
        gone = sorted(before)[0]
        shutil.rmtree(home / "runs" / gone)
        assert {r["id"] for r in g.runs()} == (before - {gone}) | {GUILD09_RUN}
        # And the trash is watched the same way.
        shutil.move(home / "runs" / GUILD09_RUN, home / "trash" / "runs" / GUILD09_RUN)
        assert GUILD09_RUN not in {r["id"] for r in g.runs()}
        assert GUILD09_RUN in {r["id"] for r in json.loads(g.ctl("runs", "-d", "--json").stdout)}
    finally:
        g.stop()
