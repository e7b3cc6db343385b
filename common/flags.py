"""Flag values: decoding `NAME=VAL`, encoding for commands and env, formatting for labels, coercion.

Guild reads flag values as YAML, with exceptions for text that YAML reads in ways no one means
on a command line (run IDs that look like floats, `1_000`, `1:2`, dates). Encoding is the
inverse: a value's encoded text decodes back to the same value.
"""

import json
import math
import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml

from guild_common import errors

from .errors import InvalidArgument
from .flagdef import FlagDef


_TAG_INT = "tag:yaml.org,2002:int"
_TAG_FLOAT = "tag:yaml.org,2002:float"

# Decimal ints only: YAML 1.1 would also read `1_000`, `0x1f`, `012` (octal) and `1:30`
# (sexagesimal), none of which a user typing a flag value means as a number.
_INT_RE = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")

# Guild widens YAML 1.1 floats to accept `1.`, `.1`, `1e5` and `1.e-3` (YAML needs a dot and a
# signed exponent), and narrows them to refuse underscores and sexagesimal forms.
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?
         |[-+]?[0-9]+[eE][-+]?[0-9]+
         |[-+]?\.(?:inf|Inf|INF)
         |\.(?:nan|NaN|NAN))$""",
    re.X,
)

# Short run IDs (e.g. `67217e15`) would read as floats; Guild keeps them as strings.
_RUN_ID_RE = re.compile(r"^[0-9]+e[0-9]+$")
_RUN_ID_LEN = range(3, 9)

# `[1, 2] * 3`: Python-style list repetition.
_LIST_CONCAT_RE = re.compile(r"^(\[.*\])\s*\*\s*([0-9]+)$", re.S)

_NULL_LITERALS = ("~", "null", "Null", "NULL")

_FLOAT_FIRST_CHARS = "-+.0123456789"


class _DecodeLoader(yaml.SafeLoader):
    """YAML loader with Guild's number rules and no timestamps (dates stay strings)."""


_DecodeLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in (_TAG_INT, _TAG_FLOAT, "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_DecodeLoader.add_implicit_resolver(_TAG_INT, _INT_RE, list("-+0123456789"))
_DecodeLoader.add_implicit_resolver(_TAG_FLOAT, _FLOAT_RE, list(_FLOAT_FIRST_CHARS))


def decode_flag_value(s: str) -> Any:
    """The value a user means by the text `s` in `NAME=s`."""
    text = s.strip()
    if text == "":
        return s
    if _is_run_id(text) or _is_anonymous_function(text):
        return text
    concat = _LIST_CONCAT_RE.match(text)
    if concat:
        return _decode_list_concat(text, concat.group(1), int(concat.group(2)))
    return _decode_yaml(text)


def _is_run_id(text: str) -> bool:
    return len(text) in _RUN_ID_LEN and bool(_RUN_ID_RE.match(text))


def _is_anonymous_function(text: str) -> bool:
    """True for `[1:2]`, `[a : b : c]`, `[x:yes:[1,2]]`: YAML would read these as lists (`[62]`).

    The mark of a function is a `:` between its brackets that is not nested in another bracket;
    a top-level `,` means a list after all (`[a:1, b:2]`).
    """
    if not (text.startswith("[") and text.endswith("]")):
        return False
    depth, colon = 0, False
    for char in text[1:-1]:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif depth == 0 and char == ",":
            return False
        elif depth == 0 and char == ":":
            colon = True
    return colon


def _decode_list_concat(text: str, list_text: str, times: int) -> Any:
    items = _decode_yaml(list_text)
    return items * times if isinstance(items, list) else text


def _decode_yaml(text: str) -> Any:
    try:
        value = yaml.load(text, Loader=_DecodeLoader)
    except yaml.YAMLError:
        return text
    except ValueError:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        raise errors.InvalidArgument(f"invalid value '{text[:20]}...': a number of {len(text)} digits is too large") from None
    except RecursionError:  # `[[[[...` a few thousand deep: YAML's parser recurses per level
        raise errors.InvalidArgument(f"invalid value '{text[:20]}...': nested too deeply") from None
    if not _is_primitive_tree(value):
        return text
    if _lost_to_comment(text, value):
        return text
    return value


# Levels of lists and mappings a flag value may have: JSON, YAML and the run's flags all
# recurse per level, and `x=[[[[...` a thousand deep would crash them.
MAX_VALUE_DEPTH = 100


def _is_primitive_tree(value: object) -> bool:
    """True if `value` is made only of what flags hold (YAML can also build dates, bytes, sets)
    and is a tree: a list or mapping met twice (YAML aliases: `&a [*a]` holds itself) is not.
    InvalidArgument when it is nested deeper than MAX_VALUE_DEPTH."""
    seen: set[int] = set()
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if item is None or isinstance(item, (str, int, float, bool)):
            continue
        if not isinstance(item, (list, dict)) or id(item) in seen:
            return False
        if depth >= MAX_VALUE_DEPTH:
            raise InvalidArgument(f"invalid value: nested more than {MAX_VALUE_DEPTH} levels deep")
        seen.add(id(item))
        children = item if isinstance(item, list) else [x for kv in item.items() for x in kv]
        stack.extend((child, depth + 1) for child in children)
    return True


def _lost_to_comment(text: str, value: object) -> bool:
    """True if YAML read part of an unquoted scalar as a comment (`hello #1` -> 'hello').

    A flag value on a command line never carries a YAML comment, so the `#` is meant literally.
    """
    if isinstance(value, str) or (value is None and text not in _NULL_LITERALS):
        return text[0] not in "'\"" and re.search(r"(^|\s)#", text) is not None
    return False


class _EncodeDumper(yaml.SafeDumper):
    """YAML dumper that writes booleans as yes/no and quotes strings that read as numbers.

    The dumper quotes a string when its plain text resolves to another type; it keeps YAML 1.1's
    wider int/date rules and adds Guild's float forms, so `12e3`, `1_000` and `2018-06-26` as
    strings are quoted and decode back as strings whatever exceptions the decoder applies.
    """


_EncodeDumper.add_implicit_resolver(_TAG_FLOAT, _FLOAT_RE, list(_FLOAT_FIRST_CHARS))


def _represent_bool(dumper: yaml.SafeDumper, value: bool) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:bool", "yes" if value else "no")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Double quotes escape newlines, so an encoded value is always one line (labels, env, argv).
    style = '"' if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_EncodeDumper.add_representer(bool, _represent_bool)
_EncodeDumper.add_representer(str, _represent_str)


def encode_flag_value(value: Any) -> str:
    """Text that `decode_flag_value` turns back into `value`."""
    encoded = yaml.dump(
        value,
        Dumper=_EncodeDumper,
        default_flow_style=True,
        width=math.inf,
        allow_unicode=True,
        sort_keys=False,
    )
    # A top-level scalar comes with a document end marker (`...`) and always with a newline.
    if encoded.endswith("\n...\n"):
        encoded = encoded[: -len("\n...\n")]
    return encoded.rstrip("\n")


_TRUNCATE_DECIMALS = 5


def format_flag_value(value: Any) -> str:
    """`value` as shown in a run label: floats truncated, strings with spaces quoted."""
    if isinstance(value, float):
        return _truncate_float(encode_flag_value(value))
    if isinstance(value, str):
        return _format_string(value)
    return encode_flag_value(value)


def _truncate_float(encoded: str) -> str:
    """Cut (not round) the fraction to 5 digits, keeping any exponent: 0.999999 -> 0.99999."""
    match = re.match(r"^([-+]?[0-9]*\.)([0-9]*)(.*)$", encoded)
    if not match:
        return encoded  # .inf, .nan
    whole, fraction, exponent = match.groups()
    return whole + fraction[:_TRUNCATE_DECIMALS] + exponent


def _format_string(s: str) -> str:
    encoded = encode_flag_value(s)
    if encoded != s:
        return encoded  # already quoted because it reads as another type
    if not re.search(r"\s", s):
        return s
    if "'" in s and '"' not in s:
        return '"%s"' % s
    return "'%s'" % s.replace("'", "''")


def format_flag_assign(name: str, value: Any) -> str:
    return "%s=%s" % (name, format_flag_value(value))


def default_label(flags: Mapping[str, Any]) -> str:
    """Guild's default run label: every flag with a value, as `NAME=VAL`, sorted by name."""
    return " ".join(
        format_flag_assign(name, flags[name]) for name in sorted(flags) if flags[name] is not None
    )


def parse_flag_assigns(args: Iterable[str]) -> dict[str, Any]:
    """Flag values from `NAME=VAL` arguments; a later assignment to a name wins."""
    flags = {}
    for arg in args:
        name, sep, text = arg.partition("=")
        if not sep or not name:
            raise InvalidArgument("invalid argument '%s' - expected NAME=VAL" % arg)
        flags[name] = decode_flag_value(text)
    return flags


def flag_cmd_args(flags: Mapping[str, Any], defs: Mapping[str, FlagDef], dest: str = "args") -> list[str]:
    """The `--name value` arguments that `__flag_args__` expands to, sorted by flag name.

    An `arg-split` flag's string is a list: separate arguments for a command line (`dest`
    args), one JSON list for opmain to set a Python value from (other dests)."""
    args: list[str] = []
    for name in sorted(flags):
        args.extend(_flag_args(name, flags[name], defs.get(name), dest))
    return args


def _flag_args(name: str, value: Any, flagdef: FlagDef | None, dest: str) -> list[str]:
    if value is None or (flagdef and flagdef.arg_skip):
        return []
    option = "--" + ((flagdef and flagdef.arg_name) or name)
    if flagdef and flagdef.arg_switch is not None:
        return [option] if value == flagdef.arg_switch else []
    if flagdef and flagdef.arg_split not in (None, False) and isinstance(value, str):
        items = split_flag_value(value, flagdef.arg_split)
        if dest == "args" or dest.startswith("args:"):
            return [option, *map(encode_flag_value, items)]
        return [option, json.dumps(items)]
    return [option, encode_flag_value(value)]


def join_flag_values(items: Iterable[Any]) -> str:
    """A list as the one string an `arg-split` flag holds (Guild 0.9: `[1, 2, 'foo']` is
    `1 2 foo`): a list value would make a batch."""
    return " ".join(shlex.quote(encode_flag_value(item)) for item in items)


def split_flag_value(value: str, arg_split: Any = True) -> list[Any]:
    """The list an `arg-split` flag's string stands for: split as a shell line (`arg-split:
    yes`) or at a separator (`arg-split: ','`), each part decoded as a flag value."""
    parts = shlex.split(value) if arg_split is True else value.split(str(arg_split))
    return [decode_flag_value(part) for part in parts if part.strip()]


def flag_env(flags: Mapping[str, Any], defs: Mapping[str, FlagDef]) -> dict[str, str]:
    """`FLAG_<NAME>` variables for a run's environment.

    Strings go in as they are, unquoted (Guild: `'123'` -> FLAG_C=123), since a process reading
    its environment gets no type information to protect; other values are encoded.
    """
    env: dict[str, str] = {}
    for name, value in flags.items():
        if value is None:
            continue
        flagdef = defs.get(name)
        env_name = (flagdef and flagdef.env_name) or _default_env_name(name)
        env[env_name] = value if isinstance(value, str) else encode_flag_value(value)
    return env


def _default_env_name(flag_name: str) -> str:
    return "FLAG_" + re.sub(r"[^A-Za-z0-9_]", "_", flag_name).upper()


# A search-space or sequence function (`[1:2]`, `uniform[0:1]`, `range[1:5]`) stands for many
# values; the batch that expands it checks each one, so it passes through here unchecked.
_FLAG_FUNCTION_RE = re.compile(r"^[A-Za-z0-9_\-.]*\[.*\]$", re.S)


def coerce_flag_value(value: Any, flagdef: FlagDef, cwd: str | None = None) -> Any:
    """`value` converted to `flagdef`'s type and checked against its choices and range.

    A list (a batch over values) is checked item by item. Relative `existing-path` values are
    checked against `cwd` (the user's directory), defaulting to the current one.
    """
    if isinstance(value, list):
        return [coerce_flag_value(item, flagdef, cwd) for item in value]
    if value is None or (isinstance(value, str) and _FLAG_FUNCTION_RE.match(value)):
        return value
    coerced = _coerce_type(value, flagdef, cwd)
    _check_choices(coerced, flagdef)
    _check_range(coerced, flagdef)
    return coerced


def _invalid(value: Any, flagdef: FlagDef, why: str) -> InvalidArgument:
    shown = "'%s'" % value if isinstance(value, str) else encode_flag_value(value)
    return InvalidArgument("invalid value %s for flag '%s': %s" % (shown, flagdef.name, why))


def _coerce_type(value: Any, flagdef: FlagDef, cwd: str | None) -> Any:
    if flagdef.type in (None, "auto"):
        return value
    try:
        coerce = _COERCERS[flagdef.type]
    except KeyError:
        raise InvalidArgument(
            "unsupported type '%s' for flag '%s': expected one of %s"
            % (flagdef.type, flagdef.name, ", ".join(_COERCERS))
        ) from None
    try:
        return coerce(value, cwd)
    except (TypeError, ValueError, OverflowError) as e:  # OverflowError: an int past a float's range
        raise _invalid(value, flagdef, str(e)) from None


def _to_float(value: Any, _cwd: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("expected a float")
    try:
        return float(value)
    except ValueError:
        raise ValueError("expected a float") from None


def _to_int(value: Any, _cwd: str | None) -> int:
    # 1.0 is refused: an int flag given a float most likely means the wrong flag or a typo.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("expected an int")
    try:
        return int(value)
    except ValueError:
        raise ValueError("expected an int") from None


def _to_number(value: Any, _cwd: str | None) -> int | float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        for convert in (int, float):
            try:
                return convert(value)
            except ValueError:
                pass
    raise ValueError("expected a number")


def _to_boolean(value: Any, _cwd: str | None) -> bool:
    # Guild takes truthiness: "" is false, any other string (even "false") is true. Command-line
    # `no`/`false` are already False by the time they get here, as decoding reads them.
    return bool(value)


def _to_string(value: Any, _cwd: str | None) -> str:
    return value if isinstance(value, str) else encode_flag_value(value)


def _to_path(value: Any, cwd: str | None) -> str:
    return os.path.expanduser(_to_string(value, cwd))


def _to_existing_path(value: Any, cwd: str | None) -> str:
    path = _to_path(value, cwd)
    if not os.path.exists(os.path.join(cwd or os.getcwd(), path)):
        raise ValueError("path does not exist")
    return path


_COERCERS: dict[str, Callable[[Any, str | None], Any]] = {
    "float": _to_float,
    "int": _to_int,
    "number": _to_number,
    "boolean": _to_boolean,
    "string": _to_string,
    "path": _to_path,
    "existing-path": _to_existing_path,
}


def _choice_values(flagdef: FlagDef) -> list[Any]:
    # A choice is a value or a mapping `{value: V, flags: {...}}` (extra flags it selects).
    return [c["value"] if isinstance(c, dict) else c for c in flagdef.choices]


def _check_choices(value: Any, flagdef: FlagDef) -> None:
    choices = _choice_values(flagdef)
    if choices and value not in choices:
        expected = ", ".join(encode_flag_value(c) for c in choices)
        raise _invalid(value, flagdef, "expected one of " + expected)


def _check_range(value: Any, flagdef: FlagDef) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    for name, bound in (("min", flagdef.min), ("max", flagdef.max)):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
            # A Guild file's `min: ''` or `max: [1]`: the definition is wrong, not the value.
            raise InvalidArgument("invalid %s %s for flag '%s': expected a number" % (name, encode_flag_value(bound)[:40], flagdef.name))
    if flagdef.min is not None and value < flagdef.min:
        raise _invalid(value, flagdef, "less than min %s" % encode_flag_value(flagdef.min))
    if flagdef.max is not None and value > flagdef.max:
        raise _invalid(value, flagdef, "greater than max %s" % encode_flag_value(flagdef.max))
