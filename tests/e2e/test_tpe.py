"""`-o tpe` (Optuna's TPE) end to end, and a search asked ahead surviving a kill -9 of guildd."""

import signal

from tests.conftest import wait_for
from tests.e2e.conftest import Guild

QUAD = """\
import time
x = 0.0
sleep = 0.0
time.sleep(sleep)
print("loss: %f" % ((x + 0.3) ** 2))
"""


def _trials(g, op="quad.py"):
    return [r for r in g.runs() if r["operation"] == op]


def test_tpe_search_completes_and_a_restart_learns(guild):
    (guild.project / "quad.py").write_text(QUAD)
    r = guild.ctl("run", "quad.py", "x=[-2.0:2.0]", "-o", "tpe", "-Fo", "n-startup-trials=2", "--max-trials", "4",
                  "--random-seed", "3", "-y")
    assert r.stdout.count("loss:") == 4
    assert "INFO: [guild] optimizer tpe: constant-liar=yes multivariate=yes n-ei-candidates=24 n-startup-trials=2" in r.stderr
    assert r.stderr.count("Random start for optimization") == 2
    assert r.stderr.count("Running trial ") == 4
    batch_id = guild.ctl("select", "-Fo", "quad.py+optuna:tpe").stdout.strip()
    assert guild.info(batch_id)["status"] == "completed"  # an optimizer's batch is kept
    trials = _trials(guild)
    assert len(trials) == 4 and all(t["status"] == "completed" for t in trials)
    assert all(-2.0 <= guild.info(t["id"])["flags"]["x"] <= 2.0 for t in trials)
    # A restart tells TPE the 4 earlier trials: with no start-up trials left it models at once.
    r = guild.ctl("run", "--restart", batch_id, "--max-trials", "2", "-y")
    assert "Found 4 previous trial(s) for use in optimization" in r.stderr
    assert "Random start" not in r.stderr and r.stderr.count("Running trial ") == 2
    assert len(_trials(guild)) == 6


def test_tpe_from_a_guild_file(guild):
    (guild.project / "quad.py").write_text(QUAD)
    (guild.project / "guild.yml").write_text(
        "search:\n  main: quad\n  flags-import: all\n  optimizer:\n    algorithm: tpe\n    n-startup-trials: 1\n"
    )
    r = guild.ctl("run", "search", "x=[-2.0:2.0]", "--optimize", "--max-trials", "2", input="\n")
    assert "with 'optuna:tpe' optimizer (max 2 trials, minimize loss)" in r.stdout
    assert "  n-startup-trials: 1" in r.stdout
    assert r.stderr.count("Random start for optimization") == 1
    assert r.stderr.count("Running trial ") == 2


def test_bad_tpe_input_is_one_line_and_makes_nothing(guild):
    (guild.project / "quad.py").write_text(QUAD)
    for args, message in (
        (("-o", "tpee"), "unknown optimizer 'tpee' (optimizers: gp, forest, gbrt, tpe, random)"),
        (("-o", "tpe", "-Fo", "gamma=0.1"), "unknown flag 'gamma' for optimizer tpe (flags: constant-liar, multivariate, n-ei-candidates, n-startup-trials)"),
        (("-o", "tpe", "-Fo", "n-startup-trials=many"), "invalid value many for optimizer flag n-startup-trials: expected an integer 0 or more"),
        (("-o", "tpe", "-Fo", "multivariate=2"), "invalid value 2 for optimizer flag multivariate: expected true or false"),
    ):
        r = guild.ctl("run", "quad.py", "x=[-2.0:2.0]", *args, "-y", check=False)
        assert r.returncode != 0 and r.stderr.strip().splitlines()[-1].endswith(message), (args, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert guild.run_dirs() == []


def test_a_search_asked_ahead_resumes_after_kill_9(tmp_path, project):
    # While a trial runs, the next point is asked ahead and held in memory only: a daemon
    # killed then leaves no extra trial, and the next daemon asks again and finishes the search.
    (project / "quad.py").write_text(QUAD)
    g = Guild(tmp_path / "home", project)
    g.start_daemon()
    try:
        r = g.ctl("run", "quad.py", "x=[-2.0:2.0]", "sleep=1", "-o", "tpe", "-Fo", "n-startup-trials=1",
                  "--max-trials", "4", "--background", "-y")
        batch_id = r.stdout.split(" as ")[1].split()[0]
        wait_for(lambda: len(_trials(g)) >= 2, what="a second trial")
        g.kill_daemon(signal.SIGKILL)
        g.start_daemon()
        g.wait_status(batch_id, "completed", timeout=60)
        trials = _trials(g)
        assert len(trials) == 4 and all(t["status"] == "completed" for t in trials)
        out = (g.home / "runs" / batch_id / ".guild" / "output").read_text()
        assert out.count("completed: loss=") == 4
    finally:
        g.stop()
