"""Memory sizes as people write them (`80G`, `512M`, `1.5T`, `20GiB`) and as we print them.

Units are binary, as nvidia-smi and CUDA count GPU memory: 1G = 1 GiB = 2**30 bytes. A bare
number is bytes.
"""

import math
import re

from guild_common import errors

UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(value: object) -> int:
    """Bytes in `value`: an int (bytes) or a string such as `80G`, `512MiB`, `1.5T`, `1024`."""
    if isinstance(value, bool):
        raise errors.InvalidArgument(f"invalid size {value!r}: expected a number with an optional unit (K, M, G, T)")
    if isinstance(value, int):
        if value < 0:
            raise errors.InvalidArgument(f"invalid size {value}: must not be negative")
        return value
    if isinstance(value, float):
        value = repr(value)
    m = _SIZE.match(str(value))
    if not m:
        raise errors.InvalidArgument(f"invalid size {value!r}: expected a number with an optional unit (K, M, G, T), e.g. 80G")
    size = float(m.group(1)) * UNITS[m.group(2).upper()]
    if not math.isfinite(size):  # a number of hundreds of digits is inf as a float
        raise errors.InvalidArgument(f"invalid size {str(value)[:40]!r}: too large")
    return int(size)


def format_size(n: float) -> str:
    """`80G`, `10.5G`, `512M`, `0`: the largest unit that keeps the number at least 1, one
    decimal where it isn't whole."""
    for unit in ("T", "G", "M", "K"):
        if n >= UNITS[unit]:
            value = n / UNITS[unit]
            text = f"{value:.1f}"
            return (text[:-2] if text.endswith(".0") else text) + unit
    return str(n)
