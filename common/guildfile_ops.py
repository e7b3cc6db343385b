"""Reading the attributes of one operation in a Guild file: flag definitions, optimizers,
flags-import, requires, resources, and the warnings for attributes Guild does not know.

Functions here take an operation's (merged, substituted) data and return plain values;
guild_common.guildfile assembles them into an OpDef.
"""

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from guild_common import flags as flaglib, paths, scalars
from guild_common.errors import InvalidArgument
from guild_common.flagdef import FlagDef
from guild_common.guildfile_data import display, error, excerpt

OP_ATTRS = frozenset(
    """
    description main exec steps default flags flags-dest flags-import flags-import-skip
    default-flag-arg-skip requires output-scalars sourcecode label tags env env-secrets compare
    objective optimizer optimizers default-max-trials stoppable delete-on-success pip-freeze
    python-requires python-path plugins handle-keyboard-interrupt flag-encoder
    can-stage-trials run-attrs remote set-trace publish $include gpus gpu-memory cpus memory prune preemptible
    """.split()
)

MODEL_ATTRS = frozenset(
    """
    model description extends params operations operation-defaults resources references
    sourcecode python-requires python-path default private plugins
    """.split()
)

# A config is a reusable block for `extends` and `$include`: model attributes plus the
# shared `flags` that `flags: {$include: cfg}` reads.
CONFIG_ATTRS = (MODEL_ATTRS - {"model"}) | {"config", "flags"}

FLAG_ATTRS = frozenset(
    """
    description default choices required type arg-name arg-skip arg-switch arg-split env-name
    null-label min max allow-other distribution
    """.split()
)

# Extra flag attributes that search-space distributions read (kept in FlagDef.extra).
FLAG_DISTRIBUTION_ATTRS = frozenset(("mean", "sigma", "q"))

# `auto`: Guild 0.9's explicit "no type" (values decoded as typed, never converted).
FLAG_TYPES = ("string", "number", "float", "int", "boolean", "path", "existing-path", "auto")

SOURCE_TYPES = ("config", "file", "module", "url", "operation")


@dataclasses.dataclass(frozen=True)
class OptimizerDef:
    """An optimizer declared for an operation (`optimizer` or `optimizers`)."""

    name: str  # what `-o NAME` selects
    algorithm: str  # the optimizer operation it runs (`gp`, `skopt:gp`, `tune`)
    default: bool = False  # `default: yes`
    flags: dict = dataclasses.field(default_factory=dict)  # optimizer flag values


def flagdefs(data: Any, src: str, default_arg_skip: bool = False) -> dict[str, FlagDef]:
    """name -> FlagDef for an operation's `flags` mapping (includes already resolved)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(src, f"invalid flags value {excerpt(data)}: expected a mapping")
    return {
        str(name): flagdef(str(name), value, src, default_arg_skip)
        for name, value in sorted(data.items(), key=lambda kv: str(kv[0]))
    }


def flagdef(name: str, data: Any, src: str, default_arg_skip: bool = False) -> FlagDef:
    """A FlagDef for one flag: a scalar or list is the default; a mapping configures it."""
    if not isinstance(data, dict):
        return FlagDef(name=name, default=data, arg_skip=default_arg_skip)
    attrs: dict[str, Any] = {
        "name": name,
        "default": data.get("default"),
        "type": data.get("type"),
        "description": _str(data.get("description")).strip(),
        "choices": _choices(data.get("choices"), src),
        "required": bool(data.get("required")),
        "arg_name": data.get("arg-name"),
        "arg_skip": bool(data["arg-skip"]) if "arg-skip" in data else default_arg_skip,
        "arg_switch": data.get("arg-switch"),
        "env_name": data.get("env-name"),
        "null_label": data.get("null-label"),
        "min": data.get("min"),
        "max": data.get("max"),
        "allow_other": bool(data.get("allow-other")),
        "distribution": data.get("distribution"),
        "arg_split": data.get("arg-split"),
        "extra": {k: v for k, v in data.items() if k not in FLAG_ATTRS},
    }
    return FlagDef(**attrs)


def _choices(data: Any, src: str) -> tuple:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise error(
            src, f"invalid flag choice data {excerpt(data)}: expected a list of values or mappings"
        )
    return tuple(_choice(c) for c in data)


def _choice(data: Any) -> Any:
    # A mapping choice keeps its keys: value, description, flags (values it sets), alias.
    if isinstance(data, dict):
        return {"value": data.get("value"), **data}
    return data


def _str(value: object) -> str:
    return "" if value is None else str(value)


def optimizers(op_name: str, data: dict, src: str) -> tuple[OptimizerDef, ...]:
    """The OptimizerDefs of an operation, sorted by name."""
    if "optimizer" in data and "optimizers" in data:
        raise error(
            src,
            f"conflicting optimizer configuration in operation {op_name!r} - cannot define "
            "both 'optimizer' and 'optimizers'",
        )
    if data.get("optimizer") is not None:
        return (_optimizer(None, data["optimizer"], src),)
    opts = data.get("optimizers")
    if opts is None:
        return ()
    if not isinstance(opts, dict):
        raise error(src, f"invalid optimizers value {excerpt(opts)}: expected a mapping")
    return tuple(_optimizer(str(name), opts[name], src) for name in sorted(opts, key=str))


def _optimizer(name: str | None, data: Any, src: str) -> OptimizerDef:
    # A string is the algorithm. In `optimizers` a mapping may omit the algorithm (the name
    # is the algorithm); a single `optimizer` mapping must name it.
    if data is None and name is not None:
        return OptimizerDef(name, name)
    if isinstance(data, str):
        return OptimizerDef(name or data, data)
    if not isinstance(data, dict):
        raise error(src, f"invalid optimizer value {excerpt(data)}: expected a string or a mapping")
    flags = dict(data)
    algorithm = flags.pop("algorithm", None) or name
    if not algorithm:
        raise error(src, f"missing required 'algorithm' attribute in {excerpt(data)}")
    default = bool(flags.pop("default", False))
    flags = dict(sorted(flags.items()))
    return OptimizerDef(name or str(algorithm), str(algorithm), default, flags)


def prune(data: Any, src: str) -> tuple[str, dict[str, Any]] | None:
    """An operation's `prune:` as (pruner, flags), shaped like `optimizer:`: a name
    (`prune: median`) or a mapping naming it (`prune: {pruner: asha, min-resource: 2}`).
    The names and values are checked where the batch is planned (common.prunedefs)."""
    if data is None:
        return None
    if isinstance(data, str):
        return data, {}
    if not isinstance(data, dict) or not isinstance(data.get("pruner"), str):
        raise error(src, f"invalid prune value {excerpt(data)}: expected a pruner name or a mapping with 'pruner'")
    flags = {str(k): v for k, v in data.items() if k != "pruner"}
    return data["pruner"], flags


def default_optimizer(optimizer_defs: Sequence[OptimizerDef]) -> OptimizerDef | None:
    """The optimizer `--optimize` uses: the only one, the one marked default, or the first."""
    if not optimizer_defs:
        return None
    if len(optimizer_defs) == 1:
        return optimizer_defs[0]
    for opt in optimizer_defs:
        if opt.default:
            return opt
    return optimizer_defs[0]


def flags_import(value: Any, src: str) -> bool | list[str] | None:
    """True (import all), a list of flag names (empty: none), or None (not specified)."""
    if value is None:
        return None
    if value is True or value == "all":
        return True
    if value is False:
        return []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise error(
        src, f"invalid flags-import value {excerpt(value)}: expected yes/all, no, or a list of flag names"
    )


def name_list(attr: str, value: Any, src: str) -> list[str] | None:
    """A list of strings from a string or list value (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    raise error(src, f"invalid {attr} value {excerpt(value)}: expected a string or a list")


def env(value: Any, src: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise error(src, f"invalid env value {excerpt(value)}: expected a mapping")
    return {str(k): _env_str(v) for k, v in value.items()}


def _env_str(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else flaglib.encode_flag_value(value)


def optional_int(attr: str, value: Any, src: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(src, f"invalid {attr} value {excerpt(value)}: expected an integer")
    if not -(2**31) <= value < 2**31:  # a count the daemon takes in 32 bits (max-trials)
        raise error(src, f"invalid {attr} value {excerpt(value)}: too large")
    return value


def optional_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def main(op_name: str, data: dict) -> str | None:
    """The operation's `main`; with no `main`, `exec` or `steps`, Guild 0.9 runs the Python
    module named like the operation (`train-model` -> `train_model`, `prep.data` ->
    `prep/data.py`), and imports its flags from there."""
    value = data.get("main")
    if value:
        return str(value)
    if data.get("exec") is None and data.get("steps") is None:
        name = op_name[:-3] if op_name.lower().endswith(".py") else op_name
        return name.replace("-", "_")
    return None


def sourcecode(value: Any, src: str) -> Any:
    """The `sourcecode` config as written, after checking its shape."""
    if isinstance(value, dict) and isinstance(value.get("dest"), str):
        # Refused when the file is loaded: a cloned project must not aim the daemon elsewhere.
        try:
            paths.relative(value["dest"], "sourcecode dest")
        except InvalidArgument as e:
            raise error(src, str(e)) from None
    if value is None or isinstance(value, (bool, str, list, dict)):
        return value
    raise error(src, f"invalid select files spec {excerpt(value)}: expected a string, list, or mapping")


def output_scalars(value: Any, src: str) -> Any:
    """`output-scalars` as written, after checking it compiles: a typo fails when the Guild
    file is loaded, before any run is made with it."""
    try:
        scalars.compile_config(value)
    except InvalidArgument as e:
        raise error(src, str(e)) from None
    return value


def requires(value: Any, src: str) -> list:
    """`requires` as a list: each item a mapping (inline source or resource) or a string
    (a resource reference, kept as written)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, (str, dict)):
            raise error(src, f"invalid requires value {excerpt(item)}: expected a string or a mapping")
    return list(items)


def resources(value: Any, model_name: str, src: str) -> dict[str, dict]:
    """name -> resource mapping, each with a `sources` list of mappings (a string source is
    `{'file': s}`); a source must name exactly one of config, file, module, url, operation."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise error(src, f"invalid resources value {excerpt(value)}: expected a mapping")
    out: dict[str, dict] = {}
    for name, res in value.items():
        if isinstance(res, list):
            res = {"sources": res}
        elif not isinstance(res, dict):
            raise error(src, f"invalid resource value {excerpt(res)}: expected a mapping or a list")
        full_name = f"{model_name}:{name}" if model_name else str(name)
        sources = res.get("sources") or []
        if not isinstance(sources, list):
            sources = [sources]
        out[str(name)] = {**res, "sources": [_source(s, full_name, src) for s in sources]}
    return out


def _source(data: Any, resource: str, src: str) -> dict:
    if isinstance(data, str):
        return {"file": data}
    if not isinstance(data, dict):
        raise error(
            src, f"invalid source {data!r} in resource {resource!r}: expected a string or a mapping"
        )
    types = [t for t in SOURCE_TYPES if t in data]
    if not types:
        raise error(
            src,
            f"invalid source {data!r} in resource {resource!r}: missing required attribute "
            f"(one of {', '.join(SOURCE_TYPES)})",
        )
    if len(types) > 1:
        raise error(
            src,
            f"invalid source {data!r} in resource {resource!r}: conflicting attributes "
            f"({', '.join(types)})",
        )
    return data


def steps_with_includes(steps: Any, resolve_flags: Callable[[dict], dict]) -> Any:
    """`steps` as written, with `$include` in each step's `flags` resolved to values."""
    if not isinstance(steps, list):
        return steps
    out = []
    for step in steps:
        if isinstance(step, dict) and isinstance(step.get("flags"), dict):
            step = {**step, "flags": resolve_flags(step["flags"])}
        out.append(step)
    return out


def unknown_attr_warnings(pairs: Iterable[tuple[dict, str]], top_dir: str | None) -> list[str]:
    """Warnings naming every attribute Guild would silently ignore, per file as written.

    `pairs` are (item, source path) as read, before inheritance, so an attribute is reported
    once, in the file and item that spells it."""
    warnings: list[str] = []
    for item, src in pairs:
        if "package" in item or "include" in item:
            continue
        warn = _Warner(display(src, top_dir), warnings)
        is_config = "config" in item
        owner = str(item.get("config" if is_config else "model") or "")
        if is_config:
            owner_desc, known = f"config {owner!r}", CONFIG_ATTRS
        else:
            owner_desc = f"model {owner!r}" if owner else "the anonymous model"
            known = MODEL_ATTRS
        for attr in item:
            if attr not in known:
                warn.unknown(attr, known, owner_desc)
        if is_config:
            _check_flags(item.get("flags"), owner_desc, warn)
        defaults = item.get("operation-defaults")
        if isinstance(defaults, dict):
            _check_op(defaults, f"operation-defaults of {owner_desc}", warn)
        ops = item.get("operations")
        if not isinstance(ops, dict):
            continue
        for name, op in ops.items():
            if name == "$include" or not isinstance(op, dict):
                continue
            if is_config:
                what = f"operation {name!r} of config {owner!r}"
            else:
                what = "operation %r" % (f"{owner}:{name}" if owner else name)
            _check_op(op, what, warn)
    return warnings


class _Warner:
    def __init__(self, where: str, warnings: list[str]) -> None:
        self.where = where
        self.warnings = warnings

    def unknown(self, attr: object, known: Iterable[str], what: str) -> None:
        hint = difflib.get_close_matches(str(attr), sorted(known), n=1)
        suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
        self.add(f"unknown attribute {attr!r} in {what}{suffix}")

    def add(self, message: str) -> None:
        self.warnings.append(f"{self.where}: {message}")


def _check_op(op: dict, what: str, warn: _Warner) -> None:
    for attr in op:
        if attr not in OP_ATTRS:
            warn.unknown(attr, OP_ATTRS, what)
    _check_flags(op.get("flags"), what, warn)


def _check_flags(flags: Any, what: str, warn: _Warner) -> None:
    if not isinstance(flags, dict):
        return
    for name, data in flags.items():
        if name == "$include" or not isinstance(data, dict):
            continue
        for attr in data:
            if attr not in FLAG_ATTRS and attr not in FLAG_DISTRIBUTION_ATTRS:
                warn.unknown(attr, FLAG_ATTRS, f"flag {name!r} of {what}")
        flag_type = data.get("type")
        if flag_type is not None and flag_type not in FLAG_TYPES:
            warn.add(
                f"unknown type {flag_type!r} for flag {name!r} of {what} "
                f"(expected one of {', '.join(FLAG_TYPES)})"
            )
