"""The daemon's core: runs are created, started, stopped, restarted and watched here.

One event loop owns the state; blocking work goes to two threads: `io` (the index and run-dir
writes, one SQLite connection) and `work` (scalar parsing and event files, kept apart so a
burst of output never delays a request). Every background task is owned by the Daemon and
cancelled on shutdown.
"""

import asyncio
import concurrent.futures
import dataclasses
import functools
import json
import logging
import os
import pathlib
import shutil

from guild_common import errors, home as homelib, opconfig, rundir, sourcecode
from guild_common.pb import guild_pb2 as pb
from guildd import batches as batchlib, compare, deps, diskspace, executor as execlib, manage, outputs, pipeline, queue as queuelib, reconcile, resources as resourceslib, runs, runstate, selection, shim as shimlib, store as storelib

log = logging.getLogger("guildd")

CHANGE_WAIT = 0.5  # a watcher re-checks at least this often
END_RETRY_SECONDS = (1.0, 30.0)  # first and longest wait between tries to record an end a full disk held up


class Daemon:
    def __init__(self, guild_home, queue_always_on=False):
        self.resources = resourceslib.for_env(os.environ)  # GPUs: NVML, simulated, or none
        self.home = guild_home
        self.runs_dir = homelib.runs_dir(guild_home)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = homelib.log_path(guild_home)
        self.store = storelib.Store(homelib.index_path(guild_home), self.runs_dir)
        self.reserve = diskspace.Reserve(guild_home)  # room to record runs' ends on a full disk (I/O thread)
        self.reserve.take()
        self.user = runs.current_user()
        self.started_us = rundir.now_us()
        self.executor = execlib.Executor(self._on_shim_exit, self.log_path)
        self.followers = {}
        self.stopping = set()  # runs a stop was sent to
        self.pipelines = {}  # pipeline run id -> its running step's run id (or None)
        self.batches = {}  # batch run id -> its running guildd.batches.Batch
        self.dir_mtimes = {}  # runs dir / trash mtimes the index was last synced at
        self.ready = asyncio.Event()  # set once the index is reconciled with the run dirs
        self.state = "starting"
        self._changes = {}
        self._tasks = set()
        self._criticals = set()  # see critical()
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="guildd-io")
        self._work = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="guildd-scalars")
        self.queue = queuelib.Queue(self, queue_always_on)

    # Threads

    async def io(self, fn, *args, **kw):
        return await asyncio.get_running_loop().run_in_executor(self._io, functools.partial(fn, *args, **kw))

    async def work(self, fn, *args, **kw):
        return await asyncio.get_running_loop().run_in_executor(self._work, functools.partial(fn, *args, **kw))

    def spawn(self, coro, name):
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def critical(self, coro):
        """Awaits `coro`, which runs to its end even when the shutdown cancels the caller
        (close() waits for it): for work that must not be cut in half, such as a run started
        but not yet linked into its batch or pipeline (it would run twice after a restart), or
        a batch's end recorded but not its delete-on-success."""
        task = asyncio.ensure_future(coro)
        self._criticals.add(task)
        task.add_done_callback(self._criticals.discard)
        return asyncio.shield(task)

    def _task_done(self, task):
        self._tasks.discard(task)
        if not task.cancelled() and task.exception():
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    # The state machine's one writer

    async def transition(self, run_id, new, record=None, **fields):
        """Moves a run to status `new` (see guildd.runstate), in the run dir and the index,
        and wakes its watchers."""
        rec = await self.io(self._apply, run_id, new, record, **fields)
        self._applied(run_id, new)
        return rec

    def _apply(self, run_id, new, record=None, via=None, exit_status=True, **fields):
        """A transition's writes (on the I/O thread); `_applied` then tells the event loop.
        With `via`, two edges at once (old -> via -> new), each checked, writing only what
        the second leaves (the queue starting a staged run: staged -> pending -> running).
        `exit_status=False`: see runstate.apply_to_rundir."""
        current = self.store.get(run_id)
        old = current.status if current else None
        if via is not None:
            runstate.check_edge(old, via)
            runstate.check_edge(via, new)
        else:
            runstate.check_edge(old, new)
        now = rundir.now_us()
        run_dir = self.run_dir(run_id)
        runstate.apply_to_rundir(run_dir, old, new, now, exit_status)
        updates = dict(fields, status=new)
        if new in (runstate.RUNNING, runstate.STAGED):
            updates["started_us"] = now
        if new in runstate.ENDED:
            exit_status = rundir.read_attr(run_dir, "exit_status")
            updates["exit_status"] = exit_status if isinstance(exit_status, int) else None
            updates["stopped_us"] = int(rundir.read_attr(run_dir, "stopped") or now)
            updates["shim_pid"] = 0
        if new == runstate.PENDING and old in runstate.ENDED:
            updates.update(exit_status=None, stopped_us=0)
        if current is None:
            self.store.insert(dataclasses.replace(record, **updates))
        else:
            self.store.update(run_id, **updates)
        return self.store.get(run_id)

    def _applied(self, run_id, new):
        log.info("run %s: %s", run_id[:8], new)
        self.wake(run_id)
        if new in runstate.ENDED:
            self.queue.kick()  # runs waiting --after this one

    def wake(self, run_id):
        event = self._changes.pop(run_id, None)
        if event is not None:
            event.set()

    async def wait_change(self, run_id, timeout=CHANGE_WAIT):
        event = self._changes.setdefault(run_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def run_dir(self, run_id):
        return homelib.run_dir(self.home, run_id)

    # Creating and starting runs

    async def start_run(self, spec, stage, user, options=None):
        """Creates a run from its spec. Staged, it goes to the queue; otherwise it starts now,
        or, when it needs GPUs or waits for other runs, waits at the head of the queue
        (status pending)."""
        if not spec.cmd_args and not spec.steps:
            raise errors.InvalidArgument("run spec has no command")
        if not spec.op_name:
            raise errors.InvalidArgument("run spec has no operation name")
        opconfig.check_spec(spec)
        request = queuelib.request_for(spec.resources)
        await self.queue.check_request(request)
        after_ids = await self._after_ids(options.after if options else ())
        queued = stage or request.wants_gpus or after_ids or bool(options and options.queue)
        if spec.steps:
            queued = False  # a pipeline holds nothing itself: its steps queue for what they need
        rec, config, flag_values = await self.create_run(spec, user, runstate.STAGED if stage else runstate.PENDING)
        run_id = rec.id
        if stage and spec.steps:
            # Its steps kept for `--start` or queue processing to start it later.
            await self._or_take_back(run_id, pipeline.stage(self, run_id, list(spec.steps)))
            if self._takes_staged_now():  # answered as staged, as the queue takes it
                await self.transition(run_id, runstate.PENDING)
                await pipeline.start(self, run_id, list(spec.steps), user)
            return rec
        if queued:
            add = self.queue.add(run_id, user, spec.resources, options, not stage, dict(spec.env), spec.stop_after, after_ids)
            await self._or_take_back(run_id, add)
            return rec
        if spec.steps:
            return await self._or_take_back(run_id, pipeline.start(self, run_id, list(spec.steps), user))
        env = {**spec.env, **queuelib.gpu_env(spec.resources.no_gpus, ())}
        return await self._launch(run_id, config, flag_values, env, spec.stop_after)

    async def create_run(self, spec, user, status, extra_files=(), extra_attrs=None):
        """Writes a new run's dir from its spec and indexes it with its first `status`
        (staged or pending); either both are done or neither (see _create). Returns its
        index record, its OpConfig and its flag values. `extra_files` ((path under .guild,
        bytes)) and `extra_attrs` are written with it."""
        flag_values = _json_object(spec.flags_json, "flags")
        user_flags = _json_object(spec.user_flags_json, "user flags")
        config = opconfig.OpConfig(
            cmd_args=tuple(spec.cmd_args),
            flags_dest=spec.flags_dest or "args",
            flag_defs={d.name: opconfig.flagdef_from_pb(d) for d in spec.flag_defs},
            op_env=dict(spec.op_env),
            label_template=spec.label or None,
            python_exe=spec.python_exe,
            guild_op=spec.guild_op,
            cmd_dir=spec.cmd_dir,
            project_dir=spec.project_dir,
            output_scalars=json.loads(spec.output_scalars_json) if spec.output_scalars_json else None,
            requires=tuple(json.loads(spec.requires_json)) if spec.requires_json else (),
            sourcecode_dest=spec.sourcecode_dest,
            delete_on_success=spec.delete_on_success,
            compare=tuple(spec.compare),
            env_secrets=tuple(spec.env_secrets),
            stoppable=spec.stoppable,
        )
        run_id = rundir.new_run_id()
        run_dir = self.run_dir(run_id)
        label = opconfig.render_label(config.label_template, list(spec.tags), flag_values)
        now = rundir.now_us()
        record = storelib.RunRecord(
            id=run_id,
            op_name=spec.op_name,
            opref=spec.opref,
            status="",
            label=label,
            created_us=now,
            started_us=0,
            stopped_us=0,
            exit_status=None,
            pid=0,
            shim_pid=0,
            shim_started=0.0,
            flags_json=json.dumps(flag_values),
            tags_json=json.dumps(list(spec.tags)),
            user=user,
            scalar_offset=0,
        )
        write = functools.partial(
            runs.write_new_run, run_dir, run_id, spec, config, flag_values, user_flags, label, user, now, extra_files
        )
        rec = await self.io(self._changing_dirs, self._create, record, status, write, extra_attrs)
        self._applied(run_id, status)
        return rec, config, flag_values

    def _create(self, record, status, write, extra_attrs):
        """On the I/O thread: a new run's dir written (`write` returns its snapshot's digest)
        and its first status indexed. On any failure (a full disk, a bad path) the half-made
        dir is removed: a run that can't be made leaves nothing behind."""
        self.reserve.take()  # again, if a full disk used it up: there is room for a new run
        try:
            digest = write()
            if extra_attrs:
                rundir.write_attrs(self.run_dir(record.id), extra_attrs)
            return self._apply(record.id, status, dataclasses.replace(record, digest=digest))
        except BaseException:
            shutil.rmtree(self.run_dir(record.id), ignore_errors=True)  # needs no space
            raise

    async def _or_take_back(self, run_id, first_step):
        """Awaits `first_step` of a run just made (queueing or starting it). If that fails (a
        full disk), the run would wait for ever: it is taken back, as if never made."""
        try:
            return await first_step
        except Exception:
            self.queue.discard(run_id)
            await self.io(self.reserve.use, self._changing_dirs, self._discard_new, run_id)
            raise

    def _discard_new(self, run_id):
        self.store.delete(run_id)
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    # Batches

    async def start_batch(self, req, user):
        """Creates a batch run and starts its loop (or stages it)."""
        spec = pb.BatchSpec()
        spec.CopyFrom(req.batch)
        await asyncio.get_running_loop().run_in_executor(None, batchlib.check, spec)
        opconfig.check_spec(req.proto)
        request = queuelib.request_for(req.proto.resources)
        await self.queue.check_request(request)
        if not spec.HasField("random_seed"):
            spec.random_seed = batchlib.draw_seed()
        proto = req.proto
        # Its trials are made later: refuse a snapshot they could not write now.
        await self.io(runs.check_snapshot, proto, self.run_dir(rundir.new_run_id()))
        kind, _, name = proto.opref.rpartition(" ")
        values = json.loads(spec.values_json) if spec.values_json else _batch_values(json.loads(spec.trials_json or "[]"))
        batch_run = pb.RunSpec(
            op_name=req.batch_op_name,
            opref=f"{kind} {name}{req.batch_op_name[len(proto.op_name):]}",
            flags_json=json.dumps(values),
            user_flags_json=json.dumps(values),
            env=dict(proto.env),
            cmd_dir=proto.cmd_dir,
            project_dir=proto.project_dir,
            guild_op=req.batch_op_name,
            label=req.label,
            tags=list(req.tags),
            python_exe=proto.python_exe,
            run_params_json=proto.run_params_json,
            delete_on_success=spec.kind in ("grid", "random") and not spec.keep_batch,
        )
        rec, _config, _flags = await self.create_run(
            batch_run,
            user,
            runstate.STAGED if req.stage else runstate.PENDING,
            batchlib.spec_files(spec, proto),
            {"max_trials": spec.max_trials, "random_seed": spec.random_seed},
        )
        if req.stage:
            if self._takes_staged_now():  # answered as staged, as the queue takes it
                await self.transition(rec.id, runstate.PENDING)
                await self._run_batch(rec.id, spec, proto, 0, user)
            return rec
        return await self._or_take_back(rec.id, self._run_batch(rec.id, spec, proto, 0, user))

    def _takes_staged_now(self):
        """Whether a pipeline or batch staged now starts at once, as queue processing would take
        it: they wait outside the queue (holding nothing themselves), so they start when staged
        while processing is on. Those staged before, and with run-once (one at a time) or a
        queue's `gpus=` (on those GPUs), are started by guildctl's `queue start`."""
        processing = self.queue.processing()
        return processing["on"] and not processing["run_once"] and not processing["gpus"]

    async def _run_batch(self, run_id, spec, proto, session_start, user):
        rec = await self.transition(run_id, runstate.RUNNING)
        self._batch_loop(rec, spec, proto, session_start, user)
        return rec

    async def resume_batch(self, rec):
        """After a restart: a batch that was running goes on (see guildd.batches)."""
        spec, session_start, proto = await self.io(batchlib.read_spec, self.run_dir(rec.id))
        self._batch_loop(rec, spec, proto, session_start, rec.user)
        log.info("resuming batch %s", rec.id[:8])

    def _batch_loop(self, rec, spec, proto, session_start, user):
        """Follows a running batch run's output and starts its loop."""
        self.follow(rec.id, rec.scalar_offset)
        batch = batchlib.Batch(self, rec.id, spec, proto, session_start, user)
        self.batches[rec.id] = batch
        self.spawn(batch.run(), name=f"batch-{rec.id[:8]}")

    async def _restart_batch(self, rec, req, found):
        """A new session of a batch: new trials (the earlier ones inform an optimizer), with
        the flag values, optimizer flags and trial count given, else the batch's own."""
        spec, _session, proto = found
        run_dir = self.run_dir(rec.id)
        overrides = _json_object(req.flags_json, "flags")
        if overrides:
            values = {**json.loads(rec.flags_json or "{}"), **overrides}
            if spec.kind == "grid":
                from guild_common import trials as trialslib

                spec.trials_json = json.dumps(trialslib.grid(trialslib.expand_values(values)) or [values])
            else:
                spec.values_json = json.dumps(values)
        if req.optimizer_flags_json:
            spec.optimizer_flags_json = json.dumps({**json.loads(spec.optimizer_flags_json or "{}"), **_json_object(req.optimizer_flags_json, "optimizer flags")})
        if req.max_trials:
            spec.max_trials = req.max_trials
        await asyncio.get_running_loop().run_in_executor(None, batchlib.check, spec)
        session_start = len(await self.io(batchlib.trial_ids, run_dir)) if rec.status != runstate.STAGED else 0
        await self.io(batchlib.write_spec, run_dir, spec, proto, session_start)
        flags = json.loads(rec.flags_json or "{}")
        if overrides:
            flags.update(overrides)
            await self.io(rundir.write_attr, run_dir, "flags", flags)
        offset = rundir.output_size(run_dir)
        await self.transition(rec.id, runstate.PENDING, flags_json=json.dumps(flags))
        return await self._run_batch(rec.id, spec, proto, session_start, rec.user or ""), offset

    async def end_parentless(self, run_id, exit_status):
        """Ends a run that has no process of its own (a pipeline, a batch): records its end,
        and moves it to the trash if it completed and asked for that (delete-on-success)."""
        await self.finish_run(run_id, exit_status)

    async def _after_ids(self, specs):
        """Full ids of the runs named by --after; an unknown one is refused."""
        out = []
        for spec in specs:
            try:
                rec = await self.io(self.store.resolve, spec)
            except errors.NotFound:
                raise errors.InvalidArgument(f"--after {spec}: no such run") from None
            out.append(rec.id)
        return tuple(out)

    async def start_queued(self, starts):
        """Starts runs the queue placed: those with no dependencies to resolve all in one trip
        to the I/O thread, as this is the queue's hot path. `starts`: (run_id, env, gpu_env,
        prepare), where prepare(run_dir) runs first on the I/O thread (the queue records its
        grant) and returns the run's stop-after. A run's op, flags and environment come from
        its attrs (the environment given when it was queued, if the daemon still has it).
        Returns {run_id: exception} for the runs that could not start."""

        def launch_all():
            out = []
            for run_id, env, gpu_env, prepare in starts:
                try:
                    out.append((run_id, self._launch_queued(run_id, env, gpu_env, prepare)))
                except Exception as e:  # noqa: BLE001 - one run's failure doesn't stop the others
                    out.append((run_id, e))
            return out

        failed = {}
        for run_id, result in await self.io(launch_all):
            try:
                if isinstance(result, Exception):
                    raise result
                if result[0] == "resolve":
                    await self._launch(run_id, *result[1:])
                else:
                    self._started(run_id, *result[1:])
            except Exception as e:  # noqa: BLE001 - reported to the queue, which goes on
                failed[run_id] = e
                # Not left staged or pending (damaged attrs, say): it would wait for ever.
                await reconcile.end_damaged(self, run_id, e, "when the queue started it")
        return failed

    def _launch_queued(self, run_id, env, gpu_env, prepare):
        """On the I/O thread: a queued run's start, up to its shim (see start_queued)."""
        run_dir = self.run_dir(run_id)
        stop_after = prepare(run_dir)
        attrs = {name: rundir.read_attr(run_dir, name) for name in ("op", "flags", "env")}
        config = opconfig.OpConfig.for_attr(attrs.get("op"))
        flag_values = dict(attrs.get("flags") or {})
        base_env = dict(env if env is not None else attrs.get("env") or {})
        base_env.update(gpu_env)
        staged = self.store.get(run_id).status == runstate.STAGED
        if config.requires:  # resolved on the event loop and a worker thread first
            return ("resolve", config, flag_values, base_env, stop_after, staged)
        return ("spawned", config, *self._spawn(run_id, config, flag_values, base_env, stop_after, staged))

    async def _launch(self, run_id, config, flag_values, env, stop_after, staged=False):
        """Starts a pending (or staged) run's process: in one trip to the I/O thread once its
        dependencies are resolved."""
        if config.requires:
            if staged:
                await self.transition(run_id, runstate.PENDING)
                staged = False
            flag_values = await self._resolve_requires(run_id, config, flag_values)
        return self._started(run_id, config, *await self.io(self._spawn, run_id, config, flag_values, env, stop_after, staged))

    def _started(self, run_id, config, rec, shim, error):
        """After _spawn: the run is running and followed, or an error (raised)."""
        if error is not None:
            self._applied(run_id, runstate.ERROR)
            if diskspace.is_full(error):
                raise diskspace.full_error(self.home, error, f"cannot start run {run_id[:8]}") from error
            raise errors.FailedPrecondition(f"cannot start run {run_id[:8]}: {error}") from error
        self._applied(run_id, runstate.RUNNING)
        self.follow(run_id, rec.scalar_offset, config.output_scalars)
        self.executor.watch(run_id, shim.pid)
        return rec

    def _spawn(self, run_id, config, flag_values, env, stop_after, staged):
        """On the I/O thread: records the command and environment, moves the run to running
        and starts its shim. Returns (record, shim, None), or (record, None, error) when it
        could not start (the run is then an error, never left pending: a full disk too)."""
        run_dir = self.run_dir(run_id)
        try:
            launch = runs.prepare_launch(run_dir, run_id, config, flag_values, env, self.home, stop_after)
            self._apply(run_id, runstate.RUNNING, via=runstate.PENDING if staged else None)
        except Exception as e:  # noqa: BLE001 - the index still has it pending (or staged)
            return self.reserve.use(self._apply, run_id, runstate.ERROR, via=runstate.PENDING if staged else None), None, e
        try:
            shim = self.executor.shims.spawn(launch)
        except OSError as e:
            self.reserve.use(shimlib.write_end, run_dir, 1, rundir.now_us())
            return self.reserve.use(self._apply, run_id, runstate.ERROR), None, e
        self.store.update(run_id, shim_pid=shim.pid, shim_started=shim.started)
        return self.store.get(run_id), shim, None

    async def _resolve_requires(self, run_id, config, flag_values):
        """Resolves the run's dependencies into its dir before its process starts; records
        them (attrs/deps, upstream run ids as flag values). On failure the run ends as an
        error and the caller gets the reason, naming the resource."""
        run_dir = self.run_dir(run_id)

        def log_line(line):  # `Resolving ...`: Guild logs these to stderr
            outputs.append(run_dir, (line + "\n").encode(), stderr=True)

        def find_run(op_name, spec):
            return self._io.submit(self._find_upstream, op_name, spec).result()

        already = await self.io(rundir.read_attr, run_dir, "deps")
        ctx = deps.ResolveContext(
            run_dir=str(run_dir),
            project_dir=config.project_dir,
            flags=flag_values,
            cache_dir=str(pathlib.Path(self.home) / "cache" / "resources"),
            find_run=find_run,
            log=log_line,
            python_exe=config.python_exe,
        )
        try:
            resolved = await self.work(deps.resolve, list(config.requires), ctx, skip=tuple(already or ()))
        except Exception as e:  # whatever stops resolution ends the run, never leaves it pending
            if not isinstance(e, errors.GuildError):
                log.exception("resolving dependencies of run %s", run_id[:8])
            message = f"run failed because a dependency was not met: {e}"
            try:
                await self.work(log_line, f"guildctl: {message}")
            except OSError:
                pass  # a full disk: the run still ends, as an error
            await self.io(self.reserve.use, self._apply, run_id, runstate.ERROR, exit_status=False)
            self._applied(run_id, runstate.ERROR)
            if diskspace.is_full(e):
                raise diskspace.full_error(self.home, e, "run failed because a dependency was not met") from None
            raise errors.FailedPrecondition(message) from None
        chosen = {**flag_values, **resolved.flag_values()}
        attrs = {"deps": {**(already or {}), **resolved.deps_attr()}, "flags": chosen}
        updates = {"flags_json": json.dumps(chosen)}
        if chosen != flag_values:  # the label shows the upstream runs chosen, as Guild's does
            tags = await self.io(rundir.read_attr, run_dir, "tags")
            attrs["label"] = updates["label"] = opconfig.render_label(config.label_template, list(tags or []), chosen)
        await self.io(rundir.write_attrs, run_dir, attrs)
        await self.io(self.store.update, run_id, **updates)
        return chosen

    def _find_upstream(self, op_name, spec):
        """The run an operation dependency uses: the one named, else the latest marked, else
        the latest completed run of that operation. On the I/O thread."""
        criteria = selection.Criteria(ops=(op_name,))
        if spec:
            # A full id may name any run of the op; a prefix or index only a completed one.
            if len(spec) < 32:
                criteria = dataclasses.replace(criteria, statuses=("completed",))
            rec = self.store.resolve(spec, criteria=criteria)
            return rec.id, str(manage.location(self.home, rec))
        recs, _ = self.store.select(dataclasses.replace(criteria, statuses=("completed",)))
        recs = [r for r in recs if r.op_name == op_name or r.op_name.endswith(":" + op_name)]
        chosen = next((r for r in recs if r.marked), recs[0] if recs else None)
        return (chosen.id, str(manage.location(self.home, chosen))) if chosen else None

    def follow(self, run_id, offset, scalar_config=None):
        follower = outputs.Follower(self, run_id, self.run_dir(run_id), offset, scalar_config)
        self.followers[run_id] = follower
        follower.start()

    def _on_shim_exit(self, run_id):
        self.queue.release(run_id)  # its process is gone: what it held is free now
        self.spawn(self._finish_or_end(run_id), name=f"finish-{run_id[:8]}")

    async def _finish_or_end(self, run_id):
        try:
            await self.finish_run(run_id)
        except Exception as e:  # noqa: BLE001 - a run whose process is gone never stays running
            await reconcile.end_damaged(self, run_id, e, "when its process ended")

    async def finish_run(self, run_id, exit_status=None):
        """Records the end of a run whose process is gone (or, given its `exit_status`, of a
        run with no process of its own). A full disk doesn't lose it: the daemon's reserve
        is freed for it, and when even that is not enough it is tried again in the
        background until it goes through."""
        if not await self._record_end(run_id, exit_status):
            self.spawn(self._record_end_later(run_id, exit_status), name=f"end-{run_id[:8]}")

    async def _record_end(self, run_id, exit_status):
        """True once the run's end is recorded; False when the disk has no room for it yet."""
        try:
            rec, delete = await self.io(self.reserve.use, self._finish, run_id, run_id in self.stopping, exit_status)
        except Exception as e:
            if not diskspace.is_full(e):
                raise
            log.warning("run %s ended, but the disk under %s is full (%s): its end is recorded once there is room",
                        run_id[:8], self.home, e)
            return False
        self.stopping.discard(run_id)
        self.queue.release(run_id)
        await self._ended(run_id, rec, delete)
        return True

    async def _record_end_later(self, run_id, exit_status):
        wait = END_RETRY_SECONDS[0]
        while True:
            await asyncio.sleep(wait)
            if await self._record_end(run_id, exit_status):
                return
            wait = min(wait * 2, END_RETRY_SECONDS[1])

    async def _ended(self, run_id, rec, delete):
        """After _finish: watchers told, the rest of the output indexed, and the run moved to
        the trash if `delete`."""
        self._applied(run_id, rec.status)
        # The end is recorded at once (a waiting `guildctl run` returns); the rest of the
        # output's scalars are indexed after, and readers of scalars wait for that (settle).
        follower = self.followers.get(run_id)
        if follower is not None:
            await follower.finish()
            self.followers.pop(run_id, None)
        self.wake(run_id)
        if delete:
            log.info("run %s completed: deleting it (delete-on-success)", run_id[:8])
            await self.delete_runs([rec], permanent=False)

    def _finish(self, run_id, stopping, exit_status=None):
        """On the I/O thread: a run's end as recorded in its dir (by its shim; if the shim died
        first, as well as it can be told; `exit_status` for a run with no process of its own),
        moved into the index. Returns the record and whether the run is to be deleted
        (completed, with delete-on-success)."""
        run_dir = self.run_dir(run_id)
        recorded = rundir.read_attr(run_dir, "exit_status") if exit_status is None else None
        if isinstance(recorded, int):
            exit_status = recorded
        else:
            if exit_status is None:
                # The shim died without recording an end: stopped while it was still starting
                # (it starts the process only after it can handle a stop), killed outright, or
                # out of disk space (written in place of its reserved files, if it made them).
                exit_status = -15 if stopping else 1
            shimlib.write_end(run_dir, exit_status, rundir.now_us())
        op = rundir.read_attr(run_dir, "op")
        op = op if isinstance(op, dict) else {}
        if stopping and exit_status < 0 and op.get("stoppable"):
            exit_status = 0  # stopping is how a stoppable operation ends
            rundir.write_attr(run_dir, "exit_status", 0)
        rec = self._apply(run_id, rundir.status_for_exit_status(exit_status))
        return rec, rec.status == runstate.COMPLETED and bool(op.get("delete-on-success"))

    def following(self, run_id):
        """True while a run's process may still write output (its end not yet recorded)."""
        follower = self.followers.get(run_id)
        return follower is not None and not follower.finishing

    async def settle(self, run_id):
        """Waits until an ended run's scalars are all indexed."""
        while (follower := self.followers.get(run_id)) is not None and follower.finishing:
            await self.wait_change(run_id)

    async def start_proto_run(self, req, user):
        """A new run from an earlier run's operation, flags and source (Guild's --proto)."""
        proto = await self.io(self.store.resolve, req.proto)
        run_dir = self.run_dir(proto.id)

        def read():
            attrs = rundir.read_attrs(run_dir)
            config = opconfig.OpConfig.for_attr(attrs.get("op"))
            prefix = f"{config.sourcecode_dest}/" if config.sourcecode_dest else ""
            files = []
            for path, data, mode in [] if req.sourcecode else rundir.read_sourcecode(run_dir):
                rel = path[len(prefix) :] if prefix and path.startswith(prefix) else path
                files.append(pb.SourceFile(path=rel, data=data, mode=mode))
            return attrs, config, files, rundir.read_opref(run_dir)

        attrs, config, files, opref = await self.io(read)
        overrides = _json_object(req.flags_json, "flags")
        spec = pb.RunSpec(
            op_name=proto.op_name,
            opref=opref,
            cmd_args=config.cmd_args,
            flags_dest=config.flags_dest,
            flags_json=json.dumps({**(attrs.get("flags") or {}), **overrides}),
            user_flags_json=json.dumps({**(attrs.get("user_flags") or {}), **overrides}),
            flag_defs=[opconfig.flagdef_to_pb(d) for d in config.flag_defs.values()],
            env=dict(req.env) or dict(attrs.get("env") or {}),
            op_env=config.op_env,
            sourcecode=list(req.sourcecode) or files,
            cmd_dir=config.cmd_dir,
            project_dir=config.project_dir,
            guild_op=config.guild_op,
            label=req.label,
            tags=list(req.tags),
            stop_after=req.stop_after,
            python_exe=config.python_exe,
            run_params_json=json.dumps({"proto": proto.id}),
            output_scalars_json=json.dumps(config.output_scalars) if config.output_scalars is not None else "",
            requires_json=json.dumps(list(config.requires)) if config.requires else "",
            sourcecode_dest=config.sourcecode_dest,
            delete_on_success=config.delete_on_success,
            compare=list(config.compare),
            env_secrets=list(config.env_secrets),
            stoppable=config.stoppable,
        )
        return await self.start_run(spec, req.stage, user)

    async def restart_run(self, req, user):
        rec = await self.io(self.store.resolve, req.run)
        if rec.status in runstate.ACTIVE:
            raise errors.FailedPrecondition(f"run {rec.id[:8]} is {rec.status}: stop it before restarting")
        run_dir = self.run_dir(rec.id)
        found = await self.io(batchlib.read_spec, run_dir)
        if found is not None:
            return await self._restart_batch(rec, req, found)
        steps = await self.io(pipeline.read_steps, run_dir)
        if steps is not None:  # a pipeline (a staged one, say): its steps run again
            offset = rundir.output_size(run_dir)
            await self.transition(rec.id, runstate.PENDING)
            return await pipeline.start(self, rec.id, steps, rec.user or user), offset
        attrs = await self.io(rundir.read_attrs, run_dir)
        config = opconfig.OpConfig.for_attr(attrs.get("op"))
        opconfig.check(config)
        flag_values = dict(attrs.get("flags") or {})
        flag_values.update(_json_object(req.flags_json, "flags"))
        if req.label:
            config = dataclasses.replace(config, label_template=req.label)
        tags = list(attrs.get("tags") or [])
        label = opconfig.render_label(config.label_template, tags, flag_values)
        env = dict(req.env) or dict(attrs.get("env") or {})

        def rewrite():
            # The snapshot first: its paths are checked before anything changes.
            if req.force_sourcecode:
                files = runs.snapshot_files(req.sourcecode, config.sourcecode_dest)
                written = rundir.replace_sourcecode(run_dir, files, config.sourcecode_dest)
                rundir.write_attr(run_dir, "sourcecode_digest", sourcecode.digest(run_dir, written) or "")
            rundir.write_attrs(run_dir, {"flags": flag_values, "label": label, "op": config.to_attr()})

        queued = await self.io(queuelib.read_file, run_dir)
        resources = req.resources if req.set_resources else queuelib.request_from_json((queued or {}).get("request"))
        request = queuelib.request_for(resources)
        await self.queue.check_request(request)
        await self.io(rewrite)
        offset = rundir.output_size(run_dir)
        self.queue.discard(rec.id)
        await self.transition(rec.id, runstate.PENDING, label=label, flags_json=json.dumps(flag_values))
        if request.wants_gpus:
            # Started explicitly: it goes ahead of the staged runs, and starts when its GPUs are free.
            await self.queue.add(rec.id, rec.user or user, resources, None, True, env, req.stop_after)
            return await self.io(self.store.get, rec.id), offset
        env.update(queuelib.gpu_env(resources.no_gpus, ()))
        return await self._launch(rec.id, config, flag_values, env, req.stop_after), offset

    # Stopping

    async def stop_runs(self, specs):
        if specs:
            recs = [await self.io(self.store.resolve, s) for s in specs]
        else:
            recs, _ = await self.io(self.store.list, (runstate.RUNNING,))
        stopped = []
        for rec in recs:
            if pipeline.stop(self, rec.id) or batchlib.stop(self, rec.id):
                stopped.append(rec)
            elif rec.status == runstate.RUNNING and self.executor.signal(rec.id):
                self.stopping.add(rec.id)
                stopped.append(rec)
            elif rec.status in (runstate.STAGED, runstate.PENDING) and rec.id not in self.followers:
                self.queue.discard(rec.id)
                stopped.append(await self.transition(rec.id, runstate.TERMINATED))
        return stopped

    # Reading

    async def get_run(self, spec, statuses=(), criteria=None):
        def get():
            self._sync_index()
            return self.store.resolve(spec, statuses, criteria)

        return await self.io(get)

    async def list_runs(self, statuses, limit):
        return await self.select(selection.Criteria(statuses=tuple(statuses)), limit=limit)

    async def select(self, criteria, specs=(), limit=0, order=None, archive=""):
        """Runs by filter and run specs, latest first (or by `order`), and their total."""

        def get():
            if archive:
                return self._archive_store(archive).select(criteria, specs, limit, order)
            self._sync_index()
            return self.store.select(criteria, specs, limit, order)

        return await self.io(get)

    def _archive_store(self, archive):
        """An in-memory index of an export directory, so its runs list and filter like ours."""
        archived = storelib.Store(":memory:", archive)
        for run_dir in manage.archive_run_dirs(archive):
            manage.index_run_dir(archived, run_dir, execlib.pid_alive)
        return archived

    def _changing_dirs(self, fn, *args):
        """Runs `fn` (which adds or removes run dirs) and keeps the index's view of the dirs
        current, so our own changes don't look like changes made by hand."""
        before = self._mtimes()
        result = fn(*args)
        after = self._mtimes()
        for key, mtime in before.items():
            if self.dir_mtimes.get(key) == mtime:
                self.dir_mtimes[key] = after[key]
        return result

    def _mtimes(self):
        out = {}
        for deleted, base in ((False, self.runs_dir), (True, manage.trash_runs_dir(self.home))):
            try:
                out[deleted] = os.stat(base).st_mtime_ns
            except FileNotFoundError:
                out[deleted] = 0
        return out

    # Managing runs

    async def label_runs(self, recs, action, value):
        return await self.io(manage.label_runs, self.store, self.home, recs, action, value)

    async def mark_runs(self, recs, clear):
        return await self.io(manage.mark_runs, self.store, self.home, recs, clear)

    async def delete_runs(self, recs, permanent):
        for rec in recs:
            self.queue.discard(rec.id)
        return await self.io(self._changing_dirs, manage.delete_runs, self.store, self.home, recs, permanent)

    async def restore_runs(self, recs):
        return await self.io(self._changing_dirs, manage.restore_runs, self.store, self.home, recs)

    async def purge_runs(self, recs):
        return await self.io(self._changing_dirs, manage.purge_runs, self.store, self.home, recs)

    async def export_runs(self, recs, dest, move):
        return await self.io(self._changing_dirs, manage.export_runs, self.store, self.home, recs, dest, move)

    async def import_runs(self, archive, specs, criteria, move):
        def do():
            archived = self._archive_store(archive)
            recs, _ = archived.select(criteria, specs)
            dirs = [pathlib.Path(archive) / r.id for r in recs]
            return manage.import_runs(self.store, self.home, dirs, move, execlib.pid_alive)

        return await self.io(self._changing_dirs, do)

    async def list_files(self, rec, path, all_files, sourcecode, follow_links):
        return await self.io(manage.list_files, manage.location(self.home, rec), path, all_files, sourcecode, follow_links)

    async def read_file(self, rec, path, output):
        """Yields a run file's bytes in chunks."""
        run_dir = manage.location(self.home, rec)
        if output:
            full = rundir.output_path(run_dir)
            if not full.exists():
                raise errors.NotFound(f"{full} does not exist")
        else:
            full = await self.io(manage.file_path, run_dir, path)
        loop = asyncio.get_running_loop()
        with open(full, "rb") as f:
            while data := await loop.run_in_executor(None, f.read, outputs.READ_CHUNK):
                yield data

    async def compare(self, criteria, specs, extra, strict, skip_core, skip_op, order, top):
        def do():
            self._sync_index()
            recs, _ = self.store.select(criteria, self._batch_trials(specs), top, order)
            scalars = {r.id: self.store.scalars(r.id) for r in recs}
            cols = compare.columns_for(recs, scalars, extra, strict, skip_core, skip_op, self._op_columns(recs))
            return cols, compare.rows(cols, recs, scalars)

        return await self.io(do)

    def _batch_trials(self, specs):
        """Run specs with each batch run named replaced by its trials (comparing a batch
        compares its trials)."""
        out = []
        for spec in specs:
            try:
                rec = self.store.resolve(spec)
            except errors.GuildError:
                out.append(spec)  # left for select to report or match as it does
                continue
            trials = batchlib.trial_ids(self.run_dir(rec.id)) if "+" in rec.op_name else []
            out += trials or [spec]
        return out

    def _op_columns(self, recs):
        """The `compare` columns of the runs' operations, read once per operation."""
        out, seen = [], set()
        for rec in recs:
            if rec.opref in seen or not rec.opref.startswith("guildfile:"):
                continue
            seen.add(rec.opref)
            op = rundir.read_attr(manage.location(self.home, rec), "op")
            for spec in (op.get("compare") or []) if isinstance(op, dict) else []:
                if spec not in out:
                    out.append(spec)
        return out

    async def disk_usage(self):
        return await self.work(manage.disk_usage, self.home)

    async def scalars(self, run_id):
        await self.settle(run_id)
        return await self.io(self.store.scalars, run_id)

    async def watch(self, rec, tail, new_only, offset=0):
        """Yields (is stderr, bytes) output chunks of a run until it has ended and all its
        output is sent."""
        path = rundir.output_path(self.run_dir(rec.id))
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return
        loop = asyncio.get_running_loop()
        streams = outputs.Streams(self.run_dir(rec.id))
        with f:
            if offset:
                f.seek(offset)
            elif new_only:
                f.seek(0, os.SEEK_END)
            elif tail:
                data = await loop.run_in_executor(None, f.read)
                last = rundir.tail_lines(data, tail)
                for part in await loop.run_in_executor(None, streams.split, len(data) - len(last), last):
                    yield part
            follower = None
            try:
                while True:
                    if follower is None and (follower := self.followers.get(rec.id)):
                        follower.add_watcher()  # (a queued run's follower comes when it starts)
                    data = await loop.run_in_executor(None, f.read, outputs.READ_CHUNK)
                    if data:
                        for part in await loop.run_in_executor(None, streams.split, f.tell() - len(data), data):
                            yield part
                        continue
                    if not self.following(rec.id) and not await self._starting(rec.id):
                        rest = f.read()
                        for part in streams.split(f.tell() - len(rest), rest) if rest else ():
                            yield part
                        return
                    await self.wait_change(rec.id)
            finally:
                if follower:
                    follower.remove_watcher()

    async def _starting(self, run_id):
        """True while a run waits in the queue or its process is being started."""
        if run_id in self.queue.entries:
            return True
        rec = await self.io(self.store.get, run_id)
        return rec is not None and rec.status in runstate.ACTIVE

    # Start-up and shutdown

    async def reconcile(self):
        await reconcile.reconcile(self)
        self.spawn(self.queue.run(), name="queue")
        self.spawn(self.queue.poll_loop(), name="gpu-poll")

    def _sync_index(self):
        try:
            reconcile.sync_index(self)
        except Exception as e:
            if not diskspace.is_full(e):
                raise
            # Reading must work on a full disk (it is how a user finds what to delete): the
            # index is shown as it is, and synced again at the next read.
            log.warning("index not synced with the run dirs: %s", e)

    async def close(self):
        """Shutdown: tasks cancelled, none recording an end (a batch or pipeline stays running
        for the next daemon to resume, as after a crash), critical work finished, then runs
        left to their shims."""
        if self._criticals:
            log.info("finishing %d start(s) or end(s) under way", len(self._criticals))
        while self._tasks or self._criticals:  # critical work may start tasks: cancelled too
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, *self._criticals, return_exceptions=True)
        self.executor.close()
        self._io.submit(self.executor.shims.close).result()
        for follower in list(self.followers.values()):
            follower.stop()
            if follower.task:
                follower.task.cancel()
        for follower in self.followers.values():
            await self.work(follower.reader.close)
        self._io.submit(self.store.close).result()
        self._io.shutdown()
        self._work.shutdown()


def _json_object(text, what):
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise errors.InvalidArgument(f"invalid {what}: {e}") from e
    if not isinstance(value, dict):
        raise errors.InvalidArgument(f"invalid {what}: expected an object")
    return value


def _batch_values(trials):
    """A grid batch's flag values as Guild shows them: each flag's values as a list where
    the trials vary it."""
    out = {}
    for trial in trials:
        for name, value in trial.items():
            seen = out.setdefault(name, [])
            if value not in seen:
                seen.append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in out.items()}


