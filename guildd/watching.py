"""The runs whose output is followed (guildd.outputs.Follower, one per running run) and
the watchers of a run's output: `guildctl watch` and `run`'s own streaming."""

import asyncio
import functools
import logging
import os
from typing import AsyncIterator, Awaitable, BinaryIO, Callable

from guild_common import errors, rundir
from guildd import fsrights, outputs, runstate
from guildd import store as storelib
from guildd.runtime import Runtime

log = logging.getLogger("guildd")

Listener = Callable[[list[tuple[str, float, int]]], None]


class Followers:
    """The registry of output followers, by run id. A run is followed from its start until
    its end is recorded and the rest of its output indexed (finish)."""

    def __init__(
        self,
        runtime: Runtime,
        store: storelib.Store,
        run_dir: Callable[[str], "str | os.PathLike"],
        wake: Callable[[str], None],
        wait_change: Callable[[str], Awaitable[None]],
        queued: Callable[[str], bool],
    ):
        self.runtime = runtime
        self.store = store
        self.run_dir = run_dir
        self.wake = wake
        self.wait_change = wait_change  # returns when the run may have changed (or after a while)
        self.queued = queued  # whether a run waits in the queue
        self._followers: dict[str, outputs.Follower] = {}
        self._listeners: dict[str, list[tuple[Listener, bool]]] = {}  # run id -> who hears its new scalars, promptly

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._followers

    def __len__(self) -> int:
        return len(self._followers)

    def get(self, run_id: str) -> "outputs.Follower | None":
        return self._followers.get(run_id)

    def follow(self, run_id: str, offset: int, scalar_config: object = None) -> None:
        """Follows a run's output from `offset`, indexing its scalars with `scalar_config`, and
        the event files its process writes, from how far the index has read them."""
        follower = outputs.Follower(
            self.runtime, run_id, self.run_dir(run_id), offset, self.wake, self.store, scalar_config,
            functools.partial(self._tell, run_id),
        )
        self._followers[run_id] = follower
        self._heard(run_id)
        follower.start()

    def when_job_runs(self, run_id: str, fn: Callable[[], None]) -> None:
        """A followed Ray run, still pending: `fn` is called once, on the event loop, when its
        follower sees its job run (outputs.Follower)."""
        if (follower := self._followers.get(run_id)) is not None:
            follower.on_job_started = fn

    def listen(self, run_id: str, listener: Listener, prompt: bool = False) -> Callable[[], None]:
        """Has `listener` hear the (key, value, step) scalars of a run's output and event files
        as each pass reads them, on the event loop, from now until the returned callable is
        called (a batch's pruner hears its trials' objective this way: no polling). It may
        be registered before the run is followed. A `prompt` listener hears each line within
        milliseconds of its writing (a speculating batch: guildd.speculate, whose head start
        is the time between a trial's last line and its end); others within a tenth of a second."""
        entry = (listener, prompt)
        self._listeners.setdefault(run_id, []).append(entry)
        self._heard(run_id)

        def remove() -> None:
            listeners = self._listeners.get(run_id, [])
            if entry in listeners:
                listeners.remove(entry)
            if not listeners:
                self._listeners.pop(run_id, None)
            self._heard(run_id)

        return remove

    def _heard(self, run_id: str) -> None:
        """Tells a run's follower how closely it is listened to (its scalars are read more
        often while heard)."""
        if (follower := self._followers.get(run_id)) is not None:
            listeners = self._listeners.get(run_id, [])
            follower.listened = bool(listeners)
            follower.prompt = any(prompt for _, prompt in listeners)

    def _tell(self, run_id: str, scalars: list[tuple[str, float, int]]) -> None:
        for listener, _ in list(self._listeners.get(run_id, ())):
            try:
                listener(scalars)
            except Exception:  # a listener's failure must not stop the run's following
                log.exception("run %s: a scalar listener failed", run_id[:8])

    def following(self, run_id: str) -> bool:
        """True while a run's process may still write output (its end not yet recorded)."""
        follower = self._followers.get(run_id)
        return follower is not None and not follower.finishing

    async def settle(self, run_id: str) -> None:
        """Waits until an ended run's scalars are all indexed."""
        while (follower := self._followers.get(run_id)) is not None and follower.finishing:
            await self.wait_change(run_id)

    async def finish(self, run_id: str) -> None:
        """A run's end is recorded: the rest of its output is indexed and it is no longer followed."""
        follower = self._followers.get(run_id)
        if follower is not None:
            follower.stop()  # finishing: its watchers return now, without waiting for the indexing
            self.wake(run_id)
            await follower.finish()
            self._followers.pop(run_id, None)

    async def drop(self, run_id: str) -> None:
        """Stops following a run at once, its output left as far as it was indexed."""
        follower = self._followers.pop(run_id, None)
        if follower is not None:
            follower.stop()
            if follower.task is not None:
                await asyncio.gather(follower.task, return_exceptions=True)
            await self.runtime.work(follower.reader.close)

    async def close(self) -> None:
        """Shutdown: every follower stopped where it is (the runs go on: the next daemon
        follows them from the offset indexed)."""
        for follower in list(self._followers.values()):
            follower.stop()
            if follower.task:
                follower.task.cancel()
        for follower in self._followers.values():
            await self.runtime.work(follower.reader.close)

    async def scalars(self, run_id: str) -> list[storelib.Summary]:
        """A run's scalar summaries, once those of all its output are indexed."""
        await self.settle(run_id)
        return await self.runtime.io(self.store.scalars, run_id)

    async def watch(self, rec: storelib.RunRecord, tail: int, new_only: bool, offset: int = 0) -> AsyncIterator[tuple[bool, bytes]]:
        """Yields (is stderr, bytes) output chunks of a run until it has ended and all its
        output is sent. The output is opened, on a worker thread, with the rights of the run
        dir's owner: a link she put in place of it gets no read of root's. One she can't read
        is told as a line on stderr, and the watch ends as for a run without output (a
        `stop` waiting on it still returns)."""
        if offset < 0:
            raise errors.InvalidArgument(f"invalid output offset {offset}: it must be 0 or more")
        run_dir = self.run_dir(rec.id)
        loop = asyncio.get_running_loop()
        try:
            f = await loop.run_in_executor(None, fsrights.open_as_owner, run_dir, rundir.output_path(run_dir))
        except FileNotFoundError:
            return
        except OSError as e:
            yield True, f"guildd: {fsrights.refusal(e, f'the output of run {rec.id[:8]}')}\n".encode()
            return
        streams = outputs.Streams(run_dir)
        with f:
            if offset:
                f.seek(min(offset, os.fstat(f.fileno()).st_size))  # past the end: from the end
            elif new_only:
                f.seek(0, os.SEEK_END)
            elif tail:  # from where the last lines start; the loop below reads them a chunk at a time
                f.seek(await loop.run_in_executor(None, tail_offset, f, tail))
            follower = None
            try:
                while True:
                    if follower is None and (follower := self._followers.get(rec.id)):
                        follower.add_watcher()  # (a queued run's follower comes when it starts)
                    data = await loop.run_in_executor(None, f.read, outputs.READ_CHUNK)
                    if data:
                        for part in await loop.run_in_executor(None, streams.split, f.tell() - len(data), data):
                            yield part
                        continue
                    if not self.following(rec.id) and not await self._starting(rec.id):
                        while rest := await loop.run_in_executor(None, f.read, outputs.READ_CHUNK):
                            for part in await loop.run_in_executor(None, streams.split, f.tell() - len(rest), rest):
                                yield part
                        return
                    await self.wait_change(rec.id)
            finally:
                if follower:
                    follower.remove_watcher()

    async def _starting(self, run_id: str) -> bool:
        """True while a run waits in the queue or its process is being started."""
        if self.queued(run_id):
            return True
        rec = await self.runtime.io(self.store.get, run_id)
        return rec is not None and rec.status in runstate.ACTIVE


def tail_offset(f: BinaryIO, n: int, chunk: int = outputs.READ_CHUNK) -> int:
    """Where the last `n` lines of an open file start (rundir.tail_lines' lines), found
    reading back from its end a chunk at a time: a run's output may be GBs, and `watch
    --tail 3` must not read it all into the daemon's memory."""
    size = os.fstat(f.fileno()).st_size
    if n <= 0 or size == 0:
        return 0
    f.seek(size - 1)
    pos = size - 1 if f.read(1) == b"\n" else size  # a final newline ends the last line
    found = 0
    while pos > 0:
        start = max(0, pos - chunk)
        f.seek(start)
        block = f.read(pos - start)
        i = len(block)
        while (i := block.rfind(b"\n", 0, i)) >= 0:
            found += 1
            if found == n:
                return start + i + 1
        pos = start
    return 0
