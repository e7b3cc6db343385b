"""Flag definitions: what an operation declares (or a script reveals) about each flag."""

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class FlagDef:
    name: str
    default: Any = None
    type: str | None = None  # int, float, number, string, boolean, path, existing-path
    description: str = ""
    # Values, or mappings {value, description, flags (values the choice sets), alias}.
    choices: tuple = ()
    required: bool = False
    arg_name: str | None = None  # command-line option name, when it differs from `name`
    arg_skip: bool = False  # never passed on the command line
    arg_switch: Any = None  # pass a bare `--name` only when the value equals this
    env_name: str | None = None  # replaces FLAG_<NAME> in the run's environment
    null_label: str | None = None
    min: Any = None
    max: Any = None
    allow_other: bool = False  # a value outside `choices` is accepted
    distribution: str | None = None  # search-space distribution (e.g. log-uniform)
    arg_split: Any = None  # split a string value into several command-line args
    extra: dict = dataclasses.field(default_factory=dict)  # other attributes as written
