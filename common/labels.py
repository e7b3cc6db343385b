"""Run labels: the default label from flag values, and label templates.

A template is text with references: `${flag}` (the flag's value as labels show values:
floats truncated, quoted when needed, existing paths shortened), `${default_label}` (every
non-null flag as NAME=VAL, sorted), and filters `${NAME|FILTER:ARG|...}` applied left to
right to the raw value:

    default:V   V when the flag is undefined or null     ${lr|default:0.1}
    %FMT        Python %-formatting                      ${lr|%.2f}  ${i|%05d}
    basename    a path's last part                       ${data|basename}
    unquote     strip one pair of enclosing '...'        ${ver|unquote}

An undefined or null flag renders empty (`a-${b}-c` -> `a--c`). A filter's string result is
used as is; any other result is formatted as an unfiltered value would be (Guild shows `str()`
there: `True` for a boolean, 0.123456789 untruncated).

A bad format string (`${s|%z}`) or an unknown filter is not an error: the label still renders
(the original value, or `#error#` for an unknown filter, as in Guild) and a warning says why.
`render_with_warnings` returns the warnings for the caller to show; `render` logs them on this
module's logger. A label longer than guild_common.limits.MAX_LABEL (a template expanding long
flag values) is cut there, ending in "…": it is shown in every `runs` row.
"""

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from guild_common import flags as flaglib, limits

log = logging.getLogger(__name__)

SHORT_PATH_LEN = 28  # longest path shown whole in a label; longer existing paths get a "…"

_REF = re.compile(r"\$\{([^}]*)\}")


@dataclasses.dataclass(frozen=True)
class Rendered:
    label: str
    warnings: tuple[str, ...]  # without a "WARNING: " prefix


def render(template: str | None, flags: Mapping[str, Any], default_label: str | None = None) -> str:
    """The label for `template` (None or '': the default label) and flag values `flags`.

    `default_label` is what `${default_label}` stands for, computed from `flags` when None.
    Warnings (bad format strings, unknown filters) go to this module's logger.
    """
    rendered = render_with_warnings(template, flags, default_label)
    for warning in rendered.warnings:
        log.warning("%s", warning)
    return rendered.label


def render_with_warnings(
    template: str | None, flags: Mapping[str, Any], default_label: str | None = None
) -> Rendered:
    """As `render`, returning the warnings instead of logging them."""
    if default_label is None:
        default_label = format_default_label(flags)
    if not template:
        return Rendered(limits.capped(default_label, limits.MAX_LABEL), ())
    warnings: list[str] = []

    def sub(match: re.Match[str]) -> str:
        name, *filters = match.group(1).split("|")
        name = name.strip()
        value: Any
        if name == "default_label":
            value = default_label
        else:
            value = flags.get(name)
        if not filters:
            if name == "default_label" or value is None:
                return value or ""
            return format_value(value)
        for spec in filters:
            value = _apply_filter(spec.strip(), value, warnings)
        if value is None:
            return ""
        return value if isinstance(value, str) else format_value(value)

    return Rendered(limits.capped(_REF.sub(sub, template), limits.MAX_LABEL), tuple(warnings))


def format_default_label(flags: Mapping[str, Any]) -> str:
    """Every flag with a value, as NAME=VAL sorted by name (null-valued flags left out)."""
    return " ".join(
        f"{name}={format_value(flags[name])}" for name in sorted(flags) if flags[name] is not None
    )


def format_value(value: Any) -> str:
    """A flag value as labels show it: `flags.format_flag_value`, with existing paths
    longer than SHORT_PATH_LEN shortened around a '…' (`/tmp/abc/…/vwx/yz`)."""
    if _is_path(value):
        value = shorten_path(value)
    return flaglib.format_flag_value(value)


def shorten_path(path: str, max_len: int = SHORT_PATH_LEN, ellipsis: str = "\u2026") -> str:
    """`path` cut to at most about `max_len` characters by putting `ellipsis` for middle parts.

    The first and last parts are always kept; middle parts are then taken alternately from
    the left and the right (from the other side only, once one side's next part is too long)
    while the result fits.
    """
    if len(path) <= max_len:
        return path
    parts = path.split("/")
    if len(parts) < 3:
        return path
    left, middle, right = parts[:1], parts[1:-1], parts[-1:]

    def fits(left: list[str], right: list[str]) -> bool:
        return len("/".join(left + [ellipsis] + right)) <= max_len

    take_left = parts[0] == ""  # absolute: show where it starts before where it ends
    while middle:
        if take_left and fits(left + middle[:1], right):
            left, middle = left + middle[:1], middle[1:]
        elif not take_left and fits(left, middle[-1:] + right):
            middle, right = middle[:-1], middle[-1:] + right
        elif take_left and fits(left, middle[-1:] + right):
            middle, right = middle[:-1], middle[-1:] + right
        elif not take_left and fits(left + middle[:1], right):
            left, middle = left + middle[:1], middle[1:]
        else:
            break
        take_left = not take_left
    if not middle:
        return path
    return "/".join(left + [ellipsis] + right)


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and "/" in value and os.path.exists(value)


def _apply_filter(spec: str, value: Any, warnings: list[str]) -> Any:
    name, _, arg = spec.partition(":")
    if name.startswith("%"):
        return _format(spec, value, warnings)
    if name == "default":
        return arg if value is None else value
    if name == "basename":
        return "" if not value else os.path.basename(str(value).rstrip("/"))
    if name == "unquote":
        if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == "'":
            return value[1:-1]
        return value
    warnings.append(f"unsupported label filter {spec!r}")
    return "#error#"


def _format(fmt: str, value: Any, warnings: list[str]) -> Any:
    try:
        return fmt % value
    except ValueError as e:
        # A bad format string is worth a warning; a value of another type (`%.2f` of a
        # string) just passes through, as in Guild.
        warnings.append(f"error formatting {value!r} with {fmt!r}: {e}")
        return value
    except TypeError:
        return value
