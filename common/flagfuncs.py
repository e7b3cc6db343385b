"""Flag functions: sequence functions that expand to lists and search-space functions that
make a flag a dimension of a random or Bayesian search.

A flag function is a string value `NAME[ARG:ARG...]` (Guild's slice-like syntax; the name may be
left out, `[MIN:MAX]`, for a uniform search range). Sequence functions (`range`, `linspace`,
`logspace`, `geomspace`) stand for a list of values, so a flag given one makes a grid batch;
search functions (`[MIN:MAX]`, `uniform`, `loguniform`) make a random or Bayesian search.

Guild only warns about a malformed function and keeps the text as a plain string, so a typo
silently runs one trial with a nonsense value. Here a malformed function is an error.
"""

import dataclasses
import math
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .errors import InvalidArgument
from .flags import decode_flag_value


@dataclasses.dataclass(frozen=True)
class SearchDim:
    """A flag's search dimension, from `[MIN:MAX]`, `uniform[...]` or `loguniform[...]`."""

    kind: str  # 'uniform' or 'loguniform'
    low: float | int
    high: float | int
    initial: object = None  # the value tried first (optional third argument); None: none
    integer: bool = False  # both bounds ints: integer samples


_FUNCTION_RE = re.compile(r"([A-Za-z0-9_.\-]*)\[(.*)\]", re.S)


def parse(value: Any) -> tuple[str, tuple[Any, ...]] | None:
    """`(name, args)` if `value` is a flag function, else None; the nameless form has name ''.

    Args are decoded as flag values (`[a:yes:[1,2]]` -> ('a', True, [1, 2])), `1e3` as a
    number. A nameless function needs a `:` between its brackets: `[1]` and `[1,2]` are list
    literals, and so is `[a:1, b:2]` with its top-level comma.
    """
    if not isinstance(value, str):
        return None
    match = _FUNCTION_RE.fullmatch(value.strip())
    if not match:
        return None
    name, body = match.groups()
    split = _split_args(body)
    if split is None:
        return None
    parts, top_level_comma = split
    if not name and (len(parts) < 2 or top_level_comma):
        return None
    return name, tuple(_decode_arg(part) for part in parts)


# `1e3` is a number in a function (Guild: `f[1e3]` -> 1000.0), though as a whole flag value it
# reads as a short run ID.
_EXPONENT_RE = re.compile(r"[0-9]+e[0-9]+")


def _decode_arg(text: str) -> Any:
    if _EXPONENT_RE.fullmatch(text.strip()):
        return float(text)
    return decode_flag_value(text)


def _split_args(body: str) -> tuple[list[str], bool] | None:
    """`(parts, comma)`: `body` split at its top-level colons, and whether it has a top-level
    comma (which makes a nameless `[a:1, b:2]` a list); None if its brackets don't balance."""
    parts: list[str] = []
    depth, start, comma = 0, 0, False
    for i, char in enumerate(body):
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth < 0:
                return None
        elif depth == 0 and char == ":":
            parts.append(body[start:i])
            start = i + 1
        elif depth == 0 and char == ",":
            comma = True
    if depth != 0:
        return None
    if parts or body.strip():
        parts.append(body[start:])
    return parts, comma


def is_function(value: Any) -> bool:
    """True if `value` is a flag function string (of any name, known or not)."""
    return parse(value) is not None


def _unknown(name: str, flag_name: str) -> InvalidArgument:
    return InvalidArgument("unknown function '%s' used for flag %s" % (name, flag_name))


def _invalid(value: str, flag_name: str, why: object) -> InvalidArgument:
    return InvalidArgument("invalid value for flag %s: %s: %s" % (flag_name, value.strip(), why))


class _BadArgs(Exception):
    """Why a function's args are wrong; the caller adds the flag and the value."""


def _check_arity(name: str, args: Sequence[Any], least: int, most: int) -> None:
    if len(args) < least:
        raise _BadArgs("%s requires at least %d arg%s" % (name, least, "s" if least > 1 else ""))
    if len(args) > most:
        raise _BadArgs("%s takes at most %d args, got %d" % (name, most, len(args)))


def _number(arg: Any) -> int | float:
    if isinstance(arg, bool) or not isinstance(arg, (int, float)):
        raise _BadArgs("invalid arg %r: expected a number" % (arg,))
    if isinstance(arg, int) and abs(arg) > sys.float_info.max:  # past what float arithmetic takes
        raise _BadArgs("invalid arg %s...: too large" % str(arg)[:20])
    if not math.isfinite(arg):
        raise _BadArgs("invalid arg %r: expected a finite number" % (arg,))
    return arg


# logspace without a COUNT, as Guild 0.9 gives it. linspace and geomspace need their COUNT:
# Guild's docs give two defaults for linspace (10 in prose, 5 in doctests), so a missing count
# is refused rather than guessed.
DEFAULT_COUNT = 5

# A typo such as range[0:1e9] would otherwise build a list of a billion trials.
MAX_SEQUENCE_LEN = 1_000_000


def expand(value: Any, flag_name: str) -> Any:
    """The list a sequence function stands for; any other value (search functions included)
    unchanged. Raises InvalidArgument for an unknown function or bad arguments."""
    parsed = parse(value)
    if parsed is None:
        return value
    name, args = parsed
    if name in _SEARCH_FUNCTIONS:
        return value
    sequence = _SEQUENCE_FUNCTIONS.get(name)
    if sequence is None:
        raise _unknown(name, flag_name)
    try:
        return sequence(args)
    except _BadArgs as e:
        raise _invalid(value, flag_name, e) from None


def _range(args: Sequence[Any]) -> list[int | float]:
    """`range[STOP]`: 0 up to STOP, exclusive; `range[START:STOP(:STEP)]`: STOP inclusive."""
    _check_arity("range", args, 1, 3)
    nums = [_number(arg) for arg in args]
    start: int | float
    step: int | float
    if len(nums) == 1:
        start, stop, step, inclusive = 0, nums[0], 1, False
    else:
        start, stop = nums[:2]
        step = nums[2] if len(nums) == 3 else 1
        inclusive = True
    if step == 0:
        raise _BadArgs("STEP must not be 0")
    # Rounded so that float steps land on STOP (1e-4 - 1e-5 is 9.000000000000002 steps).
    span = round((stop - start) / step, 9)
    if not math.isfinite(span):  # range[-1e308:1e308]: more values than any count
        raise _BadArgs("too many values")
    if span < 0:
        count = 0
    else:
        count = math.floor(span) + 1 if inclusive else math.ceil(span)
    _check_len("range", count)
    if all(isinstance(n, int) for n in nums):
        return [start + i * step for i in range(count)]
    return [_round(start + i * step) for i in range(count)]


def _linspace(args: Sequence[Any]) -> list[float]:
    """`linspace[START:STOP:COUNT]`: COUNT evenly spaced floats, both ends included. COUNT is
    required: Guild's docs give two defaults for it (10 in prose, 5 in examples)."""
    _check_arity("linspace", args, 2, 3)
    start, stop = _number(args[0]), _number(args[1])
    _need_count("linspace", args)
    return [_round(x) for x in _linear(start, stop, _count(args, 2))]


def _logspace(args: Sequence[Any]) -> list[float]:
    """`logspace[START:STOP(:COUNT(:BASE))]`: BASE (10) raised to linspace's values."""
    _check_arity("logspace", args, 2, 4)
    start, stop = _number(args[0]), _number(args[1])
    count = _count(args, 2)
    base = _number(args[3]) if len(args) > 3 else 10
    if base <= 0:
        raise _BadArgs("BASE (%r) must be greater than 0" % base)
    try:
        return [_round(float(base) ** x) for x in _linear(start, stop, count)]
    except OverflowError:
        raise _BadArgs("values too large") from None


def _geomspace(args: Sequence[Any]) -> list[float]:
    """`geomspace[START:STOP(:COUNT)]`: numpy.geomspace, COUNT floats in geometric progression
    from START to STOP, both included (not in Guild)."""
    _check_arity("geomspace", args, 2, 3)
    start, stop = _number(args[0]), _number(args[1])
    if start == 0 or stop == 0 or (start < 0) != (stop < 0):
        raise _BadArgs(
            "START (%r) and STOP (%r) must be non-zero with the same sign" % (start, stop)
        )
    _need_count("geomspace", args)
    count = _count(args, 2)
    sign = -1.0 if start < 0 else 1.0
    exponents = _linear(math.log10(abs(start)), math.log10(abs(stop)), count)
    values = [_round(sign * 10.0**e) for e in exponents]
    # The ends exactly as given, not as 10 ** log10(x) gives them back.
    if values:
        values[0] = float(start)
    if count > 1:
        values[-1] = float(stop)
    return values


def _need_count(name: str, args: Sequence[Any]) -> None:
    if len(args) < 3:
        raise _BadArgs(f"missing COUNT ({name}[START:STOP:COUNT])")


def _count(args: Sequence[Any], index: int) -> int:
    if len(args) <= index:
        return DEFAULT_COUNT
    count = args[index]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise _BadArgs("COUNT (%r) must be a non-negative integer" % (count,))
    _check_len("count", count)
    return count


def _check_len(name: str, length: int) -> None:
    if length > MAX_SEQUENCE_LEN:
        raise _BadArgs("%s gives %d values, more than %d" % (name, length, MAX_SEQUENCE_LEN))


def _linear(start: float, stop: float, count: int) -> list[float]:
    """`count` evenly spaced floats from `start` to `stop`, both included (unrounded)."""
    if count < 2:
        return [float(start)] * count
    step = (stop - start) / (count - 1)
    return [float(start + i * step) for i in range(count - 1)] + [float(stop)]


def _round(x: float) -> float:
    """`x` without float noise (0.30000000000000004 -> 0.3): 8 decimals, as Guild shows
    sequence values, but at least 6 significant digits so small values (1e-10) survive."""
    x = float(x)
    if x == 0:
        return x
    return round(x, max(8, 5 - math.floor(math.log10(abs(x)))))


_SEQUENCE_FUNCTIONS: dict[str, Callable[[Sequence[Any]], list[Any]]] = {
    "range": _range,
    "linspace": _linspace,
    "logspace": _logspace,
    "geomspace": _geomspace,
}


# '' is the nameless `[MIN:MAX]`, a uniform range. Guild's `normal` and `lognormal` were never
# supported by its optimizers; they are unknown functions here as there.
_SEARCH_FUNCTIONS = ("", "uniform", "loguniform")


def search_dim(value: Any, flag_name: str) -> SearchDim | None:
    """The SearchDim a search function stands for; None for any other value (sequence
    functions included). Raises InvalidArgument for an unknown function or bad arguments."""
    parsed = parse(value)
    if parsed is None:
        return None
    name, args = parsed
    if name in _SEQUENCE_FUNCTIONS:
        return None
    if name not in _SEARCH_FUNCTIONS:
        raise _unknown(name, flag_name)
    kind = name or "uniform"
    if len(args) not in (2, 3):
        raise InvalidArgument(
            "%s requires 2 or 3 args, got %r for flag %s" % (kind, args, flag_name)
        )
    try:
        return _search_dim(kind, args)
    except _BadArgs as e:
        raise _invalid(value, flag_name, e) from None


def _search_dim(kind: str, args: Sequence[Any]) -> SearchDim:
    low, high = _number(args[0]), _number(args[1])
    initial = _number(args[2]) if len(args) == 3 else None
    if low >= high:
        raise _BadArgs("MIN (%r) must be less than MAX (%r)" % (low, high))
    if kind == "loguniform" and low <= 0:
        raise _BadArgs("MIN (%r) must be greater than 0 for loguniform" % low)
    # Guild: two int bounds make an integer range, but loguniform is always real.
    integer = kind == "uniform" and isinstance(low, int) and isinstance(high, int)
    if initial is not None:
        if not low <= initial <= high:
            raise _BadArgs(
                "INITIAL (%r) must be between MIN (%r) and MAX (%r)" % (initial, low, high)
            )
        if integer and not isinstance(initial, int):
            raise _BadArgs("INITIAL (%r) must be an integer, as MIN and MAX are" % initial)
    return SearchDim(kind=kind, low=low, high=high, initial=initial, integer=integer)
