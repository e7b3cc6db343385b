"""guildctl from Python: start runs, list, compare, select and manage them, follow their
output, all through guildd exactly as the `guildctl` commands do (same daemon, same
checks, same run store), without a terminal: nothing is asked and nothing printed except a
followed run's output.

    from guildctl import api

    run = api.run("train.py", lr=0.1, epochs=5)       # waits; returns an api.Run
    best = api.select(min="loss", ops="train.py")
    for r in api.runs(completed=True, limit=5): print(r.id, r.flags, r.scalars)

Module-level functions use the GUILD_HOME the CLI would (starting a per-user daemon when
none answers, unless GUILDCTL_NO_AUTOSTART is set); `api.Session(home)` picks another.

Every error is a `GuildError` (re-exported here): `InvalidArgument` (a bad flag or option),
`NotFound`, `AlreadyExists`, `FailedPrecondition`, `PermissionDenied`, `Unauthenticated`,
`ResourcesUnavailable`, `DaemonUnavailable`; its message is the line the CLI prints.
"""

import dataclasses
import os
import pathlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from guild_common import errors, home as homelib
from guild_common.errors import (  # noqa: F401  (re-exported: the API's exceptions)
    AlreadyExists,
    DaemonUnavailable,
    FailedPrecondition,
    GuildError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourcesUnavailable,
    Unauthenticated,
)
from guild_common.pb import guild_pb2 as pb
from guildctl import api_runs, runops, selecting
from guildctl.api_runs import Run, RunList  # noqa: F401  (re-exported: what the API returns)

if TYPE_CHECKING:
    from guildctl.client import Client

# Runs to act on: one (an id, a prefix of one, `1` for the latest, a Run) or several.
Runs = str | Run | Iterable[str | Run]

LABEL_ACTIONS = {"set": pb.LABEL_SET, "prepend": pb.LABEL_PREPEND, "append": pb.LABEL_APPEND, "remove": pb.LABEL_REMOVE}


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """run()'s options: `guildctl run`'s, by the same names (`stop_after`: seconds or
    "10m"; `gpus`: a count or "0,3"; `opt_flags`: a dict), and `quiet` (don't print the
    output while waiting). With `needed`, a run of the operation with the same flag values
    (neither pending nor failed) is returned instead of starting one."""

    label: str = ""
    tags: tuple | str = ()
    batch_label: str = ""
    batch_tags: tuple | str = ()
    needed: bool = False
    stage: bool = False
    background: bool = False
    quiet: bool = False
    force_flags: bool = False
    stop_after: float | str | None = None
    gpus: int | str | None = None
    no_gpus: bool = False
    gpu_memory: str | None = None
    cpus: float | str | None = None  # runs on Ray (executor="ray"): what the job asks of the cluster
    memory: str | None = None
    executor: str = ""  # "ray" or "ray:ADDRESS"
    priority: int = 0
    queue: str = ""
    after: tuple | str = ()
    preemptible: bool = False
    optimizer: str | None = None
    optimize: bool = False
    opt_flags: dict | None = None
    max_trials: int | None = None
    random_seed: int | None = None
    minimize: str | None = None
    maximize: str | None = None
    parallel: int = 0
    fail_on_trial_error: bool = False
    stage_trials: bool = False
    keep_batch: bool = False
    prune: str | None = None  # median, asha or hyperband
    prune_flags: dict | None = None
    preemptible_trials: bool = False

    def new_run(self) -> runops.NewRun:
        """The options as guildctl.runops takes them; bad values are InvalidArgument."""
        from guildctl import batch, cmd_run, queueopts

        if self.parallel < 0:
            raise errors.InvalidArgument(f"invalid parallel {self.parallel}: expected 1 or more")
        stop_after = self.stop_after
        if not isinstance(stop_after, (int, float)):
            stop_after = cmd_run.parse_stop_after(stop_after)
        return runops.NewRun(
            label=self.label or "", tags=_strings(self.tags), stage=self.stage, background=self.background,
            force_flags=self.force_flags, stop_after=stop_after, gpus=None if self.gpus is None else str(self.gpus),
            no_gpus=self.no_gpus, gpu_memory=self.gpu_memory, needed=self.needed,
            cpus=None if self.cpus is None else str(self.cpus), memory=self.memory, executor=self.executor or "",
            queue=queueopts.queue_options(self.priority, self.queue, list(_strings(self.after)), self.preemptible),
            batch=batch.Options(
                optimizer=self.optimizer, optimize=self.optimize, max_trials=self.max_trials, random_seed=self.random_seed,
                opt_flags=tuple(runops.flag_assigns(self.opt_flags or {})), minimize=self.minimize, maximize=self.maximize,
                parallel=self.parallel, fail_on_trial_error=self.fail_on_trial_error, stage_trials=self.stage_trials,
                keep_batch=self.keep_batch, batch_label=self.batch_label or "", batch_tags=_strings(self.batch_tags),
                pruner=self.prune, prune_flags=tuple(runops.flag_assigns(self.prune_flags or {})),
                preemptible_trials=self.preemptible_trials,
            ),
        )


def _strings(value):
    return (value,) if isinstance(value, str) else tuple(value or ())


class Session:
    """A connection to the guildd of one GUILD_HOME (default: the CLI's); the daemon is
    reached (or started) on first use."""

    def __init__(self, home: str | os.PathLike | None = None, autostart: bool | None = None) -> None:
        self.home = pathlib.Path(home).absolute() if home else homelib.guild_home()
        self._autostart = autostart
        self._client: "Client | None" = None

    @property
    def client(self) -> "Client":
        if self._client is None:
            from guildctl.client import Client

            self._client = Client(self.home, autostart=self._autostart)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def run(self, op: str, *, flags: dict | None = None, cwd: str | os.PathLike | None = None, **kw: Any) -> Run:
        """Runs `op` (a script, an executable, or an operation of the Guild file in `cwd`,
        default: the current dir) with flags given as keywords (`lr=0.1`; a list makes a
        grid, `"uniform[0:1]"` a random search) or in `flags` (for a flag named like an
        option). The other keywords are RunOptions (`guildctl run`'s options). Waits for the
        run to end, printing its output unless `quiet` (KeyboardInterrupt stops it), and
        returns it; with `background` or `stage`, returns it at once. A batch returns the
        batch run (in the trash once it ended unless `keep_batch`, as on the CLI)."""
        names = {f.name for f in dataclasses.fields(RunOptions)}
        options = {name: kw.pop(name) for name in list(kw) if name in names}
        cwd = os.path.abspath(cwd or os.getcwd())
        op_obj, kind = runops.resolve_op(op, cwd)
        return self.start(op_obj, kind, op, {**(flags or {}), **kw}, cwd, RunOptions(**options))

    def start(self, op: Any, kind: Any, opspec: str, flags: dict, cwd: str, options: "RunOptions") -> Run:
        """run() for an operation already resolved (`op`, and `kind`, the module that builds
        its spec: guildctl.runops.resolve_op's pair) with `flags` (name -> Python value)."""
        opts = options.new_run()
        prepared = runops.prepare(op, kind, opspec, runops.flag_assigns(flags), opts, cwd)
        plan = runops.plan(prepared, opts)
        if plan:
            msg, matches = runops.start_batch(self.client, prepared, plan, opts)
        else:
            msg, matches = runops.start_single(self.client, prepared, opts)
        if matches:
            return self.get(matches[0].id)
        if options.background or msg.status == "staged":
            return Run.from_msg(msg)
        return self.wait(msg.id, quiet=options.quiet)

    def wait(self, run: "str | Run", quiet: bool = False) -> Run:
        """Waits for `run` to end (printing its output unless `quiet`; KeyboardInterrupt stops
        it) and returns it as it ended, with all its scalars."""
        run_id = self.client.get_run(_one(run)).id
        try:
            for line in self.watch(run_id):
                if not quiet:
                    print(line, flush=True)
        except KeyboardInterrupt:
            self.client.stop_runs([run_id])
            raise
        return self.get(run_id)

    def get(self, run: "str | Run") -> Run:
        """One run (an id, a prefix of one, or `1` for the latest), deleted runs too (a batch
        is in the trash once it ended, unless kept)."""
        run = _one(run)
        try:
            return Run.from_msg(self.client.get_run(run))
        except errors.NotFound as e:
            try:
                return Run.from_msg(self.client.get_run(run, run_filter=pb.RunFilter(deleted=True)))
            except errors.NotFound:
                raise e from None

    def runs(self, runs: Runs = (), *, limit: int = 0, deleted: bool = False, **filters: Any) -> RunList:
        """Runs, latest first: those named in `runs` (ids, prefixes, indexes), else every
        run the filters keep (api_runs.FILTERS: ops, labels, tags, unlabeled, marked,
        unmarked, started, digests, expr, and each status as True/False). Returns a RunList."""
        found, _total = self.client.list_runs(runs=_specs(runs), run_filter=api_runs.run_filter(deleted, **filters), limit=limit)
        return self._full(found, deleted)

    def compare(self, runs: Runs = (), *, columns: str = "", strict: bool = False, skip_core: bool = False,
                skip_op: bool = False, min: str | None = None, max: str | None = None, top: int = 0,
                include_batch: bool = False, **filters: Any) -> list[dict]:
        """`guildctl compare`'s rows as dicts, column header -> value (None where empty):
        run, operation, started, time, status, label, then flags and scalars."""
        run_filter = api_runs.run_filter(**filters)
        run_filter.include_batch = include_batch
        resp = self.client.compare_runs(
            pb.RunSelection(runs=_specs(runs), filter=run_filter), columns=columns, strict=strict,
            skip_core=skip_core, skip_op=skip_op, min=min or "", max=max or "", top=top,
        )
        return api_runs.compare_rows(resp)

    def select(self, run: str = "", *, min: str | None = None, max: str | None = None, all: bool = False,
               **filters: Any) -> "Run | RunList":
        """The run `guildctl select` prints: the latest the filters keep (or the one with the
        lowest `min` / highest `max` column); with `all`, every such run (a RunList).
        NotFound when none."""
        if min and max:
            raise errors.InvalidArgument("min and max cannot both be used")
        found, _ = self.client.list_runs(runs=[run] if run else [], run_filter=api_runs.run_filter(**filters),
                                         min=min or "", max=max or "", limit=0 if all else 1)
        if not found:
            raise errors.NotFound("no matching runs")
        runs = self._full(found)
        return runs if all else runs[0]

    def label(self, runs: Runs = (), *, set: str | None = None, prepend: str | None = None, append: str | None = None,
              remove: str | None = None, clear: bool = False, **filters: Any) -> RunList:
        """Sets, extends or clears run labels (default: the latest run); one of the options.
        Returns the runs changed."""
        chosen = [(LABEL_ACTIONS[name], v) for name, v in
                  (("set", set), ("prepend", prepend), ("append", append), ("remove", remove)) if v is not None]
        chosen += [(pb.LABEL_CLEAR, "")] if clear else []
        if len(chosen) != 1:
            raise errors.InvalidArgument("label() takes one of set, prepend, append, remove or clear")
        sel = self._selection(runs, api_runs.run_filter(**filters), default_latest=True)
        return self._changed(self.client.label_runs(sel, *chosen[0]) if sel else [])

    def tag(self, runs: Runs = (), *, add: str | Iterable[str] = (), remove: str | Iterable[str] = (),
            clear: bool = False, sync_labels: bool = False, **filters: Any) -> RunList:
        """Adds or removes run tags (default: the latest run), as `guildctl tag`: `clear`
        removes every tag first; removing a tag a run doesn't have changes nothing and is
        refused (FailedPrecondition); `sync_labels` changes the label's words too. Returns
        the runs changed."""
        add, remove = _strings(add), _strings(remove)
        if not (add or remove or clear):
            raise errors.InvalidArgument("tag() needs add, remove or clear")
        sel = self._selection(runs, api_runs.run_filter(**filters), default_latest=True)
        if sel is None:
            return RunList()
        request = pb.TagRunsRequest(selection=sel, add=add, remove=remove, clear=clear, sync_labels=sync_labels)
        return self._changed(self.client.call("TagRuns", request).runs)

    def mark(self, runs: Runs = (), *, clear: bool = False, **filters: Any) -> RunList:
        """Marks runs (default: the latest unmarked one); with `clear`, unmarks them (default:
        every marked run). Returns the runs changed."""
        run_filter = api_runs.run_filter(**filters)
        runs = _specs(runs)
        if not runs:
            if clear:
                run_filter.marked = True
            else:
                run_filter.unmarked = True
                runs = ["1"]
        sel = self._selection(runs, run_filter)
        return self._changed(self.client.mark_runs(sel, clear) if sel else [])

    def delete(self, runs: Runs = (), *, permanent: bool = False, all: bool = False, **filters: Any) -> list[str]:
        """Deletes runs: to the trash, or for good with `permanent`. Needs runs, a filter,
        or `all=True` (every run). Running runs are refused: stop them first. Returns the ids
        deleted."""
        run_filter = api_runs.run_filter(**filters)
        runs = _specs(runs)
        if not runs and not all and not selecting.has_filter(run_filter):
            raise errors.InvalidArgument("delete() needs runs, a filter, or all=True")
        sel = self._selection(runs, run_filter)
        return [r.id for r in (self.client.delete_runs(sel, permanent) if sel else [])]

    def stop(self, runs: Runs = (), *, wait: bool = True) -> list[str]:
        """Stops runs (default: every running run); with `wait`, returns once they ended.
        Returns the ids of the runs stopped."""
        stopped = self.client.stop_runs(_specs(runs))
        if wait:
            for r in stopped:
                for _ in api_runs.output_lines(self.client.watch_run(r.id, new_only=True)):
                    pass
        return [r.id for r in stopped]

    def watch(self, run: "str | Run" = "", *, tail: int = 0, new_only: bool = False) -> Iterator[str]:
        """Yields a run's output lines (stdout and stderr as written, without newlines) until
        it ends: all of it, the last `tail` lines, or with `new_only` what comes from now."""
        target = self.client.get_run(_one(run), statuses=() if run else ["running"])
        return api_runs.output_lines(self.client.watch_run(target.id, tail=tail, new_only=new_only))

    def _selection(self, runs, run_filter, default_latest=False):
        """The exact runs a change applies to (as the CLI previews them), or None when none."""
        runs = _specs(runs)
        if not runs and default_latest and not selecting.has_filter(run_filter):
            runs = ["1"]
        found, _ = self.client.list_runs(runs=runs, run_filter=run_filter)
        if not found:
            return None
        return pb.RunSelection(runs=[r.id for r in found], filter=pb.RunFilter(deleted=run_filter.deleted))

    def _full(self, msgs, deleted=False):
        """The runs ListRuns found, each with its scalars (which only GetRun sends: once
        all of an ended run's output is indexed)."""
        run_filter = pb.RunFilter(deleted=deleted)
        return RunList(Run.from_msg(self.client.get_run(m.id, run_filter=run_filter)) for m in msgs)

    def _changed(self, msgs):
        return RunList(self.get(m.id) for m in msgs)


def _one(run):
    return run.id if isinstance(run, Run) else str(run or "")


def _specs(runs):
    """Run specs from one (`"1"`, an id, a Run) or several."""
    if isinstance(runs, (str, Run)):
        runs = [runs]
    return [r.id if isinstance(r, Run) else str(r) for r in runs or ()]


_default = None


def session() -> Session:
    """The Session the module-level functions (and guildctl.ipy) use: connect()'s, else the
    CLI's GUILD_HOME."""
    global _default
    if _default is None:
        _default = Session()
    return _default


def connect(home: str | os.PathLike | None = None, autostart: bool | None = None) -> Session:
    """Points the module-level functions (and guildctl.ipy) at the guildd of `home`
    (default: the CLI's GUILD_HOME); `autostart` False refuses to start a daemon. Returns
    the Session."""
    global _default
    if _default is not None:
        _default.close()
    _default = Session(home, autostart)
    return _default


def _delegate(name):
    method = getattr(Session, name)

    def call(*args, **kw):
        return method(session(), *args, **kw)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


run = _delegate("run")
wait = _delegate("wait")
get = _delegate("get")
runs = _delegate("runs")
compare = _delegate("compare")
select = _delegate("select")
label = _delegate("label")
tag = _delegate("tag")
mark = _delegate("mark")
delete = _delegate("delete")
stop = _delegate("stop")
watch = _delegate("watch")
