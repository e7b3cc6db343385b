"""Optimizer names, flags and objectives, as users write them (`-o gp`, `-Fo kappa=1.8`,
`--maximize acc`): pure, so guildctl can check and show them before anything is created.
The optimizers themselves (scikit-optimize, Optuna's TPE) run in guildd (guildd.optimizers,
guildd.tpe)."""

import dataclasses
import math
from typing import Any

from guild_common import query
from guild_common.errors import InvalidArgument
from guild_common.flags import encode_flag_value

ALGORITHMS = ("gp", "forest", "gbrt", "tpe", "random")

# What users type for -o / `optimizer:` (Guild's skopt plugin resolves the same names).
_ALIASES = {
    "gp": "gp",
    "skopt:gp": "gp",
    "bayesian": "gp",
    "gaussian": "gp",
    "forest": "forest",
    "skopt:forest": "forest",
    "gbrt": "gbrt",
    "skopt:gbrt": "gbrt",
    "random": "random",
    "skopt:random": "random",
    # Optuna's TPE (Guild 0.9 has no Optuna optimizer; `optuna:tpe` names its batch runs)
    "tpe": "tpe",
    "optuna:tpe": "tpe",
}

# Guild 0.9's optimizer flags and defaults (seeds L8056, L8101, L8211, L38064-L38090).
_DEFAULT_FLAGS: dict[str, dict[str, Any]] = {
    "gp": {"acq-func": "gp_hedge", "kappa": 1.96, "noise": "gaussian", "random-starts": 3, "xi": 0.05},
    "forest": {"kappa": 1.96, "random-starts": 3, "xi": 0.05},
    "gbrt": {"kappa": 1.96, "random-starts": 3, "xi": 0.05},
    "random": {},
    # Optuna 5's TPESampler defaults (multivariate: its default for one objective)
    "tpe": {"constant-liar": True, "multivariate": True, "n-ei-candidates": 24, "n-startup-trials": 10},
}

# skopt's acquisition functions that work on a plain objective (EIps/PIps need each trial's
# run time as a second objective; Guild lists them but they fail there).
ACQ_FUNCS = ("gp_hedge", "EI", "LCB", "PI")

def algorithm_for(name: Any) -> str:
    """The canonical algorithm (one of ALGORITHMS) for what a user typed."""
    try:
        return _ALIASES[name]
    except (KeyError, TypeError):
        raise InvalidArgument(
            f"unknown optimizer '{name}' (optimizers: {', '.join(ALGORITHMS)})"
        ) from None


def opspec(algorithm: str) -> str:
    """The optimizer's name in a batch's operation (`train.py+skopt:gp`, `train.py+optuna:tpe`)."""
    algorithm = algorithm_for(algorithm)
    return ("optuna:" if algorithm == "tpe" else "skopt:") + algorithm


def random_starts(algorithm: str, flags: dict[str, Any]) -> int:
    """How many trials an algorithm draws at random before its model suggests (0: random
    search, which has no model): its `random-starts` or `n-startup-trials` flag."""
    algorithm = algorithm_for(algorithm)
    if algorithm == "random":
        return 0
    name = "n-startup-trials" if algorithm == "tpe" else "random-starts"
    return int(flags.get(name, _DEFAULT_FLAGS[algorithm][name]))


def default_flags(algorithm: str) -> dict[str, Any]:
    """The algorithm's optimizer flags with Guild's defaults (a new dict)."""
    return dict(_DEFAULT_FLAGS[algorithm_for(algorithm)])


def optimizer_flags(algorithm: str, assigns: dict[str, Any]) -> dict[str, Any]:
    """`default_flags` merged with the user's (decoded) values; each value is checked."""
    algorithm = algorithm_for(algorithm)
    flags = default_flags(algorithm)
    for name, value in assigns.items():
        if name not in flags:
            known = ", ".join(sorted(flags)) or "none"
            raise InvalidArgument(
                f"unknown flag '{name}' for optimizer {algorithm} (flags: {known})"
            )
        _check_flag(name, value)
        flags[name] = value
    return flags


def _check_flag(name: str, value: Any) -> None:
    if name in ("random-starts", "n-startup-trials"):
        ok, expected = is_int(value) and value >= 0, "an integer 0 or more"
    elif name == "n-ei-candidates":
        ok, expected = is_int(value) and value >= 1, "an integer 1 or more"
    elif name in ("constant-liar", "multivariate"):
        ok, expected = isinstance(value, bool), "true or false"
    elif name == "acq-func":
        ok, expected = value in ACQ_FUNCS, "one of " + ", ".join(ACQ_FUNCS)
    elif name == "noise":
        ok = value == "gaussian" or (is_number(value) and value >= 0)
        expected = "'gaussian' or a number 0 or more"
    else:  # kappa, xi
        ok, expected = is_number(value), "a number"
    if not ok:
        raise InvalidArgument(
            f"invalid value {encode_flag_value(value)} for optimizer flag {name}: expected {expected}"
        )


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def describe(algorithm: str, flags: dict[str, Any]) -> str:
    """One log line: `gp: acq-func=gp_hedge kappa=1.96 ...` (flags sorted by name)."""
    algorithm = algorithm_for(algorithm)
    assigns = " ".join(f"{name}={encode_flag_value(flags[name])}" for name in sorted(flags))
    return f"{algorithm}: {assigns}" if assigns else algorithm


@dataclasses.dataclass(frozen=True)
class Objective:
    """What a batch optimizes: a trial's scalar, matched by its key (`loss`, `val#loss`)."""

    scalar: str  # the scalar key: a tag, or `prefix#tag` (prefix kept)
    maximize: bool = False
    qualifier: str = "last"  # which of the scalar's values counts (query.QUALIFIERS)


def parse_objective(minimize: str | None = None, maximize: str | None = None) -> Objective:
    """The objective from `--minimize`/`--maximize` (column-spec syntax); default minimize loss."""
    if minimize and maximize:
        raise InvalidArgument("--minimize and --maximize cannot both be specified")
    text, to_max = (maximize, True) if maximize else (minimize or "loss", False)
    col = query.parse_column(text, "objective")
    if col.kind != "scalar" or col.step:
        raise InvalidArgument(f"invalid objective {text!r}: expected a scalar")
    return Objective(col.name, to_max, col.qualifier)  # type: ignore[arg-type]  # a scalar's


def no_dimensions(values: dict[str, Any]) -> InvalidArgument:
    """Guild's error for a search whose flags have no range or list to search."""
    assigns = ", ".join(f"{name}={encode_flag_value(values[name])}" for name in sorted(values))
    return InvalidArgument(
        f"flags for batch ({assigns}) do not contain any search dimensions\n"
        "Try specifying a range for one or more flags as NAME=[MIN:MAX]."
    )
