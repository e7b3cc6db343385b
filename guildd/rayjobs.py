"""Runs on a Ray cluster (`guildctl run ... --executor ray[:ADDRESS]`): the decisions, as pure
functions, and the daemon's checks before such a run is made.

The run record stays local: guildd makes the run dir and starts the run's shim as for any
run, but the shim's command is the follower (`python -m guildd.rayfollow`), which submits the
run's command as a Ray job with a submission id guildd chose, streams the job's log to its
stdout (so `.guild/output`, watch, output scalars and compare work unchanged), and exits
with the job's end (SUCCEEDED 0, FAILED non-zero, STOPPED by a signal: terminated). The
shim outlives the daemon, so a restarted daemon finds the run running as any other.
Nothing here imports ray: a daemon without it serves every other run.
"""

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import importlib.util
import json
import shlex
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from guild_common import errors, rundir
from guild_common.paths import StrPath
from guild_common.pb import guild_pb2 as pb
from guildd import raywrap

EXECUTOR = "ray"
DEFAULT_ADDRESS = "http://127.0.0.1:8265"  # where `ray job submit` looks without RAY_ADDRESS
INSTALL_HINT = "pip install -e '.[ray]' in guildd's checkout (the ray extra: ray[default])"
REACH_TIMEOUT = 3.0  # seconds the daemon waits for a cluster's answer before making a run
DEFAULT_GRACE = 60.0  # seconds a follower keeps trying a cluster it lost before the run fails
DEFAULT_CAP = 64 * 1024 * 1024  # bytes of packed files a job may copy back through its log
# Settings the run's environment gives the follower; never sent to the job.
FILES_ENV = "GUILD_RAY_FILES"  # `copy`: copy files back even where the run dir is visible
GRACE_ENV = "GUILD_RAY_GRACE"
CAP_ENV = "GUILD_RAY_COPY_CAP"
# The client machine's own variables: wrong on a cluster's node, where Ray and the node set
# their own (CUDA_VISIBLE_DEVICES: Ray assigns the job's GPUs; RAY_ADDRESS: the job's cluster).
LOCAL_ONLY = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "TMPDIR", "TERM", "DISPLAY", "HOSTNAME",
    "LD_LIBRARY_PATH", "LD_PRELOAD", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME", "PYTHONPATH",
    "CUDA_VISIBLE_DEVICES", "GUILD_GPUS", "RAY_ADDRESS", "MAIL", "SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS",
})
LOCAL_PREFIXES = ("SSH_", "XDG_", "GUILD_RAY_", "RAY_JOB_")
# A job's states that are ends, and the run's exit status for each (negative: by a signal,
# which Guild reads as terminated).
ENDED = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": -15}
# A job's states that say its command ran (see job_started).
STARTED = frozenset({"RUNNING", "SUCCEEDED"})
# CPUs and memory on a run that is not on Ray (guildctl says the same before it sends).
NOT_ON_RAY = "--cpus and --memory apply to runs on Ray (--executor ray): the local queue places GPUs only"


@dataclasses.dataclass(frozen=True)
class Settings:
    """The daemon's Ray settings (guildd's command line)."""

    address: str = ""  # --ray-address: the cluster when the client names none
    allow_shared: bool = False  # --allow-ray: a shared daemon may run jobs (as the cluster's user)


def parse_executor(text: str) -> Optional[str]:
    """`--executor`'s value: None for a local run (''), '' for `ray` (the address found as Ray
    finds it), the address for `ray:ADDRESS`. InvalidArgument in one line otherwise."""
    if not text:
        return None
    kind, sep, address = text.partition(":")
    if kind != EXECUTOR:
        raise errors.InvalidArgument(f"--executor {text}: unknown executor (expected ray or ray:ADDRESS)")
    if sep and not address:
        raise errors.InvalidArgument(f"--executor {text}: no address after 'ray:'")
    return normalize_address(address) if address else ""


def normalize_address(address: str) -> str:
    """A dashboard address as the job submission client takes it (`host:port` gets http://);
    InvalidArgument for one it can't use."""
    text = address.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.query or parts.fragment:
        raise errors.InvalidArgument(f"bad Ray address {address!r}: expected http://HOST:PORT (the cluster's dashboard)")
    return text.rstrip("/")


def resolve_address(given: str, client_env: Mapping[str, str], default: str) -> str:
    """The cluster a run goes to: the one named (`ray:ADDRESS`), else RAY_ADDRESS in the
    client's environment, else the daemon's default, else the local head's dashboard."""
    for address in (given, client_env.get("RAY_ADDRESS", ""), default):
        if address and address != "auto":
            return normalize_address(address)
    return DEFAULT_ADDRESS


def job_env(env: Mapping[str, str]) -> dict[str, str]:
    """The run's environment as sent to the job: without the client machine's own variables
    (LOCAL_ONLY, LOCAL_PREFIXES) and the follower's settings."""
    return {k: v for k, v in env.items() if k not in LOCAL_ONLY and not k.startswith(LOCAL_PREFIXES)}


def entrypoint_resources(request: pb.ResourceRequest) -> dict[str, float]:
    """Ray's entrypoint resources for a run's request: its GPUs (a count, or as many as the
    indices named: Ray picks which), its CPUs (--cpus; one when not given, so that Ray bounds
    how many jobs run at once by its CPUs as the local queue does by GPUs) and its memory in
    bytes (--memory; none asked when not given)."""
    out: dict[str, float] = {"entrypoint_num_cpus": request.cpus or 1.0}
    count = request.gpus or len(request.devices)
    if count:
        out["entrypoint_num_gpus"] = float(count)
    if request.memory:
        out["entrypoint_memory"] = int(request.memory)  # Ray takes whole bytes
    return out


def check_request(request: pb.ResourceRequest, on_ray: bool) -> None:
    """InvalidArgument in one line for CPUs or memory a run can't ask: any on a run that is not
    on Ray (this box's queue places GPUs only), a CPU count that is not a positive finite number,
    a negative memory. guildctl refuses the same before it sends; this is for other clients."""
    if not (request.cpus or request.memory):
        return
    if not on_ray:
        raise errors.InvalidArgument(NOT_ON_RAY)
    if request.cpus and not (0 < request.cpus < float("inf")):
        raise errors.InvalidArgument(f"invalid --cpus {request.cpus:g}: expected a positive number (2, 0.5)")
    if request.memory < 0:
        raise errors.InvalidArgument(f"invalid --memory {request.memory}: must be more than 0")


def submission_id(run_id: str, previous: Optional[str]) -> str:
    """The Ray submission id of a run's next start: `guild-<run id>`, then `-2`, `-3`... when
    the run starts again (a submission id names one job for ever)."""
    first = f"guild-{run_id}"
    if not previous or not previous.startswith(first):
        return first
    tail = previous[len(first):]
    n = int(tail[1:]) if tail.startswith("-") and tail[1:].isdigit() else 1
    return f"{first}-{n + 1}"


def exit_status(status: str, driver_exit_code: Optional[int]) -> Optional[int]:
    """The run's exit status for a job's state; None while it has not ended. A failed job
    exits as its command did where Ray knows that (else 1)."""
    if status not in ENDED:
        return None
    if status == "FAILED" and driver_exit_code and driver_exit_code > 0:
        return min(driver_exit_code, 255)
    return ENDED[status]


def job_started(status: object) -> bool:
    """Whether a job's state (the run's `ray_status` attr) says its command began to run: its
    run, pending while the cluster finds room, is running from then on. A job that failed or
    was stopped may never have run: its run ends from pending (guildd.runstate)."""
    return isinstance(status, str) and status in STARTED


def failure_line(submission: str, message: str) -> str:
    """The one line a failed job leaves at the end of the run's output: Ray's message, its
    first line without the log's tail Ray adds (the output has it already)."""
    lines = (message or "").strip().splitlines()
    first = lines[0].split(", last available logs")[0].rstrip(":") if lines else "no reason given"
    return f"guildd: Ray job {submission} failed: {first}"


def follower_cmd(python: str, address: str, submission: str, run_dir: str, resources: Mapping[str, float],
                 cmd: Sequence[str], attach: bool = False) -> list[str]:
    """The shim's command for a run on Ray: the follower, with the run's own command after `--`;
    `attach`: it follows the job that exists, never submitting one."""
    return [python, "-I", "-m", "guildd.rayfollow", "--address", address, "--submission-id", submission,
            "--run-dir", run_dir, "--resources", json.dumps(dict(resources), sort_keys=True),
            *(["--attach"] if attach else []), "--", *cmd]


def entrypoint(cmd: Sequence[str], run_dir: str, mode: str, cap: int) -> str:
    """The job's entrypoint: the wrapper (guildd.raywrap) inline, on one line (Ray logs it),
    with the run's command. Its Python is the command's own when that is a Python (the node
    then has it), else python3."""
    exe = cmd[0] if cmd and cmd[0].rsplit("/", 1)[-1].startswith("python") else "python3"
    with open(raywrap.__file__, "rb") as f:
        source = base64.b64encode(f.read()).decode()
    code = f"import base64;exec(base64.b64decode('{source}'))"
    return shlex.join([exe, "-c", code, run_dir, mode, str(cap), *cmd])


class Unframer:
    """Takes the copy-back lines (guildd.raywrap.frame) out of a job's log: `take(line)` says
    whether a line was one (never written to the output); `data()` the bytes they carried,
    checked, or ValueError saying what is wrong."""

    def __init__(self) -> None:
        self.header: Optional[tuple[int, str]] = None
        self.chunks: list[str] = []
        self.done = False

    def take(self, line: str) -> bool:
        if not line.startswith(raywrap.MARK):
            return False
        body = line[len(raywrap.MARK):].rstrip("\r\n")
        if body.startswith("begin "):
            size, digest = body.split()[1:3]
            self.header, self.chunks, self.done = (int(size), digest), [], False
        elif body == "end":
            self.done = True
        else:
            self.chunks.append(body)
        return True

    def data(self) -> Optional[bytes]:
        """The files' pack, None when the job sent none."""
        if self.header is None:
            return None
        if not self.done:
            raise ValueError("the job's log ended before its files did")
        try:
            data = base64.b64decode("".join(self.chunks), validate=True)
        except binascii.Error as e:
            raise ValueError(f"damaged files in the job's log: {e}") from None
        size, digest = self.header
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise ValueError("damaged files in the job's log: size or checksum differs")
        return data


def check_installed() -> None:
    """FailedPrecondition in one line when Ray's job submission client is not installed."""
    if importlib.util.find_spec("ray") is None:
        raise errors.FailedPrecondition(f"--executor ray needs Ray's job submission client: {INSTALL_HINT}")


def check_reachable(address: str, timeout: float = REACH_TIMEOUT) -> None:
    """Blocking (a worker thread): FailedPrecondition in one line unless the cluster's job API
    answers at `address` within `timeout`."""
    try:
        with urllib.request.urlopen(f"{address}/api/version", timeout=timeout) as resp:
            json.loads(resp.read() or b"{}")
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise errors.FailedPrecondition(f"Ray cluster at {address} is unreachable: {reason}") from None


def check_identity(shared: bool, settings: Settings) -> None:
    """A shared daemon's runs execute as their owners; a Ray job runs as the cluster's user.
    So a shared daemon refuses Ray runs unless its admin allowed them (--allow-ray)."""
    if shared and not settings.allow_shared:
        raise errors.PermissionDenied(
            "--executor ray: this shared daemon does not submit Ray jobs (they run as the cluster's user, "
            "not as you); its admin can allow it with guildd --allow-ray"
        )


def python() -> str:
    """The interpreter the follower runs under: the daemon's own, which has guildd and ray."""
    return sys.executable


async def admit(spec: pb.RunSpec, shared: bool, settings: Settings) -> Optional[dict[str, Any]]:
    """Before a run for a Ray cluster is made: refuses it in one line (a shared daemon that
    doesn't allow Ray, no Ray installed, a bad address, a cluster that doesn't answer: then no
    run is made), and resolves its address into `spec.executor` (`ray:ADDRESS`, so that its
    trials and restarts go to the same cluster). Returns the attrs the run is made with (its
    address and its entrypoint resources), None for a local run."""
    given = parse_executor(spec.executor)
    check_request(spec.resources, given is not None)
    if given is None:
        return None
    check_identity(shared, settings)
    check_installed()
    address = resolve_address(given, spec.env, settings.address)
    await asyncio.get_running_loop().run_in_executor(None, check_reachable, address)
    spec.executor = f"{EXECUTOR}:{address}"
    return {"ray_address": address, "ray_resources": entrypoint_resources(spec.resources)}


def local_request(spec: pb.RunSpec) -> pb.ResourceRequest:
    """What a run asks of this box's queue: a Ray run's GPUs are the cluster's to give."""
    return pb.ResourceRequest() if spec.executor else spec.resources


def launch_cmd(run_dir: StrPath, run_id: str, executor: str, cmd: Sequence[str]) -> list[str]:
    """On the I/O thread, as the run's owner: the shim's command for a start of a run on Ray,
    with its new submission id recorded (attrs `ray_submission_id`, `ray_address`) and the last
    start's job state cleared."""
    address = executor.partition(":")[2] or DEFAULT_ADDRESS
    previous = rundir.read_attr(run_dir, "ray_submission_id")
    submission = submission_id(run_id, previous if isinstance(previous, str) else None)
    resources = rundir.read_attr(run_dir, "ray_resources")
    rundir.write_attrs(run_dir, {"ray_submission_id": submission, "ray_address": address, "ray_status": "SUBMITTING"})
    return follower_cmd(python(), address, submission, str(run_dir), resources if isinstance(resources, dict) else {}, cmd)


def reattach_cmd(run_dir: StrPath) -> Optional[list[str]]:
    """On the I/O thread, as the run's owner, at a daemon's start: for a running run on Ray whose
    shim and follower are both gone with no end recorded (the machine went down, its processes
    were killed), the command of a follower that attaches to its last start's job (it submits
    nothing: a job the cluster no longer knows ends the run as an error). None for any other run."""
    attrs = {name: rundir.read_attr(run_dir, name) for name in ("ray_submission_id", "ray_address", "cmd", "exit_status")}
    submission, address, cmd = attrs["ray_submission_id"], attrs["ray_address"], attrs["cmd"]
    if not (isinstance(submission, str) and isinstance(address, str) and isinstance(cmd, list)) or isinstance(attrs["exit_status"], int):
        return None
    resources = rundir.read_attr(run_dir, "ray_resources")
    return follower_cmd(python(), address, submission, str(run_dir), resources if isinstance(resources, dict) else {},
                        [str(a) for a in cmd], attach=True)
