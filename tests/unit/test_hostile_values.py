"""Inputs the fuzz suite (tests/fuzz) found crashing the pure parsers, kept as table tests:
each gives a value or one clear InvalidArgument, never another exception."""

import datetime

import pytest

from guild_common import errors, flagfuncs, flags, guildfile, guildfile_data, paths, rundir, runfilter, timerange, trials
from guild_common.flagdef import FlagDef

REF = datetime.datetime(2026, 12, 4, 12, 0)

REFUSED = {
    "a flag value nested 5,000 deep": (flags.decode_flag_value, ("[" * 5000,), "nested too deeply"),
    "a flag value of mappings nested 500 deep": (flags.decode_flag_value, ("{a: " * 500 + "1" + "}" * 500,), "nested"),
    "a guild file's min that is no number": (flags.coerce_flag_value, (3, FlagDef(name="x", min="")), "invalid min '' for flag 'x'"),
    "a float flag given an int past a float's range": (flags.coerce_flag_value, (10**400, FlagDef(name="x", type="float")),
                                                       "invalid value .* for flag 'x'"),
    "range past what a float holds": (flagfuncs.expand, ("range[" + "9" * 400 + "]", "x"), "too large"),
    "range over more values than a float counts": (flagfuncs.expand, ("range[-1e308:1e308]", "x"), "too many values"),
    "a Guild file with a 5,000-digit number": (guildfile_data.read_yaml, ("g.yml", "x: " + "9" * 5000), "a number too large"),
    "a Guild file nested 5,000 deep": (guildfile_data.read_yaml, ("g.yml", "[" * 5000), "nested too deeply"),
    "a path with a name over 255 bytes": (paths.relative, ("a" * 256,), "is too long"),
    "a path over 4,096 bytes": (paths.relative, ("x/" * 2100,), "is too long"),
}


@pytest.mark.parametrize("fn, args, message", REFUSED.values(), ids=REFUSED.keys())
def test_refused_with_one_clear_error(fn, args, message):
    with pytest.raises(errors.InvalidArgument, match=message):
        fn(*args)


def test_a_yaml_value_that_holds_itself_is_text():
    assert flags.decode_flag_value("&a [*a]") == "&a [*a]"


def test_a_filter_number_of_5000_digits_is_a_number():
    flt = runfilter.parse_filter("x < " + "9" * 5000)
    assert flt.matches(type("Row", (), {"attrs": {}, "flags": {"x": 1}, "scalars": {}})())


def test_a_time_range_of_5000_digits_is_out_of_range():
    with pytest.raises(errors.InvalidArgument, match="invalid time range"):
        timerange.parse("9" * 5000 + " days ago", REF)


def test_a_csv_batch_file_with_a_huge_cell(tmp_path):
    (tmp_path / "t.csv").write_text("x\n" + "a" * 200_000 + "\n")
    with pytest.raises(errors.InvalidArgument, match="cannot read trials for ./t.csv: field larger than field limit"):
        trials.read_batch_file("t.csv", str(tmp_path))


@pytest.mark.parametrize("text, value", [("²", "²"), ("9" * 5000, None), ("-12", -12), ("12abc", "12abc")])
def test_attr_values_that_are_not_plain_ints(text, value):
    # An attrs file edited by hand: '²' passes str.isdigit() but not int().
    assert rundir.parse_attr(text) == value


def test_including_a_file_that_is_not_a_guild_file_shows_only_an_excerpt(tmp_path):
    (tmp_path / "secret").write_text("top-secret-line " * 100)
    (tmp_path / "guild.yml").write_text(f"- include: {tmp_path / 'secret'}\n")
    with pytest.raises(errors.InvalidArgument) as e:
        guildfile.for_dir(str(tmp_path))
    assert str(e.value).startswith(f"error in {tmp_path / 'secret'}: invalid guildfile data 'top-secret-line top-secret")
    assert str(e.value).count("top-secret") <= 3
