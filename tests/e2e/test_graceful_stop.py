"""A graceful stop (SIGTERM, as systemd sends, or `guildctl daemon stop`) leaves batches,
pipelines and runs being started exactly as resumable as a crash does: the next daemon goes on
with them (test_batches.py and test_guildfiles.py show the same after kill -9)."""

import contextlib
import http.server
import signal
import subprocess
import textwrap
import threading

import pytest

from tests.conftest import wait_for

QUAD = """\
import time
x = 0
sleep = 0.0
time.sleep(sleep)
print("loss: %f" % ((x + 0.3) ** 2))
"""

PIPE = """\
slow:
  main: slow
  flags-import: all
pipe:
  steps:
    - slow steps=10 delay=0.1
    - slow steps=10 delay=0.1
    - slow steps=1 delay=0
"""

HOW = ["SIGTERM", "daemon stop"]


def stop_gracefully(guild, how):
    """Stops the daemon as systemd or a user would, and checks that it exited cleanly."""
    if how == "SIGTERM":
        guild.kill_daemon(signal.SIGTERM)
    else:
        stop = guild.popen("daemon", "stop", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        guild.daemon.wait(timeout=30)  # reaped here, so `daemon stop` sees it gone
        out, err = stop.communicate(timeout=30)
        assert stop.returncode == 0 and out.startswith("guildd stopped"), err
    assert guild.daemon.returncode == 0


def started_id(result):
    return result.stdout.split(" as ")[1].split()[0]


def runs_of(guild, op):
    return [r for r in guild.runs() if r["operation"] == op]


def linked(run_dir, names):
    return [(run_dir / name).resolve().name for name in names]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("parallel", [1, 2])
def test_a_grid_batch_stopped_gracefully_runs_all_its_trials_after_a_start(guild, parallel, how):
    (guild.project / "quad.py").write_text(QUAD)
    r = guild.ctl("run", "quad.py", "x=[1,2,3,4,5,6]", "sleep=1", "--parallel", str(parallel), "--keep-batch", "--background", "-y")
    batch_id = started_id(r)
    # Mid-way: a trial has ended and one after it has started.
    made = wait_for(lambda: (n := len(runs_of(guild, "quad.py"))) > parallel and n, what="a trial after the first ones")
    assert made < 6
    stop_gracefully(guild, how)
    guild.start_daemon()
    batch = guild.wait_status(batch_id, "completed", "error", "terminated", timeout=90)
    assert (batch["status"], batch["exit_status"]) == ("completed", 0)
    trials = runs_of(guild, "quad.py")
    assert [t["status"] for t in trials] == ["completed"] * 6
    assert sorted(guild.info(t["id"])["flags"]["x"] for t in trials) == [1, 2, 3, 4, 5, 6]
    batch_dir = guild.home / "runs" / batch_id
    assert sorted(linked(batch_dir, [f"trial-{n}" for n in range(1, 7)])) == sorted(t["id"] for t in trials)
    assert (batch_dir / ".guild" / "output").read_text().count("Running trial ") == 6


@pytest.mark.parametrize("how", HOW)
def test_a_pipeline_stopped_gracefully_runs_all_its_steps_after_a_start(guild, how):
    (guild.project / "guild.yml").write_text(PIPE)
    run_id = started_id(guild.ctl("run", "pipe", "--background", "-y"))
    pdir = guild.home / "runs" / run_id
    wait_for(lambda: "step: 3" in (pdir / ".guild" / "output").read_text(), what="the first step running")
    stop_gracefully(guild, how)
    guild.start_daemon()
    info = guild.wait_status(run_id, "completed", "error", "terminated", timeout=90)
    assert (info["status"], info["exit_status"]) == ("completed", 0)
    steps = runs_of(guild, "slow")
    assert [s["status"] for s in steps] == ["completed"] * 3
    assert (pdir / ".guild" / "output").read_text().count("running slow") == 3
    assert sorted(linked(pdir, ["slow", "slow_2", "slow_3"])) == sorted(s["id"] for s in steps)


class GatedServer:
    """An HTTP server whose answers wait until `open()`: a run resolving a URL dependency from
    it is being started until then."""

    def __init__(self):
        self.asked = threading.Event()
        self._gate = threading.Event()
        asked, gate = self.asked, self._gate

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                asked.set()
                gate.wait(60)
                body = b"payload\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def open(self):
        self._gate.set()

    def close(self):
        self.open()
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def gated():
    server = GatedServer()
    with contextlib.closing(server):
        yield server


def stop_while_starting(guild, gated):
    """SIGTERM while a run's start waits on its dependency; the dependency comes once the
    daemon no longer serves (it is shutting down), and the daemon then exits."""
    assert gated.asked.wait(30), "the run's dependency was never asked for"
    guild.daemon.send_signal(signal.SIGTERM)
    wait_for(lambda: not guild.daemon_answers(), what="guildd to stop serving")
    gated.open()
    guild.daemon.wait(timeout=60)
    assert guild.daemon.returncode == 0


def write_get_op(guild, gated):
    (guild.project / "guild.yml").write_text(textwrap.dedent(f"""\
        get:
          exec: cat blob.txt
          sourcecode: no
          flags:
            x: 1
          requires:
            - url: {gated.url}/blob.txt
    """))


def test_a_trial_being_started_at_a_graceful_stop_is_started_and_linked(guild, gated):
    write_get_op(guild, gated)
    batch_id = started_id(guild.ctl("run", "get", "x=[1,2]", "--keep-batch", "--background", "-y"))
    stop_while_starting(guild, gated)
    guild.start_daemon()
    batch = guild.wait_status(batch_id, "completed", "error", "terminated", timeout=60)
    assert (batch["status"], batch["exit_status"]) == ("completed", 0)
    trials = runs_of(guild, "get")
    assert [t["status"] for t in trials] == ["completed"] * 2  # none left half-started, none run twice
    assert sorted(linked(guild.home / "runs" / batch_id, ["trial-1", "trial-2"])) == sorted(t["id"] for t in trials)


def test_a_queued_run_being_started_at_a_graceful_stop_is_started(guild, gated):
    write_get_op(guild, gated)
    guild.ctl("queue", "start")
    run_id = started_id(guild.ctl("run", "get", "--stage", "-y"))
    stop_while_starting(guild, gated)
    guild.start_daemon()
    info = guild.wait_status(run_id, "completed", "error", "terminated", timeout=60)
    assert (info["status"], info["exit_status"]) == ("completed", 0)
    assert (guild.home / "runs" / run_id / "blob.txt").read_text() == "payload\n"
