"""Compatibility with Guild AI 0.9, both ways, end to end.

A GUILD_HOME written by real Guild 0.9 (tests/fixtures/guild09-home, copied first: it must
stay as Guild wrote it) is listed, shown, filtered, compared and exported here; runs made
here are listed and shown by `guild` itself (when ../shared/tools/install-guild-anchor has
put Guild 0.9 at /tmp/guild-anchor); run dirs added or removed by hand show at once.
"""

import csv
import datetime
import io
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from tests.e2e.conftest import Guild, run_row as _row

FIXTURE_HOME = pathlib.Path(__file__).parent.parent / "fixtures" / "guild09-home"
GUILD = pathlib.Path("/tmp/guild-anchor/bin/guild")

# The fixture's runs (tests/fixtures/README.md), latest first, and the deleted one.
STAGED = "d72cbd53666243a39b44b2ba6efbb704"  # x=0.4, marked
BEST = "c32ffc6c32964350abae5bb2aa7593a1"  # x=0.5, label 'best', tag 'baseline'
ERROR = "c86e60a5dbbb4663b6dfc15b6a8258f4"  # x=-1, exit 2
LR = "7876fd1f33a948ce852e0e01d401d255"  # x=0.3 lr=0.1, the lowest loss
FIRST = "ac5039342a1841bebb458fe1d2d546b7"  # x=0.2
DELETED = "dad9c52072b04794bbbfc64e4650b4eb"  # x=0.9, in trash/runs
ORDER = [STAGED, BEST, ERROR, LR, FIRST]



TRAIN = """\
import sys

x = 0.1
lr = 0.01
epochs = 3

for step in range(epochs):
    print("step: %d" % step)
    print("loss: %f" % ((x - 0.3) ** 2 + 1.0 / (step + 1)))
    print("acc: %f" % (0.5 + step * 0.1))
if x < 0:
    sys.exit(2)
"""


def _copy_fixture(dest):
    shutil.copytree(FIXTURE_HOME, dest, symlinks=True)
    return dest


@pytest.fixture(scope="module")
def gh(tmp_path_factory):
    """A daemon serving a copy of the GUILD_HOME Guild 0.9 wrote. Tests here only read it,
    or change it and put it back."""
    base = tmp_path_factory.mktemp("guild09")
    project = base / "proj"
    project.mkdir()
    g = Guild(_copy_fixture(base / "guild-home"), project)
    g.start_daemon()
    yield g
    g.stop()


def _guild(home, *args, cwd=None):
    """Real Guild AI 0.9 on `home` (skips the test when it isn't installed)."""
    if not GUILD.exists():
        pytest.skip(f"Guild AI 0.9 not installed at {GUILD} (see ../shared/tools/install-guild-anchor)")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["GUILD_HOME"] = str(home)
    env["NO_WARN_RUNDIR"] = "1"
    r = subprocess.run([str(GUILD), *args], env=env, cwd=cwd or home, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"guild {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def _ids(g, *args):
    return [r["id"] for r in json.loads(g.ctl("runs", "list", "--json", *args).stdout)]


# Guild's home, read here


def test_guild_runs_are_listed_latest_first(gh):
    rows = gh.ctl("runs").stdout.splitlines()
    fields = [_row(row) for row in rows]
    assert [(f["index"], f["id"]) for f in fields] == [(str(i), run_id[:8]) for i, run_id in enumerate(ORDER, 1)]
    assert [f["status"] for f in fields] == ["staged", "completed", "error", "completed", "completed"]
    assert [f["label"] for f in fields] == [
        "epochs=3 lr=0.01 x=0.4", "best", "epochs=3 lr=0.01 x=-1", "epochs=3 lr=0.1 x=0.3", "epochs=3 lr=0.01 x=0.2"
    ]
    assert fields[-1]["started"] == datetime.datetime.fromtimestamp(1795348720.669026).strftime("%Y-%m-%d %H:%M:%S")
    assert all(f["op"].startswith("train.py") for f in fields)
    assert fields[0]["op"].endswith("[marked]") and not fields[1]["op"].endswith("[marked]")


def test_guild_runs_json(gh):
    runs = {r["id"]: r for r in gh.runs()}
    assert list(runs) == ORDER
    assert runs[STAGED]["marked"] is True and runs[STAGED]["status"] == "staged" and runs[STAGED]["exit_status"] is None
    assert runs[BEST]["label"] == "best" and runs[BEST]["tags"] == ["baseline"] and not runs[BEST]["marked"]
    assert runs[ERROR]["exit_status"] == 2 and runs[ERROR]["status"] == "error"
    assert runs[FIRST]["opref"] == "script:/tmp/fx/proj '' '' train.py"
    assert runs[FIRST]["started"] == 1795348720669026 and runs[FIRST]["stopped"] == 1795348721121116
    assert runs[FIRST]["run_dir"] == str(gh.home / "runs" / FIRST)


def test_guild_deleted_run_is_only_in_the_trash_list(gh):
    assert DELETED not in _ids(gh, "-a")
    assert DELETED[:8] not in gh.ctl("runs", "-a").stdout
    rows = gh.ctl("runs", "--deleted").stdout.splitlines()
    assert len(rows) == 1 and rows[0].startswith(f"[1:{DELETED[:8]}]") and "completed" in rows[0]
    assert _ids(gh, "--deleted") == [DELETED]
    assert json.loads(gh.ctl("runs", "--deleted", "--json").stdout)[0]["run_dir"] == str(gh.home / "trash" / "runs" / DELETED)


def test_guild_runs_info_shows_flags_and_scalars(gh):
    info = gh.info(BEST[:8])
    assert info["id"] == BEST and info["status"] == "completed" and info["label"] == "best"
    assert info["flags"] == {"epochs": 3, "lr": 0.01, "x": 0.5}
    assert info["scalars"]["loss"] == [pytest.approx(0.373333, abs=1e-5), 2]
    assert info["scalars"]["acc"] == [pytest.approx(0.7, abs=1e-5), 2]
    assert info["from"] == "/tmp/fx/proj"
    assert info["sourcecode_digest"] == "58d0cb6f7975be1f0ad9191ea7b769ae"
    assert info["command"].endswith("-um guild.op_main train --epochs 3 --lr 0.01 --x 0.5")
    assert info["tags"] == ["baseline"] and info["exit_status"] == 0 and info["marked"] == "no"
    staged = gh.info(STAGED)
    assert staged["status"] == "staged" and staged["marked"] == "yes" and staged["scalars"] == {}
    assert staged["exit_status"] == "" and staged["stopped"] == ""
    assert gh.info(ERROR)["exit_status"] == 2
    text = gh.ctl("runs", "info", LR).stdout.splitlines()
    assert text[text.index("scalars:") + 1 :] == ["  acc: 0.700000 (step 2)", "  loss: 0.333333 (step 2)"]


def _as_guild_shows(info_text, user):
    """Our `runs info` text less the one line Guild keeps in the run but doesn't print:
    `user:`, right after `operation:`."""
    lines = info_text.rstrip("\n").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("operation: ")) + 1
    assert lines[at] == f"user: {user}"
    return "\n".join(lines[:at] + lines[at + 1 :])


def test_guild_runs_info_reads_as_guilds_own(gh):
    for run_id in ORDER:
        ours = _as_guild_shows(gh.ctl("runs", "info", run_id).stdout, gh.info(run_id)["user"])
        assert ours == _guild(gh.home, "runs", "info", run_id).stdout.rstrip("\n")


@pytest.mark.parametrize(
    "args, expected",
    [
        (("-Sc",), [BEST, LR, FIRST]),
        (("-C",), [BEST, LR, FIRST]),
        (("-Se",), [ERROR]),
        (("-Ss",), [STAGED]),
        (("-Fm",), [STAGED]),
        (("-Fn", "-Sc"), [BEST, LR, FIRST]),
        (("-Fl", "best"), [BEST]),
        (("-Ft", "baseline"), [BEST]),
        (("-Ft", "baseline", "-Se"), []),
        (("-Fd", "58d0cb"), ORDER),
        (("-Fo", "train"), ORDER),
        (("--not-completed",), [STAGED, ERROR]),
        (("-Sce",), [BEST, ERROR, LR, FIRST]),
        (("-Sst",), [STAGED]),
        (("-F", "loss < 0.34"), [LR]),
        (("-F", "loss < 0.35 and x > 0.25"), [LR]),
        (("-F", "lr = 0.01 and x < 0"), [ERROR]),
        (("-S", "before 2000-1-1"), []),
        (("-Fs", "after 2026-11-22 11:58:42"), [STAGED, BEST, ERROR]),
        ((":2",), [STAGED, BEST]),
        (("2:3",), [BEST, ERROR]),
        (("4:",), [LR, FIRST]),
        (("c3",), [BEST]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_guild_runs_filter_and_select(gh, args, expected):
    assert _ids(gh, *args) == expected


AMBIGUOUS_ARGV = [
    ("runs", "info", "c"),
    ("runs", "list", "c"),
    ("select", "c"),
    ("ls", "c"),
    ("cat", "c", "--output"),
    ("compare", "--table", "c"),
    ("label", "c", "--set", "x", "-y"),
    ("mark", "c", "-y"),
    ("unmark", "c", "-y"),
    ("runs", "rm", "c", "-y"),
    ("runs", "diff", "c", "1"),
    ("export", "EXPORT", "c", "-y"),
]


@pytest.mark.parametrize("argv", AMBIGUOUS_ARGV, ids=lambda a: " ".join(a))
def test_ambiguous_prefix_lists_the_candidates(gh, tmp_path, argv):
    dest = tmp_path / "export"
    changes = argv[0] in ("label", "mark", "unmark") or argv[:2] == ("runs", "rm")
    before = gh.runs() if changes else None
    r = gh.ctl(*[str(dest) if a == "EXPORT" else a for a in argv], check=False)
    assert r.returncode == 1
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("guildctl: ") and "Traceback" not in err
    assert "ambiguous" in err and BEST[:8] in err and ERROR[:8] in err
    assert r.stdout == ""
    if changes:
        assert gh.runs() == before
    assert not dest.exists()


def test_unknown_run_in_guilds_home(gh):
    r = gh.ctl("runs", "info", "ffff0000", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == "guildctl: could not find run 'ffff0000'"


def test_guild_runs_compare(gh):
    rows = list(csv.reader(io.StringIO(gh.ctl("compare", "--csv", "-", "--min", "loss").stdout)))
    assert rows[0] == ["run", "operation", "started", "time", "status", "label", "epochs", "lr", "x", "step", "acc", "loss"]
    assert [row[0] for row in rows[1:]] == [r[:8] for r in (LR, FIRST, BEST, ERROR, STAGED)]
    by = {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
    assert float(by[LR[:8]]["loss"]) == pytest.approx(0.333333, abs=1e-5) and by[LR[:8]]["lr"] == "0.1"
    assert by[STAGED[:8]]["operation"] == "train.py"  # the CSV has the plain name, marked or not
    assert by[STAGED[:8]]["loss"] == "" and by[STAGED[:8]]["step"] == ""
    lines = gh.ctl("compare", "-t", "-Sc", "--max", "loss", "--top", "1", "-cc", ".label,loss").stdout.splitlines()
    assert [line.split() for line in lines] == [["run", "label", "loss"], [BEST[:8], "best", "0.373333"]]
    table = gh.ctl("compare", "-t").stdout.splitlines()
    assert "train.py [marked]" in table[1] and table[1].startswith(STAGED[:8])
    assert gh.ctl("select", "--min", "loss").stdout.strip() == LR
    assert gh.ctl("select", "--max", "loss", "-Sc").stdout.strip() == BEST


def test_guild_runs_compare_csv_is_guilds(gh):
    for args in ((), ("--min", "loss"), ("-Sc", "--max", "acc")):
        ours = gh.ctl("compare", "--csv", "-", *args).stdout
        assert ours == _guild(gh.home, "compare", "--csv", "-", *args).stdout


def test_guild_runs_export_and_import(gh, guild, tmp_path):
    dest = tmp_path / "archive"
    r = gh.ctl("export", str(dest), BEST, FIRST, "-y")
    assert r.stdout.splitlines()[-1] == "Exported 2 run(s)"
    assert {p.name for p in dest.iterdir()} == {".guild-nocopy", BEST, FIRST}
    assert (dest / BEST / ".guild" / "attrs" / "label").read_text() == (FIXTURE_HOME / "runs" / BEST / ".guild" / "attrs" / "label").read_text()
    assert _ids(gh, "--archive", str(dest)) == [BEST, FIRST]
    assert _ids(gh, "--archive", str(dest), "-Fl", "best") == [BEST]
    assert _ids(gh) == ORDER  # copied: still here
    # Into an empty home: ids, flags and scalars kept.
    r = guild.ctl("import", str(dest), "-y")
    assert r.stdout.splitlines()[-1] == "Imported 2 run(s)"
    assert [r["id"] for r in guild.runs()] == [BEST, FIRST]
    info = guild.info(BEST)
    assert info["label"] == "best" and info["flags"]["x"] == 0.5 and info["scalars"]["loss"][1] == 2
    assert info["run_dir"] == str(guild.home / "runs" / BEST)


def test_guild_lists_our_export(gh, tmp_path):
    dest = tmp_path / "archive"
    gh.ctl("export", str(dest), ERROR, "-y")
    out = _guild(gh.home, "runs", "list", "-A", str(dest)).stdout.splitlines()
    assert len(out) == 1 and out[0].startswith(f"[1:{ERROR[:8]}]") and "error" in out[0]


# Run dirs added or removed by hand


def test_run_dirs_added_and_removed_by_hand_show_at_once(guild):
    assert guild.runs() == []
    runs_dir = guild.home / "runs"
    runs_dir.mkdir(exist_ok=True)
    shutil.copytree(FIXTURE_HOME / "runs" / BEST, runs_dir / BEST, symlinks=True)
    rows = guild.ctl("runs").stdout.splitlines()
    assert len(rows) == 1 and rows[0].startswith(f"[1:{BEST[:8]}]") and rows[0].endswith("best")
    assert guild.info(BEST)["scalars"]["loss"][1] == 2
    shutil.copytree(FIXTURE_HOME / "runs" / ERROR, runs_dir / ERROR, symlinks=True)
    assert [r["id"] for r in guild.runs()] == [BEST, ERROR]
    assert guild.ctl("select", "--max", "loss").stdout.strip() == ERROR
    shutil.rmtree(runs_dir / BEST)
    assert [r["id"] for r in guild.runs()] == [ERROR]
    r = guild.ctl("runs", "info", BEST, check=False)
    assert r.returncode == 1 and "could not find run" in r.stderr
    compared = guild.ctl("compare", "--csv", "-").stdout.splitlines()
    assert len(compared) == 2 and compared[1].startswith(ERROR[:8])
    trash = guild.home / "trash" / "runs"
    trash.mkdir(parents=True)
    shutil.copytree(FIXTURE_HOME / "trash" / "runs" / DELETED, trash / DELETED, symlinks=True)
    assert _ids(guild, "--deleted") == [DELETED]
    assert guild.ctl("runs", "restore", DELETED, "-y").stdout.strip() == "Restored 1 run(s)"
    assert [r["id"] for r in guild.runs()] == [DELETED, ERROR]


# Our runs, read by Guild AI 0.9


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    """Three runs made here (x=0.2; x=-1 lr=0.1, an error; x=0.5 labeled best and marked),
    for Guild to read."""
    if not GUILD.exists():
        pytest.skip(f"Guild AI 0.9 not installed at {GUILD} (see ../shared/tools/install-guild-anchor)")
    base = tmp_path_factory.mktemp("ours")
    project = base / "proj"
    project.mkdir()
    (project / "train.py").write_text(TRAIN)
    g = Guild(base / "guild-home", project)
    g.start_daemon()
    try:
        g.ctl("run", "train.py", "x=0.2", "-y")
        g.ctl("run", "train.py", "x=-1", "lr=0.1", "-y", check=False)
        g.ctl("run", "train.py", "x=0.5", "-l", "best", "-y")
        g.ctl("mark", "1", "-y")
        yield g
    finally:
        g.stop()


def test_guild_lists_our_runs(ours):
    mine = ours.runs()
    theirs = json.loads(_guild(ours.home, "runs", "list", "--json").stdout)
    assert [r["id"] for r in theirs] == [r["id"] for r in mine]
    assert [r["status"] for r in theirs] == ["completed", "error", "completed"]
    assert [r["label"] for r in theirs] == ["best", "epochs=3 lr=0.1 x=-1", "epochs=3 lr=0.01 x=0.2"]
    assert [r["exit_status"] for r in theirs] == [0, 2, 0]
    assert [r["marked"] for r in theirs] == [True, None, None]
    assert [r["opref"] for r in theirs] == [r["opref"] for r in mine]
    rows = _guild(ours.home, "runs").stdout.splitlines()
    assert [row.split()[0] for row in rows] == [f"[{i}:{r['id'][:8]}]" for i, r in enumerate(mine, 1)]
    assert _guild(ours.home, "runs", "list", "-Se").stdout.split()[0] == f"[1:{mine[1]['id'][:8]}]"


def test_guild_shows_our_runs_flags_scalars_and_status(ours):
    run_id = ours.runs()[1]["id"]
    lines = _guild(ours.home, "runs", "info", run_id).stdout.splitlines()
    assert f"id: {run_id}" in lines
    assert "status: error" in lines and "exit_status: 2" in lines
    assert "operation: train.py" in lines
    i = lines.index("flags:")
    assert lines[i + 1 : i + 4] == ["  epochs: 3", "  lr: 0.1", "  x: -1"]
    assert lines[lines.index("scalars:") + 1 :] == ["  acc: 0.700000 (step 2)", f"  loss: {1.69 + 1 / 3:f} (step 2)"]
    best = _guild(ours.home, "runs", "info", "1").stdout.splitlines()
    assert "label: best" in best and "marked: yes" in best and "status: completed" in best


def test_guild_runs_info_of_our_run_reads_as_ours(ours):
    for run_id in [r["id"] for r in ours.runs()]:
        theirs = _guild(ours.home, "runs", "info", run_id).stdout.rstrip("\n")
        assert theirs == _as_guild_shows(ours.ctl("runs", "info", run_id).stdout, ours.info(run_id)["user"])


def test_guild_compares_our_runs(ours):
    theirs = list(csv.reader(io.StringIO(_guild(ours.home, "compare", "--csv", "-", "--min", "loss").stdout)))
    mine = list(csv.reader(io.StringIO(ours.ctl("compare", "--csv", "-", "--min", "loss").stdout)))
    assert theirs[0] == mine[0] == ["run", "operation", "started", "time", "status", "label", "epochs", "lr", "x", "step", "acc", "loss"]
    assert len(theirs) == len(mine) == 4
    for t, m in zip(theirs[1:], mine[1:]):
        assert t[:10] == m[:10]
        # Guild reads scalars back from the TF event file (float32); we keep the logged value.
        assert [float(v) for v in t[10:]] == [pytest.approx(float(v), abs=1e-6) for v in m[10:]]
