"""The daemon's parts, wired: built here, and handed only the collaborators each one needs.

    Runtime    worker threads (I/O, work) and the background tasks      guildd.runtime
    RunStates  the one writer of run status                             guildd.runstate
    Drivers    what drives each running run (shim, pipeline, batch)     guildd.drivers
    Queue      staged and waiting runs, and what running runs hold      guildd.queue
    Followers  running runs' output, and its watchers                   guildd.watching
    Catalog    reads, queries, management, the index's sync             guildd.catalog
    Launcher   runs created, started, finished, stopped, restarted      guildd.launcher

The servicer (guildd.service) calls the parts through the attributes of `Daemon`.
"""

import asyncio
import dataclasses
import os
from collections.abc import Hashable

from guild_common import home as homelib, rundir
from guildd import catalog, diskspace, executor as execlib, launcher, queue as queuelib, rayjobs, reconcile, resources as resourceslib, runs, runstate, runtime, store as storelib, watching
from guildd.drivers import Drivers
from guildd.tokens import Identities


@dataclasses.dataclass(frozen=True)
class Options:
    """How the daemon serves: its command line's choices."""

    queue_always_on: bool = False  # staged runs start as resources free, without `queue start`
    shared: bool = False  # every local user connects; runs execute as their owners
    admin_group: str | None = None  # members may act on every run and set the queue (root always may)
    unconfined_gpus: bool = False  # shared: a run that asks for no GPUs sees them all (else none)
    fair_share_half_life: float = 24 * 3600.0  # seconds: how fast past GPU use stops counting
    preempt_grace: float = 30.0  # seconds from a preempted run's SIGTERM to its SIGKILL
    ray_address: str = ""  # the Ray cluster of `--executor ray` when the client names none
    allow_ray: bool = False  # shared: Ray jobs accepted (they run as the cluster's user)


class Daemon:
    launcher: launcher.Launcher
    followers: watching.Followers

    def __init__(self, guild_home: "str | os.PathLike", options: Options = Options()) -> None:
        """Builds the parts; call it on the event loop."""
        self.home = guild_home
        self.options = options
        self.identities = Identities(options.shared, options.admin_group)
        runs_dir = homelib.runs_dir(guild_home)
        runs_dir.mkdir(parents=True, exist_ok=True)
        self.user = runs.current_user()
        self.started_us = rundir.now_us()
        self.ready = asyncio.Event()  # set once the index is reconciled with the run dirs
        self.runtime = runtime.Runtime()
        self.store = storelib.Store(homelib.index_path(guild_home), runs_dir)
        self.reserve = diskspace.Reserve(guild_home)  # room to record runs' ends on a full disk (I/O thread)
        self.reserve.take()
        self.states = runstate.RunStates(self.store, self.run_dir, self.runtime, asyncio.get_running_loop())
        self.executor = execlib.Executor(lambda run_id: self.launcher.on_shim_exit(run_id), homelib.log_path(guild_home))
        self.drivers = Drivers()
        self.queue = queuelib.Queue(
            self.runtime,
            self.store,
            self.states,
            guild_home,
            resourceslib.for_env(os.environ),  # GPUs: NVML, simulated, or none
            lambda starts: self.launcher.start_queued(starts),
            lambda: len(self.followers) > 0,
            options.queue_always_on,
            half_life=options.fair_share_half_life,
            preempt_grace=options.preempt_grace,
        )
        self.followers = watching.Followers(
            self.runtime, self.store, self.run_dir, self.states.wake, self.states.wait_change, lambda run_id: run_id in self.queue.entries
        )
        self.catalog = catalog.Catalog(self.runtime, self.store, guild_home, self.queue.discard)
        self.launcher = launcher.Launcher(
            self.runtime,
            self.states,
            self.store,
            guild_home,
            self.executor,
            self.drivers,
            self.queue,
            self.reserve,
            self.followers,
            self.catalog.changing_dirs,
            self.catalog.delete_runs,
            shared=options.shared,
            unconfined_gpus=options.unconfined_gpus,
            ray=rayjobs.Settings(options.ray_address, options.allow_ray),
        )

    def version(self) -> Hashable:
        """Changes whenever the index or the queue does (the web view's live updates)."""
        return (self.store.changes, self.queue.fingerprint())

    def run_dir(self, run_id: str) -> "os.PathLike":
        return homelib.run_dir(self.home, run_id)

    async def reconcile(self) -> None:
        """Start-up: the index in line with the run dirs, live runs adopted, then the queue's loops."""
        await reconcile.reconcile(self.launcher, self.queue, self.catalog.sync_index, self.started_us)
        self.runtime.spawn(self.queue.run(), name="queue")
        self.runtime.spawn(self.queue.poll_loop(), name="gpu-poll")

    def stop_start_up(self) -> None:
        """The daemon is stopping before its reconcile ended: the index's sync (on the I/O
        thread) stops at its next batch of runs, so the shutdown need not wait for the rest."""
        self.catalog.stopping = True

    async def close(self) -> None:
        """Shutdown: tasks cancelled, none recording an end (a batch or pipeline stays running
        for the next daemon to resume, as after a crash), critical work finished, then runs
        left to their shims."""
        await self.runtime.close_tasks()
        self.executor.close()
        self.runtime.io_submit(self.executor.shims.close).result()
        await self.followers.close()
        self.runtime.io_submit(self.store.close).result()
        self.runtime.shutdown()
