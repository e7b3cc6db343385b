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
from typing import TYPE_CHECKING, Callable, Optional

import psutil

from guild_common.paths import StrPath
from guildd import shim

if TYPE_CHECKING:
    from guildd.runs import Launch

log = logging.getLogger("guildd.executor")
SHIM = os.path.abspath(shim.__file__)


@dataclasses.dataclass(frozen=True)
class Shim:
    pid: int
    started: float  # process create time, to tell a live shim from a reused pid


class ShimServer:
    """guildd.shim's server, which forks a shim per run (see guildd.shim). Started on first
    use; started again if it died. Blocking: call it from one worker thread."""

    def __init__(self, log_path: StrPath) -> None:
        self.log_path = log_path
        self._proc: Optional[subprocess.Popen[bytes]] = None

    def spawn(self, launch: "Launch") -> Shim:
        """Starts a run's shim and hands it its launch spec; returns the Shim. OSError when no
        shim could be started."""
        data = launch.to_bytes()
        for _attempt in range(2):  # a server that died is started again, once
            proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
            stdin, stdout = proc.stdin, proc.stdout
            assert stdin is not None and stdout is not None  # the server is started with both pipes
            try:
                stdin.write(len(data).to_bytes(4, "big") + data)
                stdin.flush()
                answer = stdout.readline().decode().strip()
            except OSError:
                answer = ""
            if answer.startswith("!"):
                raise OSError(f"cannot start a shim: {answer[1:]}")
            if answer.isdigit():
                pid = int(answer)
                return Shim(pid, _create_time(pid))
            self.close()
        raise OSError("the shim server does not answer (see the daemon's log)")

    def _start(self) -> "subprocess.Popen[bytes]":
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
        return self._proc

    def close(self) -> None:
        """Stops the server (end-of-file on its stdin); its shims go on."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        for pipe in filter(None, (proc.stdin, proc.stdout)):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _create_time(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def shim_alive(shim: Shim) -> bool:
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


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# Seconds a run's process may be created after its `started` stamp (the stamp is written just
# before its shim is forked): a process with the LOCK's pid created later is another one, its
# pid reused (pids start low again after a reboot).
ADOPT_SLACK = 60.0


def may_be_runs_process(created: float, boot: float, started_us: int, in_run_dir: bool) -> bool:
    """Whether a live process, created at `created` (seconds) on a machine booted at `boot`,
    can be the process of a run stamped `started_us`: the run started in this boot, and the
    process was created no later than ADOPT_SLACK after that (or runs in the run's own dir,
    which a reused pid's process wouldn't, for a run stamped before a step of the clock).
    A run with no start stamp is judged by its process being alive alone, as before."""
    if not started_us:
        return True
    started = started_us / 1e6
    if started < boot:
        return False  # stamped before the machine booted: none of its processes is left
    return created <= started + ADOPT_SLACK or in_run_dir


def born_with_run(pid: int, started_us: int, run_dir: StrPath) -> bool:
    """may_be_runs_process for the live process `pid` (False once it is gone)."""
    try:
        proc = psutil.Process(pid)
        created = proc.create_time()
        try:
            in_run_dir = os.path.realpath(proc.cwd()) == os.path.realpath(run_dir)
        except psutil.Error:
            in_run_dir = False
    except psutil.Error:
        return False
    return may_be_runs_process(created, psutil.boot_time(), started_us, in_run_dir)


class Executor:
    """Watches shims on the event loop and calls `on_exit(run_id)` when one ends."""

    def __init__(self, on_exit: Callable[[str], None], log_path: StrPath) -> None:
        self._on_exit = on_exit
        self.shims = ShimServer(log_path)  # used from the daemon's I/O thread
        self._watched: dict[str, tuple[int, int]] = {}  # run_id -> (pid, pidfd)

    @property
    def running(self) -> int:
        return len(self._watched)

    def watch(self, run_id: str, pid: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # ended (and reaped) already
            self._on_exit(run_id)
            return
        self._watched[run_id] = (pid, pidfd)
        loop.add_reader(pidfd, self._pidfd_ready, run_id)

    def _pidfd_ready(self, run_id: str) -> None:
        _pid, pidfd = self._watched.pop(run_id)
        loop = asyncio.get_running_loop()
        loop.remove_reader(pidfd)
        os.close(pidfd)
        self._on_exit(run_id)

    def signal(self, run_id: str, sig: int = signal.SIGTERM) -> bool:
        """Asks a run's shim to stop its process (it escalates to SIGKILL itself)."""
        entry = self._watched.get(run_id)
        if entry is None:
            return False
        try:
            os.kill(entry[0], sig)
        except ProcessLookupError:
            return False
        return True

    def close(self) -> None:
        """Stops watching (the daemon is shutting down); the shims and runs go on."""
        loop = asyncio.get_running_loop()
        for _pid, pidfd in self._watched.values():
            loop.remove_reader(pidfd)
            os.close(pidfd)
        self._watched.clear()
