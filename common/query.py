"""Compare column specs, parsed (run filter expressions: guild_common.runfilter).

Column specs (`guildctl compare -cc`, `--min/--max`, `select --min/--max`, `--minimize/--maximize`,
guild-file `compare:`) follow Guild's query parser (seeds L27407, L8588):

    loss | scalar:loss | 'foo bar' | losses/.+ | train#loss   a scalar, by tag (prefix#tag allowed)
    min loss | first|last|min|max|avg|total|count NAME          a scalar qualifier (default last)
    loss step | min loss step                                   the step of that value
    =lr | flag:lr                                               a flag
    .label | attr:label                                         a run attribute (any name)
    ... as NAME | ... as 'Quoted Name'                          rename the column

Keywords are lowercase only (`MIN loss` is two names, an error). After `as` any word but `as`
names the column (`min loss as min`). Error positions count from an implied `select ` prefix,
as Guild 0.9 reports them (`minn loss` -> pos 12); users see these numbers.
"""

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

from .errors import InvalidArgument

QUALIFIERS = ("first", "last", "min", "max", "avg", "total", "count")

# Guild parses a column list as the tail of `select ...`; its positions include that prefix.
_SELECT_OFFSET = len("select ")
_COL_PREFIXES = (
    ("scalar:", "scalar"),
    ("flag:", "flag"),
    ("attr:", "attr"),
    ("=", "flag"),
    (".", "attr"),
)
_COL_KEYWORDS = frozenset(QUALIFIERS + ("step", "as"))
# `select --min` and `--minimize` say "too many" in their own words (Guild 0.9).
_TOO_MANY: dict[str | None, str] = {"col spec": "multiple cols not supported"}

# A token: (type, value, raw, pos).
_Token = tuple[str, Any, str, int]


@dataclasses.dataclass(frozen=True)
class Column:
    """One compare column: a scalar, flag or attribute, with how to show it."""

    kind: str  # "scalar" | "flag" | "attr"
    name: str  # scalar tag (maybe `prefix#tag` or a pattern), flag name, or attribute name
    qualifier: str | None = None  # scalars only: one of QUALIFIERS; "last" when not given
    step: bool = False  # scalars only: show the step of the qualified value, not the value
    alias: str | None = None  # from `as NAME`

    @property
    def header(self) -> str:
        """Guild 0.9: no qualifier (`min loss` -> `loss`); `train#loss` -> `train loss`."""
        if self.alias:
            return self.alias
        if self.kind != "scalar":
            return self.name
        prefix, tag = self.split_key()
        words = [w for w in (prefix, tag) if w]
        return " ".join(words + ["step"] if self.step else words)

    def split_key(self) -> tuple[str | None, str]:
        """(prefix or None, tag) of a scalar name: `train#loss` -> ("train", "loss")."""
        prefix, sep, tag = self.name.partition("#")
        return (prefix, tag) if sep else (None, self.name)

    @property
    def spec(self) -> str:
        """Text that parses back to this column."""
        name = _quote_if_needed(self.name)
        if self.kind == "flag":
            text = "=" + name
        elif self.kind == "attr":
            text = "." + name
        else:
            qual = "" if self.qualifier == "last" else self.qualifier + " "  # type: ignore[operator]  # a scalar's
            text = qual + name + (" step" if self.step else "")
        return text + (" as " + _quote_if_needed(self.alias) if self.alias else "")

    def __str__(self) -> str:
        return self.spec


def for_scalar(name: str, qualifier: str = "last", step: bool = False, alias: str | None = None) -> Column:
    """A scalar column, as `parse_column` would build it."""
    return Column("scalar", name, qualifier, step, alias)


def parse_columns(text: str, what: str | None = None) -> list[Column]:
    """Comma-separated specs -> [Column]. `what` prefixes errors: `invalid WHAT 'TEXT': ...`."""
    try:
        return _ColumnParser(text).columns()
    except _ParseError as e:
        raise _invalid(text, what, e.detail) from None


def parse_column(text: str, what: str | None = None) -> Column:
    """Exactly one column spec (`--min`, `--minimize`); `what` as for parse_columns."""
    cols = parse_columns(text, what)
    if len(cols) > 1:
        raise _invalid(text, what, _TOO_MANY.get(what, "too many columns"))
    return cols[0]


class _ParseError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _invalid(text: str, what: str | None, detail: str) -> InvalidArgument:
    return InvalidArgument(f"invalid {what} {text!r}: {detail}" if what else detail)


def _quote_if_needed(s: str) -> str:
    plain = (
        s
        and s not in _COL_KEYWORDS
        and not re.search(r"[\s,'\"]", s)
        and not any(s.startswith(p) for p, _kind in _COL_PREFIXES)
    )
    if plain:
        return s
    return f'"{s}"' if "'" in s else f"'{s}'"


# Column tokens: (type, value, raw, pos); type is "word", "string", "prefix", "comma", "eof",
# or the keyword itself.


def _column_tokens(text: str) -> Iterator[_Token]:
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            yield ("eof", None, "", pos)
            return
        c = text[pos]
        if c == ",":
            yield ("comma", c, c, pos)
            pos += 1
        elif c in "'\"":
            end = text.find(c, pos + 1)
            if end < 0:
                raise _ParseError(f"unterminated string, {_line_pos(text, pos)}")
            yield ("string", text[pos + 1 : end], text[pos : end + 1], pos)
            pos = end + 1
        else:
            prefix = next(((p, kind) for p, kind in _COL_PREFIXES if text.startswith(p, pos)), None)
            if prefix:
                yield ("prefix", prefix[1], prefix[0], pos)
                pos += len(prefix[0])
                continue
            end = pos
            while end < n and not text[end].isspace() and text[end] != ",":
                end += 1
            word = text[pos:end]
            yield (word if word in _COL_KEYWORDS else "word", word, word, pos)
            pos = end


def _line_pos(text: str, pos: int) -> str:
    return f"line {text.count(chr(10), 0, pos) + 1}, pos {pos + _SELECT_OFFSET}"


class _ColumnParser:
    def __init__(self, text: str) -> None:
        self.text = text
        if not text.strip():
            raise _ParseError("query string cannot be empty")
        self.tokens = list(_column_tokens(text))
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self, *types: str) -> _Token:
        tok = self.tokens[self.i]
        if tok[0] not in types:
            raise self.unexpected(tok)
        self.i += 1
        return tok

    def unexpected(self, tok: _Token) -> _ParseError:
        if tok[0] == "eof":
            return _ParseError(f"unexpected end of query string, {_line_pos(self.text, tok[3])}")
        return _ParseError(f"unexpected token '{tok[2]}', {_line_pos(self.text, tok[3])}")

    def columns(self) -> list[Column]:
        cols = [self.column()]
        while self.peek()[0] == "comma":
            self.take("comma")
            cols.append(self.column())
        self.take("eof")
        return cols

    def column(self) -> Column:
        tok = self.peek()
        if tok[0] in QUALIFIERS:
            self.take(tok[0])
            col = self.scalar(tok[0])
        elif tok[0] == "prefix":
            self.take("prefix")
            col = self.scalar("last") if tok[1] == "scalar" else Column(tok[1], self.name())
        else:
            col = self.scalar("last")
        if self.peek()[0] == "as":
            self.take("as")
            alias = self.take("word", "string", "step", *QUALIFIERS)[1]
            col = dataclasses.replace(col, alias=alias or None)
        return col

    def scalar(self, qualifier: str) -> Column:
        name = self.name()
        step = self.peek()[0] == "step"
        if step:
            self.take("step")
        return Column("scalar", name, qualifier, step)

    def name(self) -> str:
        return self.take("word", "string")[1]
