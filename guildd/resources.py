"""What the box has and what is free (ARCHITECTURE.md, contract 5): GPUs with their memory,
utilization and the processes on them (ours and foreign ones), how GPUs are linked, CPUs and
memory.

A `Resources` reads one of three backends, picked from the daemon's environment by `for_env`:
- NVML (nvidia-ml-py's `pynvml`, guildd.nvml): the real GPUs;
- simulated (guildd.simulated: `GUILD_SIMULATED_GPUS=4x80G`, or the path of a YAML file that
  is read again on every poll, so a test can make a foreign process appear or vanish by
  rewriting it);
- none: no NVML library, so no GPUs and CPU-only runs.

`Resources.snapshot()` blocks (NVML calls, file reads): call it off the event loop (`poll`
does). It never raises: a backend that fails reports zero GPUs and says why, and the failure
is logged once (again only when the reason changes).

GPU indices follow PCI bus order, the order CUDA uses with CUDA_DEVICE_ORDER=PCI_BUS_ID, so
the index `guildctl gpus` shows is the one a run's CUDA_VISIBLE_DEVICES names.

`never_fits` tells whether a request could ever fit the box's GPUs, so a run that never could is
refused when it is submitted instead of waiting forever.
"""

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable

import psutil

from guild_common import errors, rundir
from guildd import fsrights, nvml, runstate, scheduler, simulated
from guildd.gpus import SIMULATED_ENV, Backend, Gpu, GpuProcess, GpuReading
from guildd.store import Store

log = logging.getLogger("guildd.resources")


@dataclasses.dataclass(frozen=True)
class Snapshot:
    backend: str  # nvml, simulated or none
    gpus: tuple  # Gpu, by index
    links: tuple  # Link, by (a, b); empty when the backend can't tell
    reason: str  # why there are no GPUs; '' when there are
    cpu_count: int  # CPUs this daemon (and so its runs) may use
    memory_total: int  # bytes of RAM
    memory_available: int
    taken_us: int  # when, microseconds since the epoch

    def link(self, a: int, b: int) -> str:
        """The kind of link between GPUs `a` and `b`; '' when unknown."""
        a, b = min(a, b), max(a, b)
        return next((link.kind for link in self.links if (link.a, link.b) == (a, b)), "")


class Resources:
    def __init__(self, backend: Backend, host: Callable[[], tuple[int, int, int]] | None = None) -> None:
        self.backend = backend
        self._host = host or host_info
        self._last_reason: str | None = None

    @property
    def name(self) -> str:
        return self.backend.name

    def snapshot(self, run_pids: Mapping[int, str] | None = None) -> Snapshot:
        """The box now. `run_pids` maps the pids of our runs (their processes and shims) to
        run ids: a GPU process that is one of them, or descends from one, is that run's."""
        try:
            reading = self.backend.read()
        except Exception as e:  # a failing backend must never take the daemon down
            reading = GpuReading(reason=f"{self.backend.name}: {_describe(e)}")
            if reading.reason != self._last_reason:
                log.warning("no GPUs: %s", reading.reason, exc_info=not isinstance(e, errors.GuildError))
        else:
            if reading.reason and reading.reason != self._last_reason:
                log.info("no GPUs: %s", reading.reason)
            elif not reading.reason and self._last_reason:
                log.info("GPUs available again: %d", len(reading.gpus))
        self._last_reason = reading.reason
        gpus = tuple(_mark_runs(gpu, run_pids or {}) for gpu in reading.gpus)
        cpu_count, memory_total, memory_available = self._host()
        return Snapshot(
            backend=self.backend.name,
            gpus=gpus,
            links=reading.links,
            reason=reading.reason,
            cpu_count=cpu_count,
            memory_total=memory_total,
            memory_available=memory_available,
            taken_us=rundir.now_us(),
        )

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if close:
            close()


def for_env(environ: Mapping[str, str]) -> Resources:
    """The Resources the daemon's environment asks for. Raises InvalidArgument for a bad
    GUILD_SIMULATED_GPUS, so a daemon started with one says so and exits."""
    setting = environ.get(SIMULATED_ENV, "").strip()
    if setting:
        backend = simulated.backend_for(setting)
        log.info("GPUs: simulated (%s=%s)", SIMULATED_ENV, setting)
        return Resources(backend)
    try:
        import pynvml
    except ImportError:
        log.info("GPUs: none (nvidia-ml-py is not installed)")
        return Resources(NoGpuBackend("nvidia-ml-py (pynvml) is not installed"))
    return Resources(nvml.NvmlBackend(pynvml))


async def poll(runtime: Any, store: Any, run_dir: Callable[[str], Any], resources: Any) -> Any:
    """`resources`' snapshot with the runs' processes marked; blocking parts off the loop
    (`runtime`: guildd.runtime.Runtime, `store`: the index)."""
    pids = await runtime.io(run_pids, store, run_dir)
    return await runtime.work(resources.snapshot, pids)


def run_pids(store: Store, run_dir: Callable[[str], Any]) -> dict[int, str]:
    """pid -> run id for our running runs: each run's shim and process. Reads the index, so
    it runs on the daemon's I/O thread. The pid in a run's LOCK (and the index's, read from
    it) is its owner's to write: it counts only when that process is hers
    (guildd.fsrights.adoptable), or she could have another user's GPU process, and so its
    GPU, counted as her run's."""
    recs, _ = store.list((runstate.RUNNING,))
    out = {}
    for rec in recs:
        path = run_dir(rec.id)
        written = {p for p in (rec.pid, rundir.read_lock_pid(path)) if p and fsrights.adoptable(p, path)}
        for pid in (rec.shim_pid, *written):
            if pid:
                out[pid] = rec.id
    return out


def host_info() -> tuple[int, int, int]:
    """(usable CPUs, total RAM, available RAM)."""
    try:
        cpus = len(psutil.Process().cpu_affinity())
    except (AttributeError, psutil.Error, OSError):
        cpus = psutil.cpu_count() or 1
    mem = psutil.virtual_memory()
    return cpus, mem.total, mem.available


def _mark_runs(gpu: Gpu, run_pids: Mapping[int, str]) -> Gpu:
    if not run_pids or not gpu.processes:
        return gpu
    return dataclasses.replace(
        gpu, processes=tuple(dataclasses.replace(p, run_id=_run_of(p.pid, run_pids)) for p in gpu.processes)
    )


def never_fits(request: scheduler.Request, gpus: Sequence[scheduler.GpuState]) -> str:
    """'' if `request` could fit on the GpuStates `gpus` when nothing else runs, else why not
    (one line, to refuse the run when it is submitted)."""
    count, devices, memory = request.gpus, request.devices, request.gpu_memory
    if count < 0:
        return f"--gpus {count}: must be 0 or more"
    if memory < 0:
        return f"--gpu-memory {scheduler.fmt_gib(memory)}: must be 0 or more"
    spec = ",".join(str(i) for i in devices)
    duplicate = next((i for n, i in enumerate(devices) if i in devices[:n]), None)
    if duplicate is not None:
        return f"--gpus {spec}: GPU {duplicate} is named twice"
    if not request.wants_gpus:
        return f"--gpu-memory {scheduler.fmt_gib(memory)}: needs --gpus" if memory else ""
    if not gpus:
        return "this box has no GPUs"
    totals = {g.index: g.memory_total for g in gpus}
    if devices:
        missing = next((i for i in devices if i not in totals), None)
        if missing is not None:
            return f"--gpus {spec}: there is no GPU {missing} (GPUs: {scheduler.fmt_indices(totals)})"
        small = next((i for i in devices if totals[i] < memory), None)
        if small is not None:
            return f"--gpu-memory {scheduler.fmt_gib(memory)}: GPU {small} has {scheduler.fmt_gib(totals[small])}"
        return ""
    if count > len(gpus):
        return f"--gpus {count}: this box has {scheduler.fmt_gpus(len(gpus))}"
    largest = max(totals.values())
    if memory > largest:
        return f"--gpu-memory {scheduler.fmt_gib(memory)}: the largest GPU has {scheduler.fmt_gib(largest)}"
    big = sum(1 for total in totals.values() if total >= memory)
    if big < count:
        have = f"{big} GPU has" if big == 1 else f"{big} GPUs have"
        return f"--gpu-memory {scheduler.fmt_gib(memory)}: only {have} that much, --gpus {count} needs {count}"
    return ""


def _run_of(pid: int, run_pids: Mapping[int, str]) -> str:
    """The run `pid` belongs to: its own, or its nearest ancestor's (a run's process may
    start the one that uses the GPU)."""
    if pid in run_pids:
        return run_pids[pid]
    try:
        for parent in psutil.Process(pid).parents():
            if parent.pid in run_pids:
                return run_pids[parent.pid]
    except psutil.Error:
        pass
    return ""


def _describe(e: BaseException) -> str:
    text = str(e).strip()
    return text if isinstance(e, errors.GuildError) or text else type(e).__name__


class NoGpuBackend:
    """A box without GPUs (or without the library to see them): CPU-only runs."""

    name = "none"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def read(self) -> GpuReading:
        return GpuReading(reason=self.reason)


def gpu_states(snapshot: Snapshot, holdings: Iterable[scheduler.Holding] = ()) -> tuple[scheduler.GpuState, ...]:
    """The scheduler's view of the GPUs. A process of one of our runs on a GPU the run wasn't
    granted (a run with no GPU request sees them all) holds it like a foreign process: the
    scheduler must not hand that GPU to another run as if it were free."""
    granted = {(h.run_id, i) for h in holdings for i in h.devices}
    out = []
    for g in snapshot.gpus:
        others = [p for p in g.processes if p.foreign or (p.run_id, g.index) not in granted]
        out.append(scheduler.GpuState(
            index=g.index,
            memory_total=g.memory_total,
            memory_free=g.memory_free,
            foreign_memory=sum(p.used_memory for p in others),
            foreign=tuple(_holder(p) for p in others),
        ))
    return tuple(out)


def _holder(process: GpuProcess) -> str:
    if process.foreign:
        return f"pid {process.pid} ({process.user or 'unknown user'})"
    return f"run {process.run_id[:8]} (no GPU request)"
