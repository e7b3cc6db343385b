"""Output scalars: `KEY: NUMBER` values captured from a run's output (Guild's `output-scalars`).

Pure parsing only; guildd writes what this yields to TF event files (guildd.tfevents).

Behaviour follows Guild AI 0.9, which is a superset of the 0.7 docs:
- The default capture is `KEY: VALUE` with an optional `(step N)` / `(…)` suffix, so the
  lines `runs info` prints (`loss: 0.5 (step 3)`) parse back. `VALUE` is any float
  spelling incl. a sign, exponent, `nan` and `inf`; the 0.7 regex
  `^([^ \\t]+):\\s+([0-9\\.e\\-]+)$` accepts a subset of these lines with the same result.
- Key `step` is never recorded as a scalar: it sets the step for the values on its own line
  and all later lines (default 0).
- Several values for one key on one line: the last wins. A line's values are emitted
  sorted by key.
- Matched text that float() rejects is skipped.
- The default capture skips keys that are the run's flag names (`x: 0.1` echoed by a
  script is its flag, not a result); a configured capture keeps them, as Guild 0.9 does.
Unlike Guild, which logs and skips bad patterns, a bad config is an error up front: a typo
in guild.yml should fail `guild run`, not silently capture nothing.
"""

import dataclasses
import math
import re
import typing

from guild_common.errors import InvalidArgument

# Regex text each alias stands for. `\value` admits what float() reads from a log line.
ALIASES = {
    "key": r"[^ \t]+",
    "value": r"(?:[-+]?(?:[0-9]*\.?[0-9]*(?:[eE][-+]?[0-9]+)?|[iI][nN][fF])|[nN][aA][nN])",
    "step": r"[0-9]+",
}

# Matches `\\` too, so an escaped backslash before `key` stays a literal backslash.
_ALIAS_RE = re.compile(r"\\(\\|key|value|step)")

# The default patterns, in Guild's order: the step suffix first, then the key/value pair, so
# a `step: N` line still wins over a suffix (it cannot have one).
_DEFAULT_STEP_SUFFIX = r"\key: +\value\s+\((?:step\s+)?(?P<step>\step)\)$"
_DEFAULT_KEY_VALUE = r"^(\key):\s+(\value)(?:\s+\(.*\))?$"

STEP = "step"


class Scalar(typing.NamedTuple):
    # A named tuple, not a frozen dataclass: a busy run logs hundreds of thousands of these.
    key: str
    value: float
    step: int


@dataclasses.dataclass(frozen=True)
class Pattern:
    """One compiled pattern. `key` names the value of a one-group map pattern."""

    regex: re.Pattern
    key: str | None = None


@dataclasses.dataclass(frozen=True)
class ScalarConfig:
    patterns: tuple[Pattern, ...]
    # The default config takes a fast path; 200k lines of output must not cost seconds.
    is_default: bool = False


def replace_aliases(pattern: str) -> str:
    return _ALIAS_RE.sub(lambda m: "\\\\" if m.group(1) == "\\" else ALIASES[m.group(1)], pattern)


def _compile(pattern: object, key: str | None) -> Pattern:
    if not isinstance(pattern, str):
        raise InvalidArgument(f"invalid output scalar config: bad pattern {pattern!r}")
    try:
        regex = re.compile(replace_aliases(pattern))
    except re.error as e:
        raise InvalidArgument(f"invalid output scalar config: {pattern!r}: {e}") from None
    # Checked here rather than per match so a config that can never yield a value fails early.
    expected = 1 if key is not None else 2
    if not regex.groupindex and regex.groups != expected:
        raise InvalidArgument(
            f"invalid output scalar config: {pattern!r} needs {expected} group(s) "
            f"or named groups, it has {regex.groups}"
        )
    return Pattern(regex, key)


def _item_patterns(item: object) -> list[Pattern]:
    if isinstance(item, str):
        return [_compile(item, None)]
    if isinstance(item, dict):
        if not all(isinstance(key, str) for key in item):
            raise InvalidArgument(f"invalid output scalar config: {item!r}")
        # Sorted by key as Guild does, which fixes which value wins when keys collide.
        return [_compile(item[key], key) for key in sorted(item)]
    raise InvalidArgument(f"invalid output scalar config: {item!r}")


def compile_config(config: typing.Any = None) -> ScalarConfig:
    """A ScalarConfig for a guild.yml `output-scalars` value (None/True = the default)."""
    if config is None or config is True:
        return DEFAULT_CONFIG
    if config is False or config == "no":
        return ScalarConfig(())
    if isinstance(config, (str, dict)):
        if config == {}:
            raise InvalidArgument("invalid output scalar config: {}")
        config = [config]
    if not isinstance(config, list):
        raise InvalidArgument(f"invalid output scalar config: {config!r}")
    return ScalarConfig(tuple(p for item in config for p in _item_patterns(item)))


DEFAULT_CONFIG = ScalarConfig(
    (Pattern(re.compile(replace_aliases(_DEFAULT_STEP_SUFFIX))),
     Pattern(re.compile(replace_aliases(_DEFAULT_KEY_VALUE)))),
    is_default=True,
)
_STEP_SUFFIX_RE, _KEY_VALUE_RE = (p.regex for p in DEFAULT_CONFIG.patterns)

# The default capture over a whole block of lines at once: a key/value line, with an optional
# `(step N)` / `(...)` suffix. One scan of a block in C instead of a call per line; lines it
# can't decide alone (a suffix that isn't a plain step) go through feed().
_BLOCK_RE = re.compile(
    r"^([^ \t\n]+):[ \t]+(" + ALIASES["value"] + r")(?:[ \t]+\((?:(?:step[ \t]+)?([0-9]+)\)|[^\n]*\)))?[ \t\r]*$",
    re.M,
)


def _put_float(vals: dict[str, float], key: str | None, s: str | None) -> None:
    # None: an optional group that did not take part in the match.
    if key is None or s is None:
        return
    try:
        vals[key] = float(s)
    except ValueError:
        pass


def _apply_match(m: re.Match[str], key: str | None, vals: dict[str, float]) -> None:
    named = m.groupdict()
    if named:
        if "_key" in named and "_val" in named:
            _put_float(vals, named["_key"], named["_val"])
        else:
            for name, s in named.items():
                _put_float(vals, name, s)
    elif key is not None:
        _put_float(vals, key, m.group(1))
    else:
        _put_float(vals, m.group(1), m.group(2))


def match_line(line: str, patterns: typing.Iterable[Pattern]) -> dict[str, float]:
    """{key: value} for one line (trailing whitespace ignored); `step` included if present."""
    line = line.rstrip()
    vals: dict[str, float] = {}
    for p in patterns:
        for m in p.regex.finditer(line):
            _apply_match(m, p.key, vals)
    return vals


class ScalarParser:
    """Turns output lines into Scalars, carrying the current step from line to line."""

    def __init__(self, config: ScalarConfig, ignore: typing.AbstractSet[str] = frozenset()) -> None:
        self.config = config
        self.ignore = ignore  # keys never recorded (the step still is read from `step`)
        self.step = 0

    @classmethod
    def for_config(cls, config: typing.Any = None, flags: typing.Iterable[str] = ()) -> "ScalarParser":
        """A parser for a guild.yml `output-scalars` value, for a run with these flag names."""
        compiled = compile_config(config)
        return cls(compiled, frozenset(flags) if compiled.is_default else frozenset())

    def feed(self, line: str) -> list[Scalar]:
        if self.config.is_default:
            return self._feed_default(line)
        vals = match_line(line, self.config.patterns)
        self._set_step(vals.pop(STEP, None))
        return [Scalar(key, vals[key], self.step) for key in sorted(vals) if key not in self.ignore]

    def feed_text(self, text: str) -> list[Scalar]:
        """Scalars of every line in `text` (whole lines), as feed() would give line by line."""
        if not self.config.is_default:
            return [scalar for line in text.split("\n") for scalar in self.feed(line)]
        out = []
        for m in _BLOCK_RE.finditer(text):
            key, value, suffix_step = m.groups()
            if suffix_step is None and m.group(0).rstrip()[-1] == ")":
                out.extend(self.feed(m.group(0)))  # an unusual suffix: the line-by-line rules
                continue
            try:
                val = float(value)
            except ValueError:
                continue
            if key == STEP:
                self._set_step(val)
                continue
            if suffix_step is not None:
                self.step = int(suffix_step)
            if key not in self.ignore:
                out.append(Scalar(key, val, self.step))
        return out

    def _set_step(self, val: float | None) -> None:
        # nan/inf steps are dropped: TF events store an int step.
        if val is not None and math.isfinite(val):
            self.step = int(val)

    def _feed_default(self, line: str) -> list[Scalar]:
        # Same result as match_line() over DEFAULT_CONFIG: each default pattern needs a colon;
        # the step suffix pattern also needs a line ending in ')', and each can match once.
        if ":" not in line:
            return []
        line = line.rstrip()
        key = None
        m = _KEY_VALUE_RE.match(line)
        if m is not None:
            key, s = m.groups()
            try:
                val = float(s)
            except ValueError:
                key = None
        if line[-1] == ")":
            m = _STEP_SUFFIX_RE.search(line)
            if m is not None and key != STEP:
                self.step = int(m.group(STEP))
        if key is None:
            return []
        if key == STEP:
            self._set_step(val)
            return []
        if key in self.ignore:
            return []
        return [Scalar(key, val, self.step)]


def parse_output(text: str, config: typing.Any = None) -> list[Scalar]:
    """All scalars in `text`, as a fresh parser starting at step 0 sees them."""
    parser = ScalarParser.for_config(config)
    return [scalar for line in text.splitlines() for scalar in parser.feed(line)]
