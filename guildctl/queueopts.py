"""What a run asks of the queue, from `run`'s options: GPUs (--gpus, --no-gpus, --gpu-memory),
on Ray CPUs and memory (--cpus, --memory), and queue options (--priority, --queue, --after)."""

import math

from guild_common import errors, sizes
from guild_common.pb import guild_pb2 as pb


MAX_GPUS = 1024  # more than any box has: a count past it is a typo, and past 2**31 a crash


def parse_gpus(text):
    """`--gpus N` is a count; `--gpus 0,3` (or `3,` for one device) names the GPUs, as Guild's
    --gpus does (Guild reads `--gpus 1` as device 1: here that is `--gpus 1,`). Returns
    (count, devices)."""
    value = text.strip()
    if "," not in value:
        try:
            count = int(value)
        except ValueError:
            count = -1
        if count < 0 or count > MAX_GPUS:
            raise errors.InvalidArgument(
                f"invalid --gpus '{text}': expected a count (--gpus 2) or GPU indices (--gpus 0,3; one GPU: --gpus 3,)"
            )
        return count, ()
    devices = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        if not (part.isascii() and part.isdigit() and len(part) <= 6):
            raise errors.InvalidArgument(f"invalid --gpus '{text}': '{part}' is not a GPU index")
        if int(part) in devices:
            raise errors.InvalidArgument(f"invalid --gpus '{text}': GPU {part} is named twice")
        devices.append(int(part))
    if not devices:
        raise errors.InvalidArgument(f"invalid --gpus '{text}': no GPU index given")
    return len(devices), tuple(devices)


# The local queue places GPUs only: CPUs and memory are asked of a Ray cluster (guildd.rayjobs
# refuses the same for a request from another client).
NOT_ON_RAY = "--cpus and --memory apply to runs on Ray (--executor ray): the local queue places GPUs only"


def resource_request(gpus=None, no_gpus=False, gpu_memory=None, defaults=None, cpus=None, memory=None, executor=""):
    """A pb.ResourceRequest from the options; `defaults` (the operation's own `gpus` /
    `gpu-memory`, and on Ray `cpus` / `memory`, in guild.yml) apply where an option isn't
    given. --cpus / --memory without `executor` are refused: the local queue places GPUs only,
    while an operation's own `cpus` / `memory` are ignored for a local run (they say what it
    needs on a cluster, not that it can't run here)."""
    request = _gpu_request(gpus, no_gpus, gpu_memory, defaults or {})
    request.cpus, request.memory = ray_request(cpus, memory, executor, defaults or {})
    return request


def ray_request(cpus=None, memory=None, executor="", defaults=None):
    """(cpus, memory bytes) a run on Ray asks, 0 for what isn't given (Ray's default: one CPU,
    no memory asked). One line naming the option for a value that is not a positive number or
    size, or for either option on a run that is not on Ray."""
    if not executor:
        if cpus is not None or memory is not None:
            raise errors.InvalidArgument(NOT_ON_RAY)
        return 0.0, 0
    defaults = defaults or {}
    cpus = cpus if cpus is not None else defaults.get("cpus")
    memory = memory if memory is not None else defaults.get("memory")
    count = 0.0
    if cpus is not None:
        try:
            count = float(cpus) if not isinstance(cpus, bool) else -1.0
        except (TypeError, ValueError):
            count = -1.0
        if not (0 < count < math.inf):
            raise errors.InvalidArgument(f"invalid --cpus '{cpus}': expected a positive number of CPUs (2, 0.5)")
    size = 0
    if memory is not None:
        size = _size("--memory", memory)
    return count, size


def _size(option, text):
    """Bytes in a size option's value, more than 0 and less than 2**63 (a proto int64)."""
    try:
        size = sizes.parse_size(text)
    except errors.InvalidArgument:
        raise errors.InvalidArgument(f"invalid {option} '{text}': expected a size such as 20G or 512M") from None
    if size == 0:
        raise errors.InvalidArgument(f"invalid {option} '{text}': must be more than 0")
    if size >= 2**63:
        raise errors.InvalidArgument(f"invalid {option} '{text}': too large")
    return size


def _gpu_request(gpus, no_gpus, gpu_memory, defaults):
    if no_gpus and (gpus is not None or gpu_memory is not None):
        raise errors.InvalidArgument("--no-gpus cannot be used with --gpus or --gpu-memory")
    if no_gpus:
        return pb.ResourceRequest(no_gpus=True)
    if gpus is None and defaults.get("gpus") is not None:
        gpus = str(defaults["gpus"])
    if gpu_memory is None and defaults.get("gpu-memory") is not None:
        gpu_memory = str(defaults["gpu-memory"])
    count, devices = parse_gpus(gpus) if gpus is not None else (0, ())
    if gpus is not None and not count:
        # `--gpus 0` asks for no GPUs: as --no-gpus, not as no request (which sees every GPU).
        if gpu_memory is not None:
            raise errors.InvalidArgument("--gpus 0 cannot be used with --gpu-memory")
        return pb.ResourceRequest(no_gpus=True)
    memory = 0
    if gpu_memory is not None:
        memory = _size("--gpu-memory", gpu_memory)
        if not count:
            count = 1  # --gpu-memory alone: room on one GPU
    return pb.ResourceRequest(gpus=count, devices=devices, gpu_memory=memory)


def queue_options(priority=0, queue="", after=(), preemptible=False):
    if not priority and not queue and not after and not preemptible:
        return None
    return pb.QueueOptions(priority=priority, queue=queue or "", after=list(after), preemptible=preemptible)


def describe_request(request):
    """`2 GPUs`, `GPUs 0,3`, `1 GPU, 20G free`, `no GPUs`, `-` (nothing asked)."""
    if request.no_gpus:
        return "no GPUs"
    if request.devices:
        text = "GPU" + ("s " if len(request.devices) > 1 else " ") + ",".join(str(d) for d in request.devices)
    elif request.gpus:
        text = f"{request.gpus} GPU" + ("s" if request.gpus > 1 else "")
    else:
        return "-"
    if request.gpu_memory:
        text += f", {sizes.format_size(request.gpu_memory)} each"
    return text
