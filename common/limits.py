"""Limits on the user-supplied text that goes into the run index and every listed row.

A label, an op name, a tag, a comment or a flag value is stored in the index and sent back
with every `runs` row, `runs info` and compare table. Without a bound, one 1 MB label makes
every listing of that run ~1 MB (and a 1 MB flag value can't even be passed to a process:
Linux refuses a single argument over 128 KiB with E2BIG). The daemon checks these at its edge
(guildd/rpc.py), so every client gets the same answer, and caps the labels it derives itself
(a default label from long flag values, a label with text appended) with `capped`.

Pure: each check returns the problem as one line naming the field and the limit, or None.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

MAX_LABEL = 1_000  # characters; Guild labels are a few words
MAX_OP_NAME = 256  # characters
MAX_TAG = 200  # characters of one tag
MAX_TAGS = 100  # tags on one run or in one request
MAX_COMMENT = 10_000  # characters of one comment
MAX_FLAG_NAME = 256  # characters
MAX_FLAG_VALUE = 64 * 1024  # bytes of one value as JSON: well under Linux's 128 KiB per argument
MAX_FLAGS = 1024 * 1024  # bytes of all of a run's flag values as JSON (argv and env share ~2 MB)

ELLIPSIS = "\u2026"


def too_long(field: str, text: str, limit: int) -> str | None:
    """The problem with `text` as `field` if it is over `limit` characters."""
    if len(text) <= limit:
        return None
    return f"{field} is too long: {len(text):,} characters (the limit is {limit:,})"


def tags_problem(field: str, tags: Iterable[str]) -> str | None:
    """The problem with a list of tags: too many of them, or one too long."""
    tags = list(tags)
    if len(tags) > MAX_TAGS:
        return f"too many {field}: {len(tags):,} (the limit is {MAX_TAGS:,})"
    for tag in tags:
        problem = too_long(f"a {field[:-1] if field.endswith('s') else field}", tag, MAX_TAG)
        if problem:
            return problem
    return None


def flags_problem(flags: Mapping[str, Any]) -> str | None:
    """The problem with a run's flag values: a name or a value too long, or all of them
    together too big. Sizes are of each value as JSON, in UTF-8 bytes."""
    total = 0
    for name, value in flags.items():
        problem = too_long("a flag name", str(name), MAX_FLAG_NAME)
        if problem:
            return problem
        size = _json_bytes(value)
        if size > MAX_FLAG_VALUE:
            return f"flag {_short(name)} has a value too long: {size:,} bytes (the limit is {MAX_FLAG_VALUE:,})"
        total += size + len(str(name))
    if total > MAX_FLAGS:
        return f"flag values are too big together: {total:,} bytes (the limit is {MAX_FLAGS:,})"
    return None


def flags_json_problem(flags_json: str) -> str | None:
    """`flags_problem` for flags as a request carries them (a JSON object). Text that is not
    a JSON object is left to the code that reads it, which says what is wrong."""
    if not flags_json:
        return None
    try:
        flags = json.loads(flags_json)
    except (ValueError, RecursionError):
        return None
    return flags_problem(flags) if isinstance(flags, dict) else None


def first_problem(problems: Iterable[str | None]) -> str | None:
    """The first of several checks' problems, or None when all passed."""
    return next((p for p in problems if p), None)


def capped(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in an ellipsis where it was cut: for
    text the daemon derives (a default label from long flag values), which must not be
    refused for a length the user never typed."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


def _json_bytes(value: Any) -> int:
    try:
        return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError):
        return len(str(value).encode("utf-8", "surrogatepass"))


def _short(name: Any, keep: int = 40) -> str:
    text = str(name)
    return repr(text if len(text) <= keep else text[:keep] + ELLIPSIS)
