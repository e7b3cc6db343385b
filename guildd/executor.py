"""Starting runs' shims, noticing when they end, and stopping them.

A run's process belongs to its shim (guildd.shim), not to the daemon, so the run outlives the
daemon (ARCHITECTURE.md, contract 3). The daemon learns that a shim ended through a pidfd on
the event loop: no polling, and it works the same for a shim the daemon started and for one it
adopted after a restart.
"""

import asyncio
import dataclasses
import logging
import os
import signal
import subprocess
import sys

import psutil

from guildd import shim

log = logging.getLogger("guildd.executor")
SHIM = os.path.abspath(shim.__file__)


@dataclasses.dataclass(frozen=True)
class Shim:
    pid: int
    started: float  # process create time, to tell a live shim from a reused pid


class ShimServer:
    """guildd.shim's server, which forks a shim per run (see guildd.shim). Started on first
    use; started again if it died. Blocking: call it from one worker thread."""

    def __init__(self, log_path):
        self.log_path = log_path
        self._proc = None

    def spawn(self, launch):
        """Starts a run's shim and hands it its launch spec; returns the Shim. OSError when no
        shim could be started."""
        data = launch.to_bytes()
        for _attempt in range(2):  # a server that died is started again, once
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            try:
                self._proc.stdin.write(len(data).to_bytes(4, "big") + data)
                self._proc.stdin.flush()
                answer = self._proc.stdout.readline().decode().strip()
            except OSError:
                answer = ""
            if answer.startswith("!"):
                raise OSError(f"cannot start a shim: {answer[1:]}")
            if answer.isdigit():
                pid = int(answer)
                return Shim(pid, _create_time(pid))
            self.close()
        raise OSError("the shim server does not answer (see the daemon's log)")

    def _start(self):
        # O_NOFOLLOW: a link planted as guildd.log must not get the server's stderr (OSError).
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "ab") as err:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", SHIM, "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,  # neither a terminal's ^C nor a stop of the daemon's group reaches it
                close_fds=True,
            )

    def close(self):
        """Stops the server (end-of-file on its stdin); its shims go on."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _create_time(pid):
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def shim_alive(shim):
    """True when `shim` still runs (and its pid wasn't reused since)."""
    if not shim.pid:
        return False
    try:
        proc = psutil.Process(shim.pid)
        if shim.started and abs(proc.create_time() - shim.started) > 0.01:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def pid_alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Executor:
    """Watches shims on the event loop and calls `on_exit(run_id)` when one ends."""

    def __init__(self, on_exit, log_path):
        self._on_exit = on_exit
        self.shims = ShimServer(log_path)  # used from the daemon's I/O thread
        self._watched = {}  # run_id -> (pid, pidfd)

    @property
    def running(self):
        return len(self._watched)

    def watch(self, run_id, pid):
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # ended (and reaped) already
            self._on_exit(run_id)
            return
        self._watched[run_id] = (pid, pidfd)
        loop.add_reader(pidfd, self._pidfd_ready, run_id)

    def _pidfd_ready(self, run_id):
        _pid, pidfd = self._watched.pop(run_id)
        loop = asyncio.get_running_loop()
        loop.remove_reader(pidfd)
        os.close(pidfd)
        self._on_exit(run_id)

    def signal(self, run_id, sig=signal.SIGTERM):
        """Asks a run's shim to stop its process (it escalates to SIGKILL itself)."""
        entry = self._watched.get(run_id)
        if entry is None:
            return False
        try:
            os.kill(entry[0], sig)
        except ProcessLookupError:
            return False
        return True

    def close(self):
        """Stops watching (the daemon is shutting down); the shims and runs go on."""
        loop = asyncio.get_running_loop()
        for _pid, pidfd in self._watched.values():
            loop.remove_reader(pidfd)
            os.close(pidfd)
        self._watched.clear()
