"""The NVML backend of guildd.resources: the real GPUs through nvidia-ml-py's `pynvml` (or a
fake of it in tests). Indices follow PCI bus order; values some boards don't report
(utilization, graphics processes, topology) are left unknown rather than failing the read.
"""

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from guild_common import errors
from guildd.gpus import UNKNOWN, Gpu, GpuProcess, GpuReading, Link, user_of

T = TypeVar("T")

log = logging.getLogger("guildd.resources")


class NvmlBackend:
    """The real GPUs, through `nvml` (the pynvml module, or a fake of it in tests)."""

    name = "nvml"

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        self._initialized = False
        # the topology doesn't change while the box runs: read it once
        self._links: tuple[Link, ...] | None = None

    def read(self) -> GpuReading:
        nv = self.nvml
        if not self._initialized:
            try:
                nv.nvmlInit()  # raises when there is no driver; tried again on the next poll
            except nv.NVMLError as e:  # an expected state of a box (no driver): its name says all
                raise errors.ResourcesUnavailable(str(e) or type(e).__name__) from None
            self._initialized = True
        count = nv.nvmlDeviceGetCount()
        if count == 0:
            return GpuReading(reason="NVML found no GPUs")
        devices = []
        for i in range(count):
            handle = nv.nvmlDeviceGetHandleByIndex(i)
            devices.append((self._optional(lambda: _text(nv.nvmlDeviceGetPciInfo(handle).busId).upper(), ""), i, handle))
        if all(bus for bus, _, _ in devices):
            devices.sort(key=lambda d: d[0])  # NVML enumerates so already; CUDA's order is this one
        handles = [handle for _, _, handle in devices]
        gpus = tuple(self._gpu(index, handle, bus) for index, (bus, _, handle) in enumerate(devices))
        if self._links is None:
            self._links = self._topology(handles, [bus for bus, _, _ in devices])
        return GpuReading(gpus=gpus, links=self._links)

    def close(self) -> None:
        if self._initialized:
            self._initialized = False
            try:
                self.nvml.nvmlShutdown()
            except Exception:  # shutting down: nothing to do about it
                log.debug("nvmlShutdown failed", exc_info=True)

    def _optional(self, fn: Callable[[], T], default: T) -> T:
        """A value some boards don't report (NOT_SUPPORTED and the like): `default` then."""
        try:
            return fn()
        except self.nvml.NVMLError:
            return default

    def _gpu(self, index: int, handle: Any, bus: str) -> Gpu:
        nv = self.nvml
        mem = nv.nvmlDeviceGetMemoryInfo(handle)
        util = self._optional(lambda: nv.nvmlDeviceGetUtilizationRates(handle).gpu, UNKNOWN)
        procs: dict[int, GpuProcess] = {}
        lists = [nv.nvmlDeviceGetComputeRunningProcesses(handle)]
        lists.append(self._optional(lambda: nv.nvmlDeviceGetGraphicsRunningProcesses(handle), []))
        for info in (p for procs_ in lists for p in procs_):
            used = info.usedGpuMemory or 0  # None where the driver can't tell
            if info.pid in procs:  # in both lists: one process
                used = max(used, procs[info.pid].used_memory)
            procs[info.pid] = GpuProcess(pid=info.pid, user=user_of(info.pid), used_memory=used)
        return Gpu(
            index=index,
            uuid=_text(nv.nvmlDeviceGetUUID(handle)),
            name=_text(nv.nvmlDeviceGetName(handle)),
            memory_total=int(mem.total),
            memory_used=int(mem.used),
            memory_free=int(mem.free),
            utilization=int(util) if util is not None else UNKNOWN,
            processes=tuple(procs[pid] for pid in sorted(procs)),
            pci_bus_id=bus,
        )

    def _topology(self, handles: Sequence[Any], buses: Sequence[str]) -> tuple[Link, ...]:
        """Links between GPU pairs: NVLink where there is one (direct, or both GPUs on
        NVSwitches), else the closest common PCIe ancestor. Empty when NVML can't tell."""
        try:
            nvlinks = [self._nvlinks(h, buses) for h in handles]
            out = []
            for a in range(len(handles)):
                for b in range(a + 1, len(handles)):
                    direct = nvlinks[a][0].get(buses[b], 0) if buses[b] else 0
                    if direct:
                        kind = f"NV{direct}"
                    elif nvlinks[a][1] and nvlinks[b][1]:
                        kind = f"NV{min(nvlinks[a][1], nvlinks[b][1])}"
                    else:
                        level = self.nvml.nvmlDeviceGetTopologyCommonAncestor(handles[a], handles[b])
                        kind = _ANCESTOR_KINDS.get(int(level), "SYS")
                    out.append(Link(a, b, kind))
            return tuple(out)
        except Exception as e:  # optional: placement just can't prefer close GPUs
            log.info("GPU topology unavailable: %s", str(e) or type(e).__name__)
            return ()

    def _nvlinks(self, handle: Any, buses: Sequence[str]) -> tuple[dict[str, int], int]:
        """({GPU bus id: active links to it}, active links to non-GPUs, i.e. NVSwitches)."""
        nv = self.nvml
        if getattr(nv, "nvmlDeviceGetNvLinkState", None) is None:  # an old pynvml
            return {}, 0
        to_gpus: dict[str, int] = {}
        to_switches = 0
        for link in range(getattr(nv, "NVML_NVLINK_MAX_LINKS", 18)):
            try:
                if not nv.nvmlDeviceGetNvLinkState(handle, link):
                    continue
                remote = _text(nv.nvmlDeviceGetNvLinkRemotePciInfo(handle, link).busId).upper()
            except nv.NVMLError:
                continue  # no such link, or NVLink not supported
            if remote in buses:
                to_gpus[remote] = to_gpus.get(remote, 0) + 1
            else:
                to_switches += 1
        return to_gpus, to_switches


# NVML_TOPOLOGY_* levels (INTERNAL, SINGLE, MULTIPLE, HOSTBRIDGE, NODE, SYSTEM: fixed by
# NVML's C API) in nvidia-smi's words.
_ANCESTOR_KINDS = {0: "PIX", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
