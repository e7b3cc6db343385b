"""Run filter expressions (`-F/--filter EXPR`, Guild 0.9), parsed and matched against runs;
the grammar is described above `parse_filter`. (Compare column specs: guild_common.query.)"""

import dataclasses
import operator
import re
from collections.abc import Iterator
from typing import Any

from .errors import InvalidArgument
from .flags import decode_flag_value

# A token: (type, value, raw, pos).
_Token = tuple[str, Any, str, int]


@dataclasses.dataclass(frozen=True)
class Ref:
    """A run value named in a filter: kind is "attr", "flag", "scalar", or None (search all)."""

    kind: str | None
    name: str


@dataclasses.dataclass(frozen=True)
class Literal:
    """A value written in a filter. `text` is the bare text (None when quoted or `undefined`)."""

    value: object
    text: str | None = None


@dataclasses.dataclass(frozen=True)
class ListLit:
    items: tuple


@dataclasses.dataclass(frozen=True)
class Condition:
    """`ref OP value`: op is = != < <= > >= in contains; `negate` for not in / not contains."""

    ref: Ref
    op: str
    value: Literal | ListLit
    negate: bool = False


@dataclasses.dataclass(frozen=True)
class Not:
    expr: object


@dataclasses.dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    left: object
    right: object


@dataclasses.dataclass(frozen=True)
class Filter:
    """A parsed filter; `root` is None for a blank expression, which matches every run."""

    text: str
    root: object

    def matches(self, row: object) -> bool:
        return self.root is None or bool(_eval(self.root, row))

    @property
    def refs(self) -> tuple[Ref, ...]:
        """The run values this filter reads, so callers can skip loading what it doesn't need."""
        return tuple(_refs(self.root)) if self.root is not None else ()


def parse_filter(text: str) -> Filter:
    """Parse a `-F/--filter` expression (Guild 0.9 syntax) into a Filter.

    Grammar, loosest first: `a or b`, `a and b`, `not a`, `( a )`, then a test or a bare value:
        NAME = VALUE   (also ==, is)     NAME != VALUE   (also <>, is not)
        NAME < <= > >= VALUE             NAME [not] in [V1, V2, ...]
        NAME [not] contains VALUE        NAME is [not] undefined
    Keywords (and or not in contains is true false undefined) are case-insensitive.

    Names resolve, first found: run attribute (row.attrs), flag (row.flags), scalar
    (row.scalars, last value); `attr:NAME`, `flag:NAME`, `scalar:NAME` look in one place. A scalar
    `tag` matches key `tag` or any `prefix#tag`; `prefix#tag` only that key. An unknown name is
    undefined (None): it equals only `undefined`, so `x != 1` and `x not in [...]` are true.
    Attributes are what the caller puts in row.attrs; Guild 0.9 has id, short_id, run, op (name
    only), operation, model, label, status, started/stopped ('YYYY-MM-DD HH:MM:SS'), time, tags.

    Values: numbers, `true`/`false`/`undefined`, quoted strings, lists `[a, 1]`, and bare words,
    which decode like flag values (`yes` -> True). A bare NAME alone is a value, not a run value
    (Guild: `-F cat` is true). For =, !=, in and contains against a string run value, a bare word
    or number compares as its text (`run = 67217e15`, `label = yes`); otherwise by value. Order
    tests compare values: between a string and a number, or with undefined, they are false.
    `contains` is a case-insensitive substring test on the value's text, or membership (same
    equality as `=`) when the run value is a list (tags).

    Differs from Guild 0.9, which rejects these: `==`, `[]`, words starting with a digit (`6f0`)
    or a symbol (`@x`).
    """
    tokens = list(_filter_tokens(text))
    if tokens[0][0] == "eof":
        return Filter(text, None)
    # The parser and the evaluator recurse per level and per `and`/`or`: bounded, or a long
    # filter would crash them.
    if _nesting(tokens) > MAX_FILTER_NESTING:
        raise InvalidArgument(f"filter expression nested too deeply (more than {MAX_FILTER_NESTING} levels of parentheses, brackets or 'not')")
    if sum(kind in ("and", "or") for kind, *_rest in tokens) > MAX_FILTER_TERMS:
        raise InvalidArgument(f"filter expression too long (more than {MAX_FILTER_TERMS} 'and'/'or')")
    parser = _FilterParser(text, tokens)
    root = parser.expr()
    parser.take("eof")
    return Filter(text, root)


MAX_FILTER_NESTING = 100
MAX_FILTER_TERMS = 200


def _nesting(tokens: list[_Token]) -> int:
    """The deepest nesting of parentheses, brackets and `not`s in a filter's tokens."""
    depth = deepest = nots = 0
    for kind, *_rest in tokens:
        if kind in ("(", "["):
            depth += 1
        elif kind in (")", "]"):
            depth -= 1
        nots = nots + 1 if kind == "not" else 0
        deepest = max(deepest, depth + nots)
    return deepest


_NUMBER_RE = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_FILTER_KEYWORDS = frozenset(
    ["and", "or", "not", "in", "contains", "is", "true", "false", "undefined"]
)
_FILTER_OPS = ("==", "!=", "<>", "<=", ">=", "=", "<", ">")
_FILTER_PUNCT = "()[],"
_WORD_STOP = "'\"()[],=<>!"
_NULL_WORDS = ("~", "null", "Null", "NULL")
_REF_PREFIXES = ("attr:", "flag:", "scalar:")

# Filter tokens: (type, value, raw, pos); type is "word", "number", "string", "op", a
# punctuation character, a lowercased keyword, or "eof".


def _filter_tokens(text: str) -> Iterator[_Token]:
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            yield ("eof", None, "", pos)
            return
        c = text[pos]
        op = next((o for o in _FILTER_OPS if text.startswith(o, pos)), None)
        if op:
            yield ("op", op, op, pos)
            pos += len(op)
        elif c in _FILTER_PUNCT:
            yield (c, c, c, pos)
            pos += 1
        elif c in "'\"":
            end = text.find(c, pos + 1)
            if end < 0:
                raise _filter_error(text, pos, f"unexpected character '{c}'")
            yield ("string", text[pos + 1 : end], text[pos : end + 1], pos)
            pos = end + 1
        elif c in _WORD_STOP:
            raise _filter_error(text, pos, f"unexpected character '{c}'")
        else:
            end = pos
            while end < n and not text[end].isspace() and text[end] not in _WORD_STOP:
                end += 1
            word = text[pos:end]
            yield _classify_word(word, pos)
            pos = end


def _classify_word(word: str, pos: int) -> _Token:
    lower = word.lower()
    if lower in _FILTER_KEYWORDS:
        return (lower, word, word, pos)
    if _NUMBER_RE.match(word):
        try:
            number = float(word) if re.search(r"[.eE]", word) else int(word)
        except ValueError:  # more digits than int() converts: a float then (inf), as `1e999` is
            number = float(word)
        return ("number", number, word, pos)
    return ("word", word, word, pos)


def _word_value(word: str) -> Any:
    """A bare word as a value: booleans and nulls decode as flag values do, the rest is text."""
    value = decode_flag_value(word)
    if isinstance(value, bool) or (value is None and word in _NULL_WORDS):
        return value
    return word


def _filter_error(text: str, pos: int, detail: str) -> InvalidArgument:
    line = text.count("\n", 0, pos) + 1
    where = f"on line {line}, position {pos}" if line > 1 else f"at position {pos}"
    return InvalidArgument(f"syntax error in filter {where}: {detail}")


class _FilterParser:
    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self, *types: str) -> _Token:
        tok = self.tokens[self.i]
        if tok[0] not in types:
            if tok[0] == "eof":
                raise InvalidArgument("syntax error in filter - unexpected end of expression")
            raise _filter_error(self.text, tok[3], f"unexpected token '{tok[2]}'")
        self.i += 1
        return tok

    def expr(self) -> object:
        left = self.and_expr()
        while self.peek()[0] == "or":
            self.take("or")
            left = BoolOp("or", left, self.and_expr())
        return left

    def and_expr(self) -> object:
        left = self.not_expr()
        while self.peek()[0] == "and":
            self.take("and")
            left = BoolOp("and", left, self.not_expr())
        return left

    def not_expr(self) -> object:
        if self.peek()[0] == "not":
            self.take("not")
            return Not(self.not_expr())
        if self.peek()[0] == "(":
            self.take("(")
            inner = self.expr()
            self.take(")")
            return inner
        if self.peek()[0] == "word" and self.peek(1)[0] in ("op", "is", "in", "not", "contains"):
            return self.test()
        return self.value()

    def test(self) -> Condition:
        ref = _ref(self.take("word")[1])
        tok = self.take("op", "is", "in", "not", "contains")
        if tok[0] == "op":
            op = "=" if tok[1] == "==" else "!=" if tok[1] == "<>" else tok[1]
            return Condition(ref, op, self.value())
        if tok[0] == "is":
            negate = self.peek()[0] == "not"
            if negate:
                self.take("not")
            return Condition(ref, "!=" if negate else "=", self.value())
        negate = tok[0] == "not"
        if negate:
            tok = self.take("in", "contains")
        if tok[0] == "in":
            return Condition(ref, "in", self.list(), negate)
        return Condition(ref, "contains", self.scalar(), negate)

    def value(self) -> "Literal | ListLit":
        return self.list() if self.peek()[0] == "[" else self.scalar()

    def scalar(self) -> Literal:
        tok = self.take("word", "number", "string", "true", "false", "undefined")
        kind, value, raw = tok[:3]
        if kind == "string":
            return Literal(value)
        if kind == "undefined":
            return Literal(None)
        if kind in ("true", "false"):
            return Literal(kind == "true", raw)
        if kind == "number":
            return Literal(value, raw)
        return Literal(_word_value(value), raw)

    def list(self) -> ListLit:
        self.take("[")
        items = []
        if self.peek()[0] != "]":
            items.append(self.value())
            while self.peek()[0] == ",":
                self.take(",")
                items.append(self.value())
        self.take("]")
        return ListLit(tuple(items))


def _ref(word: str) -> Ref:
    for prefix in _REF_PREFIXES:
        if word.startswith(prefix) and len(word) > len(prefix):
            return Ref(prefix[:-1], word[len(prefix) :])
    return Ref(None, word)


def _refs(node: object) -> Iterator[Ref]:
    if isinstance(node, Condition):
        yield node.ref
    elif isinstance(node, Not):
        yield from _refs(node.expr)
    elif isinstance(node, BoolOp):
        yield from _refs(node.left)
        yield from _refs(node.right)


_ORDER_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _eval(node: Any, row: object) -> Any:
    if isinstance(node, BoolOp):
        left = bool(_eval(node.left, row))
        if node.op == "and":
            return left and bool(_eval(node.right, row))
        return left or bool(_eval(node.right, row))
    if isinstance(node, Not):
        return not _eval(node.expr, row)
    if isinstance(node, Condition):
        result = _test(node, _resolve(row, node.ref))
        return not result if node.negate else result
    if isinstance(node, ListLit):
        return bool(node.items)
    return node.value


def _test(test: Condition, actual: Any) -> bool:
    if test.op == "=":
        return _equal(actual, test.value)
    if test.op == "!=":
        return not _equal(actual, test.value)
    if test.op == "in":
        return any(_equal(actual, item) for item in test.value.items)  # type: ignore[union-attr]  # a ListLit
    if test.op == "contains":
        return _contains(actual, test.value)
    return _order(test.op, actual, test.value)


def _operand(actual: Any, lit: Literal) -> Any:
    """A bare word compares as text against a string run value, as a value otherwise."""
    return lit.text if isinstance(actual, str) and lit.text is not None else lit.value


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(expected, ListLit):
        return (
            isinstance(actual, (list, tuple))
            and len(actual) == len(expected.items)
            and all(_equal(a, e) for a, e in zip(actual, expected.items))
        )
    value = _operand(actual, expected)
    if actual is None or value is None:
        return actual is value
    return actual == value


def _order(op: str, actual: Any, expected: Any) -> bool:
    if isinstance(expected, ListLit):
        return False
    value = expected.value  # by value only: `label > 1` is false, as in Guild 0.9
    if actual is None or value is None:
        return False
    try:
        return _ORDER_OPS[op](actual, value)
    except TypeError:
        return False


def _contains(actual: Any, expected: Any) -> bool:
    if actual is None:
        return False
    if isinstance(actual, (list, tuple, set, frozenset)):
        return any(_equal(item, expected) for item in actual)
    needle = expected.text if expected.text is not None else str(expected.value)
    return needle.lower() in str(actual).lower()


def _resolve(row: object, ref: Ref) -> Any:
    for kind in (ref.kind,) if ref.kind else ("attr", "flag", "scalar"):
        value = _lookup(row, kind, ref.name)
        if value is not None:
            return value
    return None


def _lookup(row: object, kind: str, name: str) -> Any:
    if kind == "attr":
        return (getattr(row, "attrs", None) or {}).get(name)
    if kind == "flag":
        return (getattr(row, "flags", None) or {}).get(name)
    scalars = getattr(row, "scalars", None) or {}
    prefix, sep, tag = name.partition("#")
    if sep and prefix:
        return scalars.get(name)
    tag = tag if sep else name
    if tag in scalars:
        return scalars[tag]
    return next((v for k, v in scalars.items() if k.partition("#")[2] == tag), None)
