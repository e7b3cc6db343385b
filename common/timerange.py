"""Guild's run-filter time-range grammar (`-S/--started RANGE`).

`parse(spec, ref)` turns a spec such as `after 2 weeks ago` or `between 1-1 and 1-31` into a
`(start, end)` pair of naive local datetimes for the filter `start <= started < end`, where
None is unbounded. The reference time is always passed in, so the module is pure.

Behaviour follows Guild AI's doctests (GUILD-REFERENCE.md §5.2):
- Unit ranges (`this week`, `today`, `3 days ago`) cover one whole unit. Weeks start on
  Monday. A month range ends on the *last day* of the month at 00:00, not on the 1st of the
  next month; Guild does this and users' filters depend on it, so we keep it.
- `before X` ends where X starts; `after X` starts where a unit range X ends, or at an
  explicit point X. `last N minutes|hours|days` goes back exactly N units from ref; weeks,
  months and years are refused there because their length is ambiguous.
- `between A and B`, in either order, spans from the earlier start to the later end; there an
  explicit date or time is a single instant. Standing alone, a point covers the smallest unit
  it names: `10:00` one minute, `10:00:05` one second, `2018-10-31` one day.
- Two-digit years use the POSIX pivot: 69..99 are 19xx, 00..68 are 20xx (the docs pin
  `19-4-29` to 2019 and `89-4-1` to 1989 whatever the reference year).
"""

import calendar
import datetime
import re
import typing

from guild_common.errors import InvalidArgument

Range = tuple[typing.Optional[datetime.datetime], typing.Optional[datetime.datetime]]


class Token(typing.NamedTuple):
    type: str  # NUMBER, LONGDATE, ..., MINUTE, ..., TODAY, ...
    value: typing.Any  # int, tuple of ints, or the word as written
    pos: int  # offset of the token's first character in the spec
    text: str  # the characters the token was read from


class _Error(Exception):
    """A failure inside this module; `parse()` turns it into InvalidArgument."""


def _ints(m: re.Match) -> tuple[int, ...]:
    return tuple(int(g) for g in m.groups())


# Tried in order at each position, like Guild's lexer: longer forms first, and a word may be
# followed directly by more text (`yearsss` is YEAR then an error at `ss`).
_TOKEN_RULES = [
    ("LONGDATE", r"(\d{4})-(\d{1,2})-(\d{1,2})", _ints),
    ("MEDIUMDATE", r"(\d{2})-(\d{1,2})-(\d{1,2})", _ints),
    ("SHORTDATE", r"(\d{1,2})-(\d{1,2})", _ints),
    ("LONGTIME", r"(\d{1,2}):(\d{2}):(\d{2})", _ints),
    ("SHORTTIME", r"(\d{1,2}):(\d{2})", _ints),
    ("NUMBER", r"\d+", lambda m: int(m.group())),
] + [
    (name, pattern, lambda m: m.group())
    for name, pattern in [
        ("MINUTE", "minutes|minute|min"),
        ("HOUR", "hours|hour|hr"),
        ("DAY", "days|day"),
        ("WEEK", "weeks|week"),
        ("MONTH", "months|month"),
        ("YEAR", "years|year"),
        ("TODAY", "today"),
        ("YESTERDAY", "yesterday"),
        ("THIS", "this"),
        ("LAST", "last"),
        ("AGO", "ago"),
        ("BEFORE", "before"),
        ("AFTER", "after"),
        ("BETWEEN", "between"),
        ("AND", "and"),
    ]
]
_TOKEN_RULES = [(t, re.compile(p, re.IGNORECASE), v) for t, p, v in _TOKEN_RULES]
_SPACE = re.compile(r"[ \t\r\n]+")
_UNTIL_SPACE = re.compile(r"[^ \t\r\n]+")

UNITS = ("MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "YEAR")
_LAST_UNITS = ("MINUTE", "HOUR", "DAY")  # `last N` takes only units of fixed length
_DATES = ("LONGDATE", "MEDIUMDATE", "SHORTDATE")
_TIMES = ("LONGTIME", "SHORTTIME")
_OPERAND_STARTS = ("THIS", "TODAY", "YESTERDAY", "NUMBER") + _DATES + _TIMES


def lex(spec: str) -> list[Token]:
    """Split `spec` into tokens; an unknown word is an error naming it and its position."""
    try:
        return _lex(spec)
    except _Error as e:
        raise InvalidArgument(f"invalid time range {spec!r}: {e}") from None


def _lex(spec: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(spec):
        space = _SPACE.match(spec, pos)
        if space:
            pos = space.end()
            continue
        for type_, regex, value in _TOKEN_RULES:
            m = regex.match(spec, pos)
            if m:
                tokens.append(Token(type_, value(m), pos, m.group()))
                pos = m.end()
                break
        else:
            bad = _UNTIL_SPACE.match(spec, pos).group()  # type: ignore[union-attr]  # not a space here
            raise _Error(f"unexpected {bad!r} at position {pos}")
    return tokens


def _unit_range(unit: str, ago: int, ref: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
    """The whole `unit` that lies `ago` units before the one holding `ref` (0 = this one)."""
    if unit in ("MINUTE", "HOUR"):
        size = datetime.timedelta(minutes=1) if unit == "MINUTE" else datetime.timedelta(hours=1)
        top = ref.replace(second=0, microsecond=0)
        if unit == "HOUR":
            top = top.replace(minute=0)
        start = top - ago * size
        return start, start + size
    midnight = datetime.datetime.combine(ref.date(), datetime.time())
    if unit == "DAY":
        start = midnight - datetime.timedelta(days=ago)
        return start, start + datetime.timedelta(days=1)
    if unit == "WEEK":
        start = midnight - datetime.timedelta(days=midnight.weekday() + 7 * ago)
        return start, start + datetime.timedelta(days=7)
    if unit == "MONTH":
        year, month0 = divmod(ref.year * 12 + ref.month - 1 - ago, 12)
        start = datetime.datetime(year, month0 + 1, 1)
        # Guild's quirk: the range ends on the month's last day at 00:00 (see module doc).
        days = calendar.monthrange(year, month0 + 1)[1]
        return start, start + datetime.timedelta(days=days - 1)
    assert unit == "YEAR", unit
    return datetime.datetime(ref.year - ago, 1, 1), datetime.datetime(ref.year - ago + 1, 1, 1)


def _last(unit: str, n: int, ref: datetime.datetime) -> Range:
    size = {"MINUTE": "minutes", "HOUR": "hours", "DAY": "days"}[unit]
    return ref - datetime.timedelta(**{size: n}), None


# The parser's grammar:
#
#   spec    := BEFORE operand | AFTER operand | BETWEEN operand AND operand
#            | LAST [NUMBER] (MINUTE | HOUR | DAY) | operand
#   operand := THIS unit | TODAY | YESTERDAY | NUMBER unit AGO | point
#   point   := date [time] | time
#
# Operands come back as (start, end, is_point): a point has start == end and is widened to
# its smallest unit only when it stands alone.


class _Parser:
    def __init__(self, spec: str, tokens: list[Token], ref: datetime.datetime) -> None:
        self.spec, self.tokens, self.ref, self.i = spec, tokens, ref, 0

    def peek(self) -> typing.Optional[Token]:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, *types: str) -> Token:
        tok = self.peek()
        if tok is None:
            raise _Error(f"unexpected end of input at pos {len(self.spec)}")
        if tok.type not in types:
            raise _Error(f"unexpected {tok.text!r} at pos {tok.pos}")
        self.i += 1
        return tok

    def spec_range(self) -> Range:
        first = self.take("BEFORE", "AFTER", "BETWEEN", "LAST", *_OPERAND_STARTS)
        result: Range
        if first.type == "BEFORE":
            start, _end, _point = self.operand(self.take(*_OPERAND_STARTS))
            result = (None, start)
        elif first.type == "AFTER":
            _start, end, _point = self.operand(self.take(*_OPERAND_STARTS))
            result = (end, None)
        elif first.type == "BETWEEN":
            a = self.operand(self.take(*_OPERAND_STARTS))
            self.take("AND")
            b = self.operand(self.take(*_OPERAND_STARTS))
            result = (min(a[0], b[0]), max(a[1], b[1]))
        elif first.type == "LAST":
            n = self.take("NUMBER", *UNITS)
            unit = self.take(*_LAST_UNITS) if n.type == "NUMBER" else n
            if unit.type not in _LAST_UNITS:
                raise _Error(f"unexpected {unit.text!r} at pos {unit.pos}")
            result = _last(unit.type, n.value if n.type == "NUMBER" else 1, self.ref)
        else:
            start, end, point = self.operand(first)
            result = self.widen(start) if point else (start, end)
        if self.peek() is not None:
            self.take()  # always fails: nothing may follow a complete spec
        return result

    def operand(self, first: Token) -> tuple[datetime.datetime, datetime.datetime, bool]:
        if first.type == "THIS":
            return _unit_range(self.take(*UNITS).type, 0, self.ref) + (False,)
        if first.type in ("TODAY", "YESTERDAY"):
            return _unit_range("DAY", int(first.type == "YESTERDAY"), self.ref) + (False,)
        if first.type == "NUMBER":
            unit = self.take(*UNITS)
            self.take("AGO")
            return _unit_range(unit.type, first.value, self.ref) + (False,)
        point = self.point(first)
        return point, point, True

    def point(self, first: Token) -> datetime.datetime:
        date = self.ref.date()
        if first.type in _DATES:
            date = _checked(first, lambda: datetime.date(*_full_date(first, self.ref)))
            nxt = self.peek()
            if nxt is None or nxt.type not in _TIMES:
                return datetime.datetime.combine(date, datetime.time())
            first = self.take(*_TIMES)
        time = _checked(first, lambda: datetime.time(*first.value))
        return datetime.datetime.combine(date, time)

    def widen(self, point: datetime.datetime) -> Range:
        """A point standing alone covers the smallest unit its last token names."""
        last = self.tokens[self.i - 1].type
        size = {"LONGTIME": {"seconds": 1}, "SHORTTIME": {"minutes": 1}}.get(last, {"days": 1})
        return point, point + datetime.timedelta(**size)


def _checked(tok: Token, make: typing.Callable[[], typing.Any]) -> typing.Any:
    """`make()`, with datetime's own complaint (`day is out of range for month`) located."""
    try:
        return make()
    except ValueError as e:
        raise _Error(f"{e} ({tok.text!r} at pos {tok.pos})") from None


def _full_date(tok: Token, ref: datetime.datetime) -> tuple[int, int, int]:
    if tok.type == "SHORTDATE":
        return (ref.year,) + tok.value
    if tok.type == "MEDIUMDATE":
        yy, month, day = tok.value
        return (1900 + yy if yy >= 69 else 2000 + yy), month, day
    return tok.value


def parse(spec: str, ref: datetime.datetime) -> Range:
    """The `(start, end)` range `spec` names relative to `ref`; None ends are unbounded.

    Raises InvalidArgument with a one-line message saying where the spec went wrong.
    """
    try:
        return _Parser(spec, _lex(spec), ref).spec_range()
    except _Error as e:
        raise InvalidArgument(f"invalid time range {spec!r}: {e}") from None
    except (OverflowError, ValueError):  # `5000 years ago`: before datetime.MINYEAR
        raise InvalidArgument(f"invalid time range {spec!r}: time is out of range") from None


def to_us(dt: typing.Optional[datetime.datetime]) -> typing.Optional[int]:
    """Microseconds since the epoch for a naive local datetime; None stays None (unbounded)."""
    if dt is None:
        return None
    # timestamp() of a whole second is an exact float, so no rounding creeps in.
    return int(dt.replace(microsecond=0).timestamp()) * 1_000_000 + dt.microsecond
