"""Flag functions: parsing, sequence expansion and search dimensions.

Rows cite the Guild doctest they come from as `L<line>` in seeds/guild-repo-docs.txt, or `0.9`
for what Guild 0.9.0 prints when run; rows marked `ours` pin down a decision where Guild only
warns (a bad function stays a string there, it is an error here) or is silent.
"""

import pytest

from guild_common import flagfuncs
from guild_common.errors import InvalidArgument
from guild_common.flagfuncs import SearchDim

# parse

PARSE_CASES = [
    # Nameless functions (L13215-L13227); `[]` and `[1]` are lists, not functions (ours)
    ("[1:2]", ("", (1, 2))),
    ("[1:2:3]", ("", (1, 2, 3))),
    ("[1:2:3:4:5]", ("", (1, 2, 3, 4, 5))),
    # Named functions (L13236-L13251)
    ("uniform[-2.0:2.0]", ("uniform", (-2.0, 2.0))),
    ("log-uniform[-2.0:2.0]", ("log-uniform", (-2.0, 2.0))),
    ("foo.bar.baz[-2.0:2.0]", ("foo.bar.baz", (-2.0, 2.0))),
    ("three_args[1:2:3]", ("three_args", (1, 2, 3))),
    ("range[10]", ("range", (10,))),
    ("range[]", ("range", ())),
    # Args of any type (L13271-L13283)
    ("[hello:1:1.2]", ("", ("hello", 1, 1.2))),
    ("[this has spaces:yes:[1,2,3]]", ("", ("this has spaces", True, [1, 2, 3]))),
    ("myfun[hello:1:1.2]", ("myfun", ("hello", 1, 1.2))),
    ("myfun[this has spaces:no:[1, 2, null]]", ("myfun", ("this has spaces", False, [1, 2, None]))),
    ("myfun[1e-1:1.1e-1:[1e-2, 1.1e-2]]", ("myfun", (0.1, 0.11, [0.01, 0.011]))),
    # Float args; `1e3` is a number here, not a run ID (L13292-L13295)
    ("f[1.0]", ("f", (1.0,))),
    ("f[1e3]", ("f", (1000.0,))),
    # Spaces (L13304), around the whole value too (ours)
    ("[a : b : c]", ("", ("a", "b", "c"))),
    ("  range[1:5]  ", ("range", (1, 5))),
]


@pytest.mark.parametrize("value,expected", PARSE_CASES)
def test_parse(value, expected):
    assert flagfuncs.parse(value) == expected
    assert flagfuncs.is_function(value)


NOT_FUNCTIONS = [
    "a^z[1:2:3:4:5]",  # name with a character names can't have (L13261)
    "[1,2,3]",  # a list literal (ours)
    "[]",
    "[1]",
    "[a:1, b:2]",  # a top-level comma: a list, as flag decoding reads it (ours)
    "x[1]]",  # brackets don't balance
    "range[1:2]x",
    "hello",
    "",
    1,
    [1, 2],
    None,
]


@pytest.mark.parametrize("value", NOT_FUNCTIONS)
def test_not_a_function(value):
    assert flagfuncs.parse(value) is None
    assert not flagfuncs.is_function(value)


# expand: sequence functions

EXPAND_CASES = [
    # range: stop inclusive (L13740-L13770)
    ("range[1:5]", [1, 2, 3, 4, 5]),
    ("range[0:5:2]", [0, 2, 4]),
    ("range[5:1:-1]", [5, 4, 3, 2, 1]),
    ("range[1:5:0.5]", [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]),
    (
        "range[1e-5:1e-4:1e-5]",
        [1e-05, 2e-05, 3e-05, 4e-05, 5e-05, 6e-05, 7e-05, 8e-05, 9e-05, 0.0001],
    ),
    # range with one arg: 0 up to N, exclusive (L13792)
    ("range[10]", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    # range: float noise rounded, a float arg makes floats, no steps past STOP (0.9)
    ("range[0:1:0.1]", [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
    ("range[1:5.0]", [1.0, 2.0, 3.0, 4.0, 5.0]),
    ("range[1.5]", [0.0, 1.0]),
    ("range[5:1]", []),
    # ours: Guild 0.9 gives [0.0, 0.3, 0.6, 0.9, 1.2], past STOP
    ("range[0:1:0.3]", [0.0, 0.3, 0.6, 0.9]),
    # linspace: default count 5 (L13833-L13842)
    ("linspace[1:5:5]", [1.0, 2.0, 3.0, 4.0, 5.0]),
    ("linspace[1:10:5]", [1.0, 3.25, 5.5, 7.75, 10.0]),
    ("linspace[1:10:10]", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]),
    ("linspace[1e-2:1e-1:10]", [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1]),
    ("linspace[-0.6:0.6:4]", [-0.6, -0.2, 0.2, 0.6]),  # hpo-tutorial L126
    # linspace edge counts (0.9)
    ("linspace[5:1:5]", [5.0, 4.0, 3.0, 2.0, 1.0]),
    ("linspace[0:1:1]", [0.0]),
    ("linspace[0:1:0]", []),
    # logspace, base 10 or the 4th arg (L13897-L13909)
    ("logspace[1:5]", [10.0, 100.0, 1000.0, 10000.0, 100000.0]),
    ("logspace[-5:0:6]", [1e-05, 0.0001, 0.001, 0.01, 0.1, 1.0]),
    ("logspace[0:3:4:2]", [1.0, 2.0, 4.0, 8.0]),
    # logspace: values shown to 8 decimals (0.9)
    ("logspace[0:1:4]", [1.0, 2.15443469, 4.64158883, 10.0]),
    ("logspace[-3:-1]", [0.001, 0.00316228, 0.01, 0.03162278, 0.1]),
    # ours: at least 6 significant digits (Guild's 8 decimals would show 3e-10)
    ("logspace[-10:-9:3]", [1e-10, 3.16228e-10, 1e-09]),
    # geomspace: numpy.geomspace, not in Guild (ours)
    ("geomspace[1:1000:4]", [1.0, 10.0, 100.0, 1000.0]),
    ("geomspace[1:2:5]", [1.0, 1.18920712, 1.41421356, 1.68179283, 2.0]),
    ("geomspace[-1:-16:5]", [-1.0, -2.0, -4.0, -8.0, -16.0]),
    ("geomspace[3:3:1]", [3.0]),
]


@pytest.mark.parametrize("value,expected", EXPAND_CASES)
def test_expand(value, expected):
    result = flagfuncs.expand(value, "x")
    assert result == expected
    assert [type(v) for v in result] == [type(v) for v in expected]


UNCHANGED = ["[1:2]", "uniform[1:2]", "loguniform[1e-4:1e-1]", "hello", "[1,2]", 1, 1.5, None, [1]]


@pytest.mark.parametrize("value", UNCHANGED)
def test_expand_leaves_other_values(value):
    assert flagfuncs.expand(value, "x") == value


EXPAND_ERRORS = [
    # Guild warns and keeps these as strings (L13802-L13945); errors here
    (
        "range[foo:bar]",
        "invalid value for flag x: range[foo:bar]: invalid arg 'foo': expected a number",
    ),
    ("range[]", "invalid value for flag x: range[]: range requires at least 1 arg"),
    ("linspace[]", "invalid value for flag x: linspace[]: linspace requires at least 2 args"),
    ("linspace[1]", "invalid value for flag x: linspace[1]: linspace requires at least 2 args"),
    ("linspace[1:2]", "invalid value for flag x: linspace[1:2]: missing COUNT (linspace[START:STOP:COUNT])"),
    ("geomspace[1:2]", "invalid value for flag x: geomspace[1:2]: missing COUNT (geomspace[START:STOP:COUNT])"),
    (
        "linspace[1:bar]",
        "invalid value for flag x: linspace[1:bar]: invalid arg 'bar': expected a number",
    ),
    ("logspace[]", "invalid value for flag x: logspace[]: logspace requires at least 2 args"),
    (
        "logspace[1:bar]",
        "invalid value for flag x: logspace[1:bar]: invalid arg 'bar': expected a number",
    ),
    # Guild ignores extra args with a warning (L13780, L13852, L13919); errors here (ours)
    (
        "range[1:5:1:2:3]",
        "invalid value for flag x: range[1:5:1:2:3]: range takes at most 3 args, got 5",
    ),
    (
        "linspace[1:5:5:hello:456]",
        "invalid value for flag x: linspace[1:5:5:hello:456]: linspace takes at most 3 args, got 5",
    ),
    (
        "logspace[0:3:4:2:456:hello]",
        "invalid value for flag x: logspace[0:3:4:2:456:hello]: logspace takes at most 4 args, got 6",
    ),
    # Guild 0.9 fails on these with a Python error or overshoots (ours)
    ("range[0:5:0]", "invalid value for flag x: range[0:5:0]: STEP must not be 0"),
    ("range[yes:3]", "invalid value for flag x: range[yes:3]: invalid arg True: expected a number"),
    (
        "range[0:.inf]",
        "invalid value for flag x: range[0:.inf]: invalid arg inf: expected a finite number",
    ),
    (
        "range[0:1e7]",
        "invalid value for flag x: range[0:1e7]: range gives 10000001 values, more than 1000000",
    ),
    (
        "linspace[0:1:2.5]",
        "invalid value for flag x: linspace[0:1:2.5]: COUNT (2.5) must be a non-negative integer",
    ),
    (
        "linspace[0:1:-1]",
        "invalid value for flag x: linspace[0:1:-1]: COUNT (-1) must be a non-negative integer",
    ),
    (
        "logspace[0:1:3:-2]",
        "invalid value for flag x: logspace[0:1:3:-2]: BASE (-2) must be greater than 0",
    ),
    ("logspace[0:400]", "invalid value for flag x: logspace[0:400]: values too large"),
    (
        "geomspace[0:10]",
        "invalid value for flag x: geomspace[0:10]: START (0) and STOP (10) must be non-zero with the same sign",
    ),
    (
        "geomspace[-1:10]",
        "invalid value for flag x: geomspace[-1:10]: START (-1) and STOP (10) must be non-zero with the same sign",
    ),
    # Unknown names (L7412, L32482, L32486)
    ("floop[1:10]", "unknown function 'floop' used for flag x"),
    ("normal[1.0:2.0]", "unknown function 'normal' used for flag x"),
    ("lognormal[1.0:2.0]", "unknown function 'lognormal' used for flag x"),
]


@pytest.mark.parametrize("value,message", EXPAND_ERRORS)
def test_expand_errors(value, message):
    with pytest.raises(InvalidArgument) as e:
        flagfuncs.expand(value, "x")
    assert str(e.value) == message


# search_dim

SEARCH_DIM_CASES = [
    # Nameless is uniform; two ints make an integer range (L32343-L32370)
    ("[1.0:2.0]", SearchDim("uniform", 1.0, 2.0)),
    ("[1.0:2.0:1.5]", SearchDim("uniform", 1.0, 2.0, initial=1.5)),
    ("[1:100]", SearchDim("uniform", 1, 100, integer=True)),
    ("[1:100:50]", SearchDim("uniform", 1, 100, initial=50, integer=True)),
    ("[-2.0:2.0:0.1]", SearchDim("uniform", -2.0, 2.0, initial=0.1)),
    # Named (L32380-L32470): loguniform is never an integer range
    ("uniform[1.0:2.0]", SearchDim("uniform", 1.0, 2.0)),
    ("uniform[1:100:25]", SearchDim("uniform", 1, 100, initial=25, integer=True)),
    ("loguniform[1.0:2.0]", SearchDim("loguniform", 1.0, 2.0)),
    ("loguniform[1.0:2.0:1.5]", SearchDim("loguniform", 1.0, 2.0, initial=1.5)),
    ("loguniform[1:100]", SearchDim("loguniform", 1, 100)),
    ("loguniform[1e-5:1e-1]", SearchDim("loguniform", 1e-5, 0.1)),
    # A mixed pair is a real range (ours)
    ("[1:2.0]", SearchDim("uniform", 1, 2.0)),
]


@pytest.mark.parametrize("value,expected", SEARCH_DIM_CASES)
def test_search_dim(value, expected):
    assert flagfuncs.search_dim(value, "x") == expected


@pytest.mark.parametrize(
    "value", ["range[1:5]", "linspace[1:2]", "hello", "[1,2]", 1, None, [1, 2]]
)
def test_search_dim_none_for_other_values(value):
    assert flagfuncs.search_dim(value, "x") is None


SEARCH_DIM_ERRORS = [
    # Arg counts and unknown names (L7412-L7432, L32482-L32514)
    ("[1:2:3:4]", "uniform requires 2 or 3 args, got (1, 2, 3, 4) for flag x"),
    ("loguniform[1:2:3:4]", "loguniform requires 2 or 3 args, got (1, 2, 3, 4) for flag x"),
    ("uniform[]", "uniform requires 2 or 3 args, got () for flag x"),
    ("uniform[1.0]", "uniform requires 2 or 3 args, got (1.0,) for flag x"),
    ("floop[1:10]", "unknown function 'floop' used for flag x"),
    ("normal[1.0:2.0]", "unknown function 'normal' used for flag x"),
    ("lognormal[1.0:2.0]", "unknown function 'lognormal' used for flag x"),
    # Bounds (ours)
    ("uniform[3:1]", "invalid value for flag x: uniform[3:1]: MIN (3) must be less than MAX (1)"),
    ("[1.0:1.0]", "invalid value for flag x: [1.0:1.0]: MIN (1.0) must be less than MAX (1.0)"),
    (
        "loguniform[0:1]",
        "invalid value for flag x: loguniform[0:1]: MIN (0) must be greater than 0 for loguniform",
    ),
    ("[a:b]", "invalid value for flag x: [a:b]: invalid arg 'a': expected a number"),
    ("[1:2:null]", "invalid value for flag x: [1:2:null]: invalid arg None: expected a number"),
    # ours: Guild's skopt_util takes an initial value outside the range (L32352)
    (
        "[1:2:3]",
        "invalid value for flag x: [1:2:3]: INITIAL (3) must be between MIN (1) and MAX (2)",
    ),
    (
        "[1:10:2.5]",
        "invalid value for flag x: [1:10:2.5]: INITIAL (2.5) must be an integer, as MIN and MAX are",
    ),
]


@pytest.mark.parametrize("value,message", SEARCH_DIM_ERRORS)
def test_search_dim_errors(value, message):
    with pytest.raises(InvalidArgument) as e:
        flagfuncs.search_dim(value, "x")
    assert str(e.value) == message
