"""Trials of a batch: grids, sampling, random search, batch files and saved trials.

Rows cite the Guild doctest they come from as `L<line>` in seeds/guild-repo-docs.txt, or `0.9`
for what Guild 0.9.0 prints when run; rows marked `ours` pin down a decision of our own.
"""

import io
import math

import pytest

from guild_common import trials
from guild_common.errors import InvalidArgument

# grid

GRID_CASES = [
    # Not a batch: no list value
    ({"x": 1, "msg": "hi"}, []),
    ({}, []),
    # One list (L5387)
    ({"msg": ["hi"], "loud": False}, [{"msg": "hi", "loud": False}]),
    # Values in the order given (L5417)
    (
        {"msg": ["c", "a", "b"], "loud": False},
        [{"msg": "c", "loud": False}, {"msg": "a", "loud": False}, {"msg": "b", "loud": False}],
    ),
    # Flag names ascending, then values as given: loud before msg (L5446-L5465)
    (
        {"msg": ["b", "a"], "loud": [False, True]},
        [
            {"msg": "b", "loud": False},
            {"msg": "a", "loud": False},
            {"msg": "b", "loud": True},
            {"msg": "a", "loud": True},
        ],
    ),
    # An empty list makes zero trials (reference §3.1)
    ({"x": [], "y": [1, 2]}, []),
]


@pytest.mark.parametrize("values,expected", GRID_CASES)
def test_grid(values, expected):
    assert trials.grid(values) == expected


def test_grid_of_three_flags():
    # L6395: x=[1,2] y=[3,4] z=[5,6]
    got = [(t["x"], t["y"], t["z"]) for t in trials.grid({"z": [5, 6], "y": [3, 4], "x": [1, 2]})]
    assert got == [
        (1, 3, 5),
        (1, 3, 6),
        (1, 4, 5),
        (1, 4, 6),
        (2, 3, 5),
        (2, 3, 6),
        (2, 4, 5),
        (2, 4, 6),
    ]


def test_expand_values():
    values = {"a": "range[1:3]", "b": "[0:1]", "c": "uniform[1:2]", "d": 4, "e": "linspace[0:1:3]"}
    assert trials.expand_values(values) == {
        "a": [1, 2, 3],
        "b": "[0:1]",
        "c": "uniform[1:2]",
        "d": 4,
        "e": [0.0, 0.5, 1.0],
    }


def test_expand_values_names_the_flag_in_errors():
    with pytest.raises(InvalidArgument, match="^unknown function 'floop' used for flag lr$"):
        trials.expand_values({"x": 1, "lr": "floop[1:2]"})


# sample

GRID_8 = trials.grid({"x": [1, 2], "y": [3, 4], "z": [5, 6]})


@pytest.mark.parametrize("max_trials", [None, 8, 20])
def test_sample_keeps_a_grid_within_max(max_trials):
    assert trials.sample(GRID_8, max_trials, seed=1) == GRID_8


def test_sample_is_reproducible_and_keeps_order():
    first = trials.sample(GRID_8, 4, seed=1)
    assert first == trials.sample(GRID_8, 4, seed=1)
    assert len(first) == 4
    assert sorted(first, key=GRID_8.index) == first
    assert trials.sample(GRID_8, 4, seed=2) != first


@pytest.mark.parametrize(
    "seed,expected",
    [
        # What Guild 0.9 prints for `x=[1,2] y=[3,4] z=[5,6] --max-trials 4 --random-seed N`
        (1, [(1, 3, 5), (1, 4, 5), (2, 3, 5), (2, 4, 6)]),
        (2, [(1, 3, 5), (1, 4, 5), (2, 4, 5), (2, 4, 6)]),
    ],
)
def test_sample_picks_what_guild_picks(seed, expected):
    got = trials.sample(GRID_8, 4, seed=seed)
    assert [(t["x"], t["y"], t["z"]) for t in got] == expected


def test_sample_to_zero():
    assert trials.sample(GRID_8, 0, seed=1) == []


# random_trials


def test_random_trials_real_range():
    got = trials.random_trials({"x": "[-2.0:2.0]", "y": 2, "z": "a"}, 50, seed=1)
    assert len(got) == 50
    assert all(-2.0 <= t["x"] <= 2.0 and isinstance(t["x"], float) for t in got)
    assert all(t["y"] == 2 and t["z"] == "a" for t in got)
    assert len({t["x"] for t in got}) == 50


def test_random_trials_integer_range():
    # 0.9: integer bounds give integer samples (`x=[0:1]` -> 0 or 1)
    got = trials.random_trials({"x": "[0:1]", "n": "uniform[1:100]"}, 40, seed=3)
    assert {t["x"] for t in got} == {0, 1}
    assert all(isinstance(t["n"], int) and 1 <= t["n"] <= 100 for t in got)


def test_random_trials_loguniform():
    got = trials.random_trials({"lr": "loguniform[1e-5:1e-1]"}, 200, seed=4)
    lrs = [t["lr"] for t in got]
    assert all(1e-5 <= lr <= 1e-1 for lr in lrs)
    # Log-uniform: about half below the geometric middle 1e-3, not 1% as uniform would give.
    below = sum(lr < 1e-3 for lr in lrs)
    assert 60 < below < 140


def test_random_trials_categorical_from_lists_and_sequences():
    got = trials.random_trials({"opt": ["adam", "sgd"], "k": "range[1:3]", "x": "[0.0:1.0]"}, 60, 5)
    assert {t["opt"] for t in got} == {"adam", "sgd"}
    assert {t["k"] for t in got} == {1, 2, 3}


def test_random_trials_initial_value_first():
    got = trials.random_trials({"x": "[0:10:5]", "y": "loguniform[1.0:2.0:1.5]"}, 5, seed=6)
    assert (got[0]["x"], got[0]["y"]) == (5, 1.5)
    assert [t["y"] for t in got[1:]] != [1.5] * 4


def test_random_trials_choices():
    # 0.9: random search samples flags that have choices (unless the user set them)
    values = {"x": "[0:10]", "c": "a", "flag": False}
    got = trials.random_trials(
        values, 40, seed=7, choices={"c": ["a", "b", "c"], "flag": [False, True]}
    )
    assert {t["c"] for t in got} == {"a", "b", "c"}
    assert {t["flag"] for t in got} == {False, True}


def test_random_trials_choices_dont_replace_a_search():
    got = trials.random_trials(
        {"c": ["x"], "d": "[1:2]"}, 10, seed=1, choices={"c": ["a"], "d": [7]}
    )
    assert {t["c"] for t in got} == {"x"}
    assert {t["d"] for t in got} <= {1, 2}


def test_random_trials_reproducible():
    values = {"x": "[0.0:1.0]", "n": "[1:1000]", "c": ["a", "b", "c"]}
    assert trials.random_trials(values, 10, seed=42) == trials.random_trials(values, 10, seed=42)
    assert trials.random_trials(values, 10, seed=42) != trials.random_trials(values, 10, seed=43)


def test_random_trials_default_count():
    assert trials.DEFAULT_MAX_TRIALS == 20
    assert len(trials.random_trials({"x": "[0:1]"}, seed=1)) == 20
    assert len(trials.random_trials({"x": "[0:1]"}, None, seed=1)) == 20


def test_random_trials_empty_list_makes_none():
    assert trials.random_trials({"x": "[0:1]", "y": []}, 5, seed=1) == []


def test_random_trials_without_search_dimensions():
    # L7204: Guild's message and its hint
    with pytest.raises(InvalidArgument) as e:
        trials.random_trials({"x": 1.0, "y": 2, "z": "a"}, 5, seed=1)
    assert str(e.value) == (
        "flags for batch (x=1.0, y=2, z=a) do not contain any search dimensions\n"
        "Try specifying a range for one or more flags as NAME=[MIN:MAX]."
    )


def test_random_trials_bad_function():
    with pytest.raises(
        InvalidArgument, match="^uniform requires 2 or 3 args, got \\(1, 2, 3, 4\\) for flag x$"
    ):
        trials.random_trials({"x": "[1:2:3:4]"}, 5, seed=1)


def test_search_dims():
    dims = trials.search_dims({"a": "[1:2]", "b": "range[1:2]", "c": 3, "d": "loguniform[1:2]"})
    assert sorted(dims) == ["a", "d"]
    assert dims["d"].kind == "loguniform"


# Batch files

# The seeds' sample batch project (L5483, L5577, L5599, L5621)
BATCH_CSV = "msg,loud\nhello 1\nhello 2,yes\nhello 3\n"
BATCH_YAML = "- msg: hello 4\n- msg: hello 5\n- msg: hello 6\n  loud: yes\n"
BATCH_YML = "- msg: hello 77\n- msg: hello 88\n  loud: yes\n- msg: hello 99\n  loud: no\n"
BATCH_JSON = (
    '[\n  {"msg": "hello 7", "loud": false},\n  {"msg": "hello 8", "loud": true},\n'
    '  {"msg": "hello 9", "loud": true}\n]\n'
)

CSV_TRIALS = [{"msg": "hello 1"}, {"msg": "hello 2", "loud": True}, {"msg": "hello 3"}]
YAML_TRIALS = [{"msg": "hello 4"}, {"msg": "hello 5"}, {"msg": "hello 6", "loud": True}]
YML_TRIALS = [
    {"msg": "hello 77"},
    {"msg": "hello 88", "loud": True},
    {"msg": "hello 99", "loud": False},
]
JSON_TRIALS = [
    {"msg": "hello 7", "loud": False},
    {"msg": "hello 8", "loud": True},
    {"msg": "hello 9", "loud": True},
]


@pytest.fixture
def project(tmp_path):
    for name, text in [
        ("batch.csv", BATCH_CSV),
        ("batch.yaml", BATCH_YAML),
        ("batch.yml", BATCH_YML),
        ("batch.json", BATCH_JSON),
    ]:
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    "name,expected",
    [
        ("batch.csv", CSV_TRIALS),
        ("batch.yaml", YAML_TRIALS),
        ("batch.yml", YML_TRIALS),
        ("batch.json", JSON_TRIALS),
    ],
)
def test_read_batch_file(project, name, expected):
    assert trials.read_batch_files([name], str(project)) == expected


def test_read_batch_files_concatenate_in_order(project):
    # L5645
    got = trials.read_batch_files(["batch.csv", "batch.yaml", "batch.json"], str(project))
    assert got == CSV_TRIALS + YAML_TRIALS + JSON_TRIALS


def test_read_batch_file_absolute_and_nested(project):
    (project / "sub").mkdir()
    (project / "sub" / "b.csv").write_text("x\n1\n2\n")
    assert trials.read_batch_files(["sub/b.csv"], str(project)) == [{"x": 1}, {"x": 2}]
    assert trials.read_batch_files([str(project / "sub" / "b.csv")], "/") == [{"x": 1}, {"x": 2}]


@pytest.mark.parametrize(
    "name,text,expected",
    [
        # A single dict or row: one trial, run as a plain run by the caller (L5680-L5695)
        (
            "single-run.json",
            '{"msg": "hello 11", "loud": true}',
            [{"msg": "hello 11", "loud": True}],
        ),
        ("single-run.csv", "msg,loud\n3.1,yes\n", [{"msg": 3.1, "loud": True}]),
        ("single.yaml", "x: 1\ny: 2\n", [{"x": 1, "y": 2}]),
        # A header only: no trials, not a batch (0.9)
        ("empty.csv", "x,y\n", []),
        ("blank.csv", "", []),
        # CSV cells: decoded as flag values; an empty cell is ''; a short row leaves flags out,
        # blank lines are skipped, trailing empty cells ignored (0.9, ours)
        (
            "cells.csv",
            'x,y,z\n1e-3,1_000,2018-06-26\n~,1:30,"a,b"\n\n,2\n5,,,\n"[1,2]",\'q\'\n',
            [
                {"x": 0.001, "y": "1_000", "z": "2018-06-26"},
                {"x": None, "y": "1:30", "z": "a,b"},
                {"x": "", "y": 2},
                {"x": 5, "y": "", "z": ""},
                {"x": [1, 2], "y": "q"},
            ],
        ),
        # YAML: unquoted scalars as on a command line, quoted ones strings (ours: Guild
        # reads `1e-3` as 0.001 but `1:30` as 90 and dates as dates)
        (
            "types.yaml",
            '- x: 1e-3\n  y: 1:30\n  z: 2018-06-26\n- x: "1e-3"\n  y: ~\n  z:\n- a: [1, yes]\n  b: |\n    text\n',
            [
                {"x": 0.001, "y": "1:30", "z": "2018-06-26"},
                {"x": "1e-3", "y": None, "z": None},
                {"a": [1, True], "b": "text\n"},
            ],
        ),
        ("upper.CSV", "x\n1\n", [{"x": 1}]),
    ],
)
def test_read_batch_file_contents(tmp_path, name, text, expected):
    (tmp_path / name).write_text(text)
    assert trials.read_batch_file(name, str(tmp_path)) == expected


@pytest.mark.parametrize(
    "name,text,message",
    [
        # Guild's messages (L5702-L5723)
        ("batch.unknown", "", "cannot read trials for ./batch.unknown: unsupported extension"),
        (
            "invalid-data.json",
            "123",
            "cannot read trials for ./invalid-data.json: invalid data type for trials: "
            "expected list or dict, got int",
        ),
        (
            "invalid-item.json",
            '[{"x": 1}, 123]',
            "cannot read trials for ./invalid-item.json: invalid data type for trial 123: "
            "expected dict",
        ),
        (
            "invalid-item.yaml",
            "- [1, 2, 3]\n",
            "cannot read trials for ./invalid-item.yaml: invalid data type for trial [1, 2, 3]: "
            "expected dict",
        ),
        # 0.9
        (
            "empty.yaml",
            "",
            "cannot read trials for ./empty.yaml: invalid data type for trials: "
            "expected list or dict, got NoneType",
        ),
        # Syntax errors on one line (ours: Guild prints PyYAML's four lines)
        (
            "bad.json",
            '[{"x":1\n',
            "cannot read trials for ./bad.json: Expecting ',' delimiter: line 2 column 1 (char 8)",
        ),
        (
            "bad.yaml",
            "- x: [1\n",
            "cannot read trials for ./bad.yaml: expected ',' or ']', but got '<stream end>' "
            "(line 2, column 1)",
        ),
        # Guild ignores cells past the header (ours)
        (
            "long.csv",
            "x,y\n1,2\n6,7,8\n",
            "cannot read trials for ./long.csv: line 3 has 3 values for 2 columns",
        ),
        (
            "header.csv",
            "x,,y\n1,2,3\n",
            "cannot read trials for ./header.csv: empty column name in header",
        ),
    ],
)
def test_read_batch_file_errors(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(InvalidArgument) as e:
        trials.read_batch_files([name], str(tmp_path))
    assert str(e.value) == message


@pytest.mark.parametrize(
    "path,message",
    [
        # L5708 and 0.9
        ("doesnt-exist", "batch file ./doesnt-exist does not exist"),
        ("sub/nope.csv", "batch file ./sub/nope.csv does not exist"),
        ("./nope.csv", "batch file ./nope.csv does not exist"),
        ("/nonexistent/nope.csv", "batch file /nonexistent/nope.csv does not exist"),
    ],
)
def test_read_batch_file_missing(tmp_path, path, message):
    with pytest.raises(InvalidArgument) as e:
        trials.read_batch_files([path], str(tmp_path))
    assert str(e.value) == message


def test_read_batch_file_directory(tmp_path):
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(InvalidArgument, match="^cannot read trials for ./dir.csv: Is a directory$"):
        trials.read_batch_files(["dir.csv"], str(tmp_path))


def test_validate_batch_columns():
    got = [{"x": 1}, {"x": 2, "foo": 3}]
    trials.validate_batch_columns("trials.csv", got[:1], ["x", "y"], "train.py")
    with pytest.raises(InvalidArgument) as e:
        trials.validate_batch_columns("trials.csv", got, ["x", "y"], "train.py")
    assert str(e.value) == "batch file trials.csv: column 'foo' is not a flag of train.py"


# batch_file_trials: merging with command-line flags

DEFAULTS = {"msg": "hello", "loud": False}


def _loud_msg(got):
    return [(t["loud"], t["msg"]) for t in got]


@pytest.mark.parametrize(
    "cli,expected",
    [
        # Defaults fill what a trial lacks (L5501)
        ({}, [(False, "hello 1"), (True, "hello 2"), (False, "hello 3")]),
        # Command-line flags apply only where a trial lacks the flag: hello 2 keeps yes (L5540)
        ({"loud": True}, [(True, "hello 1"), (True, "hello 2"), (True, "hello 3")]),
        # A command-line list expands only the trials that lack the flag: 5 trials (L5558)
        (
            {"loud": [True, False]},
            [
                (True, "hello 1"),
                (False, "hello 1"),
                (True, "hello 2"),
                (True, "hello 3"),
                (False, "hello 3"),
            ],
        ),
        # The batch file sets msg everywhere: the list goes unused (L5571)
        (
            {"msg": ["hello 4", "hello 5"]},
            [(False, "hello 1"), (True, "hello 2"), (False, "hello 3")],
        ),
    ],
)
def test_batch_file_trials(cli, expected):
    assert _loud_msg(trials.batch_file_trials(CSV_TRIALS, cli, DEFAULTS)) == expected


def test_batch_file_trials_expand_lists_and_sequences_in_the_file():
    # 0.9: a list in a CSV cell expands that trial
    got = trials.batch_file_trials([{"x": [1, 2], "y": "a b"}, {"x": "range[5:6]"}], {"y": "c"}, {})
    assert got == [
        {"x": 1, "y": "a b"},
        {"x": 2, "y": "a b"},
        {"x": 5, "y": "c"},
        {"x": 6, "y": "c"},
    ]


def test_batch_file_trials_none():
    assert trials.batch_file_trials([], {"x": 1}, {}) == []


# write_csv


def test_write_csv_as_guild_saves_trials(tmp_path):
    # L5886-L5922: x=[1,2] y=[3,4] z=[5]
    dest = tmp_path / "trials.csv"
    trials.write_csv(str(dest), trials.grid({"x": [1, 2], "y": [3, 4], "z": [5]}))
    assert dest.read_text() == "x,y,z\n1,3,5\n1,4,5\n2,3,5\n2,4,5\n"


def test_write_csv_to_a_file_object():
    buf = io.StringIO()
    trials.write_csv(buf, [{"b": "hi there", "a": True}])
    assert buf.getvalue() == "a,b\nyes,hi there\n"


def test_write_csv_nothing():
    buf = io.StringIO()
    trials.write_csv(buf, [])
    assert buf.getvalue() == ""


ROUND_TRIP = [
    {
        "int": 1,
        "float": 0.1,
        "small": 1e-05,
        "big": 1.5e300,
        "neg": -2,
        "bool": True,
        "none": None,
        "str": "hello world",
        "comma": "a,b",
        "quotes": 'it\'s "quoted"',
        "num_str": "123",
        "float_str": "1e-3",
        "run_id": "67217e15",
        "yes_str": "yes",
        "empty": "",
        "newline": "two\nlines",
        "list": [1, "a", 2.5],
        "dict": {"a": 1, "b": [True, None]},
        "func": "uniform[1:2]",
        "colon": "1:30",
        "unicode": "café",
    },
    {
        "int": 0,
        "float": -3.25,
        "small": 2e-10,
        "big": math.inf,
        "neg": -0.5,
        "bool": False,
        "none": "null",
        "str": " padded ",
        "comma": ",",
        "quotes": "'",
        "num_str": "1.5",
        "float_str": "-.inf",
        "run_id": "abc",
        "yes_str": "No",
        "empty": "#hash",
        "newline": "\t",
        "list": [],
        "dict": {},
        "func": "[1:2]",
        "colon": "a: b",
        "unicode": "日本",
    },
]


def test_csv_round_trip(tmp_path):
    dest = tmp_path / "trials.csv"
    trials.write_csv(str(dest), ROUND_TRIP)
    assert trials.read_batch_files(["trials.csv"], str(tmp_path)) == ROUND_TRIP


def test_csv_round_trip_of_a_random_search(tmp_path):
    got = trials.random_trials(
        {"x": "[0.0:1.0]", "lr": "loguniform[1e-6:1e-2]", "n": "[1:9]"}, 10, 1
    )
    trials.write_csv(str(tmp_path / "t.csv"), got)
    assert trials.read_batch_files(["t.csv"], str(tmp_path)) == got
