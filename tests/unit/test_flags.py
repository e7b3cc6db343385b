"""Flag value decoding, encoding, formatting and coercion.

Rows cite the Guild doctest they come from as `L<line>` in seeds/guild-repo-docs.txt; rows
marked `ours` pin down a decision where the docs are silent.
"""

import math

import pytest

from guild_common import flags
from guild_common.errors import InvalidArgument
from guild_common.flagdef import FlagDef

INF = float("inf")

# decode_flag_value

DECODE_CASES = [
    # Empty value (L23789)
    ("", ""),
    # Ints and floats (L23708, L23717)
    ("1", 1),
    ("1.1", 1.1),
    (".1", 0.1),
    ("1.", 1.0),
    ("1.e1", 10.0),
    ("1.2e2", 120.0),
    # Exponent notation (L23735-L23744)
    ("1e-06", 1e-06),
    ("1.0e-06", 1e-06),
    ("1234567e1", 12345670.0),
    ("1e2345671", INF),
    # Run-ID exception: short IDs that look like floats stay strings (L23726, L14009)
    ("1e1", "1e1"),
    ("12e2", "12e2"),
    ("123e3", "123e3"),
    ("123456e7", "123456e7"),
    ("67217e15", "67217e15"),
    ("1e234567", "1e234567"),
    ("1234e567", "1234e567"),
    ("1e2", "1e2"),
    ("12e3", "12e3"),
    ("123e4", "123e4"),
    ("1234e5", "1234e5"),
    ("12345e6", "12345e6"),
    # ... and not-short-IDs decode as YAML floats (L14046)
    ("1234567e8", 123456700000000.0),
    ("+12345e6", 12345000000.0),
    ("123456E7", 1234560000000.0),
    ("1.23455e6", 1234550.0),
    # Strings and quoted numbers (L23753, L23762-L23768)
    ("A", "A"),
    ("'1'", "1"),
    ('"2"', "2"),
    ("'1e3'", "1e3"),
    ("'1234567e1'", "1234567e1"),
    ("'1e2345671'", "1e2345671"),
    # Booleans and null (L23777, L23780, L23817)
    ("True", True),
    ("true", True),
    ("yes", True),
    ("False", False),
    ("false", False),
    ("no", False),
    ("null", None),
    # Lists and dicts (L23798, L23817)
    ("[1,2,3,a,b,1.,1.2]", [1, 2, 3, "a", "b", 1.0, 1.2]),
    ("['A','B']", ["A", "B"]),
    ("123", 123),
    ("{'a':456,'b':'C'}", {"a": 456, "b": "C"}),
    # YAML exceptions: underscores and sexagesimal stay strings (L13971-L13977)
    ("1_2_3", "1_2_3"),
    ("1.1_2", "1.1_2"),
    ("1:2", "1:2"),
    # Anonymous flag function stays a string (L13665); more forms from L13215-L13304
    ("[1:2]", "[1:2]"),
    ("[1:2:3:4:5]", "[1:2:3:4:5]"),
    ("[1e-4:1e-1]", "[1e-4:1e-1]"),
    ("[hello:1:1.2]", "[hello:1:1.2]"),
    ("[this has spaces:yes:[1,2,3]]", "[this has spaces:yes:[1,2,3]]"),
    ("[a : b : c]", "[a : b : c]"),
    # Named flag functions are plain strings to YAML already (L13171)
    ("uniform[-2.0:2.0]", "uniform[-2.0:2.0]"),
    # List concatenation (L13681-L13711, L43843)
    ("[1] * 2", [1, 1]),
    ("[1]*2", [1, 1]),
    (" [1] * 2 ", [1, 1]),
    ("[] * 2", []),
    ("[1] * 0", []),
    ("[1] * 1", [1]),
    ("[1,2] * 2", [1, 2, 1, 2]),
    ("[yop]*2", ["yop", "yop"]),
    # ours: dates never become datetime objects, in lists either
    ("2018-06-26", "2018-06-26"),
    ("[2018-06-26, 1]", ["2018-06-26", 1]),
    # ours: what YAML builds beyond flag types, or cannot parse, stays the text given
    ("!!binary aGVsbG8=", "!!binary aGVsbG8="),
    ("!!set {a}", "!!set {a}"),
    ("=", "="),
    ("[1, 2", "[1, 2"),
    # ours: a `#` is literal, not a YAML comment
    ("hello #1", "hello #1"),
    ("#x", "#x"),
    ("'a #b'", "a #b"),
    # ours: leading zeros, hex and octal are not numbers on a command line
    ("007", "007"),
    ("0x1f", "0x1f"),
    ("0", 0),
    ("-1", -1),
    # ours: a top-level comma means a list, even with colons inside
    ("[a:1, b:2]", ["a:1", "b:2"]),
]


@pytest.mark.parametrize("text,expected", DECODE_CASES)
def test_decode_flag_value(text, expected):
    decoded = flags.decode_flag_value(text)
    assert decoded == expected
    assert type(decoded) is type(expected)


def test_decode_nan_and_inf():
    # YAML spellings of the special floats (the encoder writes these)
    assert math.isnan(flags.decode_flag_value(".nan"))
    assert flags.decode_flag_value("-.inf") == -INF
    assert flags.decode_flag_value("nan") == "nan"


# encode_flag_value

ENCODE_CASES = [
    # Strings (L13380-L13392)
    ("", "''"),
    ("a", "a"),
    ("a b", "a b"),
    ("'a b'", "'''a b'''"),
    ("2018_06_26", "'2018_06_26'"),
    # Numbers (L13401-L13419)
    (1, "1"),
    (1.0, "1.0"),
    (12e3, "12000.0"),
    (1.234e2, "123.4"),
    (1.234e-2, "0.01234"),
    (1e100, "1.0e+100"),
    (1 / 3, "0.3333333333333333"),
    # Numbers as strings (L13428-L13443)
    ("1", "'1'"),
    ("1.1", "'1.1'"),
    ("1.2e3", "'1.2e3'"),
    ("12e3", "'12e3'"),
    ("-1.23e-2", "'-1.23e-2'"),
    ("'1'", "'''1'''"),
    # Booleans, None (L13452-L13464)
    (True, "yes"),
    (False, "no"),
    (None, "null"),
    # Lists and dicts (L13473-L13510)
    ([], "[]"),
    (["", "a", 1, 1.0, 1 / 3, True, False, None], "['', a, 1, 1.0, 0.3333333333333333, yes, no, null]"),
    ({}, "{}"),
    ({"a": 1.123, "b": "c d", "e": True, "f": [1, 2, "g h"]}, "{a: 1.123, b: c d, e: yes, f: [1, 2, g h]}"),
    # ours: strings the decoder has exceptions for are quoted all the same
    ("[1] * 2", "'[1] * 2'"),
    ("1:2", "'1:2'"),
    ("2018-06-26", "'2018-06-26'"),
    ("yes", "'yes'"),
    ("hello #1", "'hello #1'"),
    # ours: one line, always
    ("a\nb", '"a\\nb"'),
    (float("inf"), ".inf"),
    (1e-07, "1.0e-07"),
]


@pytest.mark.parametrize("value,expected", ENCODE_CASES)
def test_encode_flag_value(value, expected):
    assert flags.encode_flag_value(value) == expected


@pytest.mark.parametrize("value", [value for value, _ in ENCODE_CASES])
def test_encode_decode_round_trip(value):
    # L13369: decode(encode(val)) == val
    decoded = flags.decode_flag_value(flags.encode_flag_value(value))
    assert decoded == value
    assert type(decoded) is type(value)


# format_flag_value, format_flag_assign, default_label

FORMAT_CASES = [
    # format_flag_assigns (L13530)
    ("", "''"),
    ("a", "a"),
    ("a b", "'a b'"),
    ("a b 'c d e'", "\"a b 'c d e'\""),
    ("12e321", "'12e321'"),
    (101, "101"),
    (1.1, "1.1"),
    (0.1, "0.1"),
    (1.0, "1.0"),
    (1.234e3, "1234.0"),
    # truncate_floats=True (L13569-L13633)
    (1 / 6, "0.16666"),
    (1.12, "1.12"),
    (1.12345, "1.12345"),
    (1.123456, "1.12345"),
    (1.123454, "1.12345"),
    (1.123455, "1.12345"),
    (0.999999, "0.99999"),
    (12345.123456, "12345.12345"),
    (0.0000012345, "1.2345e-06"),
    (1.0000012345, "1.00000"),
    # flag_assigns (L23854)
    (True, "yes"),
    (False, "no"),
    ({"a": 1.123, "b": "c d", "e": True}, "{a: 1.123, b: c d, e: yes}"),
    ([1, 2, "a", "b c 'd e'"], "[1, 2, a, b c 'd e']"),
    (None, "null"),
    ("'1'", "'''1'''"),
    ("-1.123e4", "'-1.123e4'"),
    ("123456e2", "'123456e2'"),
    # run_label (L24202, L24395 `ver=${ver}` shows '12345' quoted)
    (1.123456789, "1.12345"),
    ("12345", "'12345'"),
    ("hello there", "'hello there'"),
    ("1", "'1'"),
    # ours: both quote kinds inside
    ("a \"b\" 'c'", "'a \"b\" ''c'''"),
]


@pytest.mark.parametrize("value,expected", FORMAT_CASES)
def test_format_flag_value(value, expected):
    assert flags.format_flag_value(value) == expected


def test_format_flag_assign():
    # L23854
    assert flags.format_flag_assign("s2", "a b") == "s2='a b'"
    assert flags.format_flag_assign("n", None) == "n=null"


DEFAULT_LABEL_CASES = [
    # run_label with no template (L24184-L24202, L24297)
    ({}, ""),
    ({"foo": "FOO"}, "foo=FOO"),
    ({"foo": "FOO", "bar": "BAR"}, "bar=BAR foo=FOO"),
    ({"f": 1.123456789}, "f=1.12345"),
    ({"f1": 1.0, "f2": 1.0 / 3.0, "b1": True, "b2": False, "i": 123}, "b1=yes b2=no f1=1.0 f2=0.33333 i=123"),
    # GUILD-REFERENCE §2.9: null-valued flags are left out
    ({"x": 0.2, "noise": 0.1, "gpus": None}, "noise=0.1 x=0.2"),
]


@pytest.mark.parametrize("flag_vals,expected", DEFAULT_LABEL_CASES)
def test_default_label(flag_vals, expected):
    assert flags.default_label(flag_vals) == expected


# parse_flag_assigns

PARSE_CASES = [
    ([], {}),  # L23699
    (["a=1"], {"a": 1}),  # L23708
    (["a=1.1", "b=.1", "c=1.", "d=1.e1", "e=1.2e2"], {"a": 1.1, "b": 0.1, "c": 1.0, "d": 10.0, "e": 120.0}),  # L23717
    (["a=1e1", "b=12e2", "c=123e3", "d=123456e7"], {"a": "1e1", "b": "12e2", "c": "123e3", "d": "123456e7"}),  # L23726
    (["a='1'", 'b="2"', "c='1e3'"], {"a": "1", "b": "2", "c": "1e3"}),  # L23762
    (["a="], {"a": ""}),  # L23789
    (  # L23817
        ["a=['A','B']", "c=123", "d-e=", "f={'a':456,'b':'C'}", "g=null"],
        {"a": ["A", "B"], "c": 123, "d-e": "", "f": {"a": 456, "b": "C"}, "g": None},
    ),
    (["msg=a=b"], {"msg": "a=b"}),  # ours: only the first `=` splits
    (["a=1", "a=2"], {"a": 2}),  # ours: the later assignment wins
]


@pytest.mark.parametrize("args,expected", PARSE_CASES)
def test_parse_flag_assigns(args, expected):
    assert flags.parse_flag_assigns(args) == expected


@pytest.mark.parametrize("arg", ["a", "=1"])
def test_parse_flag_assigns_requires_name_and_equals(arg):
    # L23807 (Guild: ArgValueError: a)
    with pytest.raises(InvalidArgument) as e:
        flags.parse_flag_assigns(["x=1", arg])
    assert str(e.value) == "invalid argument '%s' - expected NAME=VAL" % arg


# flag_cmd_args and flag_env

CMD_CASES = [
    # op_cmd.generate (L22791-L22875); defs stand in for Guild's CmdFlag
    ({"c": 123, "d": "abc"}, {"c": FlagDef("c", arg_name="C")}, ["--C", "123", "--d", "abc"]),
    ({"c": 123}, {}, ["--c", "123"]),
    ({"c": "123"}, {}, ["--c", "'123'"]),
    ({"c": True}, {}, ["--c", "yes"]),
    ({"c": False}, {}, ["--c", "no"]),
    ({"c": None}, {}, []),
    ({"z": 4, "c": 3, "a": 1, "b": 2}, {}, ["--a", "1", "--b", "2", "--c", "3", "--z", "4"]),
    ({"a": 1}, {"a": FlagDef("a", arg_switch=1)}, ["--a"]),
    ({"a": 2}, {"a": FlagDef("a", arg_switch=1)}, []),
    ({"a": 1}, {"a": FlagDef("a", arg_skip=True)}, []),
    # flag-vals project, args op (L14131-L14152)
    (
        {"f5": -6.78e-07, "f6": 6543210.0, "s2": "a b", "s3": "123e4", "s4": "-0.00034"},
        {},
        ["--f5", "-6.78e-07", "--f6", "6543210.0", "--s2", "a b", "--s3", "'123e4'", "--s4", "'-0.00034'"],
    ),
    # ours: a store_false switch (arg_switch False) is a switch too
    ({"a": False}, {"a": FlagDef("a", arg_switch=False)}, ["--a"]),
    ({"l": [1, "a b"]}, {}, ["--l", "[1, a b]"]),
]


@pytest.mark.parametrize("flag_vals,defs,expected", CMD_CASES)
def test_flag_cmd_args(flag_vals, defs, expected):
    assert flags.flag_cmd_args(flag_vals, defs) == expected


ENV_CASES = [
    # op_cmd.generate (L22791-L22898)
    ({"c": 123, "d": "abc"}, {"c": FlagDef("c", arg_name="C")}, {"FLAG_C": "123", "FLAG_D": "abc"}),
    ({"c": "123"}, {}, {"FLAG_C": "123"}),
    ({"c": True}, {}, {"FLAG_C": "yes"}),
    ({"c": False}, {}, {"FLAG_C": "no"}),
    ({"c": None}, {}, {}),
    ({"a": 2}, {"a": FlagDef("a", arg_switch=1)}, {"FLAG_A": "2"}),
    ({"a": 1}, {"a": FlagDef("a", arg_skip=True)}, {"FLAG_A": "1"}),
    ({"i": 1, "f": 2.3, "s": "hello"}, {}, {"FLAG_F": "2.3", "FLAG_I": "1", "FLAG_S": "hello"}),
    ({"a": 1}, {"a": FlagDef("a", env_name="A")}, {"A": "1"}),
    # ours: names made fit for the environment
    ({"learning-rate": 0.1, "opt.lr": 1e-3}, {}, {"FLAG_LEARNING_RATE": "0.1", "FLAG_OPT_LR": "0.001"}),
    ({"l": [1, 2]}, {}, {"FLAG_L": "[1, 2]"}),
]


@pytest.mark.parametrize("flag_vals,defs,expected", ENV_CASES)
def test_flag_env(flag_vals, defs, expected):
    assert flags.flag_env(flag_vals, defs) == expected


# coerce_flag_value

COERCE_CASES = [
    # op_util.coerce_flag_value (L23963-L24042)
    (1, {"type": "float"}, 1.0),
    ("1", {"type": "float"}, 1.0),
    ("1.1", {"type": "float"}, 1.1),
    (1, {"type": "int"}, 1),
    ("1", {"type": "int"}, 1),
    (1, {"type": "number"}, 1),
    (1.0, {"type": "number"}, 1.0),
    (0, {"type": "boolean"}, False),
    (1, {"type": "boolean"}, True),
    ("", {"type": "boolean"}, False),
    ("hi", {"type": "boolean"}, True),
    ("false", {"type": "boolean"}, True),
    ([1, 1.0], {"type": "number"}, [1, 1.0]),
    # flag_vals_for_opdef (L24607, L24632)
    ("1.123", {"type": "float"}, 1.123),
    ("a", {"choices": ("a", "b", "c")}, "a"),
    # ours
    ("2", {"type": "number"}, 2),
    ("2.5", {"type": "number"}, 2.5),
    (12, {"type": "string"}, "12"),
    (True, {"type": "string"}, "yes"),
    ("abc", {}, "abc"),
    (None, {"type": "float", "choices": (1.0,)}, None),
    ([1, 2], {"type": "float"}, [1.0, 2.0]),
    ("uniform[0:1]", {"type": "float"}, "uniform[0:1]"),
    ("[1:5]", {"type": "int", "max": 3}, "[1:5]"),
    ("b", {"choices": ({"value": "a", "flags": {"x": 1}}, {"value": "b"})}, "b"),
    (2, {"type": "int", "min": 1, "max": 3}, 2),
    (3, {"min": 1, "max": 3}, 3),
]


@pytest.mark.parametrize("value,attrs,expected", COERCE_CASES)
def test_coerce_flag_value(value, attrs, expected):
    coerced = flags.coerce_flag_value(value, FlagDef("x", **attrs))
    assert coerced == expected
    assert type(coerced) is type(expected)


def test_coerce_nan_float():
    # L23972
    assert math.isnan(flags.coerce_flag_value("nan", FlagDef("x", type="float")))


COERCE_ERRORS = [
    # L23975-L24045 (Guild: "invalid value for type 'float'" etc.), L24589 (InvalidFlagValue),
    # L24641 (InvalidFlagChoice); ours is one line naming the flag
    ("invalid", {"type": "float"}, "invalid value 'invalid' for flag 'x': expected a float"),
    (1.0, {"type": "int"}, "invalid value 1.0 for flag 'x': expected an int"),
    ("invalid", {"type": "int"}, "invalid value 'invalid' for flag 'x': expected an int"),
    ("invalid", {"type": "number"}, "invalid value 'invalid' for flag 'x': expected a number"),
    ([1, 1.0, "invalid"], {"type": "number"}, "invalid value 'invalid' for flag 'x': expected a number"),
    ("d", {"choices": ("a", "b", "c")}, "invalid value 'd' for flag 'x': expected one of a, b, c"),
    (5, {"choices": (1, 2, 3)}, "invalid value 5 for flag 'x': expected one of 1, 2, 3"),
    # ours
    (True, {"type": "float"}, "invalid value yes for flag 'x': expected a float"),
    ("1.5", {"type": "int"}, "invalid value '1.5' for flag 'x': expected an int"),
    (0, {"type": "int", "min": 1}, "invalid value 0 for flag 'x': less than min 1"),
    (3.5, {"max": 3}, "invalid value 3.5 for flag 'x': greater than max 3"),
    ("c", {"choices": ({"value": "a"}, {"value": "b"})}, "invalid value 'c' for flag 'x': expected one of a, b"),
    (
        1,
        {"type": "text"},
        "unsupported type 'text' for flag 'x': expected one of float, int, number, boolean, string, path, existing-path",
    ),
]


@pytest.mark.parametrize("value,attrs,message", COERCE_ERRORS)
def test_coerce_flag_value_errors(value, attrs, message):
    with pytest.raises(InvalidArgument) as e:
        flags.coerce_flag_value(value, FlagDef("x", **attrs))
    assert str(e.value) == message


def test_coerce_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data.csv").write_text("")
    path = FlagDef("p", type="path")
    existing = FlagDef("p", type="existing-path")
    assert flags.coerce_flag_value("~/x", path) == str(tmp_path / "x")
    assert flags.coerce_flag_value("data.csv", existing, cwd=str(tmp_path)) == "data.csv"
    assert flags.coerce_flag_value("~/data.csv", existing) == str(tmp_path / "data.csv")
    with pytest.raises(InvalidArgument) as e:
        flags.coerce_flag_value("missing.csv", existing, cwd=str(tmp_path))
    assert str(e.value) == "invalid value 'missing.csv' for flag 'p': path does not exist"


def test_arg_split_flag_args_by_dest():
    defs = {"l": FlagDef("l", arg_split=True), "c": FlagDef("c", arg_split=",")}
    values = {"l": "1 foo 'a b'", "c": "x,2"}
    assert flags.flag_cmd_args(values, defs) == ["--c", "x", "2", "--l", "1", "foo", "a b"]
    # opmain sets a Python list from one JSON argument.
    assert flags.flag_cmd_args(values, defs, "globals") == ["--c", '["x", 2]', "--l", '[1, "foo", "a b"]']


def test_join_and_split_flag_values_round_trip():
    items = [1, 2.5, "foo", "a b", "1", True]
    assert flags.split_flag_value(flags.join_flag_values(items)) == items


def test_a_number_too_long_to_convert_is_a_clear_error_not_a_crash():
    with pytest.raises(InvalidArgument, match="a number of 4400 digits is too large"):
        flags.decode_flag_value("1" * 4400)
    assert flags.decode_flag_value("1" * 4000) == int("1" * 4000)
