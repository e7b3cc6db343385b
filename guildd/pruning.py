"""A batch's pruner: Optuna's (median, asha, hyperband; common.prunedefs names their flags)
driven through its ask-and-tell interface on an in-memory study, one Optuna trial per batch
trial. The trials' objective values arrive by step as the daemon reads their scalars (the
batch hears them from guildd.watching.Followers.listen); whether a trial should stop is
Optuna's decision, made on the event loop (an in-memory study's should_prune takes well
under a millisecond for a batch's few dozen trials).

Nothing here is persisted: after a daemon restart the batch replays its trials' histories
(their event files) through a new Pruning in the order the trials were made, which rebuilds
what the pruner knew, rungs included (ASHA and Hyperband record them as trials report).

Optuna is imported only when a batch prunes: the daemon starts without it.
"""

import json
import math
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from guild_common import prunedefs, rundir
from guild_common.optdefs import Objective
from guild_common.paths import StrPath
from guildd import fsrights, manage
from guildd.store import Store

PRUNED_ATTR = "pruned"  # {pruner, step, value}: `runs info` shows it
PRUNED_TAG = "pruned"  # filters and compare read tags from the index: `-F "tags contains pruned"`, `.tags`

Point = tuple[int, float]  # (step, objective value)


def curve(scalars: Iterable[Sequence[Any]], objective: Objective) -> list[Point]:
    """The objective's finite values by step among (key, value, step) scalars, in the order
    given. Keys match as batchspec.objective_value matches them: `val#loss` also matches a
    bare `loss`."""
    key = objective.scalar
    tag = key.split("#", 1)[1] if "#" in key else key
    return [(int(step), float(value)) for k, value, step, *_ in scalars
            if k in (key, tag) and isinstance(value, (int, float)) and math.isfinite(value)]


class Pruning:
    """The study behind a batch's pruning decisions, keyed by the batch's trial ids."""

    def __init__(self, pruner: str, flags: Mapping[str, Any], maximize: bool) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        kwargs = prunedefs.optuna_kwargs(pruner, flags)
        classes: dict[str, Callable[..., Any]] = {
            "median": optuna.pruners.MedianPruner,
            "asha": optuna.pruners.SuccessiveHalvingPruner,
            "hyperband": optuna.pruners.HyperbandPruner,
        }
        self.name = pruner
        self._states = optuna.trial.TrialState
        # No parameters are asked of this study (the batch's sampler or grid picks the flags):
        # the cheapest sampler will do.
        # A fixed name: Hyperband puts a trial in a bracket by a hash of the study's name and
        # the trial's number, so a study rebuilt after a restart must bear the same name.
        self.study = optuna.create_study(
            study_name="guild-batch",
            direction="maximize" if maximize else "minimize",
            sampler=optuna.samplers.RandomSampler(seed=0),
            pruner=classes[pruner](**kwargs),
        )
        self._trials: dict[str, Any] = {}  # batch trial id -> optuna trial
        self._last: dict[str, Point] = {}  # batch trial id -> last point reported

    def __contains__(self, key: str) -> bool:
        return key in self._trials

    def begin(self, key: str) -> None:
        """A batch trial starts (or, replayed, started): a new study trial."""
        if key not in self._trials:
            self._trials[key] = self.study.ask()

    def report(self, key: str, step: int, value: float) -> bool:
        """Reports the trial's objective at `step`; True when the pruner says to stop it.
        A step at or before one already reported is ignored (a replay's overlap with what
        arrives live, or a scalar logged twice at one step)."""
        trial = self._trials.get(key)
        last = self._last.get(key)
        if trial is None or (last is not None and step <= last[0]) or not math.isfinite(value):
            return False
        trial.report(value, step)
        self._last[key] = (step, value)
        return bool(trial.should_prune())

    def last(self, key: str) -> Optional[Point]:
        """The trial's last reported (step, value), None if it reported none."""
        return self._last.get(key)

    def end(self, key: str, value: Optional[float], pruned: bool = False) -> None:
        """The trial ended: pruned, completed with its final objective `value`, or (None) with
        no value (failed, stopped): only completed trials set the bar for others."""
        trial = self._trials.pop(key, None)
        if trial is None:
            return
        if pruned:
            self.study.tell(trial, state=self._states.PRUNED)
        elif value is not None and math.isfinite(value):
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=self._states.FAIL)

    def replay(self, key: str, points: Iterable[Point]) -> Optional[Point]:
        """Reports an earlier trial's history without acting on it; returns the first point
        at which the pruner would have stopped it (None: none)."""
        self.begin(key)
        would = None
        for step, value in points:
            if self.report(key, step, value) and would is None:
                would = (step, value)
        return would


def history(run_dir: StrPath, objective: Objective) -> tuple[list[Point], Any]:
    """A trial's objective by step so far (its event files: those guildd made of its output
    and its own), ordered by step, and its `pruned` attr (None: not pruned). With the calling
    thread's rights: the batch's are the run dir owner's."""
    scalars, _ = manage.run_scalars(run_dir)
    points = sorted(curve(scalars, objective), key=lambda p: p[0])  # stable: a step's first value first
    return points, rundir.read_attr(run_dir, PRUNED_ATTR)


def mark_pruned(store: Store, run_dir: StrPath, run_id: str, info: Mapping[str, Any]) -> None:
    """Writes a trial's `pruned` attr and adds the `pruned` tag, in its run dir with its
    owner's rights and in the index (I/O thread), before the trial is stopped."""
    with fsrights.as_owner_of(run_dir):
        rundir.write_attr(run_dir, PRUNED_ATTR, dict(info))
        tags = rundir.read_attr(run_dir, "tags")
        tags = [str(t) for t in tags] if isinstance(tags, list) else []
        if PRUNED_TAG not in tags:
            tags.append(PRUNED_TAG)
            rundir.write_attr(run_dir, "tags", tags)
    store.update(run_id, tags_json=json.dumps(tags))
