"""Optuna's TPE sampler (`-o tpe`) as an ask/tell search, beside skopt's gp/forest/gbrt.

It has `optimizers.Search`'s interface (ask, tell, told, random_start, dimensions, flags), so
the batch loop (guildd.batches) drives it the same way. The batch's dimensions map to Optuna
distributions: `[MIN:MAX]` to a FloatDistribution (an IntDistribution for integer bounds),
`loguniform[...]` to the same with log=True, a list to a CategoricalDistribution of the list's
indexes (Optuna's choices must be plain scalars; a flag's list may hold anything Guild allows).

Each asked point is an Optuna trial left running until its result is told: with
`constant-liar` (the default, as in Optuna 5) TPE treats running trials as bad, so trials
started side by side (`--parallel`, or one asked ahead while another runs) look elsewhere.
Results of trials this search did not ask (a restarted batch's earlier trials) are added to
the study as finished trials (study.add_trial), so a restart learns from them.

Optuna is imported when the first TPESearch is built (about 0.2 s): the daemon starts
without it. Like Search, a TPESearch is not thread-safe.
"""

import functools
from collections.abc import Mapping
from typing import Any

from guild_common import optdefs
from guildd.optimizers import Counted, Dim, dims_for, flag_values, point_for


class TPESearch(Counted):
    """An ask/tell TPE search over a batch's flag values (see optimizers.Search for the
    arguments; `algorithm` must name tpe)."""

    def __init__(self, algorithm: str, flags: dict[str, Any], values: dict[str, Any],
                 seed: int | None = None, objective_maximize: bool = False) -> None:
        import optuna

        _quiet_optuna()
        self.algorithm = optdefs.algorithm_for(algorithm)
        if self.algorithm != "tpe":
            raise ValueError(f"TPESearch runs tpe, not {self.algorithm}")
        self.flags = optdefs.optimizer_flags(self.algorithm, flags)
        self._values = dict(values)
        self._dims = dims_for(values)
        self._distributions = {d.name: _distribution(d) for d in self._dims}
        sampler = optuna.samplers.TPESampler(
            seed=None if seed is None else seed % 2**32,
            n_startup_trials=self.flags["n-startup-trials"],
            n_ei_candidates=self.flags["n-ei-candidates"],
            multivariate=self.flags["multivariate"],
            constant_liar=self.flags["constant-liar"],
        )
        self._study = optuna.create_study(sampler=sampler, direction="maximize" if objective_maximize else "minimize")
        self._told = 0
        self._pending: list[tuple[list[Any], Any]] = []  # (point, its running optuna.Trial), as asked
        self._initial_due = any(d.initial is not None for d in self._dims)

    @property
    def random_start(self) -> bool:
        """Whether the next point asked is one of TPE's random start-up trials."""
        return self._told + len(self._pending) < self.flags["n-startup-trials"]

    def tell(self, values: Mapping[str, Any], objective: Any) -> bool:
        """Learns from a trial's flag values and objective; False when the trial can't be used:
        no (finite) objective, or values outside this search's space (another batch's bounds).
        A pending point's Optuna trial is finished either way (failed without an objective)."""
        from optuna.trial import TrialState, create_trial

        point = point_for(self._dims, values)
        if point is None:
            return False
        trial = self._take_pending(point)
        usable = optdefs.is_number(objective)
        if trial is not None:
            if usable:
                self._study.tell(trial, float(objective))
            else:
                self._study.tell(trial, state=TrialState.FAIL)
        elif usable:
            params = {d.name: v for d, v in zip(self._dims, point)}
            self._study.add_trial(create_trial(params=params, distributions=self._distributions, value=float(objective)))
        if usable:
            self._told += 1
        return usable

    def ask(self, n: int = 1) -> list[dict[str, Any]]:
        """The next `n` trials' full flag values (fixed values and dimension values)."""
        if n < 1:
            raise ValueError(f"n must be 1 or more, got {n}")
        if self._initial_due and not self._told and not self._pending:
            # The first trial takes the initial values given (`[MIN:MAX:INITIAL]`), TPE the rest.
            self._study.enqueue_trial({d.name: d.initial for d in self._dims if d.initial is not None})
        self._initial_due = False
        out = []
        for _ in range(n):
            trial = self._study.ask(self._distributions)
            point = [trial.params[d.name] for d in self._dims]
            self._pending.append((point, trial))
            out.append(flag_values(self._dims, self._values, point))
        return out

    def _take_pending(self, point: list[Any]) -> Any:
        for i, (pending, trial) in enumerate(self._pending):
            if pending == point:
                del self._pending[i]
                return trial
        return None


def _distribution(dim: Dim) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dim.kind == "categorical":
        return CategoricalDistribution(list(range(len(dim.choices))))
    if dim.kind == "integer":
        return IntDistribution(dim.low, dim.high, log=dim.log)
    return FloatDistribution(dim.low, dim.high, log=dim.log)


@functools.cache
def _quiet_optuna() -> None:
    """Optuna logs each trial at INFO to stderr: the daemon's log would fill with it."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
