"""guildctl's reading of --gpus / --no-gpus / --gpu-memory, --cpus / --memory (runs on Ray) and the queue options."""

import pytest

from guild_common import errors
from guildctl import queueopts

G = 2**30


@pytest.mark.parametrize(
    "text, count, devices",
    [("2", 2, ()), ("0", 0, ()), ("0,3", 2, (0, 3)), ("3,", 1, (3,)), (" 1 , 2 ", 2, (1, 2))],
)
def test_gpus_count_or_devices(text, count, devices):
    assert queueopts.parse_gpus(text) == (count, devices)


@pytest.mark.parametrize(
    "text, message",
    [
        ("-1", "invalid --gpus '-1': expected a count"),
        ("two", "invalid --gpus 'two'"),
        ("0,x", "'x' is not a GPU index"),
        ("1,1", "GPU 1 is named twice"),
        (",", "no GPU index given"),
    ],
)
def test_bad_gpus(text, message):
    with pytest.raises(errors.InvalidArgument, match=message):
        queueopts.parse_gpus(text)


def test_request_from_options_and_op_defaults():
    assert queueopts.resource_request() == queueopts.resource_request(None, False, None, {})
    r = queueopts.resource_request("2", gpu_memory="20G")
    assert (r.gpus, list(r.devices), r.gpu_memory) == (2, [], 20 * G)
    assert queueopts.resource_request(gpu_memory="10G").gpus == 1  # memory alone: room on one GPU
    assert queueopts.resource_request(no_gpus=True).no_gpus
    op = {"gpus": 2, "gpu-memory": "8G"}
    r = queueopts.resource_request(None, False, None, op)
    assert (r.gpus, r.gpu_memory) == (2, 8 * G)
    assert queueopts.resource_request("1", False, None, op).gpus == 1  # the option wins


def test_gpus_0_means_no_gpus_like_no_gpus():
    # Not "no request": that would leave CUDA_VISIBLE_DEVICES unset, every GPU visible.
    assert queueopts.resource_request("0") == queueopts.resource_request(no_gpus=True)
    assert queueopts.resource_request(None, False, None, {"gpus": 0}).no_gpus  # `gpus: 0` in guild.yml
    assert not queueopts.resource_request().no_gpus  # no request at all: the run sees every GPU


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"gpus": "0", "gpu_memory": "8G"}, "--gpus 0 cannot be used with --gpu-memory"),
        ({"no_gpus": True, "gpus": "1"}, "--no-gpus cannot be used with --gpus"),
        ({"gpu_memory": "lots"}, "invalid --gpu-memory 'lots'"),
        ({"gpu_memory": "0"}, "must be more than 0"),
    ],
)
def test_bad_requests(kw, message):
    with pytest.raises(errors.InvalidArgument, match=message):
        queueopts.resource_request(**kw)


def test_describe_request():
    assert queueopts.describe_request(queueopts.resource_request("2")) == "2 GPUs"
    assert queueopts.describe_request(queueopts.resource_request("0,3")) == "GPUs 0,3"
    assert queueopts.describe_request(queueopts.resource_request("1", gpu_memory="20G")) == "1 GPU, 20G each"
    assert queueopts.describe_request(queueopts.resource_request(no_gpus=True)) == "no GPUs"
    assert queueopts.describe_request(queueopts.resource_request()) == "-"


def test_a_gpu_memory_beyond_what_the_request_holds_is_refused():
    with pytest.raises(errors.InvalidArgument, match="invalid --gpu-memory '1000000000T': too large"):
        queueopts.resource_request(gpu_memory="1000000000T")


RAY = "ray"


def test_cpus_and_memory_for_a_run_on_ray():
    r = queueopts.resource_request(cpus="2", memory="100M", executor=RAY)
    assert (r.cpus, r.memory) == (2.0, 100 * 2**20)
    r = queueopts.resource_request("1", cpus="0.5", executor="ray:http://h:8265")
    assert (r.gpus, r.cpus, r.memory) == (1, 0.5, 0)  # fractional, as Ray's; no memory asked
    assert (queueopts.resource_request(executor=RAY).cpus, queueopts.resource_request(executor=RAY).memory) == (0.0, 0)  # Ray's 1 CPU
    r = queueopts.resource_request(no_gpus=True, cpus="3", executor=RAY)
    assert r.no_gpus and r.cpus == 3.0


def test_an_ops_own_cpus_and_memory_apply_on_ray_only():
    op = {"gpus": None, "gpu-memory": None, "cpus": 4, "memory": "2G"}
    r = queueopts.resource_request(None, False, None, op, executor=RAY)
    assert (r.cpus, r.memory) == (4.0, 2 * G)
    assert queueopts.resource_request(None, False, None, op, cpus="1", executor=RAY).cpus == 1.0  # the option wins
    r = queueopts.resource_request(None, False, None, op)  # a local run: what it needs on a cluster, ignored here
    assert (r.cpus, r.memory) == (0.0, 0)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"cpus": "2"}, queueopts.NOT_ON_RAY),
        ({"memory": "4G"}, queueopts.NOT_ON_RAY),
        ({"cpus": "0", "executor": RAY}, "invalid --cpus '0': expected a positive number of CPUs"),
        ({"cpus": "-1", "executor": RAY}, "invalid --cpus '-1'"),
        ({"cpus": "two", "executor": RAY}, "invalid --cpus 'two'"),
        ({"cpus": "nan", "executor": RAY}, "invalid --cpus 'nan'"),
        ({"cpus": "inf", "executor": RAY}, "invalid --cpus 'inf'"),
        ({"memory": "lots", "executor": RAY}, "invalid --memory 'lots': expected a size such as 20G or 512M"),
        ({"memory": "0", "executor": RAY}, "invalid --memory '0': must be more than 0"),
        ({"memory": "-1G", "executor": RAY}, "invalid --memory '-1G'"),
        ({"memory": "1000000000T", "executor": RAY}, "invalid --memory '1000000000T': too large"),
    ],
)
def test_bad_cpus_and_memory_are_one_line_naming_the_option(kw, message):
    with pytest.raises(errors.InvalidArgument) as e:
        queueopts.resource_request(**kw)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
