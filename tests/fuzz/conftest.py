"""Hypothesis profiles and the figures the fuzz suite counts.

Two profiles: "ci" (the default: few examples, derandomized so a CI failure replays the same
way) and "deep" (`HYPOTHESIS_PROFILE=deep`, what bench/fuzz.py runs: 2,000 examples, or
GUILD_FUZZ_EXAMPLES). With `GUILD_FUZZ_FIGURES`
set to a path, the session writes there what it tried and found, as JSON (bench/fuzz.py reads it).
"""

import json
import os

import pytest
from hypothesis import HealthCheck, settings

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
