"""Flags kept in a config file: `flags-dest: config:FILE` and `config:` dependencies.

A YAML, JSON or INI file's values are flags named by their dotted path (`nested.a`, an INI
file's `section.key`); a run's values are written back into a copy of the file, in its own
format, as Guild 0.9 does. A list is one string flag (`1 2 foo`, Guild's arg-split: a list
value would make a batch) and is a list again in the written file.
"""

import configparser
import copy
import io
import json
import os
from collections.abc import Iterator
from typing import Any

import yaml

from guild_common import flags as flaglib
from guild_common.errors import InvalidArgument
from guild_common.flagdef import FlagDef
from guild_common.paths import StrPath

FORMATS = {".yml": "yaml", ".yaml": "yaml", ".json": "json", ".ini": "ini", ".cfg": "ini"}


def config_format(rel: str) -> str:
    """yaml, json or ini, from the file's extension."""
    fmt = FORMATS.get(os.path.splitext(rel)[1].lower())
    if fmt is None:
        raise InvalidArgument(f"unsupported config format '{rel}' (expected .json, .yml, .yaml, .ini or .cfg)")
    return fmt


def load(base_dir: StrPath, rel: str) -> dict:
    """The file's values (an INI file's as {section: {key: value}}, values decoded as flag
    values are)."""
    fmt = config_format(rel)
    path = os.path.join(base_dir, os.path.expanduser(rel))
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise InvalidArgument(f"cannot find config file '{rel}'") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"cannot read config file '{rel}': {e}") from None
    try:
        data = _parse(text, fmt)
    except (ValueError, yaml.YAMLError, configparser.Error) as e:
        message = " ".join(str(e).split())
        raise InvalidArgument(f"cannot read config file '{rel}': {message}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"config file '{rel}' must contain a mapping")
    return data


def _parse(text: str, fmt: str) -> Any:
    if fmt == "json":
        return json.loads(text or "{}")
    if fmt == "yaml":
        return yaml.safe_load(text) or {}
    # DEFAULT read as a section of its own (no inheritance): its keys are top-level flags, as
    # Guild 0.9 imports them (`i`, not `DEFAULT.i`), and other sections hold only their own.
    parser = configparser.ConfigParser(interpolation=None, default_section="\0")
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(text)
    data: dict[str, Any] = {}
    for section in parser.sections():
        values = {key: flaglib.decode_flag_value(value) for key, value in parser[section].items()}
        if section == configparser.DEFAULTSECT:
            data = {**values, **data}
        else:
            data[section] = values
    return data


def flag_defs(data: dict) -> dict[str, FlagDef]:
    """name -> FlagDef for every value, nested mappings as dotted names; untyped, as Guild's."""
    out: dict[str, FlagDef] = {}
    for name, value in _flatten(data, ""):
        if isinstance(value, list):
            if all(not isinstance(v, (list, dict)) for v in value):
                out[name] = FlagDef(name, default=flaglib.join_flag_values(value), arg_split=True)
        elif not isinstance(value, dict):  # an empty mapping holds no flag
            out[name] = FlagDef(name, default=value)
    return out


def _flatten(data: dict, prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def render(data: dict, values: dict, rel: str) -> str:
    """The file's text with `values` (dotted names) set: a string where the file holds a
    list is split into the list again."""
    data = copy.deepcopy(data)  # the caller's data stays as read
    for key, value in values.items():
        *parents, leaf = str(key).split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InvalidArgument(f"cannot set {key} in config file '{rel}'")
        if isinstance(node.get(leaf), list) and isinstance(value, str):
            value = flaglib.split_flag_value(value)
        node[leaf] = value
    fmt = config_format(rel)
    if fmt == "json":
        return json.dumps(data, sort_keys=True)
    if fmt == "yaml":
        return yaml.safe_dump(data, default_flow_style=False)
    return _ini_text(data)


def _ini_text(data: dict) -> str:
    # A name without a section (a flag the file doesn't hold) goes in DEFAULT.
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    for key, value in data.items():
        if isinstance(value, dict):
            parser[key] = {k: _ini_value(v) for k, v in value.items() if v is not None}
        elif value is not None:
            parser["DEFAULT"][key] = _ini_value(value)
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def _ini_value(value: object) -> str:
    # As Guild 0.9 writes them: Python's str() (`False`, `1.5`, `[1, 2, 'foo']`).
    return str(value)
