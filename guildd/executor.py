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


def spawn_shim(launch, log_path):
    """Starts the shim for a run in a new session and hands it its launch spec. Blocking:
    call it on a worker thread. Returns the Popen (the daemon reaps it) and the Shim."""
    with open(log_path, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", SHIM],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )
    proc.stdin.write(launch.to_bytes())
    proc.stdin.close()
    return proc, Shim(proc.pid, _create_time(proc.pid))


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

    def __init__(self, on_exit):
        self._on_exit = on_exit
        self._watched = {}  # run_id -> (pid, popen or None, pidfd)

    @property
    def running(self):
        return len(self._watched)

    def watch(self, run_id, pid, popen=None):
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._ended(run_id, popen)
            return
        self._watched[run_id] = (pid, popen, pidfd)
        loop.add_reader(pidfd, self._pidfd_ready, run_id)

    def _pidfd_ready(self, run_id):
        pid, popen, pidfd = self._watched.pop(run_id)
        loop = asyncio.get_running_loop()
        loop.remove_reader(pidfd)
        os.close(pidfd)
        self._ended(run_id, popen)

    def _ended(self, run_id, popen):
        if popen is not None:
            popen.wait()  # reap our child; it has exited, so this doesn't block
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
        for _pid, _popen, pidfd in self._watched.values():
            loop.remove_reader(pidfd)
            os.close(pidfd)
        self._watched.clear()
