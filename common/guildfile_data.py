"""The data layer of Guild files: reading YAML, top-level `include`s, `extends` merging,
`$include` references and `{{param}}` substitution. Everything here works on plain dicts and
lists; guild_common.guildfile turns the result into model and operation definitions.

All errors are InvalidArgument worded as Guild words them, prefixed `error in <file>: `.
"""

import copy
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from guild_common.errors import InvalidArgument

TYPE_KEYS = ("config", "include", "model", "package")

# Keys of a model or config that a child never takes from a parent: its identity, its own
# parents, and whether it is the default (two default models would be ambiguous).
NOT_INHERITED = frozenset(("model", "config", "extends", "default", "name"))


def error(src: str, msg: str) -> InvalidArgument:
    return InvalidArgument(f"error in {src}: {msg}")


EXCERPT = 40  # characters of a Guild file's value an error shows


def excerpt(value: object) -> str:
    """`value` as an error shows it: its repr, cut short. An `include` can name any file the
    user can read (`- include: /etc/passwd`), and the error must name it and say what is
    wrong without printing what it holds."""
    shown = repr(value)
    return shown if len(shown) <= EXCERPT else shown[:EXCERPT] + "..."


class _Loader(yaml.SafeLoader):
    """YAML 1.1 as Guild reads Guild files: `1e-4` and `1.e5` are floats too (YAML alone
    wants a dot and a signed exponent, and `lr: 1e-4` would be the string '1e-4')."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def read_yaml(path: str, text: str | None = None) -> Any:
    """The YAML data in `path` (or `text`); a syntax error names the file and line."""
    if text is None:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise _yaml_error(path, e) from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise InvalidArgument(f"error in {path}: a number too large to read") from None
    except RecursionError:  # `[[[[...` nested a few thousand deep
        raise InvalidArgument(f"error in {path}: data nested too deeply") from None


def _yaml_error(path: str, e: yaml.YAMLError) -> InvalidArgument:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    where = f"{path}:{mark.line + 1}" if mark is not None else path
    context = getattr(e, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return InvalidArgument(f"error in {where}: {detail}")


def coerce_items(data: Any, src: str) -> list[dict]:
    """Guild file data as a list of items: a top-level mapping is the operations of the
    anonymous model; an item with `operations` but no type key is the anonymous model too."""
    if data is None:
        return []
    if isinstance(data, dict):
        return [{"model": "", "operations": data}]
    if not isinstance(data, list):
        raise error(src, f"invalid guildfile data {excerpt(data)}: expected a mapping")
    items = []
    for item in data:
        if not isinstance(item, dict):
            raise error(src, f"invalid guildfile data {excerpt(item)}: expected a mapping")
        types = [key for key in TYPE_KEYS if key in item]
        if not types:
            if "operations" not in item:
                raise error(
                    src, f"missing required type (one of: {', '.join(TYPE_KEYS)}) in {excerpt(item)}"
                )
            item = {"model": "", **item}
        elif len(types) > 1:
            raise error(src, f"conflicting types ({', '.join(types)}) in {excerpt(item)}")
        items.append(item)
    return items


def expand_includes(
    path: str, items: Iterable[dict], top_dir: str, stack: tuple[str, ...] = ()
) -> list[tuple[dict, str]]:
    """`items` with each `include` item replaced by the items of the files it names, as
    (item, source path) pairs. Includes are relative to the including file, or a Guild
    package (`<dir on sys.path>/<name>/guild.yml`)."""
    stack = stack + (path,)
    out: list[tuple[dict, str]] = []
    for item in items:
        if "include" not in item:
            out.append((item, path))
            continue
        names = item["include"]
        for name in names if isinstance(names, list) else [names]:
            inc_path = _find_include(path, name)
            if inc_path in stack:
                chain = " -> ".join(display(p, top_dir) for p in stack + (inc_path,))
                raise error(path, f"cycle in 'includes': {display(inc_path, top_dir)} ({chain})")
            inc_items = coerce_items(read_yaml(inc_path), inc_path)
            out.extend(expand_includes(inc_path, inc_items, top_dir, stack))
    return out


def _find_include(path: str, name: object) -> str:
    if isinstance(name, str) and name:
        local = os.path.join(os.path.dirname(path), name)
        if os.path.isfile(local):
            return os.path.abspath(local)
        found = find_package_guildfile(name)
        if found:
            return found
    raise error(
        path,
        f"cannot find include {name!r} (includes must be local to including Guild file "
        "or a Guild package on the system path)",
    )


def find_package_guildfile(pkg: str) -> str | None:
    """The guild.yml of package `pkg` on sys.path, or None."""
    for entry in sys.path:
        candidate = os.path.join(entry or ".", *pkg.split("."), "guild.yml")
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    return None


def display(path: str, top_dir: str | None) -> str:
    if top_dir and path.startswith(top_dir.rstrip(os.sep) + os.sep):
        return os.path.relpath(path, top_dir)
    return path


def apply_parent_data(parent: Any, child: Any) -> None:
    """Merge `parent` into `child` in place: keys the child lacks are copied, mappings both
    have are merged recursively, anything else (scalars, lists) stays the child's."""
    if not isinstance(parent, dict) or not isinstance(child, dict):
        return
    for key, value in parent.items():
        if key not in child:
            child[key] = copy.deepcopy(value)
        else:
            apply_parent_data(value, child[key])


class Items:
    """The models and configs of one Guild file by name, with `extends` resolved on demand.
    Files of packages named in `extends: pkg/name` are loaded as needed (sys.path)."""

    def __init__(
        self, path: str, pairs: Iterable[tuple[dict, str]], packages: dict[str, "Items"] | None = None
    ) -> None:
        self.path = path
        # Models and configs share one namespace; a model wins over a config of the same name.
        self.named: dict[str, dict] = {}
        for key in ("config", "model"):
            for item, _src in pairs:
                if key in item:
                    self.named[item_name(item, key)] = item
        self._merged: dict[tuple[str, str], dict] = {}
        self._packages = packages if packages is not None else {}

    def merged(self, name: str, stack: tuple[tuple[tuple[str, str], str], ...] = ()) -> dict:
        """The data of item `name` with its parents merged in (not yet params-substituted).

        `stack` holds ((path, name), reference-as-written) for the parents being resolved,
        so a cycle is reported the way it was written: `cycle in 'extends' (b -> a -> b)`."""
        key = (self.path, name)
        if key in self._merged:
            return self._merged[key]
        data = coerce_item(copy.deepcopy(self.named[name]))
        for ref in _extends_refs(data, self.path):
            items, parent_name = self._locate(ref)
            parent_key = (items.path, parent_name)
            if parent_key in [k for k, _ in stack]:
                chain = " -> ".join([r for _, r in stack] + [ref])
                raise error(self.path, f"cycle in 'extends' ({chain})")
            apply_parent_data(
                _inheritable(items.merged(parent_name, stack + ((parent_key, ref),))), data
            )
        self._merged[key] = data
        return data

    def _locate(self, ref: str) -> tuple["Items", str]:
        if ref in self.named:
            return self, ref
        if "/" in ref:
            pkg, name = ref.rsplit("/", 1)
            items = self._package_items(pkg)
            if name in items.named:
                return items, name
        raise error(self.path, f"cannot find model or config {ref!r} named in 'extends'")

    def _package_items(self, pkg: str) -> "Items":
        if pkg not in self._packages:
            path = find_package_guildfile(pkg)
            if not path:
                raise error(self.path, f"cannot find Guild file for package {pkg!r}")
            items = coerce_items(read_yaml(path), path)
            pairs = expand_includes(path, items, os.path.dirname(path))
            self._packages[pkg] = Items(path, pairs, self._packages)
        return self._packages[pkg]

    def lookup(self, name: str) -> tuple["Items", str] | None:
        """(Items, name) for a reference in `$include` (local name or `pkg/name`), or None."""
        try:
            return self._locate(name)
        except InvalidArgument:
            return None


def item_name(item: dict, key: str) -> str:
    name = item.get(key)
    return "" if name is None else str(name)


def _extends_refs(data: dict, src: str) -> list[str]:
    refs = data.get("extends")
    if refs is None:
        return []
    refs = refs if isinstance(refs, list) else [refs]
    for ref in refs:
        if not isinstance(ref, str):
            raise error(src, f"invalid extends value {ref!r}: expected a model or config name")
    return refs


def coerce_item(data: dict) -> dict:
    """`data` (a model or config) in the shape merging needs: an operation given as a string
    is `{main: ...}`, and a flag given as a value is `{default: ...}`, so a child that only
    changes a default keeps the parent's description (and other flag attributes)."""
    ops = data.get("operations")
    if isinstance(ops, dict):
        for name, op in ops.items():
            if name == "$include":
                continue
            if op is None or isinstance(op, str):
                ops[name] = op = {} if op is None else {"main": op}
            if isinstance(op, dict):
                _coerce_flags(op)
    if isinstance(data.get("operation-defaults"), dict):
        _coerce_flags(data["operation-defaults"])
    _coerce_flags(data)
    return data


def _coerce_flags(data: dict) -> None:
    flags = data.get("flags")
    if isinstance(flags, dict):
        for name, value in flags.items():
            if name != "$include" and not isinstance(value, dict):
                flags[name] = {"default": value}


def _inheritable(data: dict) -> dict:
    return {k: v for k, v in data.items() if k not in NOT_INHERITED}


def resolve_includes(
    mapping: Any, section: str, items: Items, src: str, stack: tuple[str, ...] = (), values: bool = False
) -> Any:
    """`mapping` with its `$include` entries replaced by the `section` ("flags",
    "operations", "resources") of the configs or models they name. Local entries win, and
    are merged with an included entry of the same name as a child with its parent.

    References: `cfg`, `cfg#a,b` (only those keys), and for flags `model:op` /
    `model:op#a,b` (the flags of another operation). With `values`, included flag
    definitions become their default values (step flags are values, not definitions)."""
    if not isinstance(mapping, dict) or "$include" not in mapping:
        return mapping
    refs = mapping["$include"]
    out: dict = {}
    for ref in refs if isinstance(refs, list) else [refs]:
        if not isinstance(ref, str):
            raise error(src, f"invalid $include value {ref!r}: expected a name")
        if ref in stack:
            raise error(src, f"cycle in '$include' ({' -> '.join(stack + (ref,))})")
        for key, value in _included(ref, section, items, src, stack + (ref,)).items():
            if values and isinstance(value, dict):
                value = value.get("default")
            out.setdefault(key, value)
    for key, value in mapping.items():
        if key == "$include":
            continue
        if key in out:
            apply_parent_data(out[key], value)
        out[key] = value
    return out


def _included(ref: str, section: str, items: Items, src: str, stack: tuple[str, ...]) -> dict:
    target, _, selected = ref.partition("#")
    name, _, op_name = target.partition(":") if section == "flags" else (target, "", "")
    found = items.lookup(name)
    if found is None:
        raise error(src, f"invalid $include {ref!r}: no model or config named {name!r}")
    owner, owner_name = found
    data = owner.merged(owner_name)
    if op_name:
        ops = resolve_includes(data.get("operations") or {}, "operations", owner, src, stack)
        op = ops.get(op_name)
        if op is None:
            raise error(src, f"invalid $include {ref!r}: no operation {op_name!r} in {name!r}")
        included = op.get("flags") if isinstance(op, dict) else None
    else:
        included = data.get(section)
    included = resolve_includes(copy.deepcopy(included or {}), section, owner, src, stack)
    if not isinstance(included, dict):
        raise error(src, f"invalid $include {ref!r}: {section} of {name!r} is not a mapping")
    if selected:
        keys = [k.strip() for k in selected.split(",")]
        included = {k: v for k, v in included.items() if k in keys}
    return included


PARAM_REF = re.compile(r"{{\s*([^{}\s]+)\s*}}")


def resolve_params(params: dict[str, Any]) -> dict[str, Any]:
    """`params` with references to other params resolved; a param in a reference cycle keeps
    its value as written."""
    resolved = {}
    for name in params:
        try:
            resolved[name] = _resolve_param(name, params, ())
        except _ParamCycle:
            resolved[name] = params[name]
    return resolved


class _ParamCycle(Exception):
    pass


def _resolve_param(name: str, params: dict[str, Any], stack: tuple[str, ...]) -> Any:
    if name in stack:
        raise _ParamCycle()
    value = params[name]
    if not isinstance(value, str):
        return value
    return _substitute_str(value, params, lambda ref: _resolve_param(ref, params, stack + (name,)))


def substitute(data: Any, params: dict[str, Any]) -> Any:
    """`data` with `{{name}}` in every string replaced by the param's value. A string that
    is only a reference takes the param's value as it is (a number stays a number)."""
    if not params:
        return data
    if isinstance(data, dict):
        return {k: substitute(v, params) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute(v, params) for v in data]
    if isinstance(data, str):
        return _substitute_str(data, params, params.__getitem__)
    return data


def _substitute_str(s: str, params: dict[str, Any], value_of: Callable[[str], Any]) -> Any:
    whole = PARAM_REF.fullmatch(s)
    if whole and whole.group(1) in params:
        return value_of(whole.group(1))

    def repl(m: re.Match[str]) -> str:
        if m.group(1) not in params:
            return m.group(0)
        value = value_of(m.group(1))
        return value if isinstance(value, str) else _param_str(value)

    return PARAM_REF.sub(repl, s)


def _param_str(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
