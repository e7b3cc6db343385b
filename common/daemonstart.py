"""Starting a guildd in the background and waiting until it answers: guildctl's autostart and
`guildd` without --foreground. How to tell that it answers is the caller's (guildctl connects
to the socket it checked; guildd looks for the socket)."""

import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

from guild_common import errors, home as homelib


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

    def exit_reason(self, wait: float = 0.0) -> str | None:
        """Why the daemon exited, as its last line to stderr says; None while it runs (after
        waiting up to `wait` seconds for it to exit)."""
        try:
            status = self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            return None
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1].removeprefix("guildd: ") if lines else f"exit status {status} (see {homelib.log_path(self.home)})"


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
