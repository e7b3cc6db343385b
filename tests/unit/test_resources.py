"""guildd.resources: the simulated backend (specs, the YAML file re-read on every poll), the
NVML code path against a fake pynvml, run marking, and `guildctl gpus`' rendering."""

import ast
import dataclasses
import os
import pathlib
import sys
import types

import pytest

from guild_common import errors, sizes
from guild_common.pb import guild_pb2 as pb
from guildctl import output
from guildd import gpus, nvml, resources, simulated
from guildd.convert import resources_message

G = 2**30
HOST = (8, 64 * G, 60 * G)
RUN_ID = "3f2a1b2c" + "0" * 24


def _resources(backend):
    return resources.Resources(backend, host=lambda: HOST)


# Sizes


@pytest.mark.parametrize(
    "text, expected",
    [
        ("80G", 80 * G),
        ("80g", 80 * G),
        ("80GiB", 80 * G),
        ("80GB", 80 * G),
        ("512M", 512 * 2**20),
        ("1.5T", 3 * 2**39),
        ("1024", 1024),
        (" 2 G ", 2 * G),
        (4096, 4096),
        (0, 0),
    ],
)
def test_parse_size(text, expected):
    assert sizes.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "80X", "-1G", "1e3G", "ten", True, -5])
def test_parse_size_refuses(text):
    with pytest.raises(errors.InvalidArgument, match="invalid size"):
        sizes.parse_size(text)


@pytest.mark.parametrize(
    "n, text", [(0, "0"), (1000, "1000"), (80 * G, "80G"), (int(10.5 * G), "10.5G"), (512 * 2**20, "512M"), (2**40, "1T")]
)
def test_format_size(n, text):
    assert sizes.format_size(n) == text


# Simulated: spec strings


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("4x80G", (80 * G,) * 4),
        ("1x24G", (24 * G,)),
        ("80G", (80 * G,)),
        ("2x80G,2x24G", (80 * G, 80 * G, 24 * G, 24 * G)),
        (" 2X16GiB , 40G ", (16 * G, 16 * G, 40 * G)),
        ("0", ()),
        ("none", ()),
    ],
)
def test_parse_spec(spec, expected):
    assert simulated.parse_spec(spec) == expected


@pytest.mark.parametrize(
    "spec, why",
    [
        ("4x", "'4x' has no memory size after 'x'"),
        ("x80G", "'x80G' has no GPU count before 'x'"),
        ("ax80G", "'ax80G' has no GPU count before 'x'"),
        ("-1x80G", "'-1x80G' has no GPU count before 'x'"),
        ("4x80Q", "'80q' is not a memory size"),
        ("0x80G", "'0x80G' needs at least one GPU with some memory"),
        ("4x0G", "'4x0G' needs at least one GPU with some memory"),
        ("4x80G,", "an empty entry"),
        ("4x80", "'4x80': the memory size needs a unit (M, G or T)"),
        ("2000x1G", "more than 1024 GPUs"),
        ("lots", "'lots' is not a memory size"),
    ],
)
def test_bad_spec_is_a_clear_error(spec, why):
    with pytest.raises(errors.InvalidArgument) as e:
        simulated.parse_spec(spec)
    message = str(e.value)
    assert message.startswith(f"GUILD_SIMULATED_GPUS={spec!r}: {why}")
    assert "expected COUNTxSIZE such as 4x80G" in message


def test_spec_backend_snapshot():
    snap = _resources(simulated.backend_for("2x80G,1x24G")).snapshot()
    assert snap.backend == "simulated" and snap.reason == ""
    assert [g.index for g in snap.gpus] == [0, 1, 2]
    assert [g.memory_total for g in snap.gpus] == [80 * G, 80 * G, 24 * G]
    assert all(g.memory_used == 0 and g.memory_free == g.memory_total and g.processes == () for g in snap.gpus)
    assert snap.gpus[2].name == "Simulated GPU 24G"
    assert len({g.uuid for g in snap.gpus}) == 3 and snap.gpus[0].uuid.startswith("GPU-")
    assert (snap.cpu_count, snap.memory_total, snap.memory_available) == HOST
    assert snap.taken_us > 0


def test_spec_zero_is_a_box_without_gpus():
    snap = _resources(simulated.backend_for("0")).snapshot()
    assert snap.gpus == () and snap.reason == "simulated: no GPUs"


def test_host_info_is_real():
    cpus, total, available = resources.host_info()
    assert cpus >= 1 and total > 0 and 0 < available <= total


# Simulated: the YAML file


GPUS_YML = """\
gpus:
  - {memory: 80G, name: NVIDIA A100-SXM4-80GB, uuid: GPU-aaaa, utilization: 35, used: 1G}
  - {memory: 80G}
  - {memory: 24G}
topology:
  - {gpus: [0, 1], link: nv12}
  - {gpus: [2, 1], link: SYS}
"""


def _write(path, text):
    """Rewrites `path` atomically, as a test driving a daemon must (the daemon polls it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_file_backend(tmp_path):
    path = tmp_path / "gpus.yml"
    _write(path, GPUS_YML)
    snap = _resources(simulated.backend_for(str(path))).snapshot()
    assert snap.backend == "simulated" and snap.reason == ""
    gpu0, gpu1, gpu2 = snap.gpus
    assert (gpu0.name, gpu0.uuid, gpu0.utilization, gpu0.memory_used) == ("NVIDIA A100-SXM4-80GB", "GPU-aaaa", 35, G)
    assert gpu0.memory_free == 79 * G
    assert gpu1.name == "Simulated GPU 80G" and gpu2.memory_total == 24 * G
    assert snap.links == (gpus.Link(0, 1, "NV12"), gpus.Link(1, 2, "SYS"))
    assert snap.link(1, 0) == "NV12" and snap.link(2, 1) == "SYS" and snap.link(0, 2) == ""


def test_file_is_read_again_on_every_poll(tmp_path):
    path = tmp_path / "gpus.yml"
    _write(path, "gpus: 4x80G\n")
    res = _resources(simulated.backend_for(str(path)))
    assert all(g.processes == () for g in res.snapshot().gpus)
    # A foreign process appears on GPU 2...
    _write(path, "gpus: 4x80G\nprocesses:\n  - {gpu: 2, pid: 4242, user: bob, memory: 10G}\n")
    gpu2 = res.snapshot().gpus[2]
    assert gpu2.processes == (gpus.GpuProcess(pid=4242, user="bob", used_memory=10 * G),)
    assert gpu2.foreign_processes == gpu2.processes
    assert (gpu2.memory_used, gpu2.memory_free) == (10 * G, 70 * G)
    # ...and vanishes.
    _write(path, "gpus: 4x80G\nprocesses: []\n")
    assert res.snapshot().gpus[2].processes == ()
    # The box itself can change too.
    _write(path, "gpus: 2x24G\n")
    assert [g.memory_total for g in res.snapshot().gpus] == [24 * G, 24 * G]


def test_relative_file_path_is_resolved_once(tmp_path):
    (tmp_path / "gpus.yml").write_text("gpus: 1x8G\n")
    backend = simulated.backend_for("gpus.yml", cwd=tmp_path)
    assert isinstance(backend, simulated.SimulatedFile) and backend.path == tmp_path / "gpus.yml"


def test_process_user_defaults_to_the_pid_owner(tmp_path):
    import getpass

    path = tmp_path / "gpus.yml"
    _write(path, f"gpus: 1x8G\nprocesses:\n  - {{gpu: 0, pid: {os.getpid()}}}\n")
    (proc,) = _resources(simulated.backend_for(str(path))).snapshot().gpus[0].processes
    assert proc.user == getpass.getuser() and proc.used_memory == 0


def test_missing_file_is_a_startup_error(tmp_path):
    with pytest.raises(errors.InvalidArgument, match=r"GUILD_SIMULATED_GPUS: cannot read .*nope\.yml"):
        simulated.backend_for(str(tmp_path / "nope.yml"))


@pytest.mark.parametrize(
    "text, why",
    [
        ("gpus: [", "invalid YAML"),
        ("", "expected a mapping with `gpus`"),
        ("- 80G\n", "expected a mapping with `gpus`"),
        ("gpus: 4x\n", "gpus: GUILD_SIMULATED_GPUS='4x': '4x' has no memory size"),
        ("gpus: {a: 1}\n", "gpus: expected a spec such as 4x80G or a list of GPUs"),
        ("gpus: 1x8G\nextra: 1\n", "unknown key 'extra'"),
        ("gpus:\n  - {name: x}\n", "gpus[0]: missing 'memory'"),
        ("gpus:\n  - 80G\n", "gpus[0]: expected a mapping"),
        ("gpus:\n  - {memory: lots}\n", "gpus[0].memory: invalid size 'lots'"),
        ("gpus:\n  - {memory: 0}\n", "gpus[0].memory: must be more than 0"),
        ("gpus:\n  - {memory: 8G, colour: red}\n", "gpus[0]: unknown key 'colour'"),
        ("gpus:\n  - {memory: 8G, utilization: 101}\n", "gpus[0].utilization: expected a percentage"),
        ("gpus: 1x8G\nprocesses: {gpu: 0}\n", "processes: expected a list"),
        ("gpus: 1x8G\nprocesses:\n  - {gpu: 1, pid: 5}\n", "processes[0].gpu: 1 is not a GPU index (0 to 0)"),
        ("gpus: 1x8G\nprocesses:\n  - {gpu: 0}\n", "processes[0]: missing 'pid'"),
        ("gpus: 1x8G\nprocesses:\n  - {gpu: 0, pid: x}\n", "processes[0].pid: expected a process id"),
        ("gpus: 1x8G\nprocesses:\n  - {gpu: 0, pid: 5, memory: 9G}\n", "GPU 0 uses more memory than its 8G"),
        ("gpus: 2x8G\ntopology:\n  - {gpus: [0], link: NV1}\n", "topology[0].gpus: expected two GPU indices"),
        ("gpus: 2x8G\ntopology:\n  - {gpus: [0, 0], link: NV1}\n", "a GPU doesn't link to itself"),
        ("gpus: 2x8G\ntopology:\n  - {gpus: [0, 1], link: FAST}\n", "topology[0].link: 'FAST' is not NV<n>"),
    ],
)
def test_bad_file_is_a_clear_error(tmp_path, text, why):
    path = tmp_path / "gpus.yml"
    path.write_text(text)
    with pytest.raises(errors.InvalidArgument) as e:
        simulated.backend_for(str(path))
    assert str(e.value).startswith(f"GUILD_SIMULATED_GPUS file {path}: ")
    assert why in str(e.value)


def test_file_broken_after_start_reports_no_gpus_then_recovers(tmp_path, caplog):
    path = tmp_path / "gpus.yml"
    _write(path, "gpus: 2x8G\n")
    res = _resources(simulated.backend_for(str(path)))
    _write(path, "gpus: [\n")
    for _ in range(2):
        snap = res.snapshot()  # never raises
        assert snap.gpus == () and snap.reason.startswith(f"simulated: GUILD_SIMULATED_GPUS file {path}: invalid YAML")
    assert len([r for r in caplog.records if "no GPUs" in r.getMessage()]) == 1  # logged once
    path.unlink()
    assert "cannot read" in res.snapshot().reason
    _write(path, "gpus: 2x8G\n")
    snap = res.snapshot()
    assert len(snap.gpus) == 2 and snap.reason == ""


# Choosing a backend from the environment


def test_for_env_simulated_spec():
    res = resources.for_env({"GUILD_SIMULATED_GPUS": "4x80G"})
    assert res.name == "simulated" and len(res.snapshot().gpus) == 4


def test_for_env_simulated_file(tmp_path):
    (tmp_path / "gpus.yml").write_text("gpus: 3x8G\n")
    res = resources.for_env({"GUILD_SIMULATED_GPUS": str(tmp_path / "gpus.yml")})
    assert isinstance(res.backend, simulated.SimulatedFile) and len(res.snapshot().gpus) == 3


def test_for_env_bad_spec_raises():
    with pytest.raises(errors.InvalidArgument, match="GUILD_SIMULATED_GPUS='4x80G,': an empty entry"):
        resources.for_env({"GUILD_SIMULATED_GPUS": "4x80G,"})


def test_for_env_without_nvidia_ml_py(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    snap = resources.for_env({}).snapshot()
    assert snap.backend == "none" and snap.gpus == ()
    assert snap.reason == "nvidia-ml-py (pynvml) is not installed"
    assert snap.cpu_count >= 1


def test_for_env_uses_nvml(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    res = resources.for_env({"GUILD_SIMULATED_GPUS": " "})
    assert res.name == "nvml" and res.backend.nvml is fake
    assert len(res.snapshot().gpus) == 2


# NVML against a fake pynvml


class FakeNvmlError(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return {1: "Uninitialized", 3: "Not Supported", 12: "NVML Shared Library Not Found", 15: "GPU is lost"}.get(
            self.value, f"error {self.value}"
        )


@dataclasses.dataclass
class FakeDevice:
    uuid: str
    name: object  # str, or bytes as older pynvml returns
    bus_id: str
    total: int
    used: int
    util: object  # int, or an error code to raise
    compute: list
    graphics: list = dataclasses.field(default_factory=list)
    nvlinks: dict = dataclasses.field(default_factory=dict)  # link -> remote bus id


def _proc(pid, used):
    return types.SimpleNamespace(pid=pid, usedGpuMemory=used)


FOREIGN_PID = 2**22 + 4242  # above Linux's largest pid_max: no such process here


class FakeNvml(types.ModuleType):
    """The pynvml calls guildd.resources makes, over two GPUs with one foreign process. NVML
    enumerates them out of PCI order here, to prove indices follow the bus."""

    NVMLError = FakeNvmlError
    NVML_NVLINK_MAX_LINKS = 4

    def __init__(self):
        super().__init__("pynvml")
        self.init_error = None
        self.memory_error = None
        self.initialized = 0
        self.calls = []
        self.devices = [
            FakeDevice("GPU-bbbb", "NVIDIA H100 80GB HBM3", "00000000:B1:00.0", 80 * G, 2 * G, 3, compute=[]),
            FakeDevice(
                "GPU-aaaa",
                b"NVIDIA H100 80GB HBM3",
                "00000000:1A:00.0",
                80 * G,
                12 * G,
                87,
                compute=[_proc(FOREIGN_PID, 10 * G)],
                graphics=[_proc(FOREIGN_PID, None)],
            ),
        ]
        self.ancestor = 40  # NVML_TOPOLOGY_NODE

    def _check(self):
        if not self.initialized:
            raise FakeNvmlError(1)

    def nvmlInit(self):
        self.calls.append("init")
        if self.init_error:
            raise FakeNvmlError(self.init_error)
        self.initialized += 1

    def nvmlShutdown(self):
        self.initialized -= 1

    def nvmlDeviceGetCount(self):
        self._check()
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index):
        self._check()
        return self.devices[index]

    def nvmlDeviceGetPciInfo(self, handle):
        return types.SimpleNamespace(busId=handle.bus_id.encode())

    def nvmlDeviceGetUUID(self, handle):
        return handle.uuid

    def nvmlDeviceGetName(self, handle):
        return handle.name

    def nvmlDeviceGetMemoryInfo(self, handle):
        if self.memory_error:
            raise FakeNvmlError(self.memory_error)
        return types.SimpleNamespace(total=handle.total, used=handle.used, free=handle.total - handle.used)

    def nvmlDeviceGetUtilizationRates(self, handle):
        if handle.util == "unsupported":
            raise FakeNvmlError(3)
        return types.SimpleNamespace(gpu=handle.util, memory=0)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return list(handle.compute)

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        return list(handle.graphics)

    def nvmlDeviceGetTopologyCommonAncestor(self, a, b):
        self.calls.append("topology")
        return self.ancestor

    def nvmlDeviceGetNvLinkState(self, handle, link):
        if link not in handle.nvlinks:
            raise FakeNvmlError(3)
        return 1

    def nvmlDeviceGetNvLinkRemotePciInfo(self, handle, link):
        return types.SimpleNamespace(busId=handle.nvlinks[link])


def test_nvml_two_gpus_one_foreign_process():
    fake = FakeNvml()
    snap = _resources(nvml.NvmlBackend(fake)).snapshot()
    assert snap.backend == "nvml" and snap.reason == ""
    gpu0, gpu1 = snap.gpus
    # PCI bus order: 1A before B1, whatever order NVML enumerated them in.
    assert (gpu0.index, gpu0.uuid, gpu0.pci_bus_id) == (0, "GPU-aaaa", "00000000:1A:00.0")
    assert (gpu1.index, gpu1.uuid, gpu1.pci_bus_id) == (1, "GPU-bbbb", "00000000:B1:00.0")
    assert gpu0.name == gpu1.name == "NVIDIA H100 80GB HBM3"  # bytes decoded
    assert (gpu0.memory_total, gpu0.memory_used, gpu0.memory_free, gpu0.utilization) == (80 * G, 12 * G, 68 * G, 87)
    assert (gpu1.memory_used, gpu1.utilization) == (2 * G, 3)
    # In both the compute and graphics lists: one process, user unknown (no such pid here).
    assert gpu0.processes == (gpus.GpuProcess(pid=FOREIGN_PID, user="", used_memory=10 * G),)
    assert gpu0.processes[0].foreign and gpu1.processes == ()
    assert snap.links == (gpus.Link(0, 1, "NODE"),)
    assert fake.initialized == 1


def test_nvml_process_users_and_our_runs():
    import getpass

    fake = FakeNvml()
    fake.devices[0].compute = [_proc(os.getpid(), 1 * G)]
    fake.devices[1].compute.append(_proc(os.getppid(), None))
    res = _resources(nvml.NvmlBackend(fake))
    by_uuid = {g.uuid: g for g in res.snapshot().gpus}
    assert by_uuid["GPU-bbbb"].processes[0].user == getpass.getuser()
    # A GPU process is a run's when it is the run's process or descends from it.
    snap = res.snapshot(run_pids={os.getppid(): RUN_ID})
    mine = {g.uuid: g for g in snap.gpus}
    assert mine["GPU-bbbb"].processes[0].run_id == RUN_ID  # a child of the run's process
    procs = {p.pid: p for p in mine["GPU-aaaa"].processes}
    assert procs[os.getppid()].run_id == RUN_ID and procs[os.getppid()].used_memory == 0
    assert procs[FOREIGN_PID].run_id == "" and procs[FOREIGN_PID].foreign


def test_nvml_unreported_utilization_is_unknown():
    fake = FakeNvml()
    fake.devices[1].util = "unsupported"
    snap = _resources(nvml.NvmlBackend(fake)).snapshot()
    assert snap.gpus[0].utilization == gpus.UNKNOWN and snap.gpus[1].utilization == 3


def test_nvml_without_a_driver_reports_no_gpus_and_tries_again(caplog):
    fake = FakeNvml()
    fake.init_error = 12
    res = _resources(nvml.NvmlBackend(fake))
    for _ in range(3):
        snap = res.snapshot()
        assert snap.gpus == () and snap.reason == "nvml: NVML Shared Library Not Found"
        assert snap.cpu_count == 8
    said = [r for r in caplog.records if "no GPUs" in r.getMessage()]
    assert len(said) == 1 and not said[0].exc_info  # a box without a driver: one line, no traceback
    fake.init_error = None  # the driver is loaded
    assert len(res.snapshot().gpus) == 2
    assert fake.calls.count("init") == 4


def test_nvml_error_mid_poll_reports_no_gpus_then_recovers():
    fake = FakeNvml()
    res = _resources(nvml.NvmlBackend(fake))
    assert len(res.snapshot().gpus) == 2
    fake.memory_error = 15
    snap = res.snapshot()
    assert snap.gpus == () and snap.reason == "nvml: GPU is lost"
    fake.memory_error = None
    assert len(res.snapshot().gpus) == 2
    assert fake.calls.count("init") == 1 and fake.calls.count("topology") == 1  # topology read once


def test_nvml_unexpected_exception_never_escapes():
    fake = FakeNvml()
    fake.nvmlDeviceGetCount = lambda: 1 / 0
    snap = _resources(nvml.NvmlBackend(fake)).snapshot()
    assert snap.gpus == () and snap.reason == "nvml: division by zero"


def test_nvml_no_gpus():
    fake = FakeNvml()
    fake.devices = []
    snap = _resources(nvml.NvmlBackend(fake)).snapshot()
    assert snap.gpus == () and snap.reason == "NVML found no GPUs"


def test_nvml_nvlink_topology():
    fake = FakeNvml()
    fake.devices.append(FakeDevice("GPU-cccc", "x", "00000000:C1:00.0", G, 0, 0, compute=[]))
    # GPU-bbbb (index 1) and GPU-cccc (index 2) share two NVLinks.
    fake.devices[0].nvlinks = {0: "00000000:C1:00.0", 1: "00000000:c1:00.0"}
    fake.devices[2].nvlinks = {0: "00000000:B1:00.0", 1: "00000000:B1:00.0"}
    snap = _resources(nvml.NvmlBackend(fake)).snapshot()
    assert [g.uuid for g in snap.gpus] == ["GPU-aaaa", "GPU-bbbb", "GPU-cccc"]
    assert snap.link(1, 2) == "NV2" and snap.link(0, 1) == "NODE" and snap.link(0, 2) == "NODE"


def test_nvml_nvswitch_topology():
    fake = FakeNvml()
    for device in fake.devices:
        device.nvlinks = {n: f"00000000:0{n}:00.0" for n in range(4)}  # every link to a switch
    snap = _resources(nvml.NvmlBackend(fake)).snapshot()
    assert snap.links == (gpus.Link(0, 1, "NV4"),)


def test_nvml_topology_failure_leaves_links_empty():
    fake = FakeNvml()
    fake.nvmlDeviceGetNvLinkState = None  # an old pynvml

    def not_supported(a, b):
        raise FakeNvmlError(3)

    fake.nvmlDeviceGetTopologyCommonAncestor = not_supported
    snap = _resources(nvml.NvmlBackend(fake)).snapshot()
    assert len(snap.gpus) == 2 and snap.links == ()


def test_nvml_close_shuts_down():
    fake = FakeNvml()
    res = _resources(nvml.NvmlBackend(fake))
    res.snapshot()
    res.close()
    assert fake.initialized == 0
    res.close()  # twice is fine
    assert fake.initialized == 0


# Our runs' pids


def test_run_pids_from_the_index(tmp_path):
    # The LOCK's pid (and the index's, read from it) are live processes of the run dirs' owner.
    lock_pid, index_pid = os.getpid(), os.getppid()
    running = [
        types.SimpleNamespace(id="a" * 32, shim_pid=100, pid=0),
        types.SimpleNamespace(id="b" * 32, shim_pid=200, pid=index_pid),
    ]
    store = types.SimpleNamespace(list=lambda statuses: (running, len(running)) if statuses == ("running",) else ([], 0))
    (tmp_path / ("a" * 32) / ".guild").mkdir(parents=True)
    (tmp_path / ("b" * 32)).mkdir()
    (tmp_path / ("a" * 32) / ".guild" / "LOCK").write_text(str(lock_pid))
    pids = resources.run_pids(store, lambda run_id: tmp_path / run_id)
    assert pids == {100: "a" * 32, lock_pid: "a" * 32, 200: "b" * 32, index_pid: "b" * 32}


def test_simulated_process_can_be_one_of_our_runs(tmp_path):
    path = tmp_path / "gpus.yml"
    _write(path, f"gpus: 2x8G\nprocesses:\n  - {{gpu: 1, pid: {os.getpid()}, user: me, memory: 1G}}\n")
    snap = _resources(simulated.backend_for(str(path))).snapshot(run_pids={os.getpid(): RUN_ID})
    assert snap.gpus[1].processes[0].run_id == RUN_ID and snap.gpus[1].foreign_processes == ()


# The wire message and `guildctl gpus`' rendering


def _message(tmp_path, yml):
    path = tmp_path / "gpus.yml"
    _write(path, yml)
    snap = _resources(simulated.backend_for(str(path))).snapshot(run_pids={os.getpid(): RUN_ID})
    return resources_message(snap)


def test_gpu_table(tmp_path):
    msg = _message(
        tmp_path,
        "gpus:\n  - {memory: 80G, name: NVIDIA A100-SXM4-80GB, utilization: 35}\n  - {memory: 24G}\n"
        f"processes:\n  - {{gpu: 0, pid: {os.getpid()}, user: alice, memory: 20G}}\n"
        f"  - {{gpu: 0, pid: {os.getpid() + 2**22}, user: alice, memory: 1G}}\n"
        "  - {gpu: 1, pid: 4242, user: bob, memory: 10.5G}\n",
    )
    assert output.gpu_rows(msg) == [
        "GPU  NAME                   MEMORY       UTIL  HELD BY",
        f"0    NVIDIA A100-SXM4-80GB  21G / 80G    35%   run 3f2a1b2c (alice), foreign pid {os.getpid() + 2**22} (alice)",
        "1    Simulated GPU 24G      10.5G / 24G  0%    foreign pid 4242 (bob)",
    ]
    assert output.host_line(msg) == "CPUs: 8  memory: 60G available of 64G"


def test_gpu_holders_collapse_a_run_and_show_unknowns():
    gpu = pb.Gpu(
        name="x",
        utilization=-1,
        processes=[
            pb.GpuProcess(pid=1, user="al", run_id=RUN_ID),
            pb.GpuProcess(pid=2, user="al", run_id=RUN_ID),
            pb.GpuProcess(pid=3),
        ],
    )
    assert output.gpu_holders(gpu) == ["run 3f2a1b2c (al)", "foreign pid 3"]
    assert output.gpu_rows(pb.GetResourcesResponse(gpus=[gpu]))[1].split()[5] == "-"  # 0 x 0 / 0 -


def test_gpus_json_is_the_message_with_numbers(tmp_path):
    msg = _message(tmp_path, "gpus: 1x80G\nprocesses:\n  - {gpu: 0, pid: 4242, user: bob, memory: 10G}\n")
    value = output.message_json(msg)
    assert set(value) == {f.name for f in pb.GetResourcesResponse.DESCRIPTOR.fields}
    assert value["backend"] == "simulated" and value["reason"] == "" and value["links"] == []
    (gpu,) = value["gpus"]
    assert gpu["memory_total"] == 80 * G and isinstance(gpu["memory_total"], int)
    assert gpu["processes"] == [{"pid": 4242, "user": "bob", "used_memory": 10 * G, "run_id": ""}]
    assert value["cpu_count"] == 8 and value["memory_total"] == 64 * G


def test_backends_build_on_gpus_not_on_resources():
    # resources picks a backend; the backends and it share guildd.gpus, so imports go one way.
    for module in (nvml, simulated, gpus):
        tree = ast.parse(pathlib.Path(module.__file__).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {f"guildd.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "guildd" for a in n.names}
        assert "guildd.resources" not in imported, module.__name__
