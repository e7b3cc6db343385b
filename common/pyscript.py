"""Flag detection for Python scripts, by reading their source (never by running them).

Guild imports a script's flags by executing it with argparse patched. We read the syntax tree
instead: `guild run` does this on every call, and running a user's module there would be slow
and could have side effects (GPU initialisation, downloads, training).

A script that imports argparse or click takes its flags as command-line options (dest
"args"); any other script takes them as module globals (dest "globals").
"""

import ast
import dataclasses
import os
from typing import Any

from guild_common import flags as flaglib
from guild_common.errors import InvalidArgument
from guild_common.flagdef import FlagDef

# argparse actions whose option is a flag; others (append, count, store_const, help, version,
# custom classes) do not map onto one value and Guild skips them.
_STORE_ACTIONS = {"store": None, "store_true": True, "store_false": False}
_ARG_TYPES = {"int": "int", "float": "float", "str": "string"}
_PARSE_METHODS = {
    "parse_args",
    "parse_known_args",
    "parse_intermixed_args",
    "parse_known_intermixed_args",
}
_GROUP_METHODS = {"add_argument_group", "add_mutually_exclusive_group"}


@dataclasses.dataclass(frozen=True)
class ScriptFlags:
    dest: str  # "args" or "globals"
    flags: dict[str, FlagDef]


def detect_flags(path: str | os.PathLike[str], dest: str | None = None) -> ScriptFlags:
    """The flags a script declares and how it takes them (`dest`). With a `dest` of
    `global:NAME` (or Guild's `dict:NAME`) or `namespace:NAME`, the items of the dict or
    namespace the module first assigns to NAME."""
    tree = _parse(path)
    kind, _, name = (dest or "").partition(":")
    if kind in ("global", "dict", "namespace") and name:
        return ScriptFlags(dest, _dict_flags(tree, name))  # type: ignore[arg-type]  # has a name
    if _imports(tree, "argparse"):
        return ScriptFlags("args", _argparse_flags(tree))
    if _imports(tree, "click"):
        return ScriptFlags("args", _click_flags(tree))
    return ScriptFlags("globals", _global_flags(tree))


def _parse(path: str | os.PathLike[str]) -> ast.Module:
    with open(path, "rb") as f:
        source = f.read()
    try:
        # Bytes, so a PEP 263 coding line is honoured the way the interpreter would.
        return ast.parse(source, filename=str(path))
    except SyntaxError as e:
        line = f" (line {e.lineno})" if e.lineno else ""
        raise InvalidArgument(f"cannot read flags from {path}: {e.msg}{line}") from e
    except ValueError as e:  # null bytes in the source
        raise InvalidArgument(f"cannot read flags from {path}: {e}") from e


def _imports(tree: ast.AST, module: str) -> bool:
    # Anywhere in the module, as Guild does: `def main(): import argparse` is common.
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == module for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == module:
            return True
    return False


def _global_flags(tree: ast.Module) -> dict[str, FlagDef]:
    """Module-level `NAME = constant` assignments; the first constant assigned to a name is
    its default, as in Guild 0.9 (later assignments redefine it at run time, see opmain); a
    non-constant one is ignored (Guild only reads constants)."""
    flags: dict[str, FlagDef] = {}
    for stmt in tree.body:
        if not isinstance(stmt, ast.Assign):
            continue
        flagdef = _value_flagdef("", stmt.value)
        if flagdef is None:
            continue
        for target in stmt.targets:
            if isinstance(target, ast.Name) and not target.id.startswith("_") and target.id not in flags:
                flags[target.id] = dataclasses.replace(flagdef, name=target.id)
    return flags


def _dict_flags(tree: ast.Module, name: str) -> dict[str, FlagDef]:
    """Flags from the first module-level `NAME = {...}` or `NAME = SimpleNamespace(...)`:
    nested dicts give dotted names (`{'a': {'b': 1}}` is `a.b`), as in Guild 0.9."""
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
            return _items_flags(stmt.value, "")
    return {}


def _items_flags(node: ast.expr, prefix: str) -> dict[str, FlagDef]:
    items: list[tuple[Any, ast.expr]]
    if isinstance(node, ast.Dict):
        items = [(_literal(k, None), v) for k, v in zip(node.keys, node.values)]
    elif isinstance(node, ast.Call):  # SimpleNamespace(a=1, ...), or another namespace type
        items = [(k.arg, k.value) for k in node.keywords]
    else:
        return {}
    flags: dict[str, FlagDef] = {}
    for key, value in items:
        if not isinstance(key, str):
            continue
        if isinstance(value, (ast.Dict, ast.Call)):
            flags.update(_items_flags(value, f"{prefix}{key}."))
            continue
        flagdef = _value_flagdef(prefix + key, value)
        if flagdef is not None:
            flags[flagdef.name] = flagdef
    return flags


def _value_flagdef(name: str, node: ast.expr) -> FlagDef | None:
    """The flag a literal assigned to `name` makes: a scalar's (not None), or a list of
    scalars' as Guild 0.9 makes it: a string of the items that is split again (arg-split),
    since a list value would be a batch. None for anything else."""
    ok, value = _scalar(node)
    if ok and value is not None:
        return FlagDef(name, default=value, type=_global_type(value))
    if isinstance(node, ast.List):
        items = [_scalar(item) for item in node.elts]
        if all(ok for ok, _ in items):
            return FlagDef(name, default=flaglib.join_flag_values([v for _, v in items]), arg_split=True)
    return None


def _global_type(value: object) -> str:
    # Guild 0.9 types imported globals this way; it keeps `s=1` a string for a string global.
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    return "number"


def _scalar(node: ast.expr) -> tuple[bool, Any]:
    """(True, value) for a literal str/int/float/bool/None, signs included; else (False, None)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        ok, value = _scalar(node.operand)
        if not ok or isinstance(value, (bool, str)) or value is None:
            return False, None
        return True, -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Constant) and (
        node.value is None or isinstance(node.value, (str, int, float))
    ):
        return True, node.value
    return False, None


def _argparse_flags(tree: ast.Module) -> dict[str, FlagDef]:
    calls = sorted(
        (n for n in ast.walk(tree) if isinstance(n, ast.Call)),
        key=lambda n: (n.lineno, n.col_offset),
    )
    parsers = _Parsers.read(tree)
    parsed = _parsed_parsers(calls, parsers)
    flags: dict[str, FlagDef] = {}
    for call in calls:
        if not _is_method(call, "add_argument"):
            continue
        owner = _owner(call.func.value, parsers.owners)  # type: ignore[attr-defined]  # a method call
        # Arguments of a parser that is never parsed (a second parser, a subparser) are not
        # the script's flags; receivers we cannot trace (a helper's `p` parameter) are.
        if owner in parsers.owners and owner not in parsed:
            continue
        flagdef = _argument_flagdef(call)
        if flagdef:
            flags[flagdef.name] = flagdef
    return flags


@dataclasses.dataclass(frozen=True)
class _Parsers:
    """The parsers a module assigns to names, matched by name across scopes.

    Names are dotted (`parser`, `self.parser`). Scopes are ignored on purpose: a parser built
    in `__init__` as `self.parser` is parsed in another method.
    """

    owners: dict  # parser or group name -> the name of the parser it adds arguments to
    parents: dict  # parser name -> names of the parsers given as its `parents=`
    top_level: frozenset  # names bound to `ArgumentParser(...)`, subparsers excluded

    @classmethod
    def read(cls, tree: ast.Module) -> "_Parsers":
        owners: dict[str, str | None] = {}
        parents: dict[str, list[str]] = {}
        top_level: set[str] = set()
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
                continue
            call = node.value
            for name in filter(None, map(_dotted, node.targets)):
                if _is_parser_constructor(call):
                    owners[name] = name
                    parents[name] = _parent_names(call)
                    if not _is_method(call, "add_parser"):
                        top_level.add(name)
                elif _is_method(call, *_GROUP_METHODS):
                    owners[name] = _dotted(call.func.value)  # type: ignore[attr-defined]  # a method call
        roots = {name: _root_owner(name, owners) for name in owners}
        return cls(roots, parents, frozenset(top_level))


def _parent_names(call: ast.Call) -> list[str]:
    parents = _keyword(call, "parents")
    nodes = parents.elts if isinstance(parents, (ast.List, ast.Tuple)) else ()
    return [name for name in map(_dotted, nodes) if name]


def _root_owner(name: str, owners: dict) -> str:
    seen = set()
    while owners.get(name) not in (None, name) and name not in seen:
        seen.add(name)
        name = owners[name]
    return name


def _parsed_parsers(calls: list[ast.Call], parsers: _Parsers) -> set[str | None]:
    """Parsers whose options the script reads: those it parses, plus their `parents=`.

    Guild reads only the parser that is parsed. When we cannot tell which one is (e.g.
    `build_parser().parse_args()`), every top-level parser counts.
    """
    parsed = {
        _owner(call.func.value, parsers.owners)  # type: ignore[attr-defined]  # a method call
        for call in calls
        if _is_method(call, *_PARSE_METHODS)
    } & set(parsers.owners)
    if not parsed:
        parsed = set(parsers.top_level)
    pending = list(parsed)
    while pending:
        for parent in parsers.parents.get(pending.pop(), ()):
            parent = parsers.owners.get(parent, parent)
            if parent not in parsed:
                parsed.add(parent)
                pending.append(parent)
    return parsed


def _owner(node: Any, owners: dict) -> str | None:
    """The parser a receiver belongs to, seeing through `p.add_argument_group(...)` chains."""
    if _is_method(node, *_GROUP_METHODS):
        return _owner(node.func.value, owners)
    name = _dotted(node)
    return owners.get(name, name)


def _argument_flagdef(call: ast.Call) -> FlagDef | None:
    name = _long_option(call.args)
    if name is None:
        return None
    kw = {k.arg: k.value for k in call.keywords if k.arg}
    # A non-literal action (a custom Action class) is not one of the store actions.
    action = _literal(kw["action"], None) if "action" in kw else "store"
    if action not in _STORE_ACTIONS:
        return None
    switch = _STORE_ACTIONS[action]
    arg_type = _ARG_TYPES.get(kw["type"].id) if isinstance(kw.get("type"), ast.Name) else None  # type: ignore[attr-defined]
    # A non-literal default (`default=os.getcwd()`) still defines the flag, with no default.
    _, default = _scalar(kw["default"]) if "default" in kw else (True, None)
    if switch is not None:
        arg_type = "boolean"
        default = not switch if "default" not in kw else default
    return FlagDef(
        name,
        default=_typed_default(default, arg_type),
        type=arg_type,
        description=_literal(kw.get("help"), "") or "",
        choices=_choices(kw.get("choices")),
        required=_literal(kw.get("required"), False) is True,
        arg_switch=switch,
    )


def _long_option(args: list[ast.expr]) -> str | None:
    """Flag name from the first `--name` option string, as Guild names it (not from `dest=`).

    Positional and short-only (`-x`) arguments are not flags.
    """
    for arg in args:
        option = _literal(arg, None)
        if not isinstance(option, str):
            return None
        if option.startswith("--") and len(option) > 2:
            return option[2:]
    return None


def _typed_default(default: Any, arg_type: str | None) -> Any:
    # argparse converts string defaults with `type=`; `default="0.1", type=float` means 0.1.
    if isinstance(default, str) and arg_type in ("int", "float"):
        try:
            return int(default) if arg_type == "int" else float(default)
        except ValueError:
            return default
    return default


def _choices(node: ast.expr | None) -> tuple:
    values = _literal(node, None)
    if not isinstance(values, (list, tuple)):
        return ()
    if not all(isinstance(v, (str, int, float, bool)) for v in values):
        return ()
    return tuple(values)


def _literal(node: ast.expr | None, fallback: Any) -> Any:
    """A literal's value (`"--lr"`, `[1, 2]`, `True`); `fallback` when absent or not literal."""
    if node is None:
        return fallback
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return fallback


# Parameter types as Guild 0.9 types the flags (a Choice, a Path... get no type).
_CLICK_TYPES = {
    "int": "int", "INT": "int", "IntRange": "int",
    "float": "float", "FLOAT": "float", "FloatRange": "float",
    "str": "string", "STRING": "string",
    "bool": "boolean", "BOOL": "boolean",
}


def _click_flags(tree: ast.Module) -> dict[str, FlagDef]:
    """The `@click.option`s of the command the script invokes (`main()`), or of every
    command it defines when it invokes none we can see."""
    commands = {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and any(_call_name(d) in ("command", "group") for d in node.decorator_list)
    }
    invoked = [
        commands[node.func.id]
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in commands
    ]
    flags: dict[str, FlagDef] = {}
    for func in invoked or commands.values():
        for decorator in func.decorator_list:
            flagdef = _click_option_flagdef(decorator)
            if flagdef and flagdef.name not in flags:
                flags[flagdef.name] = flagdef
    return flags


def _click_option_flagdef(decorator: Any) -> FlagDef | None:
    if _call_name(decorator) != "option":
        return None
    option = _long_option(decorator.args)
    if option is None:  # short-only (`-v`): not a flag, as for argparse
        return None
    # `--shout/--no-shout` is a boolean switch named by its first option.
    name, _, off = option.partition("/")
    kw = {k.arg: k.value for k in decorator.keywords if k.arg}
    ok, default = _scalar(kw["default"]) if "default" in kw else (True, None)
    default = default if ok else None
    arg_type: str | None
    if _literal(kw.get("is_flag"), False) is True or off:
        default = bool(default)
        arg_type, choices, switch = "boolean", (), not default
    else:
        (arg_type, choices), switch = _click_type(kw.get("type"), default), None
    return FlagDef(
        name,
        default=_typed_default(default, arg_type),
        type=arg_type,
        description=_literal(kw.get("help"), "") or "",
        choices=choices,
        required=_literal(kw.get("required"), False) is True,
        arg_switch=switch,
    )


def _click_type(node: ast.expr | None, default: Any) -> tuple[str | None, tuple]:
    """(flag type, choices) for an option's `type=`; without one, click's own inference from
    the default (a string when there is none)."""
    if node is None:
        if isinstance(default, bool):
            return "boolean", ()
        return {int: "int", float: "float"}.get(type(default), "string"), ()
    name = _call_name(node) if isinstance(node, ast.Call) else _dotted(node)
    name = (name or "").rsplit(".", 1)[-1]
    if name == "Choice" and node.args:  # type: ignore[attr-defined]  # a Call
        return None, _choices(node.args[0])  # type: ignore[attr-defined]
    return _CLICK_TYPES.get(name), ()


def _call_name(node: ast.expr) -> str | None:
    """`option` for `click.option(...)` or `option(...)`; None when not such a call."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _is_parser_constructor(node: ast.expr) -> bool:
    # `argparse.ArgumentParser(...)`, `ap.ArgumentParser(...)`, `ArgumentParser(...)`; a
    # subparser (`subs.add_parser(...)`) is a parser too, though never the parsed one.
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in ("ArgumentParser", "add_parser")


def _is_method(node: ast.expr, *names: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in names
    )


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _dotted(node: ast.expr) -> str | None:
    """`parser` or `self.parser` for a Name/Attribute chain, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None
