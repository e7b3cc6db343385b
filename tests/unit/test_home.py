"""GUILD_HOME resolution and the socket paths the daemon and client agree on."""

import os
import pathlib

import pytest

from guild_common import home


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"GUILD_HOME": "/g", "VIRTUAL_ENV": "/venv", "CONDA_PREFIX": "/conda"}, "/g"),
        ({"VIRTUAL_ENV": "/venv", "CONDA_PREFIX": "/conda"}, "/venv/.guild"),
        ({"CONDA_PREFIX": "/conda"}, "/conda/.guild"),
        ({"GUILD_HOME": "", "VIRTUAL_ENV": "/venv"}, "/venv/.guild"),
        ({"GUILD_HOME": "/g/"}, "/g"),
    ],
)
def test_guild_home_precedence(env, expected):
    assert home.guild_home(env) == pathlib.Path(expected)


def test_guild_home_default_is_user_home():
    assert home.guild_home({}) == pathlib.Path.home() / ".guild"
    assert home.guild_home({"VIRTUAL_ENV": "", "CONDA_PREFIX": ""}) == pathlib.Path.home() / ".guild"


def test_guild_home_relative_and_user_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert home.guild_home({"GUILD_HOME": "rel"}) == tmp_path / "rel"
    assert home.guild_home({"GUILD_HOME": "~/gh"}) == pathlib.Path.home() / "gh"
    assert home.guild_home({"VIRTUAL_ENV": "venv"}) == tmp_path / "venv" / ".guild"


def test_guild_home_reads_os_environ_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("GUILD_HOME", str(tmp_path / "h"))
    assert home.guild_home() == tmp_path / "h"


def test_paths_under_home(tmp_path):
    assert home.runs_dir(tmp_path) == tmp_path / "runs"
    assert home.run_dir(tmp_path, "a" * 32) == tmp_path / "runs" / ("a" * 32)
    assert home.socket_link(tmp_path) == tmp_path / "guildd.sock"


def test_socket_bind_path_short_home(tmp_path):
    assert home.socket_bind_path(tmp_path) == tmp_path / "guildd.sock"


def _long_home(base):
    path = pathlib.Path(base)
    path = path / ("d" * (150 - len(str(path)) - 1))
    assert len(str(path)) == 150
    return path


@pytest.mark.parametrize("runtime_dir", [None, "/run/user/1234"])
def test_socket_bind_path_long_home_is_short(monkeypatch, runtime_dir):
    if runtime_dir:
        monkeypatch.setenv("XDG_RUNTIME_DIR", runtime_dir)
    else:
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    long_home = _long_home("/tmp/some/project")
    path = home.socket_bind_path(long_home)
    assert len(str(path)) <= home.MAX_SOCKET_PATH
    assert len(os.fsencode(str(path))) < 108  # the kernel's sun_path, with its NUL
    assert path.name.endswith(".sock")
    if runtime_dir:
        assert path.parent == pathlib.Path(runtime_dir)
    # Stable for the same home, distinct for another one.
    assert home.socket_bind_path(long_home) == path
    assert home.socket_bind_path(_long_home("/tmp/other/project")) != path


def test_socket_bind_path_at_the_limit(tmp_path):
    # Exactly MAX_SOCKET_PATH still binds in GUILD_HOME; one more does not.
    suffix = len("/guildd.sock")
    at_limit = pathlib.Path("/" + "h" * (home.MAX_SOCKET_PATH - suffix - 1))
    assert home.socket_bind_path(at_limit) == at_limit / "guildd.sock"
    over = pathlib.Path("/" + "h" * (home.MAX_SOCKET_PATH - suffix))
    assert home.socket_bind_path(over) != over / "guildd.sock"


def test_socket_connect_path_plain(tmp_path):
    assert home.socket_connect_path(tmp_path) == tmp_path / "guildd.sock"


def test_socket_connect_path_follows_link(tmp_path):
    target = tmp_path / "run" / "guildd-abc.sock"
    target.parent.mkdir()
    gh = tmp_path / "home"
    gh.mkdir()
    (gh / "guildd.sock").symlink_to(target)
    # The link is followed even when the socket isn't there (yet).
    assert home.socket_connect_path(gh) == target


def test_daemon_files_in_home(tmp_path):
    names = {home.lock_path(tmp_path).name, home.log_path(tmp_path).name, home.index_path(tmp_path).name}
    assert home.index_path(tmp_path).parent == tmp_path
    # Guild AI's own index is index_v1.db: both tools can share one GUILD_HOME.
    assert "index_v1.db" not in names
    assert len(names) == 3
