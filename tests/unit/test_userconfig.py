"""Guild's user config (guild-config.yml): where it is found, and its diff command."""

import pytest

from guild_common import userconfig
from guild_common.errors import InvalidArgument


def test_config_path_is_looked_up_as_guild_does(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cwd = tmp_path / "proj"
    cwd.mkdir()
    assert userconfig.config_path({}, str(cwd)) == tmp_path / "home" / ".guild" / "config.yml"
    (cwd / "guild-config.yml").write_text("")
    assert userconfig.config_path({}, str(cwd)) == cwd / "guild-config.yml"
    # $GUILD_CONFIG first; GUILD_HOME plays no part.
    env = {"GUILD_CONFIG": str(tmp_path / "c.yml"), "GUILD_HOME": str(tmp_path / "gh")}
    assert userconfig.config_path(env, str(cwd)) == tmp_path / "c.yml"


@pytest.mark.parametrize(
    "text, path, expected",
    [
        ("", "", None),
        ("diff: {}\n", "", None),
        ("diff:\n  command: meld\n", "/r/a.txt", "meld"),
        ("diff:\n  command:\n    default: meld\n    .ipynb: nbdiff\n", "/r/a.ipynb", "nbdiff"),
        ("diff:\n  command:\n    default: meld\n    .ipynb: nbdiff\n", "/r/a.txt", "meld"),
        ("diff:\n  command:\n    default: meld\n    '\\.js.*': jd\n", "/r/a.json", "jd"),
        ("diff:\n  command:\n    default: meld\n    '\\.js.*': jd\n", "/runs/abc", "meld"),
        ("diff:\n  command:\n    .txt: t\n", "/r/a.py", None),
    ],
)
def test_diff_command(tmp_path, text, path, expected):
    cfg = tmp_path / "c.yml"
    cfg.write_text(text)
    assert userconfig.command_for(userconfig.diff_commands(cfg), path) == expected


def test_no_config_file_is_no_config(tmp_path):
    assert userconfig.diff_commands(tmp_path / "missing.yml") == {}


@pytest.mark.parametrize("text", ["diff: [\n", "- a\n", "diff:\n  command: [1]\n", "diff:\n  command:\n    .txt: [x]\n"])
def test_a_bad_config_is_one_clear_error(tmp_path, text):
    cfg = tmp_path / "c.yml"
    cfg.write_text(text)
    with pytest.raises(InvalidArgument, match=f"^invalid user config {cfg}: "):
        userconfig.diff_commands(cfg)
