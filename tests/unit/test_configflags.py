"""Config files as flags (flags-dest config:FILE and config: dependencies)."""

import json

import pytest
import yaml

from guild_common import configflags
from guild_common.errors import InvalidArgument
from guild_common.flagdef import FlagDef


def test_yaml_values_are_dotted_flags(tmp_path):
    (tmp_path / "f.yml").write_text("i: 1\nb: no\nl: [1, 2, foo]\nn:\n  a: 1.5\n  m: {}\n")
    data = configflags.load(tmp_path, "f.yml")
    assert configflags.flag_defs(data) == {
        "i": FlagDef("i", default=1),
        "b": FlagDef("b", default=False),
        "l": FlagDef("l", default="1 2 foo", arg_split=True),
        "n.a": FlagDef("n.a", default=1.5),
    }
    text = configflags.render(data, {"i": 7, "l": "3 bar", "n.a": 2, "new": "x"}, "f.yml")
    assert yaml.safe_load(text) == {"i": 7, "b": False, "l": [3, "bar"], "n": {"a": 2, "m": {}}, "new": "x"}
    assert configflags.load(tmp_path, "f.yml")["i"] == 1  # the project's file is not touched


def test_ini_sections_are_name_prefixes(tmp_path):
    (tmp_path / "f.ini").write_text("[flags]\ni = 123\nb = no\nl = 1 1.2 blue\nName = x\n[other]\nx = 2\n")
    data = configflags.load(tmp_path, "f.ini")
    assert {n: d.default for n, d in configflags.flag_defs(data).items()} == {
        "flags.i": 123, "flags.b": False, "flags.l": "1 1.2 blue", "flags.Name": "x", "other.x": 2,
    }
    text = configflags.render(data, {"flags.i": 5, "flags.b": True}, "f.ini")
    assert text == "[flags]\ni = 5\nb = True\nl = 1 1.2 blue\nName = x\n\n[other]\nx = 2\n\n"


def test_ini_default_section_keys_are_top_level_flags(tmp_path):
    # Guild's flags example (config-3): keys under [DEFAULT] are flags `i`, `s`..., not lost;
    # another section holds only its own keys, and they are written back under [DEFAULT].
    (tmp_path / "f.ini").write_text("[DEFAULT]\n\ni = 123\ns = Howdy Guild\nb = no\n[sec]\nx = 2\n")
    data = configflags.load(tmp_path, "f.ini")
    assert {n: d.default for n, d in configflags.flag_defs(data).items()} == {
        "i": 123, "s": "Howdy Guild", "b": False, "sec.x": 2,
    }
    text = configflags.render(data, {"i": 5}, "f.ini")
    assert text == "[DEFAULT]\ni = 5\ns = Howdy Guild\nb = False\n\n[sec]\nx = 2\n\n"


def test_json_is_written_compact_and_sorted(tmp_path):
    (tmp_path / "f.json").write_text('{"z": 1, "a": {"b": true}}')
    data = configflags.load(tmp_path, "f.json")
    assert json.loads(configflags.render(data, {"a.b": False}, "f.json")) == {"a": {"b": False}, "z": 1}


@pytest.mark.parametrize(
    "name, text, why",
    [
        ("nope.yml", None, "cannot find config file 'nope.yml'"),
        ("f.toml", "a = 1", "unsupported config format 'f.toml'"),
        ("f.yml", "- 1\n- 2\n", "config file 'f.yml' must contain a mapping"),
        ("f.json", "{", "cannot read config file 'f.json': "),
        ("f.ini", "no section\n", "cannot read config file 'f.ini': "),
    ],
)
def test_bad_config_files(tmp_path, name, text, why):
    if text is not None:
        (tmp_path / name).write_text(text)
    with pytest.raises(InvalidArgument) as e:
        configflags.load(tmp_path, name)
    assert str(e.value).startswith(why) and "\n" not in str(e.value)


def test_value_under_a_scalar_cannot_be_set():
    with pytest.raises(InvalidArgument, match="cannot set a.b in config file 'f.yml'"):
        configflags.render({"a": 1}, {"a.b": 2}, "f.yml")
