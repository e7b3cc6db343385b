"""`run --needed`, `--batch-label` and `--batch-tag` against the real daemon, as Guild 0.9
behaves (observed with Guild itself): a run, batch or restart that an existing run makes
needless runs nothing, says which runs match, and exits 0."""

import re

import pytest

from tests.e2e.conftest import run, serve_module, write

ECHO = """
x = 1.0
y = 2
z = "a"
print(x, y, z)
"""

SKIP = "Skipping because the following runs match this operation (--needed specified):"
UNCHANGED = "Skipping run because flags have not changed (--needed specified)"


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    yield from serve_module(tmp_path_factory, "run-options")


@pytest.fixture
def echo(proj):
    """A project of its own (runs of another project are another operation)."""
    write(proj, {"echo.py": ECHO, "fail.py": "x = 1\nraise SystemExit(3)\n"})
    return proj


def _ids(g, proj, op="echo.py"):
    """The ids of this project's runs of `op`, latest first."""
    return [r["id"] for r in g.runs() if r["operation"] == op and f"{proj} " in r["opref"]]


def _match_line(out, run_id, op, status, label):
    pattern = rf"^  \[{run_id[:8]}\]  {re.escape(op)}  \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d  {status} *  {re.escape(label)}$"
    return re.search(pattern, out, re.M)


def test_needed_skips_a_run_with_the_same_flags_and_says_which(g, echo):
    first = run(g, echo, "echo.py")
    assert first.stdout == "1.0 2 a\n"
    [done] = _ids(g, echo)
    r = run(g, echo, "echo.py", "--needed")
    assert r.returncode == 0
    assert r.stdout.splitlines()[0] == SKIP
    assert _match_line(r.stdout, done, "echo.py", "completed", "x=1.0 y=2 z=a"), r.stdout
    assert _ids(g, echo) == [done]
    # Other flag values: it runs, once.
    assert run(g, echo, "echo.py", "x=2", "--needed").stdout == "2 2 a\n"
    assert SKIP in run(g, echo, "echo.py", "x=2", "--needed").stdout
    assert len(_ids(g, echo)) == 2


def test_failed_runs_dont_count_staged_runs_do(g, echo):
    assert run(g, echo, "fail.py", check=False).returncode == 3
    again = run(g, echo, "fail.py", "--needed", check=False)
    assert again.returncode == 3 and SKIP not in again.stdout
    assert len(_ids(g, echo, "fail.py")) == 2
    run(g, echo, "echo.py", "x=3", "--stage")
    [staged] = _ids(g, echo)
    r = run(g, echo, "echo.py", "x=3", "--needed")
    assert _match_line(r.stdout, staged, "echo.py", "staged", "x=3 y=2 z=a"), r.stdout
    # Starting the staged run itself: its flags are those it was staged with.
    assert run(g, echo, "--start", staged, "--needed").stdout.strip() == UNCHANGED
    assert g.info(staged)["status"] == "staged"


def test_restart_needed_compares_the_flags_it_would_run_with(g, echo):
    run(g, echo, "echo.py")
    run(g, echo, "echo.py", "x=2")
    two, one = _ids(g, echo)
    assert run(g, echo, "--restart", one, "--needed").stdout.strip() == UNCHANGED
    # New values another run has: that run is listed, and nothing runs.
    r = run(g, echo, "--restart", one, "x=2", "--needed")
    assert r.stdout.splitlines()[0] == SKIP and _match_line(r.stdout, two, "echo.py", "completed", "x=2 y=2 z=a")
    assert g.info(one)["flags"]["x"] == 1.0
    # New values no run has: it runs again, with them.
    assert run(g, echo, "--restart", one, "x=7", "--needed").stdout == "7 2 a\n"
    assert g.info(one)["flags"]["x"] == 7


def test_a_kept_batch_with_the_same_flags_is_needless_a_trashed_one_is_not(g, echo):
    run(g, echo, "echo.py", "x=[5,6]", "--keep-batch")
    r = run(g, echo, "echo.py", "x=[5,6]", "--keep-batch", "--needed")
    assert r.stdout.splitlines()[0] == SKIP
    [batch] = _ids(g, echo, "echo.py+")
    assert _match_line(r.stdout, batch, "echo.py+", "completed", "x=[5, 6] y=2 z=a"), r.stdout
    assert len(_ids(g, echo)) == 2  # no trial ran again
    # A grid batch goes to the trash when it completes (Guild's too): its trials run again.
    run(g, echo, "echo.py", "x=[8,9]")
    again = run(g, echo, "echo.py", "x=[8,9]", "--needed")
    assert again.stdout.count("2 a") == 2 and SKIP not in again.stdout


def test_batch_label_and_tag_name_the_batch_run_and_trials_keep_theirs(g, echo):
    run(g, echo, "echo.py", "x=[1,2]", "-l", "trial-${x}", "--batch-label", "sweep ${y}", "--batch-tag", "nightly", "--keep-batch")
    labels = {r["label"] for r in g.runs() if f"{echo} " in r["opref"]}
    assert labels == {"trial-1", "trial-2", "nightly sweep 2"}


def test_needed_with_proto_is_refused(g, echo):
    run(g, echo, "echo.py")
    r = run(g, echo, "--proto", _ids(g, echo)[0], "--needed", check=False)
    assert r.returncode != 0 and r.stderr.strip().endswith("--needed can't be used with --proto") and "Traceback" not in r.stderr


def test_help_shows_the_options(g):
    out = g.ctl("run", "--help").stdout
    for option in ("--needed", "--batch-label LABEL", "--batch-tag TAG"):
        assert option in out
