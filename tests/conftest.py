"""Shared test helpers: waiting with a timeout (never bare sleeps) and sample projects."""

import time

import pytest

GET_STARTED = """\
import numpy as np

# Hyperparameters
x = 0.1
noise = 0.1

loss = (np.sin(5 * x) * (1 - np.tanh(x ** 2)) + np.random.randn() * noise)
print("loss: %f" % loss)
"""

SLOW = """\
import time
steps = 20
delay = 0.1
for i in range(steps):
    print("step: %d" % i)
    print("loss: %f" % (1.0 / (i + 1)), flush=True)
    time.sleep(delay)
"""


def wait_for(predicate, timeout=20.0, interval=0.02, what="condition"):
    """Polls `predicate` until it returns something truthy; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def project(tmp_path):
    """A project dir with Guild's get-started train.py and a slow step/loss script."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text(GET_STARTED)
    (proj / "slow.py").write_text(SLOW)
    return proj
