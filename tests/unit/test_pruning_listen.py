"""The hook a pruning batch hears its trials' objective through (guildd.watching.Followers.listen):
the (key, value, step) scalars of each pass over a run's output and its own event files, from
registration until it is removed; a failing listener doesn't stop the run's following."""

import asyncio

import pytest

from guildd import outputs
from guildd.tfevents import EventWriter
from tests.unit.test_watching import RUN, Fixture, until


@pytest.fixture
def fx(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "SCALAR_POLL", 0.01)
    monkeypatch.setattr(outputs, "LISTENED_POLL", 0.01)
    f = Fixture(tmp_path)
    yield f
    f.store.close()


def test_listeners_hear_output_and_event_file_scalars_by_step(fx, monkeypatch):
    monkeypatch.setattr(outputs, "EVENTS_POLL", 0.05)
    heard, other = [], []

    async def go():
        remove = fx.followers.listen(RUN, heard.extend)  # before the run is followed
        fx.followers.listen("f" * 32, other.extend)
        fx.followers.follow(RUN, 0)
        assert fx.followers.get(RUN).listened  # its scalars are read more often while heard
        fx.write("step: 1\nloss: 0.5\nstep: 2\nloss: 0.25\n")
        await until(lambda: len(heard) >= 2)
        with EventWriter(str(fx.run_dir / "val")) as w:  # the run's own event file, in a subdir
            w.add_scalars([("acc", 0.75, 3, 1.0)])
        await until(lambda: len(heard) >= 3, timeout=10)
        remove()
        assert not fx.followers.get(RUN).listened
        fx.write("step: 3\nloss: 0.125\n")
        await asyncio.sleep(0.1)
        await fx.followers.finish(RUN)

    asyncio.run(go())
    assert heard == [("loss", 0.5, 1), ("loss", 0.25, 2), ("val#acc", 0.75, 3)]
    assert other == []


def test_a_failing_listener_does_not_stop_the_following(fx, caplog):
    heard = []

    def fails(scalars):
        raise ValueError("boom")

    async def go():
        fx.followers.listen(RUN, fails)
        fx.followers.listen(RUN, heard.extend)
        fx.followers.follow(RUN, 0)
        fx.write("step: 1\nloss: 0.5\n")
        await until(lambda: heard)
        fx.write("step: 2\nloss: 0.25\n")
        await until(lambda: len(heard) >= 2)
        await fx.followers.finish(RUN)

    asyncio.run(go())
    assert heard == [("loss", 0.5, 1), ("loss", 0.25, 2)]
    assert "a scalar listener failed" in caplog.text
    assert [s.tag for s in fx.store.scalars(RUN)] == ["loss"]
