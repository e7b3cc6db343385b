"""The scalars a run's process writes to its own event files, in the index: indexed while the
run runs (guildd.outputs.Follower), after a daemon restart without counting any twice, and
when a run dir is indexed from scratch (guildd.manage.index_run_dir)."""

import asyncio
import os
import pathlib
import shutil
import tempfile

import pytest

from guild_common import rundir
from guildd import manage, outputs, watching
from guildd.store import Store
from guildd.tfevents import EventWriter, ScalarSummary
from tests.unit.fakes import InPlaceRuntime
from tests.unit.test_manage import write_run
from tests.unit.test_run_dir_rights import Box, record
from tests.unit.test_runevents import Growing, log_scalars
from tests.unit.test_watching import RUN, Fixture, until


def last(summaries):
    """{tag: (last value, last step, count)}."""
    return {s.tag: (s.last_val, s.last_step, s.count) for s in summaries}


@pytest.fixture
def fx(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "SCALAR_POLL", 0.01)
    monkeypatch.setattr(outputs, "EVENTS_POLL", 0.01)
    f = Fixture(tmp_path)
    yield f
    f.store.close()


def test_scalars_a_run_writes_are_indexed_while_it_runs_and_at_its_end(fx):
    async def go():
        fx.followers.follow(RUN, 0)
        writer = Growing(fx.run_dir / "val")
        writer.add_scalar("acc", 0.5, 0)
        await until(lambda: last(fx.store.scalars(RUN)) == {"val#acc": (0.5, 0, 1)})
        fx.write("loss: 0.25\n")
        writer.add_scalar("acc", 0.75, 1)
        log_scalars(fx.run_dir, [("loss", 1.0, 3)])  # just before the end: the last pass reads it
        fx.ended()
        await fx.followers.finish(RUN)
        return await fx.followers.scalars(RUN)

    # `loss` from the output and from the script's own root event file: one scalar, as in Guild's runs info
    assert last(asyncio.run(go())) == {"loss": (1.0, 3, 2), "val#acc": (0.75, 1, 2)}


def test_a_daemon_restart_goes_on_from_what_the_index_holds(fx):
    writer = Growing(fx.run_dir)

    async def follow_until(count):
        fx.followers.follow(RUN, 0)
        await until(lambda: last(fx.store.scalars(RUN)).get("acc", (0, 0, 0))[2] == count)
        await fx.followers.drop(RUN)  # the daemon killed: the index is as far as it got

    writer.add_scalar("acc", 0.5, 0)
    asyncio.run(follow_until(1))
    writer.add_scalar("acc", 0.25, 1)
    asyncio.run(follow_until(2))
    [acc] = fx.store.scalars(RUN)
    assert (acc.first_val, acc.last_val, acc.min_val, acc.count) == (0.5, 0.25, 0.25, 2)


def test_the_index_holds_how_far_each_event_file_is_read(tmp_path):
    store = Store(tmp_path / "index.db", tmp_path)
    summary = manage.summary_record("acc", _summary(0.5))
    store.merge_scalars("r1", [summary], event_offsets={"val/events.out.tfevents.1.h": 90})
    store.merge_scalars("r1", [], event_offsets={"val/events.out.tfevents.1.h": 120, "events.out.tfevents.2.h": 40})
    assert store.event_offsets("r1") == {"val/events.out.tfevents.1.h": 120, "events.out.tfevents.2.h": 40}
    store.replace_scalars("r1", [summary], {"events.out.tfevents.2.h": 50})
    assert store.event_offsets("r1") == {"events.out.tfevents.2.h": 50}
    store.delete("r1")
    assert store.event_offsets("r1") == {} and store.scalars("r1") == []
    store.close()


def _summary(value):
    s = ScalarSummary()
    s.add(value, 0)
    return s


def test_a_run_dir_indexed_from_scratch_has_all_its_event_files_scalars(tmp_path):
    store = Store(tmp_path / "index.db", tmp_path)
    run_dir = write_run(tmp_path, RUN)
    with EventWriter(str(rundir.guild_dir(run_dir))) as guilds:  # guildd's own, from the output
        guilds.add_scalars([("printed", 5.0, 0, 1.0)])
    log_scalars(run_dir, [("acc", 0.5, 0), ("acc", 0.7, 2)])
    log_scalars(run_dir / "val", [("acc", 0.8, 2)])
    log_scalars(run_dir / "a" / "b", [("x/y", 4.0, 2)])
    manage.index_run_dir(store, run_dir, lambda pid: False)
    assert last(store.scalars(RUN)) == {
        "a/b#x/y": (4.0, 2, 1), "acc": (pytest.approx(0.7), 2, 2), "printed": (5.0, 0, 1), "val#acc": (pytest.approx(0.8), 2, 1),
    }
    sizes = {os.path.relpath(os.path.join(d, n), run_dir): os.path.getsize(os.path.join(d, n))
             for d, _, names in os.walk(run_dir) if ".guild" not in d for n in names}
    assert store.event_offsets(RUN) == sizes
    store.close()


def test_the_follower_reads_her_event_files_with_her_rights(tmp_path, monkeypatch):
    """A root daemon reads alice's event files as alice: one she made unreadable is not read
    (root's rights would read it), and a link to a root-only event file is not followed."""
    box = _rights_box()
    try:
        log_scalars(box.run_dir, [("loss", 0.5, 0)])
        log_scalars(box.run_dir / "val", [("acc", 0.9, 0)])
        log_scalars(box.secret_dir, [("secret", 1.0, 0)])
        (box.run_dir / "leak").symlink_to(box.secret_dir)
        box.give()
        (box.run_dir / "val").chmod(0)
        store = Store(tmp_path / "index.db", tmp_path)
        store.insert(record("running"))
        followers = watching.Followers(InPlaceRuntime(), store, lambda run_id: box.run_dir, lambda run_id: None,
                                       lambda run_id: asyncio.sleep(0.01), lambda run_id: False)

        async def go():
            followers.follow(RUN, 0)
            await followers.finish(RUN)

        asyncio.run(go())
        assert last(store.scalars(RUN)) == {"loss": (0.5, 0, 1)}
        store.close()
    finally:
        shutil.rmtree(box.base)


def _rights_box():
    if os.geteuid() != 0:
        pytest.skip("a run dir of another user's needs root")
    return Box(pathlib.Path(tempfile.mkdtemp(prefix="guild-rights-")))


def test_a_pass_that_fails_is_logged_and_the_run_is_still_followed_to_its_end(fx, monkeypatch, caplog):
    failing = {"left": 2}
    read = outputs.ScalarReader.read

    def flaky(self):
        if failing["left"]:
            failing["left"] -= 1
            raise RuntimeError("the index went away for a moment")
        return read(self)

    monkeypatch.setattr(outputs.ScalarReader, "read", flaky)

    async def go():
        fx.followers.follow(RUN, 0)
        fx.write("loss: 0.5\n")
        await until(lambda: failing["left"] == 0)
        fx.write("loss: 0.25\n")
        fx.ended()
        await fx.followers.finish(RUN)
        return await fx.followers.scalars(RUN)

    assert last(asyncio.run(go())) == {"loss": (0.25, 0, 2)}
    said = [r.getMessage() for r in caplog.records if "could not be indexed" in r.getMessage()]
    assert said == [f"run {RUN[:8]}: its output could not be indexed (RuntimeError: the index went away for a moment): tried again"]
