"""Output-scalar parsing, from the cases in Guild's docs and doctests (guild-repo-docs.txt)."""

import math

import pytest

from guild_common.errors import InvalidArgument
from guild_common.scalars import (
    DEFAULT_CONFIG,
    Scalar,
    ScalarConfig,
    ScalarParser,
    compile_config,
    match_line,
    parse_output,
    replace_aliases,
)


def triples(text, config=None):
    return [(s.key, s.value, s.step) for s in parse_output(text, config)]


# default capture


def test_default_train_py_output():
    out = "step: 1\nloss: 2.345\naccuracy: 0.123\n\nstep: 2\nloss: 1.234\naccuracy: 0.456\n"
    assert triples(out) == [
        ("loss", 2.345, 1),
        ("accuracy", 0.123, 1),
        ("loss", 1.234, 2),
        ("accuracy", 0.456, 2),
    ]


def test_default_step_starts_at_zero_and_is_not_a_scalar():
    assert triples("x: 3\ny: -1\nz: 1") == [("x", 3.0, 0), ("y", -1.0, 0), ("z", 1.0, 0)]
    assert triples("step: 5") == []


def test_default_repeating_lines():
    out = "step: 1\nx: 1\nstep: 2\nx: 2\nstep: 3\nx: 3\nx: 4\n"
    assert triples(out) == [("x", 1.0, 1), ("x", 2.0, 2), ("x", 3.0, 3), ("x", 4.0, 3)]


@pytest.mark.parametrize(
    "line",
    ["bar", "foo: bar", " foo: 1", "foo bar: 1", "foo:1", "foo: 1 2", "foo: 1.2.3", "foo: "],
)
def test_default_ignores(line):
    assert triples(line) == []


@pytest.mark.parametrize(
    "line, value",
    [
        ("foo: 1.123", 1.123),
        ("foo:\t1.123", 1.123),
        ("foo: 1.123   \r\n", 1.123),
        ("val_acc: 1.1e-3", 0.0011),
        ("lr: 2E-4", 0.0002),
        ("delta: +0.5", 0.5),
        ("loss: -.5", -0.5),
        ("loss: 3.", 3.0),
        ("loss/train: 1", 1.0),
    ],
)
def test_default_values(line, value):
    assert triples(line) == [(line.split(":")[0], pytest.approx(value), 0)]


def test_default_nan_and_inf():
    [nan, inf, ninf] = parse_output("a: nan\nb: inf\nc: -Inf")
    assert math.isnan(nan.value) and inf.value == math.inf and ninf.value == -math.inf


def test_default_step_suffix_sets_step():
    # The form `runs info` prints parses back.
    assert triples("accuracy: 0.456000 (step 2)\nloss: 1 (3)") == [
        ("accuracy", 0.456, 2),
        ("loss", 1.0, 3),
    ]
    assert triples("loss: 1 (best)") == [("loss", 1.0, 0)]


def test_default_step_line_beats_its_suffix():
    assert triples("step: 3 (step 4)\nx: 1") == [("x", 1.0, 3)]


def test_default_nonfinite_step_ignored():
    assert triples("step: 2\nstep: nan\nx: 1") == [("x", 1.0, 2)]


def test_step_carries_across_feeds():
    parser = ScalarParser.for_config()
    assert parser.feed("step: 7\n") == []
    assert parser.feed("loss: 0.5\n") == [Scalar("loss", 0.5, 7)]
    assert parser.step == 7


def test_fast_path_agrees_with_generic_matching():
    lines = [
        "step: 1", "loss: 0.5", "acc: 0.25 (step 9)", "x: 1 (y)", "step: 3 (step 4)",
        "foo: bar", "a b: 1 (step 5)", "k: . (step 6)", "n: -inf", "z: 1e5", "noise",
    ]
    fast = ScalarParser(DEFAULT_CONFIG)
    generic = ScalarParser(ScalarConfig(DEFAULT_CONFIG.patterns))
    for line in lines:
        assert fast.feed(line) == generic.feed(line), line
        assert fast.step == generic.step, line


# output-scalars configs


def test_disabled():
    for config in (False, "no", []):
        assert compile_config(config).patterns == ()
        assert triples("loss: 1", config) == []


def test_default_for_none_and_true():
    assert compile_config(None) is DEFAULT_CONFIG
    assert compile_config(True) is DEFAULT_CONFIG


def test_explicit_map_train_op():
    config = {"step": r"step: (\value)", "loss": r"loss: (\value)", "accuracy": r"accuracy: (\value)"}
    out = "step: 1\nloss: 2.345\naccuracy: 0.123\nfoo: 1\nstep: 2\nloss: 1.234\n"
    assert triples(out, config) == [("loss", 2.345, 1), ("accuracy", 0.123, 1), ("loss", 1.234, 2)]


def test_generalized_pattern_train2_op():
    assert triples("loss: 2.3\nx y: 1\nacc: 0.5", r"^(\key): (\value)") == [
        ("loss", 2.3, 0),
        ("acc", 0.5, 0),
    ]


def test_typical_map_config():
    config = [{"step": r"step (\d+):", "loss": r"loss: (\S+)", "acc": r"acc: (\S+)"}]
    lines = "Training...\nstep 1:\nloss: 1.123 - acc: 0.134\nstep 2:\nloss: 0.132 - acc: 0.456"
    assert triples(lines, config) == [
        ("acc", 0.134, 1),
        ("loss", 1.123, 1),
        ("acc", 0.456, 2),
        ("loss", 0.132, 2),
    ]


EPOCH_LINES = (
    "Epoch 1: loss=1.0 s_val=2 x=3 mAP=4.123\n"
    "Epoch 2: loss=2.0 s_val=3 x=4 mAP=5.234\n"
    "Epoch 3: loss=3.0 s_val=4 x=4 mAP=6.4567890123456\n"
)
EPOCH_SCALARS = [
    ("loss", 1.0, 1), ("mAP", 4.123, 1), ("s_val", 2.0, 1), ("x", 3.0, 1),
    ("loss", 2.0, 2), ("mAP", 5.234, 2), ("s_val", 3.0, 2), ("x", 4.0, 2),
    ("loss", 3.0, 3), ("mAP", 6.4567890123456, 3), ("s_val", 4.0, 3), ("x", 4.0, 3),
]


def test_alternative_map_config_step_on_same_line():
    config = [{
        "step": r"Epoch (\S+):", "loss": r"loss=(\S+)", "s_val": r"s_val=(\S+)",
        "x": r"x=(\S+)", "mAP": r"mAP=(\S+)",
    }]
    assert triples(EPOCH_LINES, config) == EPOCH_SCALARS


def test_named_groups():
    config = [r"Epoch (?P<step>\S+): loss=(?P<loss>\S+) s_val=(?P<s_val>\S+) "
              r"x=(?P<x>\S+) mAP=(?P<mAP>\S+)"]
    assert triples(EPOCH_LINES, config) == EPOCH_SCALARS


def test_unescaped_pipe_is_regex_or():
    lines = "iter 0 | loss: 0.6\niter 1 | loss: 0.4\nTotal loss: 1.1"
    wrong = [r"iter (?P<step>\step) | loss: (?P<loss>\value)", {"score": r"Total loss: (\value)"}]
    assert triples(lines, wrong) == [
        ("loss", 0.6, 0), ("loss", 0.4, 1), ("loss", 1.1, 1), ("score", 1.1, 1),
    ]
    right = [r"iter (?P<step>\step) \| loss: (?P<loss>\value)", {"score": r"Total loss: (\value)"}]
    assert triples(lines, right) == [("loss", 0.6, 0), ("loss", 0.4, 1), ("score", 1.1, 1)]


def test_two_group_pattern_skips_non_numbers():
    lines = "loss: 1.123\nacc: 0.456\nval_acc: 1.1e-3\nfoo: bar"
    assert triples(lines, [r"(\S+):\s+([\d\.eE\-+]+)"]) == [
        ("loss", 1.123, 0), ("acc", 0.456, 0), ("val_acc", 0.0011, 0),
    ]


def test_value_before_key():
    lines = "1.123 (loss)\n0.456 (acc)\n0.567 (val_acc)"
    assert triples(lines, [r"(?P<_val>[+-]?[\d\.]+) \((?P<_key>\S+)\)"]) == [
        ("loss", 1.123, 0), ("acc", 0.456, 0), ("val_acc", 0.567, 0),
    ]


def test_multiple_matches_last_wins():
    line = "x=1 y=1 - x=2 y=2 - x=3 y=3"
    assert triples(line, [{"x": r"x=(\d+)"}]) == [("x", 3.0, 0)]
    assert triples(line, [r"(\w+)=(\d+)"]) == [("x", 3.0, 0), ("y", 3.0, 0)]
    assert triples(line, [r"x=(?P<x2>\d+)", r"y=(?P<y2>\d+)"]) == [("x2", 3.0, 0), ("y2", 3.0, 0)]


def test_optional_groups_that_do_not_match_are_skipped():
    assert triples("=1\nb=2", [r"(\w+)?=(\d+)"]) == [("b", 2.0, 0)]
    assert triples("1 ()", [r"(?P<_val>\d+) \((?P<_key>\w+)?\)"]) == []


def test_match_line_includes_step():
    patterns = compile_config({"step": r"step (\step)", "loss": r"loss (\value)"}).patterns
    assert match_line("step 3 loss 0.5\n", patterns) == {"loss": 0.5, "step": 3.0}


def test_aliases():
    assert replace_aliases(r"(\key): (\step)") == r"([^ \t]+): ([0-9]+)"
    # An escaped backslash is kept, so `\\key` means a literal backslash then "key".
    assert replace_aliases(r"a\\key") == r"a\\key"
    assert triples("nan: 1\nk: inf", r"^(\key): (\value)$") == [("nan", 1.0, 0), ("k", math.inf, 0)]


@pytest.mark.parametrize(
    "config",
    [
        {},
        123,
        [123],
        [{"loss": 1}],
        [{1: "x (\\value)"}],
        ["not allowed"],  # a string pattern needs two groups or named groups
        ["(\\value)"],
        [{"loss": "loss"}],  # a map pattern needs one group
        ["(unclosed"],
    ],
)
def test_invalid_configs(config):
    with pytest.raises(InvalidArgument, match="^invalid output scalar config: "):
        compile_config(config)


def test_empty_map_message_matches_guild():
    with pytest.raises(InvalidArgument) as e:
        compile_config({})
    assert str(e.value) == "invalid output scalar config: {}"


def test_feed_text_gives_what_feed_gives_line_by_line():
    # The daemon parses whole blocks of output at once; it must agree with the line rules.
    lines = []
    for i in range(50):
        lines += [
            f"step: {i}", f"loss: {i / 7}", "noise line", f"acc: {i}e-3", "bad: x",
            "a: 1 (step 7)", "b: 2 (foo)", "k:  -inf", " lead: 1", "x: 1.5  ", "t:\t3",
            "c: 4 (step 9) (x)", "d: 5 ()", "e: 1e5", "z:1", "f: 3 (step 2)x", "g: 1 (step 3) ",
            "h: 2 (12)", "y: 2\r", "step: 1.5", "step: nan",
        ]
    text = "\n".join(lines) + "\n"
    by_line = ScalarParser.for_config(None)
    expected = [s for line in text.split("\n") for s in by_line.feed(line)]
    block = ScalarParser.for_config(None)
    assert block.feed_text(text) == expected
    assert block.step == by_line.step


# keys that are flag names (Guild 0.9: the default capture skips them)


def test_default_capture_skips_the_runs_flag_names():
    # Guild's get-started script prints its flags (`x: 0.1`, `noise: 0.1`) before `loss:`;
    # as scalars they would duplicate the flag columns in `compare`.
    text = "x: 0.1\nnoise: 0.1\nstep: 2\nloss: 0.5\nx: 0.3 (step 4)\nacc: 1\n"
    for config in (None, True):
        parser = ScalarParser.for_config(config, flags={"x": 0.1, "noise": 0.1})
        assert [(s.key, s.value, s.step) for s in parser.feed_text(text)] == [("loss", 0.5, 2), ("acc", 1.0, 4)]
    by_line = ScalarParser.for_config(None, flags=["x", "noise"])
    assert [s.key for line in text.splitlines() for s in by_line.feed(line)] == ["loss", "acc"]


def test_configured_capture_keeps_keys_that_are_flag_names():
    # Only the default capture skips them: a pattern the user wrote asks for the key.
    parser = ScalarParser.for_config([r"(\key): (\value)"], flags=["x"])
    assert [s.key for s in parser.feed_text("x: 0.1\nloss: 2\n")] == ["x", "loss"]


def test_a_flag_named_step_still_sets_the_step():
    parser = ScalarParser.for_config(None, flags=["step"])
    assert [(s.key, s.step) for s in parser.feed_text("step: 3\nloss: 1\n")] == [("loss", 3)]
