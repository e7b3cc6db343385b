"""guild_common.daemonstart: the start-and-wait loop guildctl and guildd share."""

import fcntl
import os

import pytest

from guild_common import daemonstart, errors

StartedDaemon = daemonstart.StartedDaemon


def test_a_daemon_that_exits_before_it_answers_says_why(tmp_path):
    with pytest.raises(daemonstart.DaemonExited) as e:
        daemonstart.start(tmp_path, lambda: False, 60, options=["--no-such-option"])
    assert e.value.reason.startswith("Error: No such option") and "--no-such-option" in e.value.reason
    assert str(e.value) == f"guildd exited: {e.value.reason}"
    assert isinstance(e.value, errors.DaemonUnavailable)


def test_a_lost_race_waits_for_the_winner(tmp_path, monkeypatch):
    fd = os.open(tmp_path / "guildd.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held as the daemon that won holds it
    started = []
    monkeypatch.setattr(daemonstart, "StartedDaemon", lambda *a: started.append(StartedDaemon(*a)) or started[-1])
    seen_exit = False

    def answers():  # the winner answers once ours has exited
        nonlocal seen_exit
        if seen_exit:
            return True
        seen_exit = bool(started) and started[0].proc.poll() is not None
        return False

    try:
        assert daemonstart.start(tmp_path, answers, 60, lost_race_ok=True) is None
        assert "already running" in started[0].exit_reason()
    finally:
        os.close(fd)


def test_only_already_running_is_a_lost_race(tmp_path):
    (tmp_path / "runs").write_text("")  # the daemon can't make its runs dir
    with pytest.raises(daemonstart.DaemonExited):
        daemonstart.start(tmp_path, lambda: False, 60, lost_race_ok=True)


def test_answering_returns_the_started_daemon(tmp_path):
    started = daemonstart.start(tmp_path, lambda: True, 60, options=["--no-such-option"])
    assert started is not None and started.exit_reason(wait=30).startswith("Error: No such option")


def test_no_answer_in_time(tmp_path):
    with pytest.raises(errors.DaemonUnavailable, match=r"^guildd did not answer within 0s \(see .*guildd.log\)$"):
        daemonstart.start(tmp_path, lambda: False, 0, options=["--no-such-option"])


@pytest.mark.parametrize(
    "status, text",
    [(-9, "killed by SIGKILL"), (-15, "killed by SIGTERM"), (-200, "killed by signal 200"), (0, "exit status 0"), (3, "exit status 3")],
)
def test_a_silent_exit_is_named_by_its_signal(status, text):
    assert daemonstart.silent_exit_text(status) == text


def test_a_daemon_killed_outright_is_noted_in_its_log(tmp_path):
    started = StartedDaemon(tmp_path)
    started.proc.kill()  # before it says a word (still loading Python)
    started.proc.wait()
    reason = f"killed by SIGKILL (see {tmp_path / 'guildd.log'})"
    assert started.exit_reason() == reason and started.exit_reason() == reason
    noted = f"guildd (pid {started.proc.pid}) exited: killed by SIGKILL (noted by the process that started it)"
    assert (tmp_path / "guildd.log").read_text().count(noted) == 1  # noted once, however often asked
