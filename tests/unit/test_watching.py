"""Output followers and watchers (guildd.watching): a follower over a growing output file
wakes the run's watchers and indexes its scalars; a watcher gets all the output, in order,
and stops once the run's end is recorded. The runtime's threads are a fake that calls in
place, and watchers re-check on a short sleep instead of the run states' wake-ups."""

import asyncio

import pytest

from guild_common import rundir
from guildd import outputs, watching
from guildd.store import RunRecord, Store
from tests.unit.fakes import InPlaceRuntime

RUN = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"


def record(status):
    return RunRecord(
        id=RUN, op_name="train.py", opref="", status=status, label="", created_us=1, started_us=1, stopped_us=0,
        exit_status=None, pid=0, shim_pid=0, shim_started=0.0, flags_json="{}", tags_json="[]", user="", scalar_offset=0,
    )


class Fixture:
    def __init__(self, tmp_path, status="running", queued=()):
        self.run_dir = tmp_path / "runs" / RUN
        rundir.attrs_dir(self.run_dir).mkdir(parents=True)
        rundir.output_path(self.run_dir).touch()
        self.store = Store(tmp_path / "index.db", tmp_path / "runs")
        self.store.insert(record(status))
        self.woken = []
        self.followers = watching.Followers(
            InPlaceRuntime(), self.store, lambda run_id: self.run_dir, self.woken.append, self.wait_change, lambda run_id: run_id in queued
        )

    async def wait_change(self, run_id):
        await asyncio.sleep(0.01)

    def write(self, text):
        with open(rundir.output_path(self.run_dir), "a") as f:
            f.write(text)

    def ended(self):
        self.store.update(RUN, status="completed")


@pytest.fixture
def fx(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "SCALAR_POLL", 0.01)
    f = Fixture(tmp_path)
    yield f
    f.store.close()


async def until(check, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_follower_wakes_watchers_and_indexes_scalars_until_finished(fx):
    async def go():
        fx.followers.follow(RUN, 0)
        assert fx.followers.following(RUN) and RUN in fx.followers and len(fx.followers) == 1
        await until(lambda: fx.woken == [RUN])  # its first size
        fx.write("loss: 0.5\n")
        await until(lambda: fx.woken == [RUN, RUN])  # its growth
        fx.write("loss: 0.25\nacc: 0.9")  # a line not yet whole
        fx.ended()
        await fx.followers.finish(RUN)
        assert not fx.followers.following(RUN) and RUN not in fx.followers
        return await fx.followers.scalars(RUN)

    summaries = asyncio.run(go())
    assert [(s.tag, s.first_val, s.last_val, s.count) for s in summaries] == [("loss", 0.5, 0.25, 2)]
    assert fx.store.get(RUN).scalar_offset == len("loss: 0.5\nloss: 0.25\n")


def test_listeners_hear_each_new_scalar_and_a_prompt_one_makes_the_follower_read_each_growth(fx, monkeypatch):
    # SCALAR_POLL and LISTENED_POLL are long here: only a prompt listener's reading of every
    # growth gets the second line heard before the run ends.
    monkeypatch.setattr(outputs, "SCALAR_POLL", 30.0)
    monkeypatch.setattr(outputs, "LISTENED_POLL", 30.0)
    heard, heard_too = [], []

    async def go():
        fx.followers.follow(RUN, 0)
        follower = fx.followers.get(RUN)
        stop = fx.followers.listen(RUN, heard.extend, prompt=True)
        stop_too = fx.followers.listen(RUN, heard_too.extend)
        assert follower.listened and follower.prompt
        fx.write("loss: 0.5\n")
        await until(lambda: heard == [("loss", 0.5, 0)])
        fx.write("loss: 0.25\n")
        await until(lambda: len(heard) == 2)
        stop()
        assert follower.listened and not follower.prompt  # the other listener still hears
        stop_too()
        assert not follower.listened and not follower.prompt
        fx.write("loss: 0.125\n")
        fx.ended()
        await fx.followers.finish(RUN)

    asyncio.run(go())
    assert heard == [("loss", 0.5, 0), ("loss", 0.25, 0)] == heard_too  # no step lines: step 0


def test_a_follower_starts_at_its_offset(fx):
    fx.write("loss: 9\n")

    async def go():
        fx.followers.follow(RUN, len("loss: 9\n"))
        fx.write("loss: 1\n")
        await fx.followers.finish(RUN)
        return await fx.followers.scalars(RUN)

    assert [(s.tag, s.first_val, s.count) for s in asyncio.run(go())] == [("loss", 1.0, 1)]


def test_drop_stops_following_at_once(fx):
    async def go():
        fx.followers.follow(RUN, 0)
        await fx.followers.drop(RUN)
        assert RUN not in fx.followers and fx.followers.get(RUN) is None
        await fx.followers.drop(RUN)  # a second drop: nothing to do

    asyncio.run(go())


async def watched(fx, **kw):
    out = []
    async for is_stderr, data in fx.followers.watch(fx.store.get(RUN), kw.pop("tail", 0), kw.pop("new_only", False), **kw):
        out.append((is_stderr, data))
    return out


def test_a_watcher_gets_output_as_it_grows_and_stops_at_the_end(fx):
    async def go():
        fx.followers.follow(RUN, 0)
        watcher = asyncio.create_task(watched(fx))
        fx.write("one\n")
        await until(lambda: fx.followers.get(RUN).watchers == 1)
        fx.write("two\n")
        outputs.append(fx.run_dir, b"oops\n", stderr=True)
        fx.ended()
        await fx.followers.finish(RUN)
        return await asyncio.wait_for(watcher, 5)

    chunks = asyncio.run(go())
    assert b"".join(d for _, d in chunks) == b"one\ntwo\noops\n"
    assert [d for e, d in chunks if e] == [b"oops\n"]


WATCH_ENDED = {
    "all of it": (dict(), b"a\nb\nc\n"),
    "the last lines": (dict(tail=2), b"b\nc\n"),
    "from an offset": (dict(offset=2), b"b\nc\n"),
    "only new output": (dict(new_only=True), b""),
}


@pytest.mark.parametrize("case", WATCH_ENDED)
def test_watching_an_ended_run(fx, case):
    args, expected = WATCH_ENDED[case]
    fx.write("a\nb\nc\n")
    fx.ended()
    assert b"".join(d for _, d in asyncio.run(watched(fx, **args))) == expected


def test_a_watcher_of_a_queued_run_waits_for_it(tmp_path, monkeypatch):
    queued = {RUN}
    fx = Fixture(tmp_path, status="staged", queued=queued)

    async def go():
        watcher = asyncio.create_task(watched(fx))
        await asyncio.sleep(0.05)
        assert not watcher.done()  # queued: its output is still to come
        fx.write("started\n")
        queued.clear()
        fx.ended()
        return await asyncio.wait_for(watcher, 5)

    assert b"".join(d for _, d in asyncio.run(go())) == b"started\n"
    fx.store.close()


def test_close_stops_every_follower(fx):
    async def go():
        fx.followers.follow(RUN, 0)
        follower = fx.followers.get(RUN)
        await fx.followers.close()
        await asyncio.sleep(0)
        return follower

    follower = asyncio.run(go())
    assert follower.finishing and follower.task.done()


def test_a_finished_runs_watchers_return_before_its_last_scalars_are_indexed(fx):
    # A waiting `guildctl run` returns as the end is recorded; indexing the rest of a long
    # output's scalars can take a while after.
    async def go():
        fx.followers.follow(RUN, 0)
        follower = fx.followers.get(RUN)
        indexed = asyncio.Event()
        index_rest = follower.finish

        async def slow_finish():
            await indexed.wait()
            await index_rest()

        follower.finish = slow_finish
        before = len(fx.woken)
        finishing = asyncio.ensure_future(fx.followers.finish(RUN))
        await asyncio.sleep(0)
        assert not fx.followers.following(RUN)
        assert RUN in fx.woken[before:]
        indexed.set()
        await finishing
        assert RUN not in fx.followers

    asyncio.run(go())


TAIL_TEXTS = [b"", b"\n", b"a", b"a\n", b"a\nb\nc\n", b"a\nb\nc", b"\n\n\n", b"long line\nx\n" * 5, b"no newline at all" * 10]


@pytest.mark.parametrize("text", TAIL_TEXTS)
@pytest.mark.parametrize("n", [1, 2, 3, 50])
@pytest.mark.parametrize("chunk", [1, 2, 7, 1 << 20])
def test_the_tail_is_found_reading_back_a_chunk_at_a_time(tmp_path, text, n, chunk):
    path = tmp_path / "output"
    path.write_bytes(text)
    with open(path, "rb") as f:
        assert text[watching.tail_offset(f, n, chunk):] == rundir.tail_lines(text, n)
