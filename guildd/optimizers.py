"""Optimizers for batch runs: Guild's skopt algorithms as an ask/tell search.

A batch's flag values hold fixed values, lists (categorical dimensions) and `SearchDim`s
(`[MIN:MAX]`, `loguniform[...]`). `Search` turns them into a scikit-optimize space (dimensions
sorted by flag name, as Guild does), learns from finished trials (`tell`) and proposes the next
trials' full flag values (`ask`), several at once for trials that run side by side.

The algorithms are Guild 0.9's (seeds/guild-repo-docs.txt L7943-L8248, L21800-L21830):
`gp` (skopt's gp_minimize: Gaussian process), `forest` (forest_minimize: extra trees, acquisition
EI), `gbrt` (gbrt_minimize: gradient boosted trees, acquisition EI) and `random` (no model).
Each model-based algorithm starts with `random-starts` random trials, then asks its model.

Points asked but not yet told are pending: later asks give them a constant-liar value (the best
objective seen so far), so a trial that starts while others still run doesn't probe their points.

scikit-optimize is imported when the first `Search` is built: it takes about a second, and the
daemon starts without it. A `Search` is not thread-safe; `ask` refits the model (tenths of a
second), so the daemon calls it off its event loop.
"""

import dataclasses
import functools
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from guild_common import optdefs
from guild_common.errors import InvalidArgument
from guild_common.flagfuncs import SearchDim
from guild_common.flags import encode_flag_value
from guildd import models

# skopt's surrogate models, as its *_minimize functions choose them ("ET": forest_minimize's
# default extra trees; gbrt's comes from models.gbrt_class), and the acquisition function
# where the algorithm has no acq-func flag.
_ESTIMATORS = {"gp": "GP", "forest": "ET"}
_FIXED_ACQ_FUNC = "EI"

@dataclasses.dataclass(frozen=True)
class Dim:
    """One search dimension: the flag and how its values map to a point's (any optimizer's:
    skopt here, Optuna's TPE in guildd.tpe)."""

    name: str
    kind: str  # "real", "integer" or "categorical"
    low: Any = None  # real and integer
    high: Any = None
    log: bool = False  # loguniform
    choices: tuple = ()  # categorical: the list's values; the optimizer sees their indexes
    initial: Any = None  # the value for the first point, as the optimizer sees it; None: random


def dims_for(values: Mapping[str, Any]) -> tuple[Dim, ...]:
    """The search dimensions of a batch's flag values (lists and SearchDims), sorted by flag
    name as Guild does; each checked, so a bad range is refused before anything starts."""
    dims = tuple(_dim_for(name, values[name]) for name in sorted(values) if _is_dim(values[name]))
    if not dims:
        raise optdefs.no_dimensions(dict(values))
    return dims


def point_for(dims: Iterable[Dim], values: Mapping[str, Any]) -> list[Any] | None:
    """Flag values as a point (one value per dimension, as the optimizer sees it), or None
    when they lie outside the dimensions (another batch's bounds or choices)."""
    point = []
    for d in dims:
        if d.name not in values:
            return None
        value = _space_value(d, values[d.name])
        if value is None:
            return None
        point.append(value)
    return point


def flag_values(dims: Iterable[Dim], values: Mapping[str, Any], point: Iterable[Any]) -> dict[str, Any]:
    """A trial's full flag values: the batch's fixed values and the point's dimension values."""
    by_name = {d.name: d.choices[v] if d.kind == "categorical" else _plain(v) for d, v in zip(dims, point)}
    return {name: by_name.get(name, value) for name, value in values.items()}


class Searcher(Protocol):
    """What the batch loop uses of a search: Search (skopt) and tpe.TPESearch (Optuna)."""

    algorithm: str
    flags: dict[str, Any]

    @property
    def dimensions(self) -> tuple[str, ...]: ...
    @property
    def told(self) -> int: ...
    @property
    def random_start(self) -> bool: ...
    def tell(self, values: Mapping[str, Any], objective: Any) -> bool: ...
    def ask(self, n: int = 1) -> list[dict[str, Any]]: ...


def new_search(algorithm: str, flags: dict[str, Any], values: dict[str, Any], seed: int | None = None,
               objective_maximize: bool = False) -> Searcher:
    """The search for an optimizer's batch: Optuna's TPE for `tpe`, else skopt's (Search)."""
    if optdefs.algorithm_for(algorithm) == "tpe":
        from guildd import tpe

        return tpe.TPESearch(algorithm, flags, values, seed, objective_maximize)
    return Search(algorithm, flags, values, seed, objective_maximize)


class Counted:
    """What every search says of itself: its dimensions and how much it has learned."""

    _dims: tuple[Dim, ...]
    _told: int

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The search dimensions' flag names, sorted (skopt's order)."""
        return tuple(d.name for d in self._dims)

    @property
    def told(self) -> int:
        """How many trial results the search has learned from."""
        return self._told


class Search(Counted):
    """An ask/tell optimizer over a batch's flag values.

    `values` maps flag names to fixed values, lists (categorical dimensions) or SearchDims.
    `flags` are optimizer flags (missing ones take their defaults). `seed` makes the search
    reproducible. With `objective_maximize` the objective is negated before skopt sees it.
    """

    def __init__(self, algorithm: str, flags: dict[str, Any], values: dict[str, Any],
                 seed: int | None = None, objective_maximize: bool = False) -> None:
        from sklearn.utils import check_random_state
        from skopt.space import Space

        _one_blas_thread()
        self.algorithm = optdefs.algorithm_for(algorithm)
        self.flags = optdefs.optimizer_flags(self.algorithm, flags)
        self._values = dict(values)
        self._maximize = objective_maximize
        self._dims = dims_for(values)
        self._rng = check_random_state(None if seed is None else seed % 2**32)
        self._skopt_dims = [_skopt_dim(d) for d in self._dims]
        # With nothing told, even random-starts=0 must start somewhere: at random.
        self._random_starts = max(self.flags.get("random-starts", 0), 1)
        self._opt = _skopt_optimizer(self.algorithm, self.flags, self._skopt_dims, self._random_starts, self._rng)
        self._space = self._opt.space if self._opt else Space(self._skopt_dims)
        self._told = 0
        # told but not yet given to skopt: one refit per ask
        self._unfitted: tuple[list[list[Any]], list[float]] = ([], [])
        self._pending: list[list[Any]] = []  # points asked and not yet told
        self._initial_due = any(d.initial is not None for d in self._dims)

    @property
    def random_start(self) -> bool:
        """Whether the next point asked is a random start (random search has none: all random)."""
        return self._opt is not None and self._told + len(self._pending) < self._random_starts

    def tell(self, values: Mapping[str, Any], objective: Any) -> bool:
        """Learns from a trial's flag values and objective; False when the trial can't be used:
        no (finite) objective, or values outside this search's space (another batch's bounds)."""
        point = self._point(values)
        if point is None:
            return False
        if point in self._pending:
            self._pending.remove(point)
        if not optdefs.is_number(objective):
            return False
        self._told += 1
        if self._opt:
            self._unfitted[0].append(point)
            self._unfitted[1].append(-float(objective) if self._maximize else float(objective))
        return True

    def ask(self, n: int = 1) -> list[dict[str, Any]]:
        """The next `n` trials' full flag values (fixed values and dimension values)."""
        if n < 1:
            raise ValueError(f"n must be 1 or more, got {n}")
        points: list[list[Any]] = []
        if self._initial_due and not self._told and not self._pending:
            points.append(self._initial_point())
            self._pending.append(points[0])
        self._initial_due = False
        for proposed in self._propose(n - len(points)):
            point = [_plain(v) for v in proposed]
            points.append(point)
            self._pending.append(point)
        return [flag_values(self._dims, self._values, point) for point in points]

    def prepare_ask(self) -> None:
        """Does now what the next ask of one point does first without needing the result it
        will learn: draws the candidate points its model scores (models.drawn_ahead_space_class;
        the same points, the generator left as it was). For a search copied to wait for a
        trial's result (guildd.speculate)."""
        if self._opt is not None and self._told + 1 >= self._random_starts:  # the next tell fits the model
            self._opt.space.draw_ahead(self._opt.n_points, self._opt.rng)

    def _propose(self, n: int) -> list[list[Any]]:
        if n == 0:
            return []
        if not self._opt:
            return self._space.rvs(n_samples=n, random_state=self._rng)
        if n == 1 and not self._pending:
            xs, ys = self._unfitted
            if xs:
                self._opt.tell(xs, ys)
                self._unfitted = ([], [])
            return [self._opt.ask()]
        return self._propose_with_liar(n)

    def _propose_with_liar(self, n: int) -> list[list[Any]]:
        """Constant liar (skopt's cl_min, with fewer refits): a fresh optimizer learns the results
        and that each pending or newly proposed point scored the best value seen so far, so every
        next point looks elsewhere. n points cost n model fits."""
        xs = self._opt.Xi + self._unfitted[0]
        ys = self._opt.yi + self._unfitted[1]
        lie = min(ys) if ys else 0.0
        seed = self._rng.randint(0, 2**31 - 1)
        liar = _skopt_optimizer(self.algorithm, self.flags, self._skopt_dims, self._random_starts, seed)
        if xs or self._pending:
            liar.tell(xs + [list(p) for p in self._pending], ys + [lie] * len(self._pending))
        points = [liar.ask()]
        while len(points) < n:
            liar.tell(points[-1], lie)
            points.append(liar.ask())
        return points

    def _initial_point(self) -> list[Any]:
        point = [_plain(v) for v in self._space.rvs(random_state=self._rng)[0]]
        return [d.initial if d.initial is not None else v for d, v in zip(self._dims, point)]

    def _point(self, values: Mapping[str, Any]) -> list[Any] | None:
        return point_for(self._dims, values)


def _skopt_optimizer(algorithm: str, flags: Mapping[str, Any], dims: list[Any], random_starts: int,
                     rng: Any) -> Any:
    """skopt's Optimizer for a model-based algorithm, set up as its *_minimize function would
    be; None for random search, which needs no model. `rng`: a seed or a RandomState."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.utils import check_random_state
    from skopt import Optimizer
    from skopt.utils import cook_estimator

    if algorithm == "random":
        return None
    models.use_plain_normal()
    rng = check_random_state(rng)
    est_seed = rng.randint(0, 2**31 - 1)
    if algorithm == "gbrt":
        # As cook_estimator("GBRT") builds it: 30 trees, quantile loss.
        trees = GradientBoostingRegressor(n_estimators=30, loss="quantile")
        est = models.gbrt_class()(base_estimator=trees, random_state=est_seed)
    elif algorithm == "gp":
        cooked = cook_estimator("GP", space=dims, random_state=est_seed, noise=flags["noise"])
        est = models.gp_class()(**cooked.get_params(deep=False))
    else:
        est = cook_estimator(_ESTIMATORS[algorithm], space=dims, random_state=est_seed)
    opt = Optimizer(
        dims,
        base_estimator=est,
        n_initial_points=random_starts,
        acq_func=flags.get("acq-func", _FIXED_ACQ_FUNC),
        acq_func_kwargs={"kappa": flags["kappa"], "xi": flags["xi"]},
        random_state=rng,
        model_queue_size=1,  # skopt keeps every fitted model otherwise: memory grows with a search
    )
    # the same space, whose candidate points can be drawn ahead (Search.prepare_ask)
    opt.space = models.drawn_ahead_space_class()(opt.space.dimensions, constraint=opt.space.constraint)
    return opt


def prepare_process() -> None:
    """Readies a worker process for searches that arrive pickled (guildd.runtime's compute
    process): one BLAS thread, and skopt imported before the first one comes."""
    import skopt  # noqa: F401

    models.gp_class()
    _one_blas_thread()


@functools.cache
def _one_blas_thread() -> None:
    """Keeps numpy's BLAS (OpenBLAS) to one thread in this process. A model's matrices are tens
    of rows: BLAS threads only contend with each other, with other searches' asks and with the
    runs on the box (on 2 cores, a gp suggestion takes half as long again with them)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _is_dim(value: Any) -> bool:
    return isinstance(value, (list, SearchDim))


def _skopt_dim(dim: Dim) -> Any:
    """A dimension as scikit-optimize's Real, Integer or Categorical (of the choices' indexes)."""
    from skopt.space import Categorical, Integer, Real

    if dim.kind == "categorical":
        return Categorical(list(range(len(dim.choices))), name=dim.name)
    prior = "log-uniform" if dim.log else "uniform"
    if dim.kind == "integer":
        return Integer(dim.low, dim.high, prior=prior, name=dim.name)
    return Real(dim.low, dim.high, prior=prior, name=dim.name)


def _dim_for(name: str, value: Any) -> Dim:
    if isinstance(value, list):
        choices = _unique(value)
        if not choices:
            raise InvalidArgument(f"flag {name} has an empty list: nothing to search")
        return Dim(name, "categorical", choices=choices)
    if value.kind not in ("uniform", "loguniform"):
        raise InvalidArgument(f"unsupported search function '{value.kind}' for flag {name}")
    low, high, integer = value.low, value.high, value.integer
    if integer:
        low, high = _as_int(low), _as_int(high)
    if not (optdefs.is_number(low) and optdefs.is_number(high)) or low >= high:
        raise InvalidArgument(
            f"invalid range [{encode_flag_value(value.low)}:{encode_flag_value(value.high)}] "
            f"for flag {name}: MIN must be a number less than MAX"
        )
    log = value.kind == "loguniform"
    if log and low <= 0:
        raise InvalidArgument(f"invalid range for flag {name}: loguniform needs MIN above 0")
    if integer:
        dim = Dim(name, "integer", low, high, log)
    else:
        dim = Dim(name, "real", float(low), float(high), log)
    if value.initial is None:
        return dim
    initial = _space_value(dim, value.initial)
    if initial is None:
        raise InvalidArgument(
            f"initial value {encode_flag_value(value.initial)} for flag {name} is outside "
            f"its range [{encode_flag_value(value.low)}:{encode_flag_value(value.high)}]"
        )
    return dataclasses.replace(dim, initial=initial)


def _unique(values: Iterable[Any]) -> tuple[Any, ...]:
    out: list[Any] = []
    for value in values:
        if not any(_same(value, seen) for seen in out):
            out.append(value)
    return tuple(out)


def _same(a: Any, b: Any) -> bool:
    # 1, 1.0 and True are different flag values.
    return type(a) is type(b) and a == b


def _as_int(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _space_value(dim: Dim, value: Any) -> Any:
    """A flag value as skopt sees it in `dim`, or None when it's not in the dimension."""
    if dim.kind == "categorical":
        return next((i for i, choice in enumerate(dim.choices) if _same(value, choice)), None)
    if not optdefs.is_number(value):
        return None
    if dim.kind == "integer":
        value = _as_int(value)
        if not optdefs.is_int(value):
            return None
    else:
        value = float(value)
    return value if dim.low <= value <= dim.high else None


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python int or float flag values and JSON need."""
    return value.item() if hasattr(value, "item") else value
