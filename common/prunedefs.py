"""Batch pruners (`--prune median|asha|hyperband`, `-Fp NAME=VAL`, guild.yml `prune:`): their
names, flags, flags' types and defaults, and the checks both guildctl and guildd run, so a
bad value is refused before anything is created, whichever client sent the batch.

The pruners are Optuna's (guildd.pruning drives them through its ask-and-tell interface);
each flag maps to one of their parameters (`optuna_kwargs`):

    median     warmup-steps (n_warmup_steps, 0), startup-trials (n_startup_trials, 5),
               interval-steps (interval_steps, 1)
    asha       min-resource (min_resource, 1), reduction-factor (reduction_factor, 4),
               min-early-stopping-rate (min_early_stopping_rate, 0)
    hyperband  min-resource (min_resource, 1), max-resource (max_resource, 'auto'),
               reduction-factor (reduction_factor, 3)

A step is the step a scalar was logged at (`step: N` lines, an event file's step): min-resource,
max-resource and warmup-steps count those steps. Pure: no Optuna here.
"""

import dataclasses
from typing import Any, Mapping

from .errors import InvalidArgument
from .flags import decode_flag_value, encode_flag_value
from .optdefs import Objective

PRUNERS = ("median", "asha", "hyperband")


@dataclasses.dataclass(frozen=True)
class FlagDef:
    """One pruner flag: the Optuna parameter it sets, its default, the smallest integer it
    takes, and whether it also takes 'auto' (Optuna infers it from the trials)."""

    param: str
    default: Any
    minimum: int
    auto: bool = False


_FLAGS: dict[str, dict[str, FlagDef]] = {
    "median": {
        "warmup-steps": FlagDef("n_warmup_steps", 0, 0),
        "startup-trials": FlagDef("n_startup_trials", 5, 0),
        "interval-steps": FlagDef("interval_steps", 1, 1),
    },
    "asha": {
        "min-resource": FlagDef("min_resource", 1, 1, auto=True),
        "reduction-factor": FlagDef("reduction_factor", 4, 2),
        "min-early-stopping-rate": FlagDef("min_early_stopping_rate", 0, 0),
    },
    "hyperband": {
        "min-resource": FlagDef("min_resource", 1, 1),
        "max-resource": FlagDef("max_resource", "auto", 1, auto=True),
        "reduction-factor": FlagDef("reduction_factor", 3, 2),
    },
}


def check_pruner(name: str) -> str:
    """The pruner's name, or InvalidArgument naming the known ones."""
    if name not in PRUNERS:
        raise InvalidArgument(f"unknown pruner {name!r}: expected one of {', '.join(PRUNERS)}")
    return name


def parse_assigns(assigns: "list[str] | tuple[str, ...]") -> dict[str, Any]:
    """`-Fp NAME=VAL` arguments as {name: decoded value} (`3` an int, `auto` a string)."""
    out: dict[str, Any] = {}
    for arg in assigns:
        name, sep, text = arg.partition("=")
        if not sep or not name:
            raise InvalidArgument(f"invalid pruner flag {arg!r}: expected NAME=VAL")
        out[name] = decode_flag_value(text)
    return out


def pruner_flags(pruner: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The pruner's flags: its defaults with the user's values, each one checked. Raises
    InvalidArgument for an unknown pruner or flag, or a value of the wrong type."""
    defs = _FLAGS[check_pruner(pruner)]
    flags = {name: d.default for name, d in defs.items()}
    for name, value in given.items():
        d = defs.get(name)
        if d is None:
            raise InvalidArgument(f"unknown flag '{name}' for pruner {pruner} (flags: {', '.join(sorted(defs))})")
        if not _valid(value, d):
            expected = f"an integer {d.minimum} or more" + (" or 'auto'" if d.auto else "")
            raise InvalidArgument(f"invalid value {encode_flag_value(value)} for pruner flag {name}: expected {expected}")
        flags[name] = value
    return flags


def _valid(value: Any, d: FlagDef) -> bool:
    if d.auto and value == "auto":
        return True
    return isinstance(value, int) and not isinstance(value, bool) and value >= d.minimum


def check_objective(objective: Objective) -> None:
    """Pruning compares a trial's objective step by step with other trials' at the same
    step: an objective that is a summary of all steps (`max acc`, `avg loss`) has no value
    until the trial ends, so it can't be pruned on."""
    if objective.qualifier != "last":
        raise InvalidArgument(
            f"--prune needs an objective with a value at each step: '{objective.qualifier} {objective.scalar}' "
            f"is known only when a trial ends (use --{'maximize' if objective.maximize else 'minimize'} {objective.scalar})"
        )


def optuna_kwargs(pruner: str, flags: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for the pruner's Optuna class, from checked flags (pruner_flags)."""
    defs = _FLAGS[check_pruner(pruner)]
    return {defs[name].param: value for name, value in flags.items()}


def describe(pruner: str, flags: Mapping[str, Any]) -> str:
    """One log line: `median: interval-steps=1 startup-trials=5 warmup-steps=0`."""
    return f"{pruner}: " + " ".join(f"{name}={encode_flag_value(flags[name])}" for name in sorted(flags))
