"""The daemon's worker threads and its background tasks, under one owner.

One event loop owns the state; blocking work goes to two threads: `io` (the index and run-dir
writes, one SQLite connection) and `work` (scalar parsing and event files, kept apart so a
burst of output never delays a request). Numeric work that must not hold the interpreter lock
while the loop records a run's end (a search's speculative ask: guildd.speculate) goes to one
worker process, `compute`. Every background task is spawned here and cancelled on shutdown.
"""

import asyncio
import concurrent.futures
import functools
import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

log = logging.getLogger("guildd")

T = TypeVar("T")


class Runtime:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()
        self._criticals: set[asyncio.Future] = set()  # see critical()
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="guildd-io")
        self._work = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="guildd-scalars")
        self._compute: "concurrent.futures.ProcessPoolExecutor | None" = None

    async def io(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """`fn(*args, **kw)` on the I/O thread (the index and run-dir writes)."""
        return await asyncio.get_running_loop().run_in_executor(self._io, functools.partial(fn, *args, **kw))

    async def work(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """`fn(*args, **kw)` on the work thread (scalars, event files, resolving dependencies)."""
        return await asyncio.get_running_loop().run_in_executor(self._work, functools.partial(fn, *args, **kw))

    def compute(self, fn: Callable[..., T], *args: Any) -> "asyncio.Future[T]":
        """`fn(*args)` in the compute process (started on first use, again after it died), its
        arguments and result pickled: for pure numeric work only."""
        try:
            return asyncio.wrap_future(self.warm_compute().submit(fn, *args))
        except concurrent.futures.BrokenExecutor:  # it died (killed, out of memory): a new one
            self._compute = None
            return asyncio.wrap_future(self.warm_compute().submit(fn, *args))

    def warm_compute(self) -> concurrent.futures.ProcessPoolExecutor:
        """The compute process, started now if it isn't (it takes a second or two to import
        its libraries: a batch asks for it before its first speculative ask)."""
        if self._compute is None:
            self._compute = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_compute, initargs=(os.getpid(),))
            self._compute.submit(int)  # starts it
        return self._compute

    def io_submit(self, fn: Callable[..., T], *args: Any) -> "concurrent.futures.Future[T]":
        """`fn(*args)` on the I/O thread, from another thread (which may wait for its result)."""
        return self._io.submit(fn, *args)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        """A background task, cancelled on shutdown; a failure is logged."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def critical(self, coro: Awaitable[T]) -> "asyncio.Future[T]":
        """Awaits `coro`, which runs to its end even when the shutdown cancels the caller
        (close_tasks() waits for it): for work that must not be cut in half, such as a run
        started but not yet linked into its batch or pipeline (it would run twice after a
        restart), or a batch's end recorded but not its delete-on-success."""
        task = asyncio.ensure_future(coro)
        self._criticals.add(task)
        task.add_done_callback(self._criticals.discard)
        return asyncio.shield(task)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception():
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def close_tasks(self) -> None:
        """Cancels the background tasks and waits for the critical work under way."""
        if self._criticals:
            log.info("finishing %d start(s) or end(s) under way", len(self._criticals))
        while self._tasks or self._criticals:  # critical work may start tasks: cancelled too
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, *self._criticals, return_exceptions=True)

    def shutdown(self) -> None:
        """Stops the two threads (after what was submitted to them) and the compute process."""
        if self._compute is not None:
            self._compute.shutdown(wait=False, cancel_futures=True)
        self._io.shutdown()
        self._work.shutdown()


def _start_compute(daemon_pid: int) -> None:
    """The compute process's start: it leaves Ctrl-C to the daemon, ends when the daemon is
    gone (a kill -9 leaves it nothing to read, but its queue's pipe stays open in it: a
    watchdog looks each second), and readies the searches' libraries."""
    from guildd import optimizers

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == daemon_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="guildd-compute-watchdog", daemon=True).start()
    optimizers.prepare_process()
