"""The simulated backend of guildd.resources, for boxes without GPUs (and every test of
placement): GUILD_SIMULATED_GPUS is a spec (`4x80G`, `2x80G,2x24G`, `0`) or the path of a
YAML file of GPUs, foreign processes and links, read again on every poll."""

import os
import pathlib
import re
from collections.abc import Collection, Iterable
from typing import Any

import yaml

from guild_common import errors, sizes
from guildd.gpus import LINK_KINDS, SIMULATED_ENV, Gpu, GpuProcess, GpuReading, Link, user_of

MAX_GPUS = 1024
_NVLINK = re.compile(r"^NV\d+$")


def backend_for(setting: str, cwd: str | None = None) -> "SimulatedSpec | SimulatedFile":
    """The simulated backend for a GUILD_SIMULATED_GPUS value: a spec (`4x80G`,
    `2x80G,2x24G`, `0`) or the path of a YAML file (see SimulatedFile)."""
    if _looks_like_path(setting, cwd):
        return SimulatedFile(pathlib.Path(cwd or os.getcwd(), setting).absolute())
    return SimulatedSpec(setting)


def _looks_like_path(setting: str, cwd: str | None) -> bool:
    return "/" in setting or setting.endswith((".yml", ".yaml", ".json")) or pathlib.Path(cwd or os.getcwd(), setting).is_file()


def parse_spec(spec: str) -> tuple[int, ...]:
    """GPU memory sizes in index order for a spec: comma-separated `COUNTxSIZE` or `SIZE`
    groups (`4x80G`, `2x80G,2x24G`, `80G`); `0` or `none` for a box without GPUs."""
    text = spec.strip()
    if text.lower() in ("0", "none"):
        return ()
    out: list[int] = []
    for group in (g.strip() for g in text.split(",")):
        if not group:
            raise _bad_spec(spec, "an empty entry")
        count_text, sep, size_text = group.lower().rpartition("x")
        if not sep:
            count_text, size_text = "1", group
        if not count_text.strip().isdigit():
            raise _bad_spec(spec, f"{group!r} has no GPU count before 'x'")
        if not size_text.strip():
            raise _bad_spec(spec, f"{group!r} has no memory size after 'x'")
        if size_text.strip().isdigit():
            raise _bad_spec(spec, f"{group!r}: the memory size needs a unit (M, G or T)")
        count = int(count_text)
        try:
            size = sizes.parse_size(size_text)
        except errors.InvalidArgument:
            raise _bad_spec(spec, f"{size_text.strip()!r} is not a memory size") from None
        if count < 1 or size < 1:
            raise _bad_spec(spec, f"{group!r} needs at least one GPU with some memory")
        out += [size] * count
        if len(out) > MAX_GPUS:
            raise _bad_spec(spec, f"more than {MAX_GPUS} GPUs")
    return tuple(out)


def _bad_spec(spec: str, why: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(
        f"{SIMULATED_ENV}={spec!r}: {why} (expected COUNTxSIZE such as 4x80G, several of them "
        f"comma-separated, 0 for none, or the path of a YAML file)"
    )


def simulated_gpu(index: int, memory: int, name: str = "", uuid: str = "", used: int = 0, utilization: int = 0,
                  processes: Iterable[GpuProcess] = ()) -> Gpu:
    """A simulated GPU; its memory used is `used` plus its processes' memory."""
    used = used + sum(p.used_memory for p in processes)
    return Gpu(
        index=index,
        uuid=uuid or f"GPU-5e000000-0000-4000-8000-{index:012d}",
        name=name or f"Simulated GPU {sizes.format_size(memory)}",
        memory_total=memory,
        memory_used=min(used, memory),
        memory_free=max(memory - used, 0),
        utilization=utilization,
        processes=tuple(sorted(processes, key=lambda p: p.pid)),
        pci_bus_id=f"00000000:{index + 1:02X}:00.0",
    )


class SimulatedSpec:
    """Identical idle GPUs from a spec string, with no processes."""

    name = "simulated"

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.gpus = tuple(simulated_gpu(i, memory) for i, memory in enumerate(parse_spec(spec)))

    def read(self) -> GpuReading:
        return GpuReading(gpus=self.gpus, reason="" if self.gpus else "simulated: no GPUs")


class SimulatedFile:
    """GPUs, their foreign processes and links from a YAML file, read again on every poll.
    Rewrite it atomically (write another file, rename it over this one) so a poll never
    sees half a file. Its format:

        gpus: 4x80G                  # a spec, or a list in index order:
        # gpus:
        #   - {memory: 80G, name: NVIDIA A100-SXM4-80GB, uuid: GPU-..., utilization: 35, used: 1G}
        processes:                   # optional: processes holding GPU memory
          - {gpu: 2, pid: 4242, user: bob, memory: 10G}
        topology:                    # optional: links between GPUs, as nvidia-smi topo -m says
          - {gpus: [0, 1], link: NV12}
    """

    name = "simulated"

    def __init__(self, path: "str | os.PathLike[str]") -> None:
        self.path = pathlib.Path(path)
        self.read()  # a file that can't be read is a start-up error

    def read(self) -> GpuReading:
        try:
            text = self.path.read_text()
        except OSError as e:
            raise errors.InvalidArgument(f"{SIMULATED_ENV}: cannot read {self.path}: {e.strerror or e}") from None
        try:
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as e:
            raise self._bad(f"invalid YAML: {' '.join(str(e).split())}") from None
        return self._parse(data)

    def _bad(self, why: str) -> errors.InvalidArgument:
        return errors.InvalidArgument(f"{SIMULATED_ENV} file {self.path}: {why}")

    def _parse(self, data: Any) -> GpuReading:
        if not isinstance(data, dict) or "gpus" not in data:
            raise self._bad("expected a mapping with `gpus` (a spec such as 4x80G, or a list of GPUs)")
        unknown = set(data) - {"gpus", "processes", "topology"}
        if unknown:
            raise self._bad(f"unknown key {sorted(unknown)[0]!r} (expected gpus, processes, topology)")
        gpus = self._gpus(data["gpus"])
        procs = self._processes(data.get("processes") or [], len(gpus))
        built = []
        for i, gpu in enumerate(gpus):
            if gpu.get("used", 0) + sum(p.used_memory for p in procs.get(i, ())) > gpu["memory"]:
                raise self._bad(f"GPU {i} uses more memory than its {sizes.format_size(gpu['memory'])}")
            built.append(simulated_gpu(i, processes=procs.get(i, ()), **gpu))
        links = self._links(data.get("topology") or [], len(gpus))
        return GpuReading(gpus=tuple(built), links=links, reason="" if built else "simulated: no GPUs")

    def _gpus(self, value: Any) -> list[dict[str, Any]]:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            try:
                return [{"memory": m} for m in parse_spec(str(value))]
            except errors.InvalidArgument as e:
                raise self._bad(f"gpus: {e}") from None
        if not isinstance(value, list):
            raise self._bad("gpus: expected a spec such as 4x80G or a list of GPUs")
        if len(value) > MAX_GPUS:
            raise self._bad(f"gpus: more than {MAX_GPUS} GPUs")
        out = []
        for i, item in enumerate(value):
            where = f"gpus[{i}]"
            item = self._mapping(item, where, required=("memory",), allowed=("memory", "name", "uuid", "utilization", "used"))
            gpu: dict[str, Any] = {"memory": self._size(item["memory"], f"{where}.memory", positive=True)}
            for key in ("name", "uuid"):
                if key in item:
                    gpu[key] = str(item[key])
            if "used" in item:
                gpu["used"] = self._size(item["used"], f"{where}.used")
            if "utilization" in item:
                util = item["utilization"]
                if not isinstance(util, int) or isinstance(util, bool) or not 0 <= util <= 100:
                    raise self._bad(f"{where}.utilization: expected a percentage from 0 to 100, got {util!r}")
                gpu["utilization"] = util
            out.append(gpu)
        return out

    def _processes(self, value: Any, gpu_count: int) -> dict[int, list[GpuProcess]]:
        if not isinstance(value, list):
            raise self._bad("processes: expected a list")
        out: dict[int, list[GpuProcess]] = {}
        for i, item in enumerate(value):
            where = f"processes[{i}]"
            item = self._mapping(item, where, required=("gpu", "pid"), allowed=("gpu", "pid", "user", "memory"))
            gpu = self._gpu_index(item["gpu"], f"{where}.gpu", gpu_count)
            pid = item["pid"]
            if not isinstance(pid, int) or isinstance(pid, bool) or pid < 1:
                raise self._bad(f"{where}.pid: expected a process id, got {pid!r}")
            user = str(item["user"]) if item.get("user") is not None else user_of(pid)
            memory = self._size(item.get("memory", 0), f"{where}.memory")
            out.setdefault(gpu, []).append(GpuProcess(pid=pid, user=user, used_memory=memory))
        return out

    def _links(self, value: Any, gpu_count: int) -> tuple[Link, ...]:
        if not isinstance(value, list):
            raise self._bad("topology: expected a list of {gpus: [A, B], link: KIND}")
        out: dict[tuple[int, int], Link] = {}
        for i, item in enumerate(value):
            where = f"topology[{i}]"
            item = self._mapping(item, where, required=("gpus", "link"), allowed=("gpus", "link"))
            pair = item["gpus"]
            if not isinstance(pair, list) or len(pair) != 2:
                raise self._bad(f"{where}.gpus: expected two GPU indices")
            a, b = (self._gpu_index(g, f"{where}.gpus", gpu_count) for g in pair)
            if a == b:
                raise self._bad(f"{where}.gpus: a GPU doesn't link to itself")
            kind = str(item["link"]).upper()
            if kind not in LINK_KINDS and not _NVLINK.match(kind):
                raise self._bad(f"{where}.link: {item['link']!r} is not NV<n> or one of {', '.join(LINK_KINDS)}")
            out[(min(a, b), max(a, b))] = Link(min(a, b), max(a, b), kind)
        return tuple(out[key] for key in sorted(out))

    def _mapping(self, item: Any, where: str, required: Collection[str],
                 allowed: Collection[str]) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise self._bad(f"{where}: expected a mapping")
        for key in required:
            if key not in item:
                raise self._bad(f"{where}: missing {key!r}")
        for key in item:
            if key not in allowed:
                raise self._bad(f"{where}: unknown key {key!r} (expected {', '.join(allowed)})")
        return item

    def _size(self, value: Any, where: str, positive: bool = False) -> int:
        try:
            size = sizes.parse_size(value)
        except errors.InvalidArgument as e:
            raise self._bad(f"{where}: {e}") from None
        if positive and size < 1:
            raise self._bad(f"{where}: must be more than 0")
        return size

    def _gpu_index(self, value: Any, where: str, gpu_count: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < gpu_count:
            raise self._bad(f"{where}: {value!r} is not a GPU index (0 to {gpu_count - 1})")
        return value
