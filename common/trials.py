"""Trials: the flag values of each run a batch makes.

A grid batch comes from list values (and sequence functions, which expand to lists); a batch
file (`@trials.csv`) lists its trials; a random search samples flags given search functions
(`[MIN:MAX]`, `uniform`, `loguniform`), lists and choices. `--max-trials` samples a larger grid
down, and `--save-trials` writes trials as a CSV file that reads back as a batch file.
"""

import csv
import itertools
import json
import math
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

import yaml

from . import flagfuncs, optdefs
from .errors import InvalidArgument
from .flags import decode_flag_value, encode_flag_value

# Trials of a random search when no --max-trials is given (Guild's `+`, `random` and `gp`).
DEFAULT_MAX_TRIALS = 20

Trial = dict[str, Any]


def expand_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with sequence functions (`range[1:5]`) replaced by their lists; search
    functions and other values as they are. Raises InvalidArgument for bad functions."""
    return {name: flagfuncs.expand(value, name) for name, value in values.items()}


def grid(values: Mapping[str, Any]) -> list[Trial]:
    """Each trial's flag values, or [] when no flag has a list value (not a batch).

    Several lists make their cartesian product in Guild's order: flag names ascending, each
    flag's values in the order given. An empty list makes zero trials.
    """
    names = sorted(name for name, value in values.items() if isinstance(value, list))
    if not names:
        return []
    return [
        {**values, **dict(zip(names, combo))}
        for combo in itertools.product(*(values[name] for name in names))
    ]


def sample(trials: Sequence[Trial], max_trials: int | None, seed: Any = None) -> list[Trial]:
    """At most `max_trials` of `trials` (None: all), a random subset kept in its original
    order; the same `seed` picks the same subset (the one Guild 0.9 picks for that seed)."""
    if max_trials is None or len(trials) <= max_trials:
        return list(trials)
    picked = random.Random(seed).sample(range(len(trials)), max_trials)
    return [trials[i] for i in sorted(picked)]


def search_dims(values: Mapping[str, Any]) -> dict[str, flagfuncs.SearchDim]:
    """`{name: SearchDim}` for the flags whose value is a search function."""
    dims = {}
    for name, value in values.items():
        dim = flagfuncs.search_dim(value, name)
        if dim is not None:
            dims[name] = dim
    return dims


def random_trials(
    values: Mapping[str, Any],
    n: int | None = DEFAULT_MAX_TRIALS,
    seed: Any = None,
    choices: Mapping[str, Iterable[Any]] | None = None,
) -> list[Trial]:
    """`n` (None: DEFAULT_MAX_TRIALS) trials of a random search over `values`.

    A flag with a search function is sampled from its range (log-uniformly for loguniform,
    ints for int bounds; its initial value, if any, in the first trial); a list value is a
    categorical choice; other values stay fixed. `choices` ({name: [values]}) makes more
    categorical flags, as Guild 0.9 samples every flag that has choices: pass it only for the
    flags the user didn't set. The same `seed` gives the same trials. An empty list leaves no
    trial to make: [].
    """
    values = expand_values(values)
    dims = search_dims(values)
    categorical = {name: value for name, value in values.items() if isinstance(value, list)}
    for name, options in (choices or {}).items():
        if name not in dims and name not in categorical:
            categorical[name] = list(options)
    if not dims and not categorical:
        raise optdefs.no_dimensions(values)
    if any(not options for options in categorical.values()):
        return []
    rng = random.Random(seed)
    sampled = sorted(dims.keys() | categorical.keys())
    trials = []
    for i in range(DEFAULT_MAX_TRIALS if n is None else n):
        trial = dict(values)
        for name in sampled:
            if name in dims:
                trial[name] = _sample_dim(dims[name], rng, first=i == 0)
            else:
                trial[name] = rng.choice(categorical[name])
        trials.append(trial)
    return trials


def _sample_dim(dim: flagfuncs.SearchDim, rng: random.Random, first: bool) -> Any:
    if first and dim.initial is not None:
        return dim.initial
    if dim.integer:
        return rng.randint(dim.low, dim.high)  # type: ignore[arg-type]  # integer: int bounds
    if dim.kind == "loguniform":
        value = math.exp(rng.uniform(math.log(dim.low), math.log(dim.high)))
        return min(max(value, dim.low), dim.high)  # exp(log(x)) may land a hair outside
    return rng.uniform(dim.low, dim.high)


def read_batch_files(paths: Iterable[str], cwd: str) -> list[Trial]:
    """The trials of the batch files `paths` (`@PATH` arguments, relative to `cwd`), in order."""
    trials: list[Trial] = []
    for path in paths:
        trials.extend(read_batch_file(path, cwd))
    return trials


def read_batch_file(path: str, cwd: str) -> list[Trial]:
    """The trials of one batch file: CSV (a header row of flag names), YAML (.yml, .yaml) or
    JSON, holding a list of dicts or one dict. Values read as flag values on a command line
    do: CSV cells and unquoted YAML scalars are decoded (`yes` -> True, `1e-3` -> 0.001).

    Raises InvalidArgument with Guild's messages for a missing file, an unsupported
    extension and content that isn't trials.
    """
    shown = _display_path(path)
    full = os.path.join(cwd, os.path.expanduser(path))
    if not os.path.exists(full):
        raise InvalidArgument("batch file %s does not exist" % shown)
    read = _READERS.get(os.path.splitext(full)[1].lower())
    if read is None:
        raise InvalidArgument("cannot read trials for %s: unsupported extension" % shown)
    try:
        return read(full)
    except (OSError, ValueError, csv.Error) as e:
        raise InvalidArgument("cannot read trials for %s: %s" % (shown, _reason(e))) from None
    except RecursionError:  # JSON or YAML nested a few thousand deep
        raise InvalidArgument("cannot read trials for %s: data nested too deeply" % shown) from None


def _display_path(path: str) -> str:
    """`path` as Guild shows it in messages: relative paths start with `./`."""
    if os.path.isabs(path) or path.startswith(("./", "../", "~")):
        return path
    return "./" + path


def _reason(error: Exception) -> str:
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error)


def _read_csv(path: str) -> list[Trial]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [name.strip() for name in next(reader, [])]
        if "" in header:
            raise ValueError("empty column name in header")
        trials = []
        for row in reader:
            if not row:
                continue  # a blank line
            if any(cell.strip() for cell in row[len(header) :]):
                raise ValueError(
                    "line %i has %i values for %i columns"
                    % (reader.line_num, len(row), len(header))
                )
            # A short row leaves its last flags out, to be set on the command line or defaulted.
            trials.append({name: decode_flag_value(cell) for name, cell in zip(header, row)})
        return trials


def _read_json(path: str) -> list[Trial]:
    with open(path, encoding="utf-8") as f:
        return _trials_from(json.load(f))


def _read_yaml(path: str) -> list[Trial]:
    with open(path, encoding="utf-8") as f:
        try:
            node = yaml.compose(f, Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            raise ValueError(_yaml_reason(e)) from None
    return _trials_from(None if node is None else _node_value(node))


def _yaml_reason(error: yaml.YAMLError) -> str:
    """A YAML error on one line (PyYAML's own message spans four)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if problem and mark:
        return "%s (line %i, column %i)" % (problem, mark.line + 1, mark.column + 1)
    return " ".join(str(error).split())


def _node_value(node: yaml.Node) -> Any:
    """A composed YAML node's value, unquoted scalars decoded as flag values are: so `1e-3` is
    a float and `1:30` a string in a batch file, as on a command line (YAML reads them as a
    string and as 90). Keys are the text as written."""
    if isinstance(node, yaml.MappingNode):
        return {_node_key(key): _node_value(value) for key, value in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_node_value(item) for item in node.value]
    if node.style is not None:  # type: ignore[attr-defined]  # a ScalarNode
        return node.value  # quoted or block text: a string
    return decode_flag_value(node.value) if node.value else None


def _node_key(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise ValueError("invalid flag name at line %i" % (node.start_mark.line + 1))
    return node.value


def _trials_from(data: Any) -> list[Trial]:
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise ValueError(
            "invalid data type for trials: expected list or dict, got %s" % type(data).__name__
        )
    for item in data:
        if not isinstance(item, dict):
            raise ValueError(
                "invalid data type for trial %s: expected dict" % encode_flag_value(item)
            )
    return data


_READERS: dict[str, Callable[[str], list[Trial]]] = {".csv": _read_csv, ".json": _read_json, ".yml": _read_yaml, ".yaml": _read_yaml}


def validate_batch_columns(
    path: str, trials: Iterable[Trial], flag_names: Iterable[str], op_name: str
) -> None:
    """Raise InvalidArgument if a trial read from batch file `path` sets a flag that isn't
    one of `flag_names` (the flags of operation `op_name`)."""
    known = set(flag_names)
    for trial in trials:
        for name in trial:
            if name not in known:
                raise InvalidArgument(
                    "batch file %s: column '%s' is not a flag of %s" % (path, name, op_name)
                )


def batch_file_trials(
    file_trials: Iterable[Trial], cli_values: Mapping[str, Any], defaults: Mapping[str, Any]
) -> list[Trial]:
    """The trials a batch runs from its batch files' trials, Guild's way.

    A trial's own values win over `cli_values` (flags given on the command line), which win
    over `defaults`; a list value left in a trial, from the command line or the file, expands
    it as a grid. So `loud=[yes,no]` with three trials, one of them setting loud, makes five.
    A single trial left means a plain run, not a batch (the caller's decision).
    """
    trials: list[Trial] = []
    for file_trial in file_trials:
        merged = expand_values({**defaults, **cli_values, **file_trial})
        trials.extend(grid(merged) or [merged])
    return trials


def write_csv(dest: str | os.PathLike[str] | TextIO, trials: Sequence[Trial]) -> None:
    """Write `trials` to `dest` (a path or a text file) as `--save-trials` does: a header of
    flag names sorted, one row per trial of encoded values, so that `@dest` reads them back.
    A flag a trial doesn't have is an empty cell (read back as '')."""
    if hasattr(dest, "write"):
        _write_csv(dest, trials)  # type: ignore[arg-type]  # a text file
    else:
        with open(dest, "w", newline="", encoding="utf-8") as f:
            _write_csv(f, trials)


def _write_csv(f: TextIO, trials: Sequence[Trial]) -> None:
    names = sorted(set().union(*trials)) if trials else []
    writer = csv.writer(f, lineterminator="\n")
    if names:
        writer.writerow(names)
    for trial in trials:
        writer.writerow([encode_flag_value(trial[n]) if n in trial else "" for n in names])
