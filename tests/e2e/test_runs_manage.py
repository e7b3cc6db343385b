"""Runs management end to end: run selection and filters, runs/info/ls/cat/label/mark, the
trash, select, diff, check --space, export/import and compare, through the real guildctl
against a real guildd.

Two daemons serve the module: `g` holds a fixed set of runs that tests only read (so each
test can name exactly which runs a selection must give), `m` is for tests that change runs;
each of those makes its own runs and names them by id.
"""

import csv
import io
import json
import os
import pathlib
import pwd
import shutil
import time

import pytest
import yaml

from tests.conftest import SLOW, wait_for
from tests.e2e.conftest import Guild, run_row as _row

FIXTURE_HOME = pathlib.Path(__file__).parent.parent / "fixtures" / "guild09-home"

# Deterministic, like the script the Guild 0.9 fixture ran: final loss (x - 0.3)^2 + 0.1/3.
TRAIN = """\
import sys

x = 0.1
lr = 0.01
epochs = 3

for step in range(epochs):
    print("step: %d" % step)
    print("loss: %f" % ((x - 0.3) ** 2 + 0.1 / (step + 1)))
    print("acc: %f" % (0.5 + step * 0.1))
with open("model.txt", "w") as f:
    f.write("x=%s\\n" % x)
if x < 0:
    sys.exit(2)
"""



UNKNOWN_ID = "deadbeef" + "0" * 24


def _final_loss(x):
    return round((x - 0.3) ** 2 + 0.1 / 3, 6)


def _make_project(path):
    path.mkdir()
    (path / "train.py").write_text(TRAIN)
    (path / "slow.py").write_text(SLOW)
    return path


def _start(home, project):
    g = Guild(home, project)
    g.start_daemon()
    return g


def _latest_id(g):
    return g.ctl("select").stdout.strip()


def _bg_id(stdout):
    return stdout.split(" started in background as ")[1].split()[0]


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    """A home with seven runs, oldest first:

    A train x=0.05 (label cleared)     B train x=0.2 label 'best'     C train x=0.5 marked
    D train x=-1 (error, exit 2)       -- the project changes here (new source digest) --
    E slow steps=3 tagged 'tagged'     F train x=0.4 staged           G slow, stopped: terminated
    """
    base = tmp_path_factory.mktemp("manage-read")
    project = _make_project(base / "proj")
    g = _start(base / "guild-home", project)
    try:
        ids = {}
        for name, x, extra in (("A", 0.05, ()), ("B", 0.2, ("-l", "best")), ("C", 0.5, ()), ("D", -1, ())):
            g.ctl("run", "train.py", f"x={x}", *extra, "-y", check=(name != "D"))
            ids[name] = _latest_id(g)
        (project / "extra.py").write_text("# a change to the project: a new source digest\n")
        g.ctl("run", "slow.py", "steps=3", "delay=0", "-t", "tagged", "-y")
        ids["E"] = _latest_id(g)
        g.ctl("queue", "stop")  # F stays staged (processing is off by default, and stays so)
        r = g.ctl("run", "train.py", "x=0.4", "--stage", "-y")
        ids["F"] = r.stdout.split(" staged as ")[1].split()[0]
        ids["G"] = _bg_id(g.ctl("run", "slow.py", "steps=1000", "--background", "-y").stdout)
        g.wait_status(ids["G"], "running")
        g.ctl("stop", ids["G"])
        g.wait_status(ids["G"], "terminated")
        g.ctl("label", ids["A"], "--clear", "-y")
        g.ctl("mark", ids["C"], "-y")
        g.ids = ids
        g.letter = {v: k for k, v in ids.items()}
        g.order = list("GFEDCBA")  # latest first
        yield g
    finally:
        g.stop()


@pytest.fixture(scope="module")
def m(tmp_path_factory):
    """A home for tests that change runs."""
    base = tmp_path_factory.mktemp("manage-write")
    g = _start(base / "guild-home", _make_project(base / "proj"))
    yield g
    g.stop()


def _new_run(g, x=0.2, *extra):
    g.ctl("run", "train.py", f"x={x}", *extra, "-y")
    return _latest_id(g)


def _letters(g, *args):
    """The runs `runs list ARGS` shows, as the letters of `g`'s runs, in its order."""
    return "".join(g.letter[r["id"]] for r in json.loads(g.ctl("runs", "list", "--json", *args).stdout))


# Listing


def test_runs_lists_latest_first_in_guilds_row_format(g):
    r = g.ctl("runs")
    rows = r.stdout.splitlines()
    assert [row.split("]")[0] for row in rows] == [f"[{i}:{g.ids[c][:8]}" for i, c in enumerate(g.order, 1)]
    fields = {c: _row(rows[i]) for i, c in enumerate(g.order)}
    assert fields["B"]["op"] == "train.py" and fields["B"]["status"] == "completed" and fields["B"]["label"] == "best"
    assert fields["C"]["op"] == "train.py [marked]"
    assert fields["B"]["started"].startswith(time.strftime("%Y-"))
    assert [fields[c]["status"] for c in g.order] == ["terminated", "staged", "completed", "error", "completed", "completed", "completed"]
    assert fields["A"]["label"] == "" and fields["D"]["label"] == "epochs=3 lr=0.01 x=-1"
    assert fields["E"]["label"] == "tagged delay=0 steps=3"
    assert g.ctl("runs", "list").stdout == r.stdout


def test_runs_json_has_guild_keys(g):
    runs = g.runs()
    assert [g.letter[r["id"]] for r in runs] == g.order
    for r in runs:
        assert {"id", "run_dir", "opref", "exit_status", "marked", "label", "started", "status", "stopped", "tags"} <= set(r)
        assert r["run_dir"] == str(g.home / "runs" / r["id"])
    by = {g.letter[r["id"]]: r for r in runs}
    assert by["B"]["label"] == "best" and by["B"]["status"] == "completed" and by["B"]["exit_status"] == 0
    assert by["D"]["exit_status"] == 2 and by["D"]["status"] == "error"
    assert by["C"]["marked"] is True and not by["B"]["marked"]
    assert by["E"]["tags"] == ["tagged"]
    assert by["B"]["opref"].startswith("script:") and by["B"]["opref"].endswith("train.py")
    assert isinstance(by["B"]["started"], int) and by["B"]["started"] <= by["B"]["stopped"]


# Run specs


@pytest.mark.parametrize(
    "spec, expected",
    [("1", "G"), ("3", "E"), ("7", "A"), (":2", "GF"), ("2:3", "FE"), ("5:", "CBA"), ("id:B", "B"), ("prefix:C", "C")],
)
def test_run_specs_select_by_index_id_prefix_and_range(g, spec, expected):
    if spec.startswith("id:"):
        spec = g.ids[spec[3:]]
    elif spec.startswith("prefix:"):
        spec = g.ids[spec[7:]][:6]
    assert _letters(g, spec) == expected


def test_run_specs_work_in_every_command_that_takes_run(g):
    b, c = g.ids["B"], g.ids["C"]
    assert g.info("6")["id"] == b
    assert g.info(b[:5])["id"] == b
    assert g.ctl("select", "5").stdout.strip() == c
    assert g.ctl("select", c[:7]).stdout.strip() == c
    assert g.ctl("ls", "-n", b[:6]).stdout.splitlines() == ["model.txt", "slow.py", "train.py"]
    assert g.ctl("cat", "6", "-p", "model.txt").stdout == "x=0.2\n"
    rows = list(csv.reader(io.StringIO(g.ctl("compare", "--csv", "-", "5:6").stdout)))
    assert [row[0] for row in rows[1:]] == [c[:8], b[:8]]
    rows = list(csv.reader(io.StringIO(g.ctl("compare", "--csv", "-", b[:6], ":1").stdout)))
    assert [row[0] for row in rows[1:]] == [b[:8], g.ids["G"][:8]]
    d = g.ctl("runs", "diff", "6", c[:6], "--flags").stdout
    assert f"--- {b[:8]}/flags" in d and f"+++ {c[:8]}/flags" in d


UNKNOWN_ARGV = [
    ("runs", "list"),
    ("runs", "info"),
    ("select",),
    ("ls",),
    ("cat", "--output"),
    ("compare", "--table"),
    ("label", "--set", "x", "-y"),
    ("mark", "-y"),
    ("unmark", "-y"),
    ("runs", "rm", "-y"),
    ("runs", "diff", "1"),  # RUN1 known, RUN2 not
]


@pytest.mark.parametrize("argv", UNKNOWN_ARGV, ids=lambda a: " ".join(a))
def test_unknown_run_is_one_line_and_exit_1(g, argv):
    changes = argv[0] in ("label", "mark", "unmark") or argv[:2] == ("runs", "rm")
    before = g.runs() if changes else None
    r = g.ctl(*argv, UNKNOWN_ID, check=False)
    assert r.returncode == 1, r
    assert r.stderr.strip().splitlines()[-1] == f"guildctl: could not find run '{UNKNOWN_ID}'"
    assert "Traceback" not in r.stderr
    if changes:
        assert g.runs() == before


def test_export_of_an_unknown_run_writes_nothing(g, tmp_path):
    dest = tmp_path / "archive"
    r = g.ctl("export", str(dest), UNKNOWN_ID, "-y", check=False)
    assert r.returncode == 1 and "could not find run" in r.stderr
    assert not dest.exists()


# Filters, in both of Guild's spellings


FILTERS = [
    (("-l", "best"), ("-Fl", "best"), ("--label", "best"), "B"),
    (("-U",), ("-Fu",), ("--unlabeled",), "A"),
    (("-M",), ("-Fm",), ("--marked",), "C"),
    (("-N",), ("-Fn",), ("--unmarked",), "GFEDBA"),
    (("-C",), ("-Sc",), ("--completed",), "ECBA"),
    (("-E",), ("-Se",), ("--error",), "D"),
    (("-T",), ("-St",), ("--terminated",), "G"),
    (("-G",), ("-Ss",), ("--staged",), "F"),
    (("-R",), ("-Sr",), ("--running",), ""),
    (("-o", "slow"), ("-Fo", "slow"), ("--operation", "slow"), "GE"),
    (("-o", "train", "-C"), ("-Fo", "train", "-Sc"), ("--operation", "train", "--completed"), "CBA"),
    (("-Ft", "tagged"), ("--tag", "tagged"), ("-Ft", "tagged", "-Ft", "nope"), "E"),
    (("--not-completed",), ("--not-completed", "--not-staged"), ("-Sc", "-Se"), None),
    (("-Sce",), ("-S", "ce"), ("-Sec", "-C"), "EDCBA"),  # Guild 0.9's status chars
    (("-S", "before 2000-1-1"), ("-Fs", "before 2000-1-1"), ("--started", "before 2000-1-1"), ""),
    (("-F", "loss < 0.3 and x > 0.1"), ("--filter", "loss < 0.3 and x > 0.1"), ("-F", "x > 0.1 and loss < 0.3"), "CB"),
]


@pytest.mark.parametrize("old, new, long, expected", FILTERS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_filters_in_both_spellings(g, old, new, long, expected):
    got = [_letters(g, *args) for args in (old, new, long)]
    if expected is None:  # the negations and a status union
        assert got == ["GFD", "GD", "EDCBA"]
    else:
        assert got == [expected] * 3


def test_digest_filter_takes_a_prefix(g):
    digests = {c: g.info(g.ids[c])["sourcecode_digest"] for c in "BE"}
    assert digests["B"] != digests["E"]  # the project changed between D and E
    for opt in ("-D", "-Fd", "--digest"):
        assert _letters(g, opt, digests["E"][:6]) == "GFE"
        assert _letters(g, opt, digests["B"][:8]) == "DCBA"


def test_started_filter_last_hour_includes_fresh_runs(g):
    for opt in ("-S", "-Fs"):
        assert set("GEDCBA") <= set(_letters(g, opt, "last hour"))
    assert _letters(g, "-S", "after 1 day ago", "-C") == "ECBA"


@pytest.mark.parametrize("text", ["lastt hour", "between 9:00 and"])
def test_malformed_time_range_says_where_and_exits_1(g, text):
    r = g.ctl("runs", "-S", text, check=False)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith(f"guildctl: invalid time range '{text}'")
    assert any(w.isdigit() for w in r.stderr.replace(")", " ").split())  # the position


def test_filters_narrow_other_commands_too(g):
    assert g.ctl("select", "-l", "best").stdout.strip() == g.ids["B"]
    assert g.ctl("select", "-Se").stdout.strip() == g.ids["D"]
    assert json.loads(g.ctl("runs", "info", "-Fm", "--json").stdout)["id"] == g.ids["C"]
    assert json.loads(g.ctl("runs", "info", "2", "-Sc", "--json").stdout)["id"] == g.ids["C"]
    assert g.ctl("ls", "-n", "-Fo", "train", "-Fl", "best").stdout.splitlines() == ["model.txt", "slow.py", "train.py"]
    lines = g.ctl("compare", "-t", "-Se").stdout.splitlines()
    assert [line.split()[0] for line in lines[1:]] == [g.ids["D"][:8]]


# runs info


def test_runs_info_json_has_guilds_keys_flags_and_scalars(g):
    info = g.info(g.ids["B"])
    assert set(info) == {
        "id", "operation", "user", "from", "status", "started", "stopped", "marked", "label", "sourcecode_digest",
        "vcs_commit", "run_dir", "command", "exit_status", "pid", "tags", "flags", "scalars",
    }
    assert info["user"] == pwd.getpwuid(os.getuid()).pw_name  # whose run it is: the daemon's one user
    assert info["operation"] == "train.py" and info["status"] == "completed" and info["label"] == "best"
    assert info["from"] == str(g.project)
    assert info["marked"] == "no" and g.info(g.ids["C"])["marked"] == "yes"
    assert info["exit_status"] == 0 and g.info(g.ids["D"])["exit_status"] == 2
    assert info["flags"] == {"epochs": 3, "lr": 0.01, "x": 0.2}
    assert info["scalars"]["loss"][0] == pytest.approx(_final_loss(0.2), abs=1e-5)
    assert info["scalars"]["loss"][1] == 2
    assert info["scalars"]["acc"] == [pytest.approx(0.7, abs=1e-5), 2]
    assert "train.py" in info["command"] and "--x 0.2" in info["command"]
    assert len(info["sourcecode_digest"]) == 32
    assert g.info(g.ids["E"])["tags"] == ["tagged"]


def test_runs_info_text(g):
    text = g.ctl("runs", "info", g.ids["B"][:8]).stdout
    lines = text.splitlines()
    assert lines[0] == f"id: {g.ids['B']}"
    assert lines[1:3] == ["operation: train.py", f"user: {pwd.getpwuid(os.getuid()).pw_name}"]
    assert "status: completed" in lines and "label: best" in lines
    i = lines.index("flags:")
    assert lines[i + 1 : i + 4] == ["  epochs: 3", "  lr: 0.01", "  x: 0.2"]
    assert lines[lines.index("scalars:") + 1 :] == ["  acc: 0.700000 (step 2)", f"  loss: {_final_loss(0.2):f} (step 2)"]


def test_runs_info_env_and_deps(g):
    run_id = g.ids["B"]
    info = json.loads(g.ctl("runs", "info", run_id, "--env", "--deps", "--json").stdout)
    assert info["environment"]["RUN_ID"] == run_id
    assert info["environment"]["RUN_DIR"] == info["run_dir"]
    assert info["dependencies"] == {}
    text = g.ctl("runs", "info", run_id, "--env").stdout.splitlines()
    assert "environment:" in text and f"  RUN_ID: {run_id}" in text
    assert "dependencies:" in g.ctl("runs", "info", run_id, "--deps").stdout.splitlines()
    assert "environment:" not in g.ctl("runs", "info", run_id).stdout


# ls and cat


def test_ls_lists_run_files(g):
    run_id = g.ids["B"]
    run_dir = g.home / "runs" / run_id
    assert g.ctl("ls", run_id).stdout.splitlines() == [f"{run_dir}:", "  model.txt", "  slow.py", "  train.py"]
    everything = g.ctl("ls", run_id, "-a").stdout.splitlines()
    assert "  .guild/" in everything and "  .guild/attrs/flags" in everything and "  .guild/output" in everything
    assert g.ctl("ls", run_id, "-n").stdout.splitlines() == ["model.txt", "slow.py", "train.py"]
    assert g.ctl("ls", run_id, "-p", "model").stdout.splitlines() == [f"{run_dir}:", "  model.txt"]
    assert g.ctl("ls", run_id, "-n", "-p", "*.py").stdout.splitlines() == ["slow.py", "train.py"]
    assert g.ctl("ls", run_id, "--full-path").stdout.splitlines() == [
        str(run_dir / "model.txt"), str(run_dir / "slow.py"), str(run_dir / "train.py")
    ]
    assert g.ctl("ls", run_id, "-n", "--sourcecode").stdout.splitlines() == ["slow.py", "train.py"]
    # The default is the latest run: G, a slow.py run after extra.py appeared.
    assert "  extra.py" in g.ctl("ls").stdout.splitlines()


def test_cat_shows_files_output_and_source(g):
    run_id = g.ids["C"]
    assert g.ctl("cat", run_id, "-p", "model.txt").stdout == "x=0.5\n"
    out = g.ctl("cat", run_id, "--output").stdout
    assert out.splitlines()[:2] == ["step: 0", f"loss: {(0.5 - 0.3) ** 2 + 0.1:f}"]
    assert out.splitlines()[-2:] == [f"loss: {_final_loss(0.5):f}", "acc: 0.700000"]
    assert g.ctl("cat", run_id, "-p", "train.py", "--sourcecode").stdout == TRAIN
    assert g.ctl("cat", "-p", "slow.py").stdout == SLOW  # the latest run


def test_cat_missing_file_is_an_error(g):
    r = g.ctl("cat", g.ids["C"], "-p", "nope.txt", check=False)
    assert r.returncode == 1
    assert r.stderr.strip().endswith("nope.txt does not exist")
    assert len(r.stderr.strip().splitlines()) == 1


# select, diff, check


def test_select_prints_the_run_id(g):
    assert g.ctl("select").stdout == g.ids["G"] + "\n"
    assert g.ctl("select", "4").stdout == g.ids["D"] + "\n"
    assert g.ctl("select", g.ids["B"], "--attr", "label").stdout == "best\n"
    assert g.ctl("select", g.ids["B"], "--attr", "status").stdout == "completed\n"
    assert g.ctl("select", g.ids["B"], "--path").stdout == str(g.home / "runs" / g.ids["B"]) + "\n"
    assert g.ctl("select", "--min", "loss", "-o", "train").stdout == g.ids["B"] + "\n"
    assert g.ctl("select", "--max", "loss", "-o", "train").stdout == g.ids["D"] + "\n"
    assert g.ctl("select", "--max", "loss", "-o", "train", "-Sc").stdout == g.ids["A"] + "\n"
    assert g.ctl("select", "-A", "-o", "train", "-Sc").stdout.split() == [g.ids[c] for c in "CBA"]
    assert g.ctl("select", "--all", "--min", "loss", "-Sc", "-o", "train").stdout.split() == [g.ids[c] for c in "BCA"]
    r = g.ctl("select", "-l", "no-such-label", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_runs_diff_shows_differing_flags(g):
    a, b = g.ids["A"], g.ids["B"]
    out = g.ctl("runs", "diff", a, b).stdout.splitlines()
    assert f"--- {a[:8]}/flags" in out and f"+++ {b[:8]}/flags" in out
    assert "-x: 0.05" in out and "+x: 0.2" in out
    assert " epochs: 3" in out  # same in both: context, not a change
    assert f"-loss: {_final_loss(0.05):f}" in out  # the output is diffed too


def test_runs_diff_defaults_to_the_latest_two(g):
    r = g.ctl("runs", "diff", "--flags")
    assert f"--- {g.ids['F'][:8]}/flags" in r.stdout and f"+++ {g.ids['G'][:8]}/flags" in r.stdout


def test_runs_diff_cmd_runs_the_command_on_the_run_dirs(g):
    a, b = g.ids["A"], g.ids["B"]
    r = g.ctl("runs", "diff", a, b, "--cmd", "diff -ru")
    run_a, run_b = g.home / "runs" / a, g.home / "runs" / b
    assert f"diff -ru {run_a}/model.txt {run_b}/model.txt" in r.stdout
    assert "-x=0.05" in r.stdout.splitlines() and "+x=0.2" in r.stdout.splitlines()


def test_check_space_lists_runs_and_trash(g):
    out = g.ctl("check", "--space").stdout.splitlines()
    runs = [line for line in out if line.strip().startswith("runs:")]
    trash = [line for line in out if line.strip().startswith("deleted_runs:")]
    assert runs and runs[0].split()[-1] == str(g.home / "runs")
    assert trash and trash[0].split()[-1] == str(g.home / "trash" / "runs")
    usage = json.loads(g.ctl("check", "--space", "--json").stdout)["disk_space"]
    assert usage["runs"]["bytes"] > 0


# compare


def _csv(g, *args):
    return list(csv.reader(io.StringIO(g.ctl("compare", "--csv", "-", *args).stdout)))


def test_compare_table_default_columns(g):
    lines = g.ctl("compare", "--table", "-o", "train").stdout.splitlines()
    assert lines[0].split() == ["run", "operation", "started", "time", "status", "label", "epochs", "lr", "x", "step", "acc", "loss"]
    assert [line.split()[0] for line in lines[1:]] == [g.ids[c][:8] for c in "FDCBA"]
    b = lines[1 + "FDCBA".index("B")].split()
    assert b[1] == "train.py" and b[5] == "completed" and b[6] == "best"
    assert b[-5:] == ["0.01", "0.2", "2", "0.700000", f"{_final_loss(0.2):f}"]
    c = lines[1 + "FDCBA".index("C")]
    assert "train.py [marked]" in c


def test_compare_without_a_terminal_prints_the_table(g):
    # stdout is a pipe here: no curses, the same table as --table.
    r = g.ctl("compare", "-o", "train")
    assert r.stdout == g.ctl("compare", "--table", "-o", "train").stdout
    assert "\x1b" not in r.stdout


def test_compare_csv_to_stdout(g):
    rows = _csv(g, "-o", "train")
    assert rows[0] == ["run", "operation", "started", "time", "status", "label", "epochs", "lr", "x", "step", "acc", "loss"]
    by = {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
    b = by[g.ids["B"][:8]]
    assert b["label"] == "best" and b["x"] == "0.2" and b["step"] == "2"
    assert float(b["loss"]) == pytest.approx(_final_loss(0.2), abs=1e-5)
    f = by[g.ids["F"][:8]]  # staged: no scalars, no time
    assert f["status"] == "staged" and f["loss"] == "" and f["step"] == "" and f["time"] == ""
    # Columns for flags of other operations are empty cells, not missing ones.
    rows = _csv(g)
    assert all(len(row) == len(rows[0]) for row in rows)
    e = dict(zip(rows[0], next(r for r in rows if r[0] == g.ids["E"][:8])))
    assert e["x"] == "" and e["steps"] == "3"


def test_compare_csv_to_a_file(g, tmp_path):
    path = tmp_path / "runs.csv"
    r = g.ctl("compare", "--csv", str(path), "-o", "train")
    assert r.stdout == ""
    assert f"Wrote 5 row(s) to {path}" in r.stderr
    rows = list(csv.reader(path.open()))
    assert len(rows) == 6 and rows[0][0] == "run"


def test_compare_min_max_and_top(g):
    assert [row[0] for row in _csv(g, "-o", "train", "--min", "loss")[1:]] == [g.ids[c][:8] for c in "BCADF"]
    assert [row[0] for row in _csv(g, "-o", "train", "--max", "loss")[1:]] == [g.ids[c][:8] for c in "DACBF"]
    assert [row[0] for row in _csv(g, "-o", "train", "--min", "loss", "--top", "2")[1:]] == [g.ids[c][:8] for c in "BC"]
    lines = g.ctl("compare", "-t", "-Sc", "-o", "train", "--max", "loss", "--top", "1").stdout.splitlines()
    assert len(lines) == 2 and lines[1].split()[0] == g.ids["A"][:8]


def test_compare_column_specs(g):
    rows = _csv(g, "-o", "train", "-Sc", "-c", "min loss as best, .label as L")
    assert rows[0][-2:] == ["best", "L"]
    by = {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
    assert float(by[g.ids["B"][:8]]["best"]) == pytest.approx(_final_loss(0.2), abs=1e-5)
    assert by[g.ids["B"][:8]]["L"] == "best"
    lines = g.ctl("compare", "-t", "-o", "train", "-Sc", "-c", "min loss as best").stdout.splitlines()
    assert lines[0].split()[-2:] == ["loss", "best"]
    strict = _csv(g, "-o", "train", "-Sc", "-cc", ".label,loss")
    assert strict[0] == ["run", "label", "loss"]
    assert [row[:2] for row in strict[1:]] == [[g.ids["C"][:8], "epochs=3 lr=0.01 x=0.5"], [g.ids["B"][:8], "best"], [g.ids["A"][:8], ""]]
    assert [float(row[2]) for row in strict[1:]] == [pytest.approx(_final_loss(x), abs=1e-5) for x in (0.5, 0.2, 0.05)]


def test_compare_skip_core_and_skip_op(g):
    core = _csv(g, "-o", "train", "--skip-core")[0]
    assert core == ["run", "epochs", "lr", "x", "step", "acc", "loss"]
    no_op = g.ctl("compare", "-t", "-o", "train", "--skip-op").stdout.splitlines()[0].split()
    assert no_op == ["run", "started", "time", "status", "label", "epochs", "lr", "x", "step", "acc", "loss"]


def test_compare_include_batch_is_accepted(g):
    assert _csv(g, "--include-batch") == _csv(g)


# Changing runs (home `m`)


def test_label_defaults_to_the_latest_run(m):
    run_id = _new_run(m)
    r = m.ctl("label", "--set", "hello world", "-y")
    assert r.stdout.strip() == "Labeled 1 run(s)"
    assert m.info()["id"] == run_id and m.info()["label"] == "hello world"
    assert yaml.safe_load((m.home / "runs" / run_id / ".guild" / "attrs" / "label").read_text()) == "hello world"


def test_label_tag_append_remove_clear(m):
    run_id = _new_run(m)
    other = _new_run(m)

    def label():
        return m.info(run_id)["label"]

    m.ctl("label", run_id, "--set", "base", "-y")
    assert m.ctl("label", run_id, "--tag", "t1", "-y").stdout.strip() == "Labeled 1 run(s)"
    assert label() == "t1 base"
    m.ctl("label", run_id, "--append", "a1", "-y")
    assert label() == "t1 base a1"
    m.ctl("label", run_id, "--remove", "t1", "-y")
    assert label() == "base a1"
    m.ctl("label", run_id, "--untag", "a1", "-y")
    assert label() == "base"
    r = m.ctl("label", run_id, "--clear", "-y")
    assert "1 run(s)" in r.stdout
    assert label() == ""
    assert not (m.home / "runs" / run_id / ".guild" / "attrs" / "label").exists()
    assert m.info(other)["label"] == "epochs=3 lr=0.01 x=0.2"  # untouched
    assert m.ctl("label", run_id, other, "--set", "both", "-y").stdout.strip() == "Labeled 2 run(s)"
    assert m.ctl("runs", "list", "-l", "both", "--json").stdout.count('"id"') == 2


def test_mark_unmark_and_clear(m):
    a, b = _new_run(m), _new_run(m)
    assert m.ctl("mark", a, "-y").stdout.strip() == "Marked 1 run(s)"
    assert (m.home / "runs" / a / ".guild" / "attrs" / "marked").exists()
    assert [r["id"] for r in json.loads(m.ctl("runs", "-M", "--json").stdout)] == [a]
    assert m.ctl("mark", "-y").stdout.strip() == "Marked 1 run(s)"  # the latest unmarked: b
    assert {r["id"] for r in json.loads(m.ctl("runs", "-Fm", "--json").stdout)} == {a, b}
    assert m.ctl("unmark", b, "-y").stdout.strip() == "Unmarked 1 run(s)"
    assert [r["id"] for r in json.loads(m.ctl("runs", "-M", "--json").stdout)] == [a]
    m.ctl("mark", b, "-y")
    assert m.ctl("mark", "--clear", "-y").stdout.strip() == "Unmarked 2 run(s)"
    assert json.loads(m.ctl("runs", "-M", "--json").stdout) == []
    assert not (m.home / "runs" / a / ".guild" / "attrs" / "marked").exists()


def test_rm_moves_to_trash_restore_brings_back_purge_deletes(m):
    run_id = _new_run(m)
    run_dir, trashed = m.home / "runs" / run_id, m.home / "trash" / "runs" / run_id
    assert m.ctl("runs", "rm", run_id, "-y").stdout.strip() == "Deleted 1 run(s)"
    assert not run_dir.exists() and (trashed / ".guild" / "attrs" / "flags").exists()
    assert run_id not in m.ctl("runs", "-a").stdout
    assert f"{run_id[:8]}]" in m.ctl("runs", "--deleted").stdout
    assert run_id[:8] in m.ctl("runs", "list", "-d").stdout
    assert m.ctl("runs", "restore", run_id, "-y").stdout.strip() == "Restored 1 run(s)"
    assert run_dir.exists() and not trashed.exists()
    assert m.info(run_id)["flags"]["x"] == 0.2
    assert run_id not in m.ctl("runs", "--deleted").stdout
    assert m.ctl("runs", "delete", run_id, "-y").stdout.strip() == "Deleted 1 run(s)"
    assert trashed.exists()
    assert m.ctl("runs", "purge", run_id, "-y").stdout.strip() == "Permanently deleted 1 run(s)"
    assert not trashed.exists() and not run_dir.exists()
    assert run_id not in m.ctl("runs", "--deleted").stdout + m.ctl("runs", "-a").stdout


def test_rm_permanent_skips_the_trash(m):
    run_id = _new_run(m)
    assert m.ctl("runs", "rm", "-p", run_id, "-y").stdout.strip() == "Permanently deleted 1 run(s)"
    assert not (m.home / "runs" / run_id).exists() and not (m.home / "trash" / "runs" / run_id).exists()
    assert run_id not in m.ctl("runs", "--deleted").stdout + m.ctl("runs", "-a").stdout
    r = m.ctl("runs", "info", run_id, check=False)
    assert r.returncode == 1


def test_deleting_a_running_run_is_refused(m):
    run_id = _bg_id(m.ctl("run", "slow.py", "steps=1000", "--background", "-y").stdout)
    try:
        m.wait_status(run_id, "running")
        for opt in ("-R", "-Sr", "--running"):
            assert [r["id"] for r in json.loads(m.ctl("runs", opt, "--json").stdout)] == [run_id]
        r = m.ctl("runs", "rm", "1", "-y", check=False)
        assert r.returncode == 1
        assert "running" in r.stderr and run_id[:8] in r.stderr and "Traceback" not in r.stderr
        r = m.ctl("runs", "rm", "-p", run_id, "-y", check=False)
        assert r.returncode == 1
        assert (m.home / "runs" / run_id).exists()
        out = (m.home / "runs" / run_id / ".guild" / "output").stat().st_size
        wait_for(lambda: (m.home / "runs" / run_id / ".guild" / "output").stat().st_size > out, what="more output")
        assert m.info(run_id)["status"] == "running"
    finally:
        m.ctl("stop", run_id, check=False)
    assert m.wait_status(run_id, "terminated")
    assert m.ctl("runs", "rm", run_id, "-y").stdout.strip() == "Deleted 1 run(s)"


def test_export_copies_and_import_brings_back_with_ids(m, tmp_path):
    a, b = _new_run(m, 0.3), _new_run(m, 0.4)
    dest = tmp_path / "archive"
    r = m.ctl("export", str(dest), a, b, "-y")
    assert r.stdout.splitlines()[-1] == "Exported 2 run(s)"
    assert (dest / ".guild-nocopy").exists()
    assert {p.name for p in dest.iterdir()} == {".guild-nocopy", a, b}
    assert (m.home / "runs" / a).exists()  # copied, not moved
    listed = [r["id"] for r in json.loads(m.ctl("runs", "--archive", str(dest), "--json").stdout)]
    assert listed == [b, a]
    rows = m.ctl("runs", "-A", str(dest)).stdout.splitlines()
    assert rows[0].startswith(f"[1:{b[:8]}]") and "x=0.4" in rows[0]

    # Both exist already: each skipped, by name, and the import fails.
    r = m.ctl("import", str(dest), "-y", check=False)
    assert r.returncode == 1
    assert f"{a} exists" in r.stderr and f"{b} exists" in r.stderr

    m.ctl("runs", "rm", "-p", a, "-y")
    r = m.ctl("import", str(dest), "-y", check=False)
    assert r.returncode == 1  # b was skipped
    assert f"{b} exists" in r.stderr and f"{a} exists" not in r.stderr
    assert "Imported 1 run(s)" in r.stdout
    info = m.info(a)
    assert info["id"] == a and info["flags"]["x"] == 0.3 and info["status"] == "completed"
    assert info["run_dir"] == str(m.home / "runs" / a)
    assert (dest / a).exists()  # copied, the archive keeps it


def test_export_move_and_import(m, tmp_path):
    run_id = _new_run(m, 0.6)
    dest = tmp_path / "moved"
    r = m.ctl("export", str(dest), run_id, "--move", "-y")
    assert r.stdout.splitlines()[-1] == "Exported 1 run(s)"
    assert not (m.home / "runs" / run_id).exists()
    assert run_id not in m.ctl("runs", "-a").stdout
    assert m.ctl("runs", "info", run_id, check=False).returncode == 1
    assert [r["id"] for r in json.loads(m.ctl("runs", "--archive", str(dest), "--json").stdout)] == [run_id]
    r = m.ctl("import", str(dest), "-y")
    assert r.stdout.splitlines()[-1] == "Imported 1 run(s)"
    assert m.info(run_id)["flags"]["x"] == 0.6
    assert (m.home / "runs" / run_id).exists()


def test_import_bad_archives(m, tmp_path):
    before = m.runs()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no runs here\n")
    r = m.ctl("import", str(empty), "-y", check=False)
    assert r.returncode == 1 and "no runs" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    missing = tmp_path / "missing"
    r = m.ctl("import", str(missing), "-y", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == f"guildctl: archive '{missing}' does not exist"
    assert m.runs() == before


def test_export_to_an_unwritable_place_fails_cleanly(m, tmp_path):
    run_id = _new_run(m)
    afile = tmp_path / "a-file"
    afile.write_text("not a directory\n")
    # A dir that can't be made there is refused (4); a file named as the dir is a mistake (1).
    for dest, code in ((afile / "sub", 4), (afile, 1)):
        r = m.ctl("export", str(dest), run_id, "-y", check=False)
        assert r.returncode == code, r
        assert str(dest) in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert afile.read_text() == "not a directory\n"
    assert sorted(os.listdir(tmp_path)) == ["a-file"]
    assert (m.home / "runs" / run_id).exists()


# Many runs: paging


def _clone_run(src, runs_dir, run_id, started_us):
    dest = runs_dir / run_id
    shutil.copytree(src, dest, symlinks=True)
    attrs = dest / ".guild" / "attrs"
    (attrs / "id").write_text(run_id + "\n")
    (attrs / "initialized").write_text(f"{started_us - 1000}\n")
    (attrs / "started").write_text(f"{started_us}\n")
    (attrs / "stopped").write_text(f"{started_us + 500_000}\n")
    (attrs / "label").write_text(f"clone {run_id[:4]}\n")
    return dest


def test_runs_pages_20_at_a_time(guild):
    src = FIXTURE_HOME / "runs" / "c32ffc6c32964350abae5bb2aa7593a1"
    runs_dir = guild.home / "runs"
    runs_dir.mkdir(exist_ok=True)
    now = int(time.time() * 1e6)
    ids = [f"{i:04x}" + "a" * 28 for i in range(45)]  # ids[0] is the oldest
    for i, run_id in enumerate(ids):
        _clone_run(src, runs_dir, run_id, now - (45 - i) * 60_000_000)
    latest = ids[::-1]
    r = guild.ctl("runs")
    rows = r.stdout.splitlines()
    assert len(rows) == 20
    assert rows[0].startswith(f"[1:{latest[0][:8]}]") and rows[19].startswith(f"[20:{latest[19][:8]}]")
    assert "Showing 20 of 45 runs" in r.stderr
    assert len(guild.ctl("runs", "-m").stdout.splitlines()) == 40
    assert len(guild.ctl("runs", "-mm").stdout.splitlines()) == 45
    r = guild.ctl("runs", "-a")
    assert len(r.stdout.splitlines()) == 45 and r.stderr.count("Showing") == 0
    assert r.stdout.splitlines()[44].startswith(f"[45:{ids[0][:8]}]")
    assert [_row(row) for row in guild.ctl("runs", "-n", "3").stdout.splitlines()] == [_row(row) for row in rows[:3]]
    assert len(guild.ctl("runs", "list", "--limit", "5").stdout.splitlines()) == 5
    assert len(guild.runs()) == 45  # --json: every run, for scripts
    assert len(json.loads(guild.ctl("runs", "--json", "-n", "2").stdout)) == 2
    assert [line.split()[0] for line in guild.ctl("runs", "list", "21:23").stdout.splitlines()] == [
        f"[{i}:{latest[19 + i][:8]}]" for i in (1, 2, 3)
    ]
