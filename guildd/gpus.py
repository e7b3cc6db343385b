"""What a GPU backend reads (guildd.resources reads one; guildd.nvml and guildd.simulated are
the backends): GPUs, the processes on them and how GPUs are linked."""

import dataclasses
from typing import Protocol

import psutil

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
    def foreign(self) -> bool:
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
    def foreign_processes(self) -> tuple:
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


class Backend(Protocol):
    """What guildd.resources reads GPUs from (guildd.nvml's and guildd.simulated's backends)."""

    name: str

    def read(self) -> GpuReading:
        """The GPUs now; raises when the backend fails (resources logs it and reports none)."""
        ...


def user_of(pid: int) -> str:
    """The user a process runs as; '' when unknown."""
    try:
        return psutil.Process(pid).username()
    except (psutil.Error, KeyError, OSError):  # gone, another namespace, or a uid without a name
        return ""
