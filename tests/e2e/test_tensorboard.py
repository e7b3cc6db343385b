"""`guildctl tensorboard` end to end: a real daemon's runs, a real TensorBoard, and what
TensorBoard's own HTTP data API says it shows (runs, scalars, HParams), as the selection
changes under it."""

import json
import os
import signal
import socket
import subprocess
import urllib.parse
import urllib.request

import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import run, serve_module, write

SCRIPT = """
    import os
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    x = 0.1
    opt = "adam"

    print("loss: %f" % (x * 10))
    os.makedirs("val", exist_ok=True)
    w = EventFileWriter("val")
    for step in range(3):
        value = summary_pb2.Summary.Value(tag="acc", simple_value=x + step)
        w.add_event(event_pb2.Event(step=step, summary=summary_pb2.Summary(value=[value])))
    w.close()
"""


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    yield from serve_module(tmp_path_factory, "tensorboard")


@pytest.fixture(scope="module")
def runs(g):
    """Two runs and a batch of two trials: {name: run id} (ids from `select`)."""
    write(g.project, {"tb.py": SCRIPT})
    run(g, g.project, "tb.py", "x=0.5")
    run(g, g.project, "tb.py", "x=0.2", "opt=sgd", "-l", "second")
    run(g, g.project, "tb.py", "x=[1,2]", "--keep-batch")
    ids = g.ctl("select", "--all").stdout.split()
    batch = g.ctl("select", "-Fo", "+").stdout.strip()
    return {"trials": ids[:2], "batch": batch, "second": ids[3], "first": ids[4]}


def named_line(lines, run_id):
    """The name --test shows for `run_id` (its first line starting with the short id)."""
    return next(line.strip().split(": ")[0] for line in lines if line.strip().startswith(run_id[:8] + " "))


def ctl_lines(g, *args, check=True):
    r = g.ctl("tensorboard", *args, check=check, timeout=90)
    return r, r.stdout.splitlines()


def test_test_lists_the_runs_tensorboard_shows_without_batches(g, runs):
    r, lines = ctl_lines(g, "--test")
    assert lines[0].startswith("Running TensorBoard ") and " at http://localhost:" in lines[0]
    assert " - Got 4 Guild run(s)" in lines
    shown = [line.strip() for line in lines if line.startswith("   ")]
    for run_id in [runs["first"], runs["second"], *runs["trials"]]:
        assert any(s.startswith(run_id[:8] + " tb.py ") for s in shown)
    assert not any(s.startswith(runs["batch"][:8]) for s in shown)
    assert f"   {named_line(lines, runs['second'])}: loss, time, val/acc" in lines, lines
    assert " - Got 4 HParams session(s)" in lines
    assert any(s.strip().startswith(runs["second"][:8]) and s.endswith("second: opt=sgd, x=0.2") for s in lines)

    _r, lines = ctl_lines(g, "--test", "--include-batch", "-Fo", "+")
    assert " - Got 1 Guild run(s)" in lines
    assert named_line(lines, runs["batch"]).startswith(runs["batch"][:8] + " tb.py+ ")


def test_errors_are_one_line(g, runs):
    r, _ = ctl_lines(g, "--test", "-l", "no-such-label", check=False)
    assert r.returncode != 0 and r.stderr.strip() == "guildctl: no matching runs"
    with socket.socket() as s:
        s.bind(("localhost", 0))
        s.listen()
        port = s.getsockname()[1]
        r, _ = ctl_lines(g, "--test", "--port", str(port), check=False)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == f"guildctl: TensorBoard could not bind to port {port}, it was already in use"


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


class Board:
    """TensorBoard's data API at `url`."""

    def __init__(self, url):
        self.url = url

    def get(self, path, body=None, **query):
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, headers={"X-XSRF-Protected": "1", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def runs(self):
        try:
            return self.get("/data/runs")
        except OSError:
            return None

    def top_runs(self):
        return sorted(r for r in (self.runs() or []) if "/" not in r)

    def session_groups(self):
        body = {"experimentName": "", "startIndex": 0, "sliceSize": 100, "colParams": [],
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]}
        return self.get("/data/plugin/hparams/session_groups", body)["sessionGroups"]


def named(board, run_id):
    """The run TensorBoard shows for `run_id`, once it shows one."""
    return next((r for r in board.top_runs() if r.startswith(run_id[:8] + " ")), None)


def test_live_tensorboard_shows_scalars_and_hparams_and_follows_the_runs(g, runs, tmp_path):
    port = free_port()
    env = {**g.env, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(["guildctl", "tensorboard", "-n", "--port", str(port), "--refresh-interval", "0.5"],
                            cwd=g.project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        board = Board(f"http://localhost:{port}")
        wait_for(lambda: len(board.top_runs()) == 4, timeout=30, interval=0.2, what="TensorBoard to list 4 runs")
        second = named(board, runs["second"])
        assert second.endswith(" second")

        # scalars: the output's at the run's root, with its time; the script's in its subdir
        tags = wait_for(lambda: (t := board.get("/data/plugin/scalars/tags")).get(second, {}).keys() >= {"loss", "time"} and t,
                        timeout=20, what="the run's scalars")
        assert set(tags[second + "/val"]) == {"acc"}
        [[_wall, step, loss]] = board.get("/data/plugin/scalars/scalars", run=second, tag="loss")
        assert (step, loss) == (0, pytest.approx(2.0))
        acc = board.get("/data/plugin/scalars/scalars", run=second + "/val", tag="acc")
        assert [(s, round(v, 3)) for _w, s, v in acc] == [(0, 0.2), (1, 1.2), (2, 2.2)]

        # hparams: flags as hyperparameters, scalars and time as metrics, one session a run
        groups = board.session_groups()
        sessions = {s["name"]: (grp["hparams"], s) for grp in groups for s in grp["sessions"]}
        assert set(sessions) == set(board.top_runs())
        hparams, session = sessions[second]
        assert hparams == {"x": 0.2, "opt": "sgd"}
        assert session["status"] == "STATUS_SUCCESS"
        metrics = {(m["name"]["group"], m["name"]["tag"]): m["value"] for m in session["metricValues"]}
        assert metrics[("", "loss")] == pytest.approx(2.0)
        assert metrics[("val", "acc")] == pytest.approx(2.2)
        assert metrics[("", "time")] > 0
        experiment = board.get("/data/plugin/hparams/experiment", {"experimentName": ""})
        assert {h["name"] for h in experiment["hparamInfos"]} == {"x", "opt"}

        # the selection changes: relabelled, deleted and new runs follow
        g.ctl("label", runs["second"], "-s", "renamed", "-y")
        g.ctl("runs", "rm", runs["first"], "-y")
        run(g, g.project, "tb.py", "x=3")
        new = g.ctl("select").stdout.strip()
        wait_for(lambda: named(board, new) and named(board, runs["first"]) is None
                 and (named(board, runs["second"]) or "").endswith(" renamed"),
                 timeout=30, interval=0.2, what="TensorBoard to follow the runs")
        assert len(board.top_runs()) == 4
        assert second not in board.top_runs()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"at http://localhost:{port}/ (4 run(s); Ctrl-C to stop)" in out
    assert os.listdir(tmp_path) == []  # the mirror goes with the command
