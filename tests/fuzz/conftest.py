"""Hypothesis profiles and the figures the fuzz suite counts.

Two profiles: "ci" (the default: few examples, derandomized so a CI failure replays the same
way) and "deep" (`HYPOTHESIS_PROFILE=deep`, what bench/fuzz.py runs: 2,000 examples, or
GUILD_FUZZ_EXAMPLES). With `GUILD_FUZZ_FIGURES`
set to a path, the session writes there what it tried and found, as JSON (bench/fuzz.py reads it).
"""

import json
import os

import grpc
import pytest
from hypothesis import HealthCheck, settings

from guild_common import home as homelib
from guild_common.pb import guild_pb2_grpc
from tests.fuzz.box import make_box
from tests.fuzz.figures import FIGURES

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True, suppress_health_check=_QUIET,
                          database=None, print_blob=True)
settings.register_profile("deep", max_examples=int(os.environ.get("GUILD_FUZZ_EXAMPLES", "2000")), deadline=None,
                          suppress_health_check=_QUIET, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def fuzz_figures():
    """Writes the session's counts to GUILD_FUZZ_FIGURES (when set) at its end."""
    yield FIGURES
    path = os.environ.get("GUILD_FUZZ_FIGURES")
    if path:
        with open(path, "w") as f:
            json.dump(FIGURES.as_dict(), f, indent=1, sort_keys=True)


@pytest.fixture(scope="module")
def box(tmp_path_factory, request):
    """A daemon in a temp tree of its own for each test module (tests.fuzz.box), so what one
    module's fuzzing leaves behind never meets another's."""
    b = make_box(tmp_path_factory.mktemp(f"fuzz-{request.module.__name__.rpartition('.')[2]}"))
    yield b
    b.guild.stop()


@pytest.fixture(scope="module")
def stub(box):
    """The generated stub on the box's socket, taking and giving messages up to 64 MB (the
    fuzzed requests are up to a few MB)."""
    channel = grpc.insecure_channel(f"unix:{homelib.socket_connect_path(box.home)}",
                                    options=[("grpc.max_send_message_length", 64 << 20),
                                             ("grpc.max_receive_message_length", 64 << 20)])
    yield guild_pb2_grpc.GuildStub(channel)
    channel.close()
