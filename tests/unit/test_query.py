"""Compare column specs and run filter expressions.

Rows cite the Guild doctest they come from as `L<line>` in seeds/guild-repo-docs.txt, or the
Guild 0.9 command that showed the behaviour (`0.9: compare -cc SPEC`, `0.9: runs -F EXPR`, run
against a scratch GUILD_HOME); rows marked `ours` pin down a decision where Guild is silent or
worse.
"""

from types import SimpleNamespace

import pytest

from guild_common.errors import InvalidArgument
from guild_common.query import Column, for_scalar, parse_column, parse_columns
from guild_common.runfilter import parse_filter

# Column specs


def S(name, qual="last", step=False, alias=None):
    return for_scalar(name, qual, step, alias)


def F(name, alias=None):
    return Column("flag", name, alias=alias)


def A(name, alias=None):
    return Column("attr", name, alias=alias)


COLUMN_CASES = [
    ("loss", [S("loss")]),  # L27431
    ("scalar:loss", [S("loss")]),  # L27440
    ("loss, train_acc, val_acc", [S("loss"), S("train_acc"), S("val_acc")]),  # L27449
    ("min loss", [S("loss", "min")]),  # L27461
    ("max loss", [S("loss", "max")]),  # L27464
    ("first loss", [S("loss", "first")]),  # L27467
    ("last loss", [S("loss", "last")]),  # L27470
    ("avg gpu", [S("gpu", "avg")]),  # L27473
    ("total hits", [S("hits", "total")]),  # L27476
    ("count loss", [S("loss", "count")]),  # L27479
    ("loss step", [S("loss", step=True)]),  # L27488
    (  # L27500: multi-line select
        "\n  min loss,\n  min loss step,\n  max acc,\n  max acc step,\n  last loss step\n",
        [S("loss", "min"), S("loss", "min", True), S("acc", "max"), S("acc", "max", True),
         S("loss", "last", True)],
    ),
    ("losses/.+", [S("losses/.+")]),  # L27518
    (".id", [A("id")]),  # L27531
    ("attr:id", [A("id")]),  # L27534
    (".id, .started, .stopped, .time", [A("id"), A("started"), A("stopped"), A("time")]),  # L27543
    ("=learning-rate, =batch-size", [F("learning-rate"), F("batch-size")]),  # L27561
    ("flag:learning-rate, flag:batch-size", [F("learning-rate"), F("batch-size")]),  # L27570
    ("last loss step as steps", [S("loss", "last", True, "steps")]),  # L27584
    ("=learning-rate as 'Learning Rate'", [F("learning-rate", "Learning Rate")]),  # L27593
    (  # L27596
        ".id, =batch-size, train/losses/total_loss as loss",
        [A("id"), F("batch-size"), S("train/losses/total_loss", alias="loss")],
    ),
    ("'loss'", [S("loss")]),  # L27613
    ("'foo bar baz'", [S("foo bar baz")]),  # L27616
    ("'losses/[^ ,]', acc", [S("losses/[^ ,]"), S("acc")]),  # L27625
    ("'flag:batch-size'", [S("flag:batch-size")]),  # L27634: quoted is always a scalar
    ("flags:foo", [S("flags:foo")]),  # L27663
    ("min loss as min", [S("loss", "min", alias="min")]),  # L27685
    ("min loss step as step", [S("loss", "min", True, "step")]),  # L27688
    ("=a as A", [F("a", "A")]),  # L8650: guild-file compare specs
    ("x step as x_step", [S("x", step=True, alias="x_step")]),  # L8650
    # 0.9: compare -cc SPEC (all accepted there)
    ("train#loss", [S("train#loss")]),
    ("min train#loss step", [S("train#loss", "min", True)]),
    ("scalar:loss step", [S("loss", step=True)]),
    ("'loss' step", [S("loss", step=True)]),
    ("'loss'step", [S("loss", step=True)]),
    ("scalar:'loss'", [S("loss")]),
    ("min 'loss'", [S("loss", "min")]),
    (".'label'", [A("label")]),
    ("= lr", [F("lr")]),
    (". label", [A("label")]),
    ("scalar: loss", [S("loss")]),
    ("=x=y", [F("x=y")]),
    (".a.b", [A("a.b")]),
    (".+#loss", [A("+#loss")]),
    ("min-loss, minloss, stepsize, asdf", [S("min-loss"), S("minloss"), S("stepsize"), S("asdf")]),
    ("min'loss'", [S("min'loss'")]),  # a quote inside a word is part of it
    ("loss as min", [S("loss", alias="min")]),
    ("loss as step", [S("loss", alias="step")]),
    ('loss as "Q"', [S("loss", alias="Q")]),
    ("loss as ''", [S("loss")]),  # empty alias: header stays `loss`
    ("=lr,=lr", [F("lr"), F("lr")]),  # dedup is compare's job
    ("loss  ,\n acc", [S("loss"), S("acc")]),
    ("='lr'", [F("lr")]),  # ours: 0.9 rejects a quoted flag name but accepts `.'label'`
]


@pytest.mark.parametrize("text,expected", COLUMN_CASES)
def test_parse_columns(text, expected):
    assert parse_columns(text) == expected


COLUMN_ERRORS = [
    ("", "query string cannot be empty"),  # L27643
    ("  \n", "query string cannot be empty"),  # ours
    ("minn loss", "unexpected token 'loss', line 1, pos 12"),  # L27675
    ("foo bar", "unexpected token 'bar', line 1, pos 11"),  # L32266
    # 0.9: compare -cc SPEC -> WARNING: error parsing SPEC: ...
    ("loss step,min loss step,step loss", "unexpected token 'step', line 1, pos 31"),
    ("step", "unexpected token 'step', line 1, pos 7"),
    ("as", "unexpected token 'as', line 1, pos 7"),
    ("scalar:min loss", "unexpected token 'min', line 1, pos 14"),
    ("min scalar:loss", "unexpected token 'scalar:', line 1, pos 11"),
    ("MIN loss", "unexpected token 'loss', line 1, pos 11"),
    ("loss AS L", "unexpected token 'AS', line 1, pos 12"),
    (",loss", "unexpected token ',', line 1, pos 7"),
    ("loss,,acc", "unexpected token ',', line 1, pos 12"),
    ("=lr step", "unexpected token 'step', line 1, pos 11"),
    (".label step", "unexpected token 'step', line 1, pos 14"),
    ("min =lr", "unexpected token '=', line 1, pos 11"),
    ("loss as 'a b' c", "unexpected token 'c', line 1, pos 21"),
    ("loss as as", "unexpected token 'as', line 1, pos 15"),
    ("loss as x y", "unexpected token 'y', line 1, pos 17"),
    ("flag:min", "unexpected token 'min', line 1, pos 12"),
    (".min", "unexpected token 'min', line 1, pos 8"),
    ("=step", "unexpected token 'step', line 1, pos 8"),
    ("loss step as s step", "unexpected token 'step', line 1, pos 22"),
    ("loss,\n minn acc", "unexpected token 'acc', line 2, pos 19"),
    ("min min", "unexpected token 'min', line 1, pos 11"),
    ("min first loss", "unexpected token 'first', line 1, pos 11"),
    ("loss as =x", "unexpected token '=', line 1, pos 15"),
    ("loss 'x'", "unexpected token ''x'', line 1, pos 12"),
    ("..label", "unexpected token '.', line 1, pos 8"),
    ("==lr", "unexpected token '=', line 1, pos 8"),
    ("scalar:scalar:loss", "unexpected token 'scalar:', line 1, pos 14"),
    ("attr:.label", "unexpected token '.', line 1, pos 12"),
    # ours: 0.9 says "query string cannot be empty" when the text ends too soon
    ("loss,", "unexpected end of query string, line 1, pos 12"),
    ("loss as", "unexpected end of query string, line 1, pos 14"),
    ("min", "unexpected end of query string, line 1, pos 10"),
    ("=", "unexpected end of query string, line 1, pos 8"),
    # ours: 0.9 crashes with a traceback
    ("'abc", "unterminated string, line 1, pos 7"),
    ("loss 'abc", "unterminated string, line 1, pos 12"),
]


@pytest.mark.parametrize("text,message", COLUMN_ERRORS)
def test_parse_columns_errors(text, message):
    with pytest.raises(InvalidArgument) as e:
        parse_columns(text)
    assert str(e.value) == message


PARSE_COLUMN_ERRORS = [
    # L32805 / 0.9: run train.py x=[1:2] -o gp --minimize SPEC
    ("the quick brown fox", "objective",
     "invalid objective 'the quick brown fox': unexpected token 'quick', line 1, pos 11"),
    # L32811
    ("loss, accuracy", "objective", "invalid objective 'loss, accuracy': too many columns"),
    ("minn loss", "objective",
     "invalid objective 'minn loss': unexpected token 'loss', line 1, pos 12"),
    # 0.9: select --min SPEC (L32266 says "invalid scalar"; 0.9 says "invalid col spec")
    ("foo bar", "col spec", "invalid col spec 'foo bar': unexpected token 'bar', line 1, pos 11"),
    ("loss, acc", "col spec", "invalid col spec 'loss, acc': multiple cols not supported"),
    ("foo bar", "scalar", "invalid scalar 'foo bar': unexpected token 'bar', line 1, pos 11"),
    ("loss as 'a b' c", None, "unexpected token 'c', line 1, pos 21"),
    ("", "objective", "invalid objective '': query string cannot be empty"),
]


@pytest.mark.parametrize("text,what,message", PARSE_COLUMN_ERRORS)
def test_parse_column_errors(text, what, message):
    with pytest.raises(InvalidArgument) as e:
        parse_column(text, what=what)
    assert str(e.value) == message


def test_parse_column_one():
    assert parse_column("max acc step", what="objective") == S("acc", "max", True)


HEADER_CASES = [
    # 0.9: compare -t -cc "min loss,max loss,loss,first loss,avg loss,total loss,count loss"
    ("min loss", "loss"),
    ("max loss", "loss"),
    ("count loss", "loss"),
    ("loss", "loss"),
    # 0.9: compare -t -cc "... step" / "train#loss" / "x#" / "#loss"
    ("loss step", "loss step"),
    ("min loss step", "loss step"),
    ("train#loss", "train loss"),
    ("min train#loss step", "train loss step"),
    ("x#", "x"),
    ("#loss", "loss"),
    ("los.+", "los.+"),
    ("'foo bar'", "foo bar"),
    ("max loss step as s", "s"),
    ("=lr as 'Learning Rate'", "Learning Rate"),
    ("=lr", "lr"),
    (".op", "op"),
    (".label as L", "L"),
    ("loss as ''", "loss"),
]


@pytest.mark.parametrize("text,header", HEADER_CASES)
def test_header(text, header):
    assert parse_column(text).header == header


@pytest.mark.parametrize(
    "text,key",
    [("train#loss", ("train", "loss")), ("loss", (None, "loss")), ("#loss", ("", "loss"))],
)
def test_split_key(text, key):
    assert parse_column(text).split_key() == key


# ours: spec text parses back to the same column (client and daemon can pass specs as text)
@pytest.mark.parametrize(
    "col,spec",
    [
        (S("loss"), "loss"),
        (S("loss", "min", True, "s"), "min loss step as s"),
        (S("foo bar"), "'foo bar'"),
        (S("min"), "'min'"),
        (S("flag:x"), "'flag:x'"),
        (S(".x"), "'.x'"),
        (S("it's"), '"it\'s"'),
        (F("lr", "Learning Rate"), "=lr as 'Learning Rate'"),
        (A("label"), ".label"),
        (S("loss", alias="step"), "loss as 'step'"),
    ],
)
def test_spec_round_trip(col, spec):
    assert col.spec == spec == str(col)
    assert parse_column(spec) == col


# Filters

# The run of filter-parser.md in Guild 0.9's own tests, plus lists, tags and prefixed scalars.
ROW = SimpleNamespace(
    attrs={
        "id": "abcd1234",
        "op": "train",
        "label": "hello world a=1",
        "status": "completed",
        "started": "2026-11-22 11:50:37",
        "l": [1, "two", 3.0],
        "tags": ["foo", "Bar"],
        "run": "67217e15",
    },
    flags={"a": 1, "b": 1.2, "c": "red", "d": True, "e": False, "id": "4321dcba",
           "s1": "1", "yes": "Y", "lst": [1, 2], "name": "alpha"},
    scalars={"x": 0.456, "y": 1.123, "b": 1.3, "loss": 0.5, "train#loss": 0.9, "val#acc": 0.7},
)

FILTER_CASES = [
    # Terms (filter-parser.md "Simple terms"; 0.9: runs -F true / -F false / -F cat)
    ("true", True), ("false", False), ("1", True), ("0", False), ("cat", True), ("'a'", True),
    ("undefined", False), ("[1]", True),
    ("not status", False),  # a bare name is a value, not a run value (filter-runs.md)
    # Numeric comparison (filter-parser.md)
    ("a = 1", True), ("a = 2", False), ("a < 1", False), ("a <= 1", True), ("a > 1", False),
    ("a >= 1", True), ("a != 1", False), ("a <> 2", True), ("b < 1.21", True),
    ("x = 0.456", True), ("x < 0.5", True), ("a = 1.0", True), ("a > -1", True), ("a = -1", False),
    ("a=1", True), ("b>=1.2", True), ("x < .5", True), ("x < 5e-1", True),
    ("a == 1", True),  # ours: 0.9 says `unexpected token '='`
    # Undefined (filter-parser.md)
    ("a is undefined", False), ("a is not undefined", True), ("not a is undefined", True),
    ("e2 = 1", False), ("e2 is undefined", True), ("e2 is not undefined", False),
    ("e2 != 1", True), ("e2 <> 1", True), ("e2 < 1", False), ("e2 > 1", False),
    ("e2 = undefined", True), ("not e2 = 1", True),  # 0.9: runs -F 'unknown != 1' lists all
    # Membership (filter-parser.md; 0.9: runs -F 'x in [1, 3]', 'op in [a, b]')
    ("c in ['red',green,blue]", True), ("c in [green,blue]", False),
    ("c not in [red, green, blue]", False), ("c not in [green, blue]", True),
    ("c in [RED]", False), ("a in [1.0]", True), ("op in [a, b]", False),
    ("e2 not in [1]", True), ("c in []", False),  # ours: 0.9 rejects []
    # Contains (filter-parser.md; 0.9: runs -F 'label contains FOO')
    ("c contains 'ed'", True), ("c contains ed", True), ("c contains red", True),
    ("c contains fred", False), ("c not contains ed", False), ("c not contains fred", True),
    ("label contains hello", True), ("label contains 'hello world'", True),
    ("label contains 'HELLO WORLD'", True), ("label contains 'a=1'", True),
    ("xxx contains abc", False), ("xxx not contains abc", True),
    ("l contains two", True), ("l contains TWO", False), ("l contains 1", True),
    ("l contains three", False), ("l contains 3", True), ("l contains 3.0", True),
    ("tags contains foo", True), ("tags contains FOO", False), ("tags contains fo", False),
    ("tags = foo", False), ("a contains 1", True), ("x contains 45", True),
    ("id contains 6f0", False), ("id contains abcd", True),  # ours: 0.9 can't lex `6f0`
    # Logic (filter-parser.md)
    ("a = 1 and b = 1.2", True), ("a = 1 and b = 1.3", False), ("true or false", True),
    ("a = 1 or b = 1.3", True), ("a = 1.1 or b = 1.3", False), ("not true", False),
    ("not 1", False), ("not 0", True), ("not a = 1", False), ("true or false and true", True),
    ("true or false and false", True), ("(true or false) and false", False),
    ("a = 1 or a = 2 and c in [blue,green]", True),
    ("(a = 1 or a = 2) and c in [blue,green]", False),
    ("not ((a = 1 or a = 2) and c in [blue,green])", True),
    ("a = 1 and b < 1.2", False), ("a = 1 and b <= 1.2", True),
    ("not true and false", False), ("not not true", True), ("TRUE AnD not FALSE", True),
    # Resolution order attrs, flags, scalars; explicit prefixes (filter-parser.md)
    ("id = abcd1234", True), ("id = '4321dcba'", False), ("b = 1.2", True), ("b = 1.3", False),
    ("flag:id = '4321dcba'", True), ("flag:id = abcd1234", False),
    ("scalar:b = 1.3", True), ("scalar:b = 1.2", False), ("attr:op = train", True),
    ("scalar:zz is undefined", True), ("attr:label contains world", True), ("yes = Y", True),
    # Scalars by tag and prefix (filter-runs.md "target/.guild#loss")
    ("loss = 0.5", True), ("train#loss = 0.9", True), ("train#loss = 0.5", False),
    ("acc = 0.7", True),
    ("val#loss is undefined", True),
    ("#loss = 0.5", True),  # ours: 0.9 can't lex a word starting with `#`
    # Strings (0.9: runs -F 'name = beta', 'name > alpha', 'status = completed')
    ("op = train", True), ("op = TRAIN", False), ("op is train", True), ("op is not train", False),
    ("status = completed", True), ("status in [completed, terminated]", True),
    ("name > alpha", False), ("name >= alpha", True), ("c < 1", False), ("c > 1", False),
    ("started > '2026-11-22 11:50:36'", True), ("started > \"2026-11-22\"", True),
    ("started < '2026-11-22'", False),
    # Booleans (filter-parser.md `d = true`; yes/no decode like flag values: ours, 0.9 keeps text)
    ("d = true", True), ("d is true", True), ("e = false", True), ("d = 1", True), ("e = 0", True),
    ("d = yes", True), ("e = no", True), ("d = no", False),
    # A bare word against a string run value compares as text (ours: 0.9 says False for these)
    ("s1 = 1", True), ("s1 = '1'", True), ("a = '1'", False), ("label = yes", False),
    ("run = 67217e15", True),
    ("id = 4321dcba", False), ("flag:id = 4321dcba", True),  # ours: 0.9 can't lex `4321dcba`
    # Order tests compare values: string vs number is false (0.9: runs -F 'started > 2026')
    ("started > 2026", False), ("name < 1", False),
    # Lists as values (filter-parser.md `lst`)
    ("lst = [1, 2]", True), ("lst = [1]", False), ("lst = [1, 3]", False), ("a = [1]", False),
    # Multi-line
    ("a = 1 and\n b = 1.2", True),
]


@pytest.mark.parametrize("text,expected", FILTER_CASES)
def test_filter_matches(text, expected):
    assert parse_filter(text).matches(ROW) is expected


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_blank_filter_matches_all(text):
    # filter-runs.md: an empty filter is no filter (0.9: runs -F '' lists every run)
    assert parse_filter(text).matches(SimpleNamespace(attrs={}, flags={}, scalars={}))


def test_row_may_lack_parts():
    # ours: a caller that loads no scalars passes a row without them
    assert parse_filter("loss is undefined and op = x").matches(SimpleNamespace(attrs={"op": "x"}))


FILTER_ERRORS = [
    # 0.9: runs -F EXPR -> "guild: syntax error in filter ..."
    ("foo = (", "syntax error in filter at position 6: unexpected token '('"),
    ("'", "syntax error in filter at position 0: unexpected character '''"),
    ('"abc', "syntax error in filter at position 0: unexpected character '\"'"),
    ("and x = 1", "syntax error in filter at position 0: unexpected token 'and'"),
    ("x = 1 y = 2", "syntax error in filter at position 6: unexpected token 'y'"),
    ("x in 1", "syntax error in filter at position 5: unexpected token '1'"),  # 0.9: token 1
    ("x = 1 @", "syntax error in filter at position 6: unexpected token '@'"),  # ours: 0.9 says
    # "unexpected character '@'"; words may start with any symbol but quotes, brackets, = < > !
    ("x = 1 or\ny y", "syntax error in filter on line 2, position 11: unexpected token 'y'"),
    ("'a' = 123", "syntax error in filter at position 4: unexpected token '='"),
    ("a = 1 or \nb(", "syntax error in filter on line 2, position 11: unexpected token '('"),
    ("a is not not 1", "syntax error in filter at position 9: unexpected token 'not'"),
    ("a not = 1", "syntax error in filter at position 6: unexpected token '='"),
    ("a in (1, 2)", "syntax error in filter at position 5: unexpected token '('"),
    ("[1] = 1", "syntax error in filter at position 4: unexpected token '='"),
    ("a ! 1", "syntax error in filter at position 2: unexpected character '!'"),
    ("c in [red,]", "syntax error in filter at position 10: unexpected token ']'"),
    ("label contains a=1", "syntax error in filter at position 16: unexpected token '='"),
    ("c contains [a]", "syntax error in filter at position 11: unexpected token '['"),  # ours
    # 0.9 spells it "expresion"
    ("(", "syntax error in filter - unexpected end of expression"),
    ("x = 1 or", "syntax error in filter - unexpected end of expression"),
    ("x >", "syntax error in filter - unexpected end of expression"),
    ("x in [1", "syntax error in filter - unexpected end of expression"),
    ("x = 1 or\n(", "syntax error in filter - unexpected end of expression"),
]


@pytest.mark.parametrize("text,message", FILTER_ERRORS)
def test_filter_errors(text, message):
    with pytest.raises(InvalidArgument) as e:
        parse_filter(text)
    assert str(e.value) == message


def test_filter_refs():
    f = parse_filter("op = train and (flag:x > 1 or not scalar:loss < 2) and status")
    assert [(r.kind, r.name) for r in f.refs] == [(None, "op"), ("flag", "x"), ("scalar", "loss")]
    assert parse_filter("").refs == ()


@pytest.mark.parametrize(
    "text",
    ["(" * 5000 + "x" + ")" * 5000, "not " * 5000 + "x", "x in " + "[" * 3000 + "]" * 3000],
    ids=["parentheses", "nots", "brackets"],
)
def test_a_filter_nested_too_deeply_is_refused_not_a_crash(text):
    with pytest.raises(InvalidArgument, match="filter expression nested too deeply"):
        parse_filter(text)


def test_a_filter_nested_within_the_limit_and_a_long_chain_still_parse():
    row = SimpleNamespace(attrs={}, flags={"x": 1}, scalars={})
    assert parse_filter("(" * 100 + "x = 1" + ")" * 100).matches(row)
    assert parse_filter(" and ".join(["x = 1"] * 201)).matches(row)
    assert parse_filter("(" * 100 + " or ".join(["x = 1"] * 200) + ")" * 100).matches(row)


def test_a_filter_too_long_is_refused_not_a_crash():
    with pytest.raises(InvalidArgument, match="filter expression too long"):
        parse_filter(" and ".join(["x = 1"] * 5000))
