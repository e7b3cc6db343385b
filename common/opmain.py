"""Runs a Python script or module as an operation's process:

    python -u opmain.py TARGET [FIXED_ARG... --] [FLAG_ARG...]

TARGET is a script (`train.py`) or, as a Guild file's `main` names it, a module, optionally
with a path (`train`, `pkg.train`, `src/train`). Arguments before a `--` are the operation's
fixed arguments (from `main`); the rest are flag arguments.

This file is executed by the run's own Python (which may be another virtualenv than guildd's),
so it uses only the standard library and imports nothing from this package.

FLAGS_DEST=globals: the arguments are `--name value` flag assignments that replace the
script's module-level constants of those names before its code runs; `global:NAME` and
`namespace:NAME`: they update the dict or namespace NAME once the module assigns it. `args`
(or unset): the arguments are the script's own command line (argparse or click reads them).
Any other dest (`config:FILE`, which guildd writes): the script gets no flag arguments.
"""

from __future__ import annotations

import io
import os
import runpy
import sys

# Annotations only (not evaluated): importing typing would cost every run at start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ast
    from typing import Any

# Guild's built-in no-op `main` (for operations that only resolve dependencies): it prints
# its arguments, if any, and exits 0. Run here, so it needs no Guild installed.
PASS_MODULE = "guild.pass"

# ast, json and traceback are imported where they are needed: every run of a script pays for
# what this file imports at start-up.


_YAML_FLOATS = {".inf": float("inf"), "-.inf": float("-inf"), "+.inf": float("inf"), ".nan": float("nan")}


def decode(text: str) -> Any:
    """The Python value of a flag as guildd encodes it on the command line."""
    if text in ("yes", "true", "True"):
        return True
    if text in ("no", "false", "False"):
        return False
    if text == "null":
        return None
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")  # YAML's single-quoted style doubles quotes
    if text in _YAML_FLOATS:
        return _YAML_FLOATS[text]
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def flag_assigns(args: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    i = 0
    while i < len(args):
        name = args[i]
        if not name.startswith("--"):
            raise SystemExit(f"opmain: unexpected argument {name!r}")
        name = name[2:]
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            values[name] = decode(args[i + 1])
            i += 2
        else:
            values[name] = True
            i += 1
    return values


def _replace_globals(tree: ast.Module, values: dict[str, Any]) -> ast.Module:
    """Replaces the first module-level assignment of each flag with the flag's value, so the
    script's own default doesn't overwrite it; later assignments are the script redefining
    the value and run as written (as in Guild 0.9)."""
    import ast

    replaced = set()
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id in values and target.id not in replaced:
                replaced.add(target.id)
                # `x = __guild_flags__['x']`: the flag value (any type, where ast.Constant
                # takes only scalars), whatever ran before (`for x in ...`) bound to `x`.
                value = ast.Subscript(ast.Name("__guild_flags__", ast.Load()), ast.Constant(target.id), ast.Load())
                node.value = ast.copy_location(value, node.value)  # type: ignore[attr-defined]  # an assignment
                ast.fix_missing_locations(node)
    return tree


def run_globals(
    path: str, values: dict[str, Any], fixed_args: list[str] | tuple[str, ...] = ()
) -> None:
    import ast

    with open(path, "rb") as f:
        source = f.read()
    tree = _replace_globals(ast.parse(source, path), values)
    code = compile(tree, path, "exec")
    module = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__, "__guild_flags__": values, **values}
    sys.argv = [path, *fixed_args]
    exec(code, module)


def _nested(values: dict[str, Any]) -> dict[str, Any]:
    """Dotted flag names as nested dicts: {'a.b': 1} -> {'a': {'b': 1}}."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        node = out
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _merge(base: Any, updates: dict[str, Any]) -> Any:
    """`updates` (nested dicts) merged into a dict, or set as attributes of a namespace."""
    if not isinstance(base, dict) and hasattr(base, "__dict__"):
        for key, value in updates.items():
            setattr(base, key, _merge(getattr(base, key, None), value) if isinstance(value, dict) else value)
        return base
    merged = dict(base) if isinstance(base, dict) else {}
    for key, value in updates.items():
        merged[key] = _merge(merged.get(key), value) if isinstance(value, dict) else value
    return merged


def _namespace(values: dict[str, Any]) -> Any:
    import types

    return types.SimpleNamespace(**{k: _namespace(v) if isinstance(v, dict) else v for k, v in values.items()})


def run_global_dict(
    path: str, name: str, values: dict[str, Any], fixed_args: list[str] | tuple[str, ...] = (), namespace: bool = False
) -> None:
    """flags-dest `global:NAME` (`namespace:NAME`): the flags update the module's dict
    (namespace) NAME right after the module assigns it (dotted flag names nest)."""
    import ast

    with open(path, "rb") as f:
        tree = ast.parse(f.read(), path)
    body = []
    for node in tree.body:
        body.append(node)
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            update = ast.parse(f"{name} = __guild_merge__({name}, __guild_flags__)").body[0]
            body.append(ast.copy_location(update, node))
    tree.body = body
    ast.fix_missing_locations(tree)
    module = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__,
              "__guild_merge__": _merge, "__guild_flags__": _nested(values),
              name: _namespace(_nested(values)) if namespace else _nested(values)}
    sys.argv = [path, *fixed_args]
    exec(compile(tree, path, "exec"), module)


def _target_path(target: str) -> str:
    """The file a script or module target runs, setting up sys.path as Guild does: the
    target's dir (a module's path part) first."""
    if target.endswith(".py"):
        path = os.path.abspath(target)
        sys.path[0] = os.path.dirname(path)
        return path
    base = os.path.abspath(os.path.dirname(target))
    sys.path[0] = base
    module = os.path.basename(target)
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise SystemExit(f"opmain: cannot find module '{module}' in {base}")
    if spec.submodule_search_locations:  # a package: run its __main__
        return os.path.join(os.path.dirname(spec.origin), "__main__.py")
    return spec.origin


def _pass(args: list[str]) -> None:
    if args:
        import shlex

        print(*[shlex.quote(arg) for arg in args])


def _run(target: str, args: list[str]) -> None:
    fixed, flag_args = (args[: args.index("--")], args[args.index("--") + 1 :]) if "--" in args else ([], args)
    dest = os.environ.get("FLAGS_DEST", "")
    if target == PASS_MODULE:
        # Flags reach it as arguments only with the args dest, as for any module.
        return _pass([*fixed, *flag_args] if dest in ("", "args") else fixed)
    path = _target_path(target)
    kind, _, name = dest.partition(":")
    if dest == "globals":
        run_globals(path, flag_assigns(flag_args), fixed)
    elif kind in ("global", "dict", "namespace"):
        run_global_dict(path, name, flag_assigns(flag_args), fixed, namespace=kind == "namespace")
    else:
        # Flags are the command line only for `args` (and Guild's `args:click`); other
        # dests (a config file, `none`) take them another way, as in Guild 0.9.
        sys.argv = [path, *fixed, *(flag_args if kind in ("", "args") else ())]
        # An absolute path: run_path sets sys.argv[0] and __file__ to the path it is given.
        runpy.run_path(path, run_name="__main__")


def _print_user_traceback(exc: BaseException) -> None:
    """The traceback without this file's frames: the user's code is what failed."""
    import traceback

    tb = exc.__traceback__
    # runpy's frames are named `<frozen runpy>` on Python 3.11+, so match its module, not its file.
    while tb is not None and (
        tb.tb_frame.f_code.co_filename == __file__ or tb.tb_frame.f_globals is vars(runpy)
    ):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def _line_buffered_stdout() -> None:
    """A stdout that writes each complete line at once, straight to the run's output file.

    Under guildd, stdout is the run's output file (not a terminal), so Python would either
    hold output back in a block buffer or, with -u, write every fragment separately; this
    shows each line as it is printed and costs little more than block buffering."""
    if sys.stdout is None or sys.stdout.isatty():
        return
    sys.stdout.flush()
    raw = io.FileIO(sys.stdout.fileno(), "w", closefd=False)
    sys.stdout = io.TextIOWrapper(raw, encoding=sys.stdout.encoding, errors=sys.stdout.errors, line_buffering=True)


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: opmain.py TARGET [FIXED_ARG... --] [FLAG_ARG...]")
    script, args = sys.argv[1], sys.argv[2:]
    _line_buffered_stdout()
    try:
        _run(script, args)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as e:
        _print_user_traceback(e)
        sys.exit(1)


if __name__ == "__main__":
    main()
