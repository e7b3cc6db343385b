"""Batch runs: the daemon's loop that makes a batch's trials and runs them, one after another or
several at once, for grid batches (lists, sequence functions, batch files), random search and
Bayesian optimizers (guildd.optimizers).

A batch run has no process of its own. Its dir holds what the loop needs to go on without the
client (ARCHITECTURE.md, contract 2): `.guild/batch.json` (the BatchSpec, with the seed drawn
and where the current session's trials begin) and `.guild/batch-proto` (the trial run spec,
protobuf). Each trial is a child run linked into the batch dir as `trial-N`. The batch's
output says when each trial starts and how it ended (with its objective).

After a daemon restart a running batch resumes: a trial the daemon made but was killed before
linking is found and linked (children.STARTING_FILE), one it made but did not start is started,
trials that ended are read back (and told to the optimizer), trials still running are waited
for, and the loop goes on where it was.
A restart (`run --restart BATCH`) begins a new session: new trials, the earlier ones all
told to the optimizer.

A pruning batch (`--prune`, guildd.pruning) listens to each running trial's objective by step
as the daemon reads its scalars, and stops a trial its pruner says to stop: the trial's
`pruned` attr (pruner, step, value) and a `pruned` tag are written first, then it is stopped as
`guildctl stop` stops it, and it ends terminated. The optimizer is told its last value by step
(as Optuna's TPE scores pruned trials): a worse value than it would have reached, which keeps
the search away from a region that lost, where skipping it would let it ask there again.
After a restart the pruner is rebuilt from the trials' event files (their `pruned` attrs say
which were pruned; a trial marked but not yet stopped is stopped).
"""

import asyncio
import json
import logging
import math
from typing import TYPE_CHECKING, Any, Callable, Optional

from guild_common import errors, flags as flaglib, optdefs, prunedefs, rundir, trials as trialslib
from guild_common.pb import guild_pb2 as pb
from guildd import askahead, children, fsrights, runstate, speculate
from guildd.batchspec import objective, objective_value, search_values, trial_ids
from guildd import pruning as pruninglib, store as storelib
from guildd.children import Parents
from guildd.store import RunRecord

if TYPE_CHECKING:
    from guildd.optimizers import Searcher
    from guildd.pruning import Pruning

log = logging.getLogger("guildd.batches")

class Batch:
    """A running batch's loop; it drives the batch run (guildd.drivers.Driver)."""

    def __init__(self, parents: Parents, run_id: str, spec: pb.BatchSpec, proto: pb.RunSpec, session_start: int, user: str) -> None:
        self.parents = parents
        self.runtime = parents.runtime
        self.run_id = run_id
        self.run_dir = parents.run_dir(run_id)
        self.spec = spec
        self.proto = proto
        self.session_start = session_start
        self.user = user
        self.stopping = False
        self.running: dict[str, dict[str, Any]] = {}  # trial id -> its flag values
        self.search: Optional[Searcher] = None
        # The next trial's point, asked while every slot is busy (guildd.askahead): its flag
        # values and whether it was a random start.
        self._ahead: Optional[asyncio.Future[list[tuple[dict[str, Any], bool]]]] = None
        # The running trial's successor, asked as if it ended now (guildd.speculate), and the
        # point it gave once the trial did end so: the next trial's.
        self._speculation: Optional[Any] = None
        self._unspeculate: Callable[[], None] = lambda: None
        self._next_point: Optional[dict[str, Any]] = None
        # the search told that trial's result, coming back from the compute process (a future),
        # and the result, told here should it not come (see _search_settled)
        self._search_back: Optional[tuple["asyncio.Future[Any]", dict[str, Any], Optional[float]]] = None
        self._premade: Optional["asyncio.Future[Any]"] = None  # the next trial's dir, being made (guildd.premade)
        self.pruning: Optional[Pruning] = None
        self.pruned: dict[str, dict[str, Any]] = {}  # trial id -> its `pruned` attr
        self._unlisten: dict[str, Any] = {}  # trial id -> stops hearing its scalars
        self._held: dict[str, Optional[list[Any]]] = {}  # trial id -> scalars heard before its history's replay (None: replayed)
        self.objective = objective(spec)
        self._trial_ends: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()  # as each trial ends
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # How many trials this session makes (a grid's trials: guildctl sampled a larger one).
        self.target = len(json.loads(spec.trials_json)) if spec.kind == "grid" else spec.max_trials or trialslib.DEFAULT_MAX_TRIALS

    async def say(self, line: str) -> None:
        await self.parents.say(self.run_dir, line)

    def stop(self) -> bool:
        """No new trials, and its running trials stopped."""
        self.stopping = True
        self.runtime.spawn(self.stop_trials(), name=f"stop-batch-{self.run_id[:8]}")
        return True

    async def run(self) -> None:
        """The loop, then the batch's end. Cancelled (the daemon is shutting down), it records
        no end: the batch stays running, and the next daemon resumes it as after a crash."""
        try:
            exit_status = await self._loop()
        except Exception as e:  # the batch fails, saying why; its trials are left as they are
            if not isinstance(e, errors.GuildError):
                log.exception("batch %s", self.run_id[:8])
            await self.say(f"ERROR: [guild] batch failed: {e}")
            exit_status = 1
        finally:
            self.parents.drivers.remove(self)
            if self._premade is not None:  # made for a trial never started (also at a shutdown)
                self.runtime.critical(_discard(self.parents, self._premade))
                self._premade = None
        await self.runtime.critical(self.parents.end(self.run_id, exit_status))

    async def _loop(self) -> int:
        await self.parents.relink(self.run_dir)  # a trial a killed daemon made and did not link
        trials = await self.runtime.io(trial_ids, self.run_dir)
        session = trials[self.session_start :]
        values_list = self._planned_values()
        if self.spec.kind not in ("grid", "random"):
            await self._start_search(trials)
        if self.spec.pruner:
            await self._start_pruning(trials)
        for trial_id in session:  # resuming: trials of this session already made
            rec = await self.runtime.io(self.parents.store.get, trial_id)
            if rec is not None and rec.status == runstate.PENDING:  # made, not started: a killed daemon's
                await self.parents.start_made(trial_id, self._trial_spec(rec.flags), self.user)
                rec = await self.runtime.io(self.parents.store.get, trial_id)
            if rec is not None and rec.status in runstate.ACTIVE:
                # its output, copied into the batch's one trial at a time, goes on from where it was
                copied = await self.runtime.io(children.copied, self.run_dir, trial_id)
                self._watch(trial_id, rec.flags, copied or 0)
        made = len(session)
        number = len(trials)  # of the last trial made
        parallel = max(1, self.spec.parallel)
        failed = False
        while not self.stopping:
            free = parallel - len(self.running)
            if free > 0 and made < self.target and not failed:
                n = min(free, self.target - made)
                if values_list is not None:
                    batch_values = values_list[made : made + n]
                else:
                    batch_values = await self._ask(n, made)
                for values in batch_values:
                    if self.stopping:  # stopped while this round starts: no new trials
                        break
                    made += 1
                    number += 1
                    await self._start_trial(number, values)
                continue
            if not self.running:
                break
            await self._search_settled()
            search = self.search
            needs_results = search is not None and search.algorithm in askahead.LEARNING and not search.random_start
            state = askahead.LoopState(search is not None, needs_results, parallel, len(self.running), made, self.target,
                                       self._ahead is not None, self.stopping, failed)
            if askahead.ask_ahead(state):
                self._ahead = asyncio.ensure_future(self._ask_points(1))
            if made < self.target and not (self.stopping or failed) and self._premade is None:
                # the next trial's dir, all but its flag values, made while trials run (guildd.premade)
                self._premade = asyncio.ensure_future(
                    self.parents.premake_child(self.run_dir, f"trial-{number + 1}", self._trial_spec({}), self.user))
            trial_id, values = await self._trial_ends.get()
            ok = await self._trial_ended(trial_id, values)
            if not ok and self.spec.fail_on_trial_error and not self.stopping:
                await self.say("ERROR: [guild] stopping batch because a trial failed (remaining staged trials may be started as needed)")
                failed = True
                await self.stop_trials()
        if self.stopping:
            await self.stop_trials()
            while self.running:
                trial_id, values = await self._trial_ends.get()
                await self._trial_ended(trial_id, values)
            return -15
        return 1 if failed else 0

    def _planned_values(self) -> Optional[list[dict[str, Any]]]:
        """Grid and random batches' trial values in order (None: an optimizer asks)."""
        if self.spec.kind == "grid":
            return json.loads(self.spec.trials_json)
        if self.spec.kind == "random":
            values = json.loads(self.spec.values_json or "{}")
            # A restarted batch draws new trials: the seed moves with the session.
            return trialslib.random_trials(values, self.target, self.spec.random_seed + self.session_start)
        return None

    async def _start_search(self, trials: list[str]) -> None:
        from guildd import optimizers

        algorithm = optdefs.algorithm_for(self.spec.kind)
        flags = optdefs.optimizer_flags(algorithm, json.loads(self.spec.optimizer_flags_json or "{}"))
        values = search_values(json.loads(self.spec.values_json or "{}"))
        loop = asyncio.get_running_loop()
        self.search = await loop.run_in_executor(
            None, optimizers.new_search, algorithm, flags, values, self.spec.random_seed, self.objective.maximize
        )
        await self.say(f"INFO: [guild] optimizer {optdefs.describe(algorithm, flags)}")
        if speculate.may_apply(algorithm, self.spec.parallel, self.objective):
            self.runtime.warm_compute()  # ready by the first speculative ask
        told = 0
        for trial_id in trials:
            rec = await self.runtime.io(self.parents.store.get, trial_id)
            if rec is None:
                continue
            if rec.status == runstate.COMPLETED:
                objective = await self._objective(trial_id)
            elif rec.status == runstate.TERMINATED:  # a pruned trial is told its last value, as when it was pruned
                objective = await self._pruned_value(trial_id)
            else:
                continue
            if objective is not None and self.search.tell(rec.flags, objective):
                told += 1
        if told:
            await self.say(f"INFO: [guild] Found {told} previous trial(s) for use in optimization")

    async def _pruned_value(self, trial_id: str) -> Optional[float]:
        """The value a pruned trial was told to the search with (its `pruned` attr); None for a
        trial that wasn't pruned."""
        run_dir = self.parents.run_dir(trial_id)
        pruned = await self.runtime.io(fsrights.call_as_owner_of, run_dir, rundir.read_attr, run_dir, pruninglib.PRUNED_ATTR)
        value = pruned.get("value") if isinstance(pruned, dict) else None
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None

    async def _ask(self, n: int, made: int) -> list[dict[str, Any]]:
        """The next `n` trials' flag values: the point asked ahead first (if any), then more."""
        asked: list[tuple[dict[str, Any], bool]] = []
        if self._next_point is not None:  # asked as its predecessor ran (guildd.speculate)
            asked.append((self._next_point, False))
            self._next_point = None
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            asked += await ahead
        if len(asked) < n:
            asked += await self._ask_points(n - len(asked))
        if asked[0][1]:
            assert self.search is not None
            starts = optdefs.random_starts(self.search.algorithm, self.search.flags)
            await self.say(f"INFO: [guild] Random start for optimization ({min(made + 1, starts)} of {starts})")
        return [values for values, _ in asked]

    async def _ask_points(self, n: int) -> list[tuple[dict[str, Any], bool]]:
        """`n` points from the search, off the event loop, each with whether it is a random start."""
        await self._search_settled()
        search = self.search
        assert search is not None  # asked only of an optimizer's batch, whose search has started
        random_start = search.random_start
        loop = asyncio.get_running_loop()
        return [(values, random_start) for values in await loop.run_in_executor(None, search.ask, n)]

    async def _settle_ahead(self) -> None:
        """Waits for a point being asked ahead: a Search is not thread-safe, so nothing is told
        while it asks (a failed ask fails the batch where _ask takes its result)."""
        if self._ahead is not None:
            await asyncio.wait([self._ahead])

    def _trial_spec(self, values: dict[str, Any]) -> pb.RunSpec:
        """The run spec of a trial with these flag values."""
        spec = pb.RunSpec()
        spec.CopyFrom(self.proto)
        spec.flags_json = json.dumps(values)
        user_flags = {**json.loads(self.proto.user_flags_json or "{}"), **values}
        spec.user_flags_json = json.dumps(user_flags)
        if self.spec.preemptible_trials:  # each trial may be stopped and requeued (guildd.preemption)
            spec.run_params_json = json.dumps({**json.loads(spec.run_params_json or "{}"), "preemptible": True})
        return spec

    async def _start_trial(self, number: int, values: dict[str, Any]) -> None:
        spec = self._trial_spec(values)
        made = await self._take_premade()
        try:
            # Not cut by a shutdown: a trial started but not linked would be made again.
            child = await self.runtime.critical(self._make_trial(number, spec, made))
        except errors.GuildError as e:
            await self.say(f"ERROR: [guild] trial {number} could not start: {e}")
            return
        if not self.spec.stage_trials:
            await self._search_settled()  # (it came back while the trial started)
            self._watch(child.id, values)

    async def _take_premade(self) -> Any:
        """The dir made for the next trial (guildd.premade), once made; None if there is none
        or it could not be made (the trial is made as usual, and says why if it can't be)."""
        premade, self._premade = self._premade, None
        if premade is None:
            return None
        try:
            return await premade
        except Exception as e:  # noqa: BLE001 - made as usual instead
            log.warning("batch %s: the next trial's dir was not made ahead: %s", self.run_id[:8], e)
            return None

    async def _make_trial(self, number: int, spec: pb.RunSpec, made: Any = None) -> RunRecord:
        """Starts (or stages) trial `number` and links it into the batch (in `made`, a dir
        premade for it, if given)."""
        child = await self.parents.start_child(self.run_dir, f"trial-{number}", spec, self.spec.stage_trials, self.user, made)
        verb = "Staging" if self.spec.stage_trials else "Running"
        await self.say(f"INFO: [guild] {verb} trial {child.id}: {child.op_name} ({_trial_flags_desc(spec)})")
        return child

    def _watch(self, trial_id: str, values: dict[str, Any], copied: int = 0) -> None:
        self.running[trial_id] = values
        if self.pruning is not None:
            self._listen(trial_id)
        search = self.search
        if search is not None and speculate.applies(search.algorithm, search.random_start, self.spec.parallel, self.objective):
            spec = self._speculation = speculate.Speculation(search, values, storelib.float32, self.runtime.compute)

            def hear(scalars: list[tuple[str, float, int]]) -> None:
                points = pruninglib.curve(scalars, self.objective)
                if points:
                    spec.heard(points[-1][1])

            self._unspeculate = self.parents.listen(trial_id, hear, prompt=True)
        copy_to = self.run_dir if max(1, self.spec.parallel) == 1 else None  # one at a time: its output shows in the batch's

        async def wait() -> None:
            await self.parents.wait_end(trial_id, copy_to, copied)
            await self._trial_ends.put((trial_id, values))

        self.runtime.spawn(wait(), name=f"trial-{trial_id[:8]}")

    async def _trial_ended(self, trial_id: str, values: dict[str, Any]) -> bool:
        self.running.pop(trial_id, None)
        await self._settle_ahead()
        await self._search_settled()
        # its speculation (if any) goes on asking while the trial's end is read: settled last
        speculation, self._speculation = self._speculation, None
        self._unspeculate()
        if (unlisten := self._unlisten.pop(trial_id, None)) is not None:
            unlisten()
        self._held.pop(trial_id, None)
        rec = await self.runtime.io(self.parents.store.get, trial_id)
        status = rec.status if rec else "deleted"
        pruned = self.pruned.get(trial_id)
        if pruned is not None and status == runstate.TERMINATED:
            await _speculated(speculation, None)
            if self.pruning is not None:
                self.pruning.end(trial_id, None, pruned=True)
            if self.search is not None:
                self.search.tell(values, pruned["value"])  # its last value by step (module doc)
            return True
        if self.pruning is not None:
            self.pruning.end(trial_id, await self._objective(trial_id) if status == runstate.COMPLETED else None)
        if status != runstate.COMPLETED:
            await _speculated(speculation, None)
            if status == runstate.TERMINATED:
                await self.say(f"INFO: [guild] trial {trial_id} was stopped")
            else:
                await self.say(f"ERROR: [guild] trial {trial_id} exited with an error (see log for details)")
            if self.search is not None:
                self.search.tell(values, None)  # frees its pending point
            return status == runstate.TERMINATED and self.stopping
        objective = await self._objective(trial_id)
        key = self.objective.scalar
        if objective is None:
            await self.say(f"INFO: [guild] trial {trial_id} completed: no '{key}' scalar (skipped by the optimizer)" if self.search else f"INFO: [guild] trial {trial_id} completed")
        else:
            await self.say(f"INFO: [guild] trial {trial_id} completed: {key}={objective:g}")
        taken = await _speculated(speculation, objective)
        if taken is not None:  # a copy was told exactly this: its point is the next trial's, and it the search
            self._next_point, told = taken
            self._search_back = (told, values, objective)
        elif self.search is not None:
            self.search.tell(values, objective)
        return True

    async def _search_settled(self) -> None:
        """The search told the last trial's result in the compute process (a speculation
        taken) is the search once it is back; if it can't come back (that process died), the
        search here is told the result instead (the same search, though not asked the point
        the next trial runs). Awaited before the search is used."""
        if self._search_back is None:
            return
        (told, values, objective), self._search_back = self._search_back, None
        try:
            self.search = await told
        except Exception as e:  # noqa: BLE001 - the search goes on from here
            log.warning("batch %s: its search's told copy was lost (%s): told here instead", self.run_id[:8], e)
            assert self.search is not None
            self.search.tell(values, objective)

    async def _start_pruning(self, trials: list[str]) -> None:
        """The batch's pruner, told the trials that ended before now (a resumed or restarted
        batch), in the order they were made; running ones are replayed as they are watched."""
        flags = prunedefs.pruner_flags(self.spec.pruner, json.loads(self.spec.pruner_flags_json or "{}"))
        loop = asyncio.get_running_loop()  # Optuna's first import takes a while: off the loop
        self.pruning = await loop.run_in_executor(None, pruninglib.Pruning, self.spec.pruner, flags, self.objective.maximize)
        await self.say(f"INFO: [guild] pruner {prunedefs.describe(self.spec.pruner, flags)}")
        for trial_id in trials:
            rec = await self.runtime.io(self.parents.store.get, trial_id)
            if rec is None or rec.status in runstate.ACTIVE or rec.status == runstate.STAGED:
                continue
            points, pruned = await self._history(trial_id)
            self.pruning.replay(trial_id, points)
            completed = rec.status == runstate.COMPLETED
            value = await self._objective(trial_id) if completed else None
            self.pruning.end(trial_id, value, pruned=pruned is not None and not completed)

    async def _history(self, trial_id: str) -> tuple[list[Any], Any]:
        """A trial's objective by step so far, from its event files, and its `pruned` attr."""
        run_dir = self.parents.run_dir(trial_id)
        return await self.runtime.work(fsrights.call_as_owner_of, run_dir, pruninglib.history, run_dir, self.objective)

    def _listen(self, trial_id: str) -> None:
        """Hears a running trial's new scalars; what it logged before (a trial adopted after a
        restart, or scalars read before the listener was in place) is replayed first."""
        assert self.pruning is not None
        self.pruning.begin(trial_id)
        self._held[trial_id] = []

        def hear(scalars: list[tuple[str, float, int]]) -> None:
            held = self._held.get(trial_id)
            if held is not None:
                held.extend(scalars)
            elif trial_id in self._held:
                self._report(trial_id, pruninglib.curve(scalars, self.objective))

        self._unlisten[trial_id] = self.parents.listen(trial_id, hear)

        async def catch_up() -> None:
            points, pruned = await self._history(trial_id)
            held = self._held.get(trial_id)
            if held is None:  # ended meanwhile
                return
            self._held[trial_id] = None
            if isinstance(pruned, dict) and "value" in pruned:  # marked by a daemon killed before it stopped it
                self.pruned[trial_id] = pruned
                await self.parents.stop_runs([trial_id])
                return
            self._report(trial_id, points + pruninglib.curve(held, self.objective))

        self.runtime.spawn(catch_up(), name=f"prune-{trial_id[:8]}")

    def _report(self, trial_id: str, points: list[Any]) -> None:
        """Reports a trial's new objective values; the first the pruner says to stop at
        stops it (_prune)."""
        assert self.pruning is not None
        for step, value in points:
            if trial_id in self.pruned or self.stopping:
                return
            if self.pruning.report(trial_id, step, value):
                info = {"pruner": self.pruning.name, "step": step, "value": value}
                self.pruned[trial_id] = info
                self.runtime.spawn(self._prune(trial_id, info), name=f"prune-{trial_id[:8]}")
                return

    async def _prune(self, trial_id: str, info: dict[str, Any]) -> None:
        """Marks a trial pruned (its attr and tag, with its owner's rights), then stops it."""
        try:
            await self.runtime.io(pruninglib.mark_pruned, self.parents.store, self.parents.run_dir(trial_id), trial_id, info)
        except OSError as e:  # a full disk or a run dir its owner locked: it is stopped all the same
            log.warning("trial %s: its pruned attr was not written: %s", trial_id[:8], e)
        await self.say(f"INFO: [guild] trial {trial_id} pruned at step {info['step']} ({self.objective.scalar}={info['value']:g})")
        await self.parents.stop_runs([trial_id])

    async def _objective(self, trial_id: str) -> Optional[float]:
        return objective_value(await self.parents.scalars(trial_id), self.objective)

    async def stop_trials(self) -> None:
        for trial_id in list(self.running):
            await self.parents.stop_runs([trial_id])


def _trial_flags_desc(spec: pb.RunSpec) -> str:
    """A trial's flags as Guild 0.9's `Running trial` line shows them: `a=1, b=x`, sorted,
    null ones left out (not its label, which a label template may change)."""
    values = json.loads(spec.flags_json or "{}")
    return ", ".join(f"{k}={flaglib.format_flag_value(v)}" for k, v in sorted(values.items()) if v is not None)


async def _speculated(speculation: Optional[speculate.Speculation], objective: Optional[float]) -> Any:
    """A trial's speculation, once settled: its next point and told search (a future) when it
    was for `objective` (speculate.Speculation.result_for); else None."""
    if speculation is None:
        return None
    await speculation.settle()
    return speculation.result_for(objective)


async def _discard(parents: Parents, premade: "asyncio.Future[Any]") -> None:
    """Removes a trial's premade dir once made (if it was); one left is removed by the next
    daemon's start."""
    try:
        await parents.discard(await premade)
    except Exception:  # noqa: BLE001 - nothing was made, or it stays for the next start
        log.debug("a premade trial dir was not discarded", exc_info=True)
