"""Runs made, started, finished and stopped: the launcher.

A run is created from its spec (its dir written, then indexed), started now or queued, and
its process started through its shim; the shim's end comes back through the Executor and is
recorded here (through RunStates, the one writer of status). Pipelines and batches are runs
driven by a loop of the daemon's own (guildd.pipeline, guildd.batches); each running run has
a driver (guildd.drivers), which is how it is stopped. Restarts and runs made from other
runs are in guildd.restarts; dependencies in guildd.upstream.
"""

import asyncio
import dataclasses
import functools
import json
import logging
import os
import shutil
from typing import Any, Awaitable, Callable, Optional, Sequence

from guild_common import errors, home as homelib, opconfig, rundir
from guild_common.paths import StrPath
from guild_common.pb import guild_pb2 as pb
from guildd import batches as batchlib, catalog, convert, daemonlog, diskspace, executor as execlib, fsrights, needed, outputs, pipeline
from guildd import premade as premadelib, queue as queuelib, rayjobs, restarts, runs, runstate, upstream
from guildd import store as storelib
from guildd.children import Parents
from guildd.drivers import Drivers, ShimDriver
from guildd.runstate import RunStates
from guildd.runtime import Runtime
from guildd.watching import Followers

log = logging.getLogger("guildd")

END_RETRY_SECONDS = (1.0, 30.0)  # first and longest wait between tries to record an end a full disk held up


class Launcher:
    def __init__(
        self,
        runtime: Runtime,
        states: RunStates,
        store: storelib.Store,
        home: "str | os.PathLike",
        executor: execlib.Executor,
        drivers: Drivers,
        queue: queuelib.Queue,
        reserve: diskspace.Reserve,
        followers: Followers,
        changing_dirs: Callable[..., Any],
        delete_runs: Callable[[Sequence[storelib.RunRecord], bool], Awaitable[Any]],
        shared: bool = False,
        unconfined_gpus: bool = False,
        ray: rayjobs.Settings = rayjobs.Settings(),
    ) -> None:
        self.runtime = runtime
        self.states = states
        self.store = store
        self.home = home
        self.executor = executor
        self.drivers = drivers
        self.queue = queue
        self.reserve = reserve  # room to record runs' ends on a full disk (I/O thread)
        self.followers = followers
        self.changing_dirs = changing_dirs  # runs a change of the run dirs, keeping the index's view current
        self.delete_runs = delete_runs
        self.shared = shared  # runs execute as their owners (guildd --shared, as root)
        self.confine_gpus = shared and not unconfined_gpus  # a run sees only the GPUs granted to it
        self.ray = ray  # runs on a Ray cluster (guildd.rayjobs)
        self.parents = Parents(
            runtime=runtime,
            store=store,
            states=states,
            drivers=drivers,
            run_dir=self.run_dir,
            follow=followers.follow,
            start_run=self.start_run,
            start_made=self.start_made,
            premake=self.premake,
            discard=self.discard,
            stop_runs=self.stop_runs,
            end=self.end_parentless,
            scalars=followers.scalars,
            listen=followers.listen,
        )

    def run_dir(self, run_id: str) -> "os.PathLike":
        return homelib.run_dir(self.home, run_id)

    async def start_run(self, spec: pb.RunSpec, stage: bool, user: str, wants: Optional[queuelib.Wants] = None,
                        made: Optional[premadelib.Premade] = None) -> storelib.RunRecord:
        """Creates a run from its spec (in `made`, a dir premade from it, if given). Staged, it
        goes to the queue; otherwise it starts now, or, when it needs GPUs or waits for other
        runs, waits at the head of the queue (status pending). `wants`: its queue options
        (--after runs as given)."""
        try:
            if not spec.cmd_args and not spec.steps:
                raise errors.InvalidArgument("run spec has no command")
            if not spec.op_name:
                raise errors.InvalidArgument("run spec has no operation name")
            opconfig.check_spec(spec)
            ray_attrs = await rayjobs.admit(spec, self.shared, self.ray)
            resources = convert.run_resources(rayjobs.local_request(spec))
            request = queuelib.request_for(resources)
            wants = convert.preemptible_wants(wants or queuelib.Wants(), spec, request)
            await self.queue.check_request(request)
            after_ids = await self._after_ids(wants.after)
        except BaseException:
            if made is not None:
                await self.discard(made)
            raise
        queued = stage or request.wants_gpus or after_ids or bool(wants.queue)
        if spec.steps:
            queued = False  # a pipeline holds nothing itself: its steps queue for what they need
        rec, config, flag_values = await self.create_run(spec, user, runstate.STAGED if stage else runstate.PENDING,
                                                         extra_attrs=ray_attrs, made=made)
        run_id = rec.id
        if stage and spec.steps:
            # Its steps kept for `--start` or queue processing to start it later.
            await self.or_take_back(run_id, pipeline.stage(self.parents, run_id, list(spec.steps)))
            if self.takes_staged_now():  # answered as staged, as the queue takes it
                await self.states.transition(run_id, runstate.PENDING)
                await pipeline.start(self.parents, run_id, list(spec.steps), user)
            return rec
        if queued:
            wants = dataclasses.replace(wants, after=after_ids)
            add = self.queue.add(run_id, user, resources, wants, not stage, dict(spec.env), spec.stop_after)
            await self.or_take_back(run_id, add)
            return rec
        if spec.steps:
            return await self.or_take_back(run_id, self.start_pipeline(run_id, list(spec.steps), user))
        env = {**spec.env, **queuelib.gpu_env(resources.no_gpus, ())}
        return await self.launch(run_id, config, flag_values, env, spec.stop_after)

    async def start_made(self, run_id: str, spec: pb.RunSpec, user: str) -> None:
        """A child run (a trial, a step) that a daemon killed while starting it left pending,
        neither started nor queued: started now as start_run would have started it (`spec`:
        the parent's run spec for it), from its dir. A run queued or followed already is left
        as it is; one that can't start ends as an error, saying why."""
        rec = await self.runtime.io(self.store.get, run_id)
        if rec is None or rec.status != runstate.PENDING or run_id in self.queue.entries or run_id in self.followers:
            return
        log.info("run %s was made but not started when the daemon stopped: starting it", run_id[:8])
        try:
            resources = convert.run_resources(rayjobs.local_request(spec))
            request = queuelib.request_for(resources)
            if request.wants_gpus:
                wants = convert.preemptible_wants(queuelib.Wants(), spec, request)
                await self.queue.add(run_id, user, resources, wants, True, dict(spec.env), spec.stop_after)
                return
            run_dir = self.run_dir(run_id)
            attrs = await self.runtime.io(fsrights.call_as_owner_of, run_dir, _read_attrs, run_dir, ("op", "flags"))
            config = opconfig.OpConfig.for_attr(attrs.get("op"))
            env = {**spec.env, **queuelib.gpu_env(resources.no_gpus, ())}
            await self.launch(run_id, config, dict(attrs.get("flags") or {}), env, spec.stop_after)
        except Exception as e:  # noqa: BLE001 - never left pending: it would wait for ever
            await self.end_damaged(run_id, e, "when its parent went on with it")

    async def run_needed(self, spec: pb.RunSpec) -> list[storelib.RunRecord]:
        """`run --needed`: the runs that make a run of `spec` needless (guildd.needed)."""
        flags = convert.json_object(spec.flags_json, "flags")
        return await self.runtime.io(needed.find, self.store, self.run_dir, spec.op_name, spec.opref, flags)

    async def batch_needed(self, req: convert.BatchStart) -> list[storelib.RunRecord]:
        """`run --needed` for a batch (see restarts.batch_needed)."""
        return await restarts.batch_needed(self, req)

    async def restart_needed(self, req: convert.Restart) -> list[storelib.RunRecord]:
        """`run --needed` for a restart (see restarts.restart_needed)."""
        return await restarts.restart_needed(self, req)

    async def start_batch(self, req: convert.BatchStart, user: str) -> storelib.RunRecord:
        """Creates a batch run and starts its loop (or stages it)."""
        return await restarts.start_batch(self, req, user)

    async def start_proto_run(self, req: convert.ProtoStart, user: str) -> storelib.RunRecord:
        """A new run from an earlier run's operation, flags and source (Guild's --proto)."""
        return await restarts.start_proto_run(self, req, user)

    async def restart_run(self, req: convert.Restart, user: str) -> tuple[storelib.RunRecord, int]:
        """Starts a run again (see restarts.restart_run); returns it and its output's size before."""
        return await restarts.restart_run(self, req, user)

    async def create_run(self, spec: pb.RunSpec, user: str, status: str, extra_files: Sequence[tuple[str, bytes]] = (),
                         extra_attrs: Optional[dict[str, Any]] = None,
                         made: Optional[premadelib.Premade] = None) -> tuple[storelib.RunRecord, opconfig.OpConfig, dict[str, Any]]:
        """Writes a new run's dir from its spec (or finishes `made`, premade from it) and
        indexes it with its first `status` (staged or pending); either both are done or
        neither (see _create). Returns its index record, its OpConfig and its flag values.
        `extra_files` ((path under .guild, bytes)) and `extra_attrs` are written with it."""
        try:
            flag_values = convert.json_object(spec.flags_json, "flags")
            user_flags = convert.json_object(spec.user_flags_json, "user flags")
            config = opconfig.config_from_spec(spec)
            owner = runs.owner_named(user) if self.shared else None
            if owner is not None and spec.project_dir:
                await self.runtime.work(runs.check_project_dir, spec.project_dir, owner)
        except BaseException:
            if made is not None:
                await self.discard(made)
            raise
        run_id = made.run_id if made is not None else rundir.new_run_id()
        if made is not None and (extra_files or made.key != premadelib.spec_key(spec)):
            # made from another spec: made afresh, under its id (a parent's STARTING_FILE names it)
            await self.discard(made)
            made = None
        run_dir = self.run_dir(run_id)
        label = opconfig.render_label(config.label_template, list(spec.tags), flag_values)
        now = rundir.now_us()
        record = storelib.RunRecord(
            id=run_id,
            op_name=spec.op_name,
            opref=spec.opref,
            label=label,
            created_us=now,
            flags_json=json.dumps(flag_values),
            tags_json=json.dumps(list(spec.tags)),
            user=user,
        )
        if made is None:
            write = functools.partial(
                runs.write_new_run, run_dir, run_id, spec, config, flag_values, user_flags, label, user, now, extra_files
            )
        else:
            write = functools.partial(premadelib.finish, run_dir, flag_values, user_flags, label, now, made.digest)
        rec = await self.runtime.io(self.changing_dirs, self._create, record, status, write, extra_attrs, owner, made is not None)
        return rec, config, flag_values

    async def premake(self, spec: pb.RunSpec, user: str) -> premadelib.Premade:
        """A new run's dir made from `spec` ahead of its flag values, for start_run or
        create_run to finish (guildd.premade)."""
        return await premadelib.premake(self, spec, user)

    async def discard(self, made: premadelib.Premade) -> None:
        """Removes a premade dir that will not be finished."""
        await premadelib.discard(self, made)

    def _create(self, record: storelib.RunRecord, status: str, write: Callable[[], str],
                extra_attrs: Optional[dict[str, Any]], owner: Optional[runs.Owner] = None, premade: bool = False) -> storelib.RunRecord:
        """On the I/O thread: a new run's dir written (`write` returns its snapshot's digest;
        `premade`: the dir is made and marked already, `write` finishes it) and its first
        status indexed. On any failure (a full disk, a bad path) the half-made dir is removed:
        a run that can't be made leaves nothing behind. With an `owner` (a shared daemon), the
        fresh dir is made by the daemon and then given to the owner: every later write of the
        daemon's there is made with the owner's rights."""
        self.reserve.take()  # again, if a full disk used it up: there is room for a new run
        run_dir = self.run_dir(record.id)
        try:
            # Marked as being made until whole and indexed: a daemon killed meanwhile leaves
            # a dir that is no run, removed at the next start (guildd.catalog.half_made).
            if not premade:
                catalog.begin_making(run_dir)
            digest = write()
            if extra_attrs:
                rundir.write_attrs(run_dir, extra_attrs)
            if owner is not None:
                fsrights.chown_tree(run_dir, owner.uid, owner.gid)
            rec = self.states.apply(record.id, status, dataclasses.replace(record, digest=digest))
            catalog.made(run_dir)
            return rec
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)  # needs no space
            raise

    async def or_take_back(self, run_id: str, first_step: Awaitable[Any]) -> Any:
        """Awaits `first_step` of a run just made (queueing or starting it). If that fails (a
        full disk), the run would wait for ever: it is taken back, as if never made."""
        try:
            return await first_step
        except Exception:
            self.queue.discard(run_id)
            await self.runtime.io(self.reserve.use, self.changing_dirs, self._discard_new, run_id)
            raise

    def _discard_new(self, run_id: str) -> None:
        self.store.delete(run_id)
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    def takes_staged_now(self) -> bool:
        """Whether a pipeline or batch staged now starts at once, as queue processing would take
        it: they wait outside the queue (holding nothing themselves), so they start when staged
        while processing is on. Those staged before, and with run-once (one at a time) or a
        queue's `gpus=` (on those GPUs), are started by guildctl's `queue start`."""
        processing = self.queue.processing()
        return processing["on"] and not processing["run_once"] and not processing["gpus"]

    async def start_pipeline(self, run_id: str, steps: list, user: str) -> storelib.RunRecord:
        """Starts a pending pipeline run's loop."""
        return await pipeline.start(self.parents, run_id, steps, user)

    def resume_pipeline(self, rec: storelib.RunRecord, steps: list) -> None:
        """After a restart: a pipeline that was running goes on (see guildd.pipeline)."""
        log.info("resuming pipeline %s", rec.id[:8])
        pipeline.resume(self.parents, rec, steps)

    async def run_batch(self, run_id: str, spec: pb.BatchSpec, proto: pb.RunSpec, session_start: int, user: str) -> storelib.RunRecord:
        """Starts a pending batch run's loop."""
        rec = await self.states.transition(run_id, runstate.RUNNING)
        self._batch_loop(rec, spec, proto, session_start, user)
        return rec

    def resume_batch(self, rec: storelib.RunRecord, found: tuple[pb.BatchSpec, int, pb.RunSpec]) -> None:
        """After a restart: a batch that was running goes on (see guildd.batches); `found`:
        what batchspec.read_spec read from its dir."""
        spec, session_start, proto = found
        self._batch_loop(rec, spec, proto, session_start, rec.user)
        log.info("resuming batch %s", rec.id[:8])

    def _batch_loop(self, rec: storelib.RunRecord, spec: pb.BatchSpec, proto: pb.RunSpec, session_start: int, user: str) -> None:
        """Follows a running batch run's output and starts its loop."""
        self.followers.follow(rec.id, rec.scalar_offset)
        batch = batchlib.Batch(self.parents, rec.id, spec, proto, session_start, user)
        self.drivers.add(batch)
        self.runtime.spawn(batch.run(), name=f"batch-{rec.id[:8]}")

    async def end_parentless(self, run_id: str, exit_status: int) -> None:
        """Ends a run that has no process of its own (a pipeline, a batch): records its end,
        and moves it to the trash if it completed and asked for that (delete-on-success)."""
        await self.finish_run(run_id, exit_status)

    async def _after_ids(self, specs: Sequence[str]) -> tuple[str, ...]:
        """Full ids of the runs named by --after; an unknown one is refused."""
        out = []
        for spec in specs:
            try:
                rec = await self.runtime.io(self.store.resolve, spec)
            except errors.NotFound:
                raise errors.InvalidArgument(f"--after {spec}: no such run") from None
            out.append(rec.id)
        return tuple(out)

    async def start_queued(self, starts: Sequence[queuelib.Placed]) -> dict[str, Exception]:
        """Starts runs the queue placed: those with no dependencies to resolve all in one trip
        to the I/O thread, as this is the queue's hot path. `starts`: (run_id, env, gpu_env,
        prepare), where prepare(run_dir) runs first on the I/O thread (the queue records its
        grant) and returns the run's stop-after. A run's op, flags and environment come from
        its attrs (the environment given when it was queued, if the daemon still has it).
        Returns {run_id: exception} for the runs that could not start."""

        def launch_all() -> list[tuple[str, Any]]:
            out: list[tuple[str, Any]] = []
            for run_id, env, gpu_env, prepare in starts:
                try:
                    out.append((run_id, self._launch_queued(run_id, env, gpu_env, prepare)))
                except Exception as e:  # noqa: BLE001 - one run's failure doesn't stop the others
                    out.append((run_id, e))
            return out

        failed: dict[str, Exception] = {}
        for run_id, result in await self.runtime.io(launch_all):
            try:
                if isinstance(result, Exception):
                    raise result
                if result[0] == "resolve":
                    await self.launch(run_id, *result[1:])  # (config, flags, env, stop_after, staged, granted GPUs)
                else:
                    self._started(run_id, *result[1:])
            except Exception as e:  # noqa: BLE001 - reported to the queue, which goes on
                failed[run_id] = e
                # Not left staged or pending (damaged attrs, say): it would wait for ever.
                await self.end_damaged(run_id, e, "when the queue started it")
        return failed

    def _launch_queued(self, run_id: str, env: Optional[dict[str, str]], gpu_env: dict[str, str],
                       prepare: Callable[[StrPath], float]) -> tuple[Any, ...]:
        """On the I/O thread: a queued run's start, up to its shim (see start_queued)."""
        run_dir = self.run_dir(run_id)
        with fsrights.as_owner_of(run_dir):
            stop_after = prepare(run_dir)
            attrs = _read_attrs(run_dir, ("op", "flags", "env"))
        config = opconfig.OpConfig.for_attr(attrs.get("op"))
        flag_values = dict(attrs.get("flags") or {})
        base_env = dict(env if env is not None else attrs.get("env") or {})
        base_env.update(gpu_env)
        staged = runstate.existing(self.store, run_id).status == runstate.STAGED
        if config.requires:  # resolved on the event loop and a worker thread first
            return ("resolve", config, flag_values, base_env, stop_after, staged, gpu_env)
        return ("spawned", config, *self._spawn(run_id, config, flag_values, base_env, stop_after, staged, gpu_env))

    async def launch(self, run_id: str, config: opconfig.OpConfig, flag_values: dict[str, Any], env: dict[str, str],
                     stop_after: float, staged: bool = False, granted: Optional[dict[str, str]] = None) -> storelib.RunRecord:
        """Starts a pending (or staged) run's process: in one trip to the I/O thread once its
        dependencies are resolved. `granted`: the environment of the GPUs the queue granted
        it (queue.gpu_env), none when not given."""
        if config.requires:
            if staged:
                await self.states.transition(run_id, runstate.PENDING)
                staged = False
            flag_values = await upstream.resolve_requires(
                self.runtime, self.states, self.store, self.reserve, self.home, run_id, config, flag_values
            )
        spawned = await self.runtime.io(self._spawn, run_id, config, flag_values, env, stop_after, staged, granted or {})
        return self._started(run_id, config, *spawned)

    def _started(self, run_id: str, config: opconfig.OpConfig, rec: storelib.RunRecord, shim: Optional[execlib.Shim],
                 error: Optional[BaseException]) -> storelib.RunRecord:
        """After _spawn: the run is running (on Ray: pending until its job runs) and followed,
        or an error (raised)."""
        if error is not None:
            if diskspace.is_full(error):
                raise diskspace.full_error(self.home, error, f"cannot start run {run_id[:8]}") from error
            raise errors.FailedPrecondition(f"cannot start run {run_id[:8]}: {error}") from error
        assert shim is not None  # started: _spawn returns no error without it
        self.adopt(run_id, shim.pid, rec.scalar_offset, config.output_scalars, pending=bool(config.executor))
        return rec

    def adopt(self, run_id: str, pid: int, scalar_offset: int, scalar_config: Any = None, pending: bool = False) -> None:
        """A running run's process (its shim's, or its own when adopted after a restart) is
        followed, watched and stoppable. `pending`: a Ray run whose job has not run yet, which
        is running once its follower sees the job run (outputs.Follower, RunStates.begin)."""
        self.followers.follow(run_id, scalar_offset, scalar_config)
        if pending:
            self.followers.when_job_runs(run_id, functools.partial(self._job_started, run_id))
        self.drivers.add(ShimDriver(run_id, self.executor.signal))
        self.executor.watch(run_id, pid)

    def _job_started(self, run_id: str) -> None:
        """A pending Ray run's job runs: the run is running (unless its end came first)."""
        self.runtime.spawn(self.runtime.io(self.states.begin, run_id), name=f"begin-{run_id[:8]}")

    async def reattach(self, rec: storelib.RunRecord, scalar_config: Any) -> bool:
        """After a restart: a run on Ray (running, or pending for its job) whose shim and
        follower are gone gets a new shim whose follower attaches to its job
        (guildd.rayjobs.reattach_cmd); False for any other run."""
        shim = await self.runtime.io(self._reattach, rec.id)
        if shim is None:
            return False
        self.adopt(rec.id, shim.pid, rec.scalar_offset, scalar_config, pending=rec.status == runstate.PENDING)
        return True

    def _reattach(self, run_id: str) -> Optional[execlib.Shim]:
        launch = runs.reattach_launch(self.run_dir(run_id), self.shared)
        if launch is None:
            return None
        shim = self.executor.shims.spawn(launch)
        self.store.update(run_id, shim_pid=shim.pid, shim_started=shim.started)
        return shim

    def _spawn(self, run_id: str, config: opconfig.OpConfig, flag_values: dict[str, Any], env: dict[str, str], stop_after: float,
               staged: bool, granted: dict[str, str]) -> tuple[storelib.RunRecord, Optional[execlib.Shim], Optional[BaseException]]:
        """On the I/O thread: records the command and environment, moves the run to running
        and starts its shim. A run on Ray stays pending, its shim started: it is running when
        its job runs (see adopt). Returns (record, shim, None), or (record, None, error) when it
        could not start (the run is then an error, never left pending: a full disk too). In a
        shared daemon the shim runs as the run dir's owner, never as root, and the run sees
        only the GPUs `granted` (unless the daemon leaves GPUs unconfined)."""
        run_dir = self.run_dir(run_id)
        try:
            owner = runs.owner(os.lstat(run_dir).st_uid) if self.shared else None
            with fsrights.as_owner_of(run_dir):
                launch = runs.prepare_launch(run_dir, run_id, config, flag_values, env, self.home, stop_after, owner,
                                             granted if self.confine_gpus else None)
            if not config.executor:
                self.states.apply(run_id, runstate.RUNNING, via=runstate.PENDING if staged else None)
            elif staged:
                self.states.apply(run_id, runstate.PENDING)
        except Exception as e:  # noqa: BLE001 - the index still has it pending (or staged)
            return self.reserve.use(self.states.apply, run_id, runstate.ERROR, via=runstate.PENDING if staged else None), None, e
        try:
            shim = self.executor.shims.spawn(launch)
        except OSError as e:
            rec, _delete = self.reserve.use(self.states.end, run_id, False, 1)
            return rec, None, e
        self.store.update(run_id, shim_pid=shim.pid, shim_started=shim.started)
        return runstate.existing(self.store, run_id), shim, None

    def on_shim_exit(self, run_id: str) -> None:
        """The Executor's news that a run's shim is gone."""
        self.queue.release(run_id)  # its process is gone: what it held is free now
        self.runtime.spawn(self._finish_or_end(run_id), name=f"finish-{run_id[:8]}")

    async def _finish_or_end(self, run_id: str) -> None:
        try:
            await self.finish_run(run_id)
        except Exception as e:  # noqa: BLE001 - a run whose process is gone never stays running
            await self.end_damaged(run_id, e, "when its process ended")

    async def finish_run(self, run_id: str, exit_status: Optional[int] = None) -> None:
        """Records the end of a run whose process is gone (or, given its `exit_status`, of a
        run with no process of its own). A full disk doesn't lose it: the daemon's reserve
        is freed for it, and when even that is not enough it is tried again in the
        background until it goes through."""
        # Not cut by a shutdown: an end recorded but its output's last scalars not indexed
        # would stay so (the next daemon trusts a cleanly closed index).
        if not await self.runtime.critical(self._record_end(run_id, exit_status)):
            self.runtime.spawn(self._record_end_later(run_id, exit_status), name=f"end-{run_id[:8]}")

    async def _record_end(self, run_id: str, exit_status: Optional[int]) -> bool:
        """True once the run's end is recorded; False when the disk has no room for it yet."""
        driver = self.drivers.get(run_id)
        stopping = driver is not None and driver.stopping
        if self.queue.preemptions.ended(run_id, stopping):
            # Preempted (guildd.requeue): its output indexed, then pending again in the queue.
            await self.followers.finish(run_id)
            self.drivers.pop(run_id)
            await self.queue.requeue(run_id)
            return True
        try:
            rec, delete = await self.runtime.io(self.reserve.use, self.states.end, run_id, stopping, exit_status)
        except Exception as e:
            if not diskspace.is_full(e):
                raise
            log.warning("run %s ended, but the disk under %s is full (%s): its end is recorded once there is room",
                        run_id[:8], self.home, e)
            return False
        if rec.status == runstate.ERROR and await self.runtime.io(diskspace.short, self.home):
            await self.runtime.io(self._note_full_disk, run_id)
        self.drivers.pop(run_id)
        self.queue.release(run_id)
        await self._ended(run_id, rec, delete)
        return True

    def _note_full_disk(self, run_id: str) -> None:
        """Says why a run that failed on a full disk failed, in its output (where the user
        looks; its process's own last words may not have fitted) and in the log."""
        note = diskspace.ended_note(self.home)
        log.warning("run %s: error; %s", run_id[:8], note)
        run_dir = self.run_dir(run_id)
        try:
            with fsrights.open_as_owner(run_dir, rundir.output_path(run_dir), "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(size - 1, 0))
                cut = f.read(1) not in (b"", b"\n")  # its last line cut short: the note starts a line of its own
            outputs.append_line(run_dir, ("\n" if cut else "") + f"guildd: {note}")
        except OSError as e:
            log.warning("run %s: cannot add why it ended to its output: %s", run_id[:8], daemonlog.describe(e))

    async def _record_end_later(self, run_id: str, exit_status: Optional[int]) -> None:
        wait = END_RETRY_SECONDS[0]
        while True:
            await asyncio.sleep(wait)
            if await self._record_end(run_id, exit_status):
                return
            wait = min(wait * 2, END_RETRY_SECONDS[1])

    async def _ended(self, run_id: str, rec: storelib.RunRecord, delete: bool) -> None:
        """After RunStates.end: the rest of the output indexed, watchers told, and the run
        moved to the trash if `delete`."""
        # The end is recorded at once (a waiting `guildctl run` returns); the rest of the
        # output's scalars are indexed after, and readers of scalars wait for that (settle).
        await self.followers.finish(run_id)
        self.states.wake(run_id)
        if delete:
            log.info("run %s completed: deleting it (delete-on-success)", run_id[:8])
            await self.delete_runs([rec], False)

    async def end_damaged(self, run_id: str, e: BaseException, when: str) -> None:
        """Ends a run the daemon could not take back or go on with (`when`: at start-up, when
        the queue started it, when its process ended): status error, and why in the log and at
        the end of the run's output. Each step is tried on its own: the run dir may refuse
        writes. A run whose end is recorded already is left as it is."""
        reason = daemonlog.describe(e)
        self.drivers.pop(run_id)
        await self.followers.drop(run_id)
        current = await self.runtime.io(self.store.get, run_id)
        if current is None:
            return  # gone (its dir removed by hand: forgotten)
        if current.status in runstate.ENDED:
            # It failed after its end was recorded (indexing the rest of its output, say): said, never silent.
            log.error("run %s: failed %s, after its end was recorded: %s", run_id[:8], when, reason,
                      exc_info=None if isinstance(e, errors.GuildError) else e)
            return
        log.error("run %s: cannot go on with it %s (%s): marking it error", run_id[:8], when, reason,
                  exc_info=None if isinstance(e, errors.GuildError) else e)
        try:
            await self.runtime.io(outputs.append_line, self.run_dir(run_id), f"guildd: run ended as an error {when}: {reason}")
        except Exception as write_error:  # noqa: BLE001 - the index still records the end
            log.error("run %s: cannot record its end in its run dir: %s", run_id[:8], daemonlog.describe(write_error))
        try:
            await self.runtime.io(self.states.fail, run_id)
        except Exception:  # noqa: BLE001 - the daemon serves on; the run stays as it was listed
            log.exception("run %s: cannot mark it error", run_id[:8])

    async def stop_runs(self, specs: Sequence[str]) -> list[storelib.RunRecord]:
        """Stops the runs named (all running runs when none): each through its driver, or, staged
        or pending and not started, ended as terminated."""
        if specs:
            recs = [await self.runtime.io(self.store.resolve, s) for s in specs]
        else:
            recs, _ = await self.runtime.io(self.store.list, (runstate.RUNNING,))
        stopped = []
        for rec in recs:
            if self.drivers.stop(rec.id):
                stopped.append(rec)
            elif rec.status in (runstate.STAGED, runstate.PENDING) and rec.id not in self.followers:
                self.queue.discard(rec.id)
                stopped.append(await self.states.transition(rec.id, runstate.TERMINATED))
        return stopped


def _read_attrs(run_dir: StrPath, names: Sequence[str]) -> dict[str, Any]:
    """The attrs a run's start reads from its dir (op, flags, env), with the caller's rights."""
    return {name: rundir.read_attr(run_dir, name) for name in names}
