"""Starting a guildd in the background and waiting until it answers: guildctl's autostart and
`guildd` without --foreground. How to tell that it answers is the caller's (guildctl connects
to the socket it checked; guildd looks for the socket)."""

import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

from guild_common import errors, home as homelib, ownership


class DaemonExited(errors.DaemonUnavailable):
    """The started guildd exited before it answered; `reason` is its last word."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"guildd exited: {reason}")
        self.reason = reason


class StartedDaemon:
    """A guildd started in the background. Its stderr goes to an unnamed temporary file, never
    a pipe: a pipe no one reads blocks the daemon once full, and breaks once the starter
    exits; a file keeps the last words of a daemon that exits, for the user who started it."""

    def __init__(self, home: pathlib.Path, options: Sequence[str] = ()) -> None:
        self.home = home
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "guildd.main", "--foreground", "--no-log-stderr", "-H", str(home), *options],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=True,
        )
        self._noted = False  # its silent exit is noted in guildd.log once

    def exit_reason(self, wait: float = 0.0) -> str | None:
        """Why the daemon exited, as its last line to stderr says; None while it runs (after
        waiting up to `wait` seconds for it to exit)."""
        try:
            status = self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            return None
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        if lines:
            return lines[-1].removeprefix("guildd: ")
        reason = silent_exit_text(status)
        if status < 0 and not self._noted:
            self._noted = True
            _note_in_log(self.home, self.proc.pid, reason)
        return f"{reason} (see {homelib.log_path(self.home)})"


def silent_exit_text(status: int) -> str:
    """Why a daemon that said nothing exited, from its exit status: a signal (SIGKILL from
    the OOM killer or a user, a SIGTERM before it could log) is named, not shown as -9."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"killed by {name}"
    return f"exit status {status}"


def _note_in_log(home: pathlib.Path, pid: int, reason: str) -> None:
    """A daemon killed by a signal can't log its own end: the one who started it does, so
    guildd.log says why too. Opened as the daemon opens it (ownership.open_private: never
    through a link); a log that can't be opened is left alone (the reason is still shown)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    line = f"{stamp},000 ERROR [guildd] guildd (pid {pid}) exited: {reason} (noted by the process that started it)\n"
    try:
        fd = ownership.open_private(homelib.log_path(home), os.O_WRONLY | os.O_APPEND, os.getuid())
    except errors.GuildError:
        return
    try:
        os.write(fd, line.encode())
    except OSError:
        pass  # a full disk: the user still sees the reason
    finally:
        os.close(fd)


def start(
    home: pathlib.Path,
    answers: Callable[[], bool],
    timeout: float,
    options: Sequence[str] = (),
    lost_race_ok: bool = False,
) -> StartedDaemon | None:
    """Starts guildd for `home` (with `options`) and waits until `answers()`. Raises
    DaemonExited when it exits first, and DaemonUnavailable after `timeout` seconds. With
    `lost_race_ok`, a daemon that exits because another one holds the home is no error: the
    wait goes on for that one, and None is returned when it answers."""
    started: StartedDaemon | None = StartedDaemon(home, options)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers():
            return started
        reason = started.exit_reason() if started is not None else None
        if reason is not None:
            if not (lost_race_ok and "already running" in reason):
                raise DaemonExited(reason)
            started = None
        time.sleep(0.02)
    raise errors.DaemonUnavailable(f"guildd did not answer within {timeout:g}s (see {homelib.log_path(home)})")
