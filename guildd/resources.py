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
"""

import dataclasses
import logging

import psutil

from guild_common import errors, rundir
from guildd import runstate

log = logging.getLogger("guildd.resources")

SIMULATED_ENV = "GUILD_SIMULATED_GPUS"
UNKNOWN = -1  # utilization NVML can't tell (MIG instances, some boards)

# nvidia-smi topo -m's words for how two GPUs connect, closest first: NV<n> (n NVLinks), PIX
# (one PCIe switch), PXB (several PCIe switches), PHB (a PCIe host bridge), NODE (host bridges
# of one NUMA node), SYS (across NUMA nodes).
LINK_KINDS = ("PIX", "PXB", "PHB", "NODE", "SYS")


@dataclasses.dataclass(frozen=True)
class GpuProcess:
    """A process with memory on a GPU."""

    pid: int
    user: str  # '' when unknown (gone, or in another pid namespace)
    used_memory: int  # bytes; 0 when the driver doesn't say
    run_id: str = ""  # the run of ours it belongs to; '' for a foreign process

    @property
    def foreign(self):
        return not self.run_id


@dataclasses.dataclass(frozen=True)
class Gpu:
    index: int  # PCI bus order, as CUDA_VISIBLE_DEVICES counts with CUDA_DEVICE_ORDER=PCI_BUS_ID
    uuid: str
    name: str
    memory_total: int  # bytes
    memory_used: int
    memory_free: int
    utilization: int  # percent busy over the driver's last sample; UNKNOWN when not reported
    processes: tuple = ()  # GpuProcess, by pid
    pci_bus_id: str = ""

    @property
    def foreign_processes(self):
        return tuple(p for p in self.processes if p.foreign)


@dataclasses.dataclass(frozen=True)
class Link:
    """How GPUs `a` < `b` connect: one of LINK_KINDS or NV<n>."""

    a: int
    b: int
    kind: str


@dataclasses.dataclass(frozen=True)
class GpuReading:
    """What a backend read: GPUs (processes not yet matched to runs) and their links."""

    gpus: tuple = ()
    links: tuple = ()
    reason: str = ""  # why there are no GPUs


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

    def link(self, a, b):
        """The kind of link between GPUs `a` and `b`; '' when unknown."""
        a, b = min(a, b), max(a, b)
        return next((link.kind for link in self.links if (link.a, link.b) == (a, b)), "")


# The part the daemon holds


class Resources:
    def __init__(self, backend, host=None):
        self.backend = backend
        self._host = host or host_info
        self._last_reason = None

    @property
    def name(self):
        return self.backend.name

    def snapshot(self, run_pids=None):
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

    def close(self):
        close = getattr(self.backend, "close", None)
        if close:
            close()


def for_env(environ):
    """The Resources the daemon's environment asks for. Raises InvalidArgument for a bad
    GUILD_SIMULATED_GPUS, so a daemon started with one says so and exits."""
    from guildd import nvml, simulated  # they build on this module's values

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


async def poll(daemon):
    """The daemon's snapshot with its runs' processes marked; blocking parts off the loop."""
    pids = await daemon.io(run_pids, daemon.store, daemon.run_dir)
    return await daemon.work(daemon.resources.snapshot, pids)


def run_pids(store, run_dir):
    """pid -> run id for our running runs: each run's shim and process. Reads the index, so
    it runs on the daemon's I/O thread."""
    recs, _ = store.list((runstate.RUNNING,))
    out = {}
    for rec in recs:
        for pid in (rec.shim_pid, rec.pid, rundir.read_lock_pid(run_dir(rec.id))):
            if pid:
                out[pid] = rec.id
    return out


def host_info():
    """(usable CPUs, total RAM, available RAM)."""
    try:
        cpus = len(psutil.Process().cpu_affinity())
    except (AttributeError, psutil.Error, OSError):
        cpus = psutil.cpu_count() or 1
    mem = psutil.virtual_memory()
    return cpus, mem.total, mem.available


def _mark_runs(gpu, run_pids):
    if not run_pids or not gpu.processes:
        return gpu
    return dataclasses.replace(
        gpu, processes=tuple(dataclasses.replace(p, run_id=_run_of(p.pid, run_pids)) for p in gpu.processes)
    )


def _run_of(pid, run_pids):
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


def user_of(pid):
    """The user a process runs as; '' when unknown."""
    try:
        return psutil.Process(pid).username()
    except (psutil.Error, KeyError, OSError):  # gone, another namespace, or a uid without a name
        return ""


def _describe(e):
    text = str(e).strip()
    return text if isinstance(e, errors.GuildError) or text else type(e).__name__


class NoGpuBackend:
    """A box without GPUs (or without the library to see them): CPU-only runs."""

    name = "none"

    def __init__(self, reason):
        self.reason = reason

    def read(self):
        return GpuReading(reason=self.reason)
