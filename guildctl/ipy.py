"""Guild's notebook form, `ipy.run(fn, **flags)`, through guildd: a Python function run as a
recorded run. Guild runs the function in the notebook's own process; here the daemon runs
it, so a run from a notebook is a run like any other (queued, placed on GPUs, kept when
the notebook dies, listed and compared by every tool).

The daemon's process cannot import a function defined in a notebook, so what it runs is a
small generated script (the runner): the function's source (inspect.getsource), the
import statements at the top of the file it was defined in that it uses (a notebook cell
has none: import inside the function), a module-level global per parameter (the run's flags, flags-dest
globals), and a call. The function's printed output is the run's output, `key: value`
lines its scalars; an exception makes the run's status `error`, its traceback in the
output. A JSON-able return value is written to the run's `ipy-result.json`.
"""

import ast
import dataclasses
import inspect
import json
import os
import pathlib
import tempfile
import textwrap
from collections.abc import Callable
from typing import Any

from guild_common import errors, flags as flaglib
from guild_common.pb import guild_pb2 as pb
from guildctl import api, runops, scriptop

RESULT_FILE = "ipy-result.json"

# Guild's ipy options (the underscored keywords), and the api.run option each one is.
OPTIONS = {
    "_label": "label",
    "_tag": "tags",
    "_tags": "tags",
    "_optimizer": "optimizer",
    "_max_trials": "max_trials",
    "_random_seed": "random_seed",
    "_minimize": "minimize",
    "_maximize": "maximize",
    "_opt_flags": "opt_flags",
    "_background": "background",
    "_stage": "stage",
    "_quiet": "quiet",
    "_gpus": "gpus",
    "_keep_batch": "keep_batch",
}


def uniform(low: float, high: float) -> str:
    """A flag value drawn from [low, high] in a random search (Guild's `ipy.uniform`)."""
    return f"uniform[{low}:{high}]"


def loguniform(low: float, high: float) -> str:
    """A flag value drawn log-uniformly from [low, high] in a random search."""
    return f"loguniform[{low}:{high}]"


def run(fn: Callable, *args: Any, **kw: Any) -> tuple[api.Run, Any]:
    """Runs `fn(*args, **flags)` as a recorded run and returns (api.Run, result). Its
    parameters are the run's flags (their defaults the flags' defaults); a list value makes
    a grid (one trial per value), `uniform(a, b)` or `slice(a, b)` a random search
    (`_max_trials`), `_optimizer` another search. Options as Guild's: `_label`, `_tag`,
    `_optimizer`, `_max_trials`, `_random_seed`, `_minimize`, `_maximize`, `_op_name`,
    and `_background`, `_stage`, `_quiet`, `_gpus`, `_keep_batch` as api.run's. Waits for
    the run (printing its output unless `_quiet`); `result` is what `fn` returned (from
    JSON; None for a batch, a failed or unfinished run, or a value JSON can't hold)."""
    op_name = kw.pop("_op_name", None) or f"{fn.__name__}()"
    options = {}
    for key in [k for k in kw if k.startswith("_")]:
        if key not in OPTIONS:
            raise errors.InvalidArgument(f"unknown option '{key}' (options: {', '.join([*OPTIONS, '_op_name'])})")
        options[OPTIONS[key]] = kw.pop(key)
    params = flag_params(fn)
    flags = bind_flags(fn, params, args, kw)
    session = api.session()
    with tempfile.TemporaryDirectory(prefix="guildctl-ipy-") as project:
        script = pathlib.Path(project) / f"{fn.__name__}.py"
        script.write_text(runner_source(fn, params))
        op = scriptop.ScriptOp(op_name, script, pathlib.Path(project), True, "globals", flag_defs(params))
        started = session.start(op, _FuncKind, op_name, flags, os.getcwd(), api.RunOptions(**options))
    if options.get("background") or started.status == "staged" or "+" in started.op:
        return started, None
    return started, _result(session, started)


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    default: object  # inspect.Parameter.empty when none


def flag_params(fn):
    """The function's flags: its parameters that take a keyword (not positional-only ones,
    *args or **kw), in order. InvalidArgument for a callable with no source to send."""
    if not inspect.isfunction(fn) or fn.__name__ == "<lambda>":
        raise errors.InvalidArgument(f"ipy.run needs a function defined with def (got {fn!r})")
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [Param(p.name, p.default) for p in inspect.signature(fn).parameters.values() if p.kind in kinds]


def bind_flags(fn, params, args, kw):
    """The flag values given: positional arguments in parameter order, then keywords;
    unknown names and missing required values are InvalidArgument naming them."""
    names = [p.name for p in params]
    if len(args) > len(names):
        raise errors.InvalidArgument(f"{fn.__name__}() takes {len(names)} flag(s), {len(args)} positional value(s) given")
    flags = dict(zip(names, args))
    for name, value in kw.items():
        if name not in names:
            raise errors.InvalidArgument(
                f"unsupported flag '{name}': {fn.__name__}() has no such parameter (flags: {', '.join(names) or 'none'})"
            )
        if name in flags:
            raise errors.InvalidArgument(f"flag '{name}' given twice (positionally and by name)")
        flags[name] = value
    missing = [p.name for p in params if p.default is inspect.Parameter.empty and p.name not in flags]
    if missing:
        raise errors.InvalidArgument(f"missing flag '{missing[0]}': {fn.__name__}() has no default for it")
    return {name: _search(value) for name, value in flags.items()}


def _search(value):
    """Guild's `slice(a, b)` for a random search, as the flag function it means."""
    if isinstance(value, slice):
        return uniform(value.start, value.stop)
    return value


def flag_defs(params):
    """FlagDefs from the parameters: a default's type as Guild types a script's globals."""
    defs = {}
    for p in params:
        default = None if p.default is inspect.Parameter.empty else p.default
        kind = {bool: "boolean", str: "string", int: "number", float: "number"}.get(type(default))
        defs[p.name] = flaglib.FlagDef(p.name, default=default, type=kind, required=p.default is inspect.Parameter.empty)
    return defs


def runner_source(fn, params):
    """The script the run executes: the module's imports, the function, a global per flag
    (the run's values replace them), the call, and the result written as JSON."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as e:
        raise errors.InvalidArgument(f"cannot get the source of {fn.__name__}(): {e}") from None
    lines = [f'"""{fn.__name__}() run by guildctl.ipy (generated)."""', *module_imports(fn, source), "", source, ""]
    lines += [f"{p.name} = {_literal(p.default)}" for p in params]
    call = ", ".join(f"{p.name}={p.name}" for p in params)
    lines += [
        "",
        f"_ipy_result = {fn.__name__}({call})",
        "if _ipy_result is not None:",
        "    import json as _ipy_json",
        "    try:",
        "        _ipy_text = _ipy_json.dumps(_ipy_result)",
        "    except (TypeError, ValueError):",
        "        _ipy_text = None",
        "    if _ipy_text is not None:",
        f"        with open({RESULT_FILE!r}, 'w') as _ipy_f:",
        "            _ipy_f.write(_ipy_text)",
    ]
    return "\n".join(lines) + "\n"


def _literal(default):
    """A default as Python source; one that has none (or none a literal can hold) is None
    in the runner: the run's flag value replaces it."""
    if default is inspect.Parameter.empty:
        return "None"
    try:
        text = repr(default)
        ast.literal_eval(text)
        return text
    except (ValueError, SyntaxError):
        return "None"


def module_imports(fn, source):
    """The top-level absolute imports of the file `fn` was defined in that bind a name its
    `source` uses (none for a notebook cell or the interpreter: import inside the function
    there), so a function in a module may use its module's imports."""
    module = inspect.getmodule(fn)
    if module is None or not getattr(module, "__file__", None):
        return []
    try:
        module_source = inspect.getsource(module)
        tree = ast.parse(module_source)
    except (OSError, TypeError, SyntaxError):
        return []
    used = {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
    out = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.level or node.module == "__future__"):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound = {(a.asname or a.name).split(".")[0] for a in node.names}
            if bound & used:
                out.append(ast.get_source_segment(module_source, node))
    return out


class _FuncKind:
    """scriptop for the runner, but the run's opref names the function (`func:... hello()`),
    as Guild's notebook runs do, not the temporary dir the runner was written in."""

    flag_values = staticmethod(scriptop.flag_values)

    @staticmethod
    def run_spec(op, *args, **kw):
        spec = scriptop.run_spec(op, *args, **kw)
        spec.opref = f"func:'' '' '' {op.name if ' ' not in op.name else repr(op.name)}"
        return spec


def _result(session, started):
    """What the function returned, read from the run's result file (None when it has none)."""
    if started.status != "completed":
        return None
    try:
        data = b"".join(session.client.read_file(pb.RunSelection(runs=[started.id]), path=RESULT_FILE))
    except errors.NotFound:
        return None
    return json.loads(data)
