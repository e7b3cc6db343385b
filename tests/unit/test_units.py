"""systemd/'s unit files and `guildctl daemon install-unit`: what systemd would run, checked by
systemd itself (`systemd-analyze verify`) where it is installed, and the settings a shared box
relies on."""

import configparser
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from guild_common import errors
from guildctl import cmd_daemon

ROOT = pathlib.Path(__file__).resolve().parents[2]
SYSTEM_UNIT = ROOT / "systemd" / "guildd.service"
USER_TEMPLATE = ROOT / "systemd" / "guildd-user.service"
# The system-wide install README's "Shared box" tells an administrator to make.
SHARED_GUILDD = "/opt/guildd/bin/guildd"
VENV_GUILDD = pathlib.Path(sys.executable).parent / "guildd"
GUILDCTL = pathlib.Path(sys.executable).parent / "guildctl"

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian: apt-get install systemd; .ci/run installs it)",
)


def parse(text):
    """A unit file's settings, [section][key] -> the last value (as systemd takes it)."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # keys are case-sensitive
    unit.read_string(text)
    return unit


def verify(unit_dir, name):
    """`systemd-analyze verify` of unit_dir/name: its complaints about this unit, or "" when
    systemd accepts it. A setting systemd can't parse is only a warning to it (exit 0), but a
    unit with one does not do what it says, so warnings count."""
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit_dir / name)],
                       capture_output=True, text=True, timeout=60)
    complaints = [line for line in (r.stdout + r.stderr).splitlines() if name in line]
    if r.returncode != 0 and not complaints:
        complaints = [f"exit {r.returncode}: {r.stderr.strip()}"]
    return "\n".join(complaints)


def system_unit_with(guildd, text=None):
    """The shared unit, running `guildd` instead of /opt/guildd's (verify checks it exists)."""
    text = SYSTEM_UNIT.read_text() if text is None else text
    assert f"ExecStart={SHARED_GUILDD} " in text
    return text.replace(f"ExecStart={SHARED_GUILDD} ", f"ExecStart={cmd_daemon.unit_word(str(guildd))} ")


def install_unit(tmp_path, *args, home=None):
    """`guildctl [-H home] daemon install-unit ARGS` with its own ~/.config."""
    env = {**os.environ, "HOME": str(tmp_path / "user"), "GUILDCTL_NO_AUTOSTART": "1"}
    env.pop("XDG_CONFIG_HOME", None)
    env.pop("GUILD_HOME", None)
    global_args = ["-H", str(home)] if home else []
    return subprocess.run([str(GUILDCTL), *global_args, "daemon", "install-unit", *args],
                          capture_output=True, text=True, env=env, timeout=60)


# --- the shared box's unit ------------------------------------------------------------------


def test_shared_unit_runs_one_root_daemon_for_every_user():
    service = parse(SYSTEM_UNIT.read_text())["Service"]
    command = service["ExecStart"].split()
    assert command[0] == SHARED_GUILDD
    assert {"--foreground", "--shared", "--queue-always-on"} <= set(command[1:])
    assert service.get("User", "root") == "root"
    assert service["Environment"] == "GUILD_HOME=/var/lib/guildd"
    assert (service["StateDirectory"], service["StateDirectoryMode"]) == ("guildd", "0755")
    # A GUILD_HOME too deep for a socket path binds in /run/guildd (guild_common.home).
    assert (service["RuntimeDirectory"], service["RuntimeDirectoryPreserve"]) == ("guildd", "yes")


def test_shared_unit_stops_guildd_and_leaves_the_runs_running():
    service = parse(SYSTEM_UNIT.read_text())["Service"]
    assert service["KillMode"] == "process"
    assert service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure"
    assert parse(SYSTEM_UNIT.read_text())["Install"]["WantedBy"] == "multi-user.target"


def test_shared_unit_does_not_sandbox_the_users_runs():
    service = parse(SYSTEM_UNIT.read_text())["Service"]
    sandboxing = {"ProtectHome", "PrivateTmp", "ProtectSystem", "NoNewPrivileges", "CapabilityBoundingSet",
                  "PrivateUsers", "DynamicUser"}
    assert not sandboxing & set(service)


def test_readme_installs_guildd_where_the_shared_unit_runs_it():
    readme = (ROOT / "README.md").read_text()
    assert "## Shared box" in readme
    venv = SHARED_GUILDD.removesuffix("/bin/guildd")
    assert f"python3 -m venv {venv}" in readme
    assert f"{venv}/bin/pip install" in readme


@needs_systemd_analyze
def test_systemd_accepts_the_shared_unit(tmp_path):
    (tmp_path / "guildd.service").write_text(system_unit_with(VENV_GUILDD))
    assert verify(tmp_path, "guildd.service") == ""


@needs_systemd_analyze
@pytest.mark.parametrize("breakage, complaint", [
    (lambda text: text.replace("KillMode=process", "KillMode=processes"), "kill mode"),
    (lambda text: text.replace("StateDirectory=", "StateDirectry="), "Unknown key"),
    (lambda text: text, "not executable"),  # /opt/guildd/bin/guildd isn't installed here
])
def test_systemd_refuses_a_broken_shared_unit(tmp_path, breakage, complaint):
    """The check above would catch a mistake: verify finds these."""
    text = SYSTEM_UNIT.read_text()
    if complaint != "not executable":
        text = system_unit_with(VENV_GUILDD, text)
    elif os.path.exists(SHARED_GUILDD):
        pytest.skip(f"{SHARED_GUILDD} is installed on this machine")
    (tmp_path / "guildd.service").write_text(breakage(text))
    assert complaint in verify(tmp_path, "guildd.service")


# --- the per-user unit ----------------------------------------------------------------------


def test_user_unit_runs_this_installations_guildd_for_guildctls_home(tmp_path):
    r = install_unit(tmp_path, "--print", home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    service = parse(r.stdout)["Service"]
    assert service["ExecStart"] == f"{VENV_GUILDD} --foreground"
    assert service["Environment"] == f"GUILD_HOME={tmp_path / 'home'}"
    assert service["KillMode"] == "process"
    assert not (tmp_path / "user" / ".config").exists()  # --print installs nothing


def test_user_unit_defaults_to_the_home_guildctl_defaults_to(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path / "user"), "VIRTUAL_ENV": str(tmp_path / "venv")}
    env.pop("GUILD_HOME", None)
    r = subprocess.run([str(GUILDCTL), "daemon", "install-unit", "--print"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert parse(r.stdout)["Service"]["Environment"] == f"GUILD_HOME={tmp_path / 'venv' / '.guild'}"


def test_install_unit_writes_the_users_unit_and_says_how_to_enable_it(tmp_path):
    r = install_unit(tmp_path, home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    path = tmp_path / "user" / ".config" / "systemd" / "user" / "guildd.service"
    assert path.read_text() == install_unit(tmp_path, "--print", home=tmp_path / "home").stdout
    assert str(path) in r.stdout
    assert "systemctl --user daemon-reload && systemctl --user enable --now guildd" in r.stdout
    again = install_unit(tmp_path, home=tmp_path / "home")
    assert again.returncode == 0 and "already installed" in again.stdout


def test_install_unit_refuses_to_replace_a_different_unit_unless_forced(tmp_path):
    assert install_unit(tmp_path, home=tmp_path / "one").returncode == 0
    path = tmp_path / "user" / ".config" / "systemd" / "user" / "guildd.service"
    r = install_unit(tmp_path, home=tmp_path / "two")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and str(path) in r.stderr and "--force" in r.stderr
    assert f"GUILD_HOME={tmp_path / 'one'}" in path.read_text()
    assert install_unit(tmp_path, "--force", home=tmp_path / "two").returncode == 0
    assert f"GUILD_HOME={tmp_path / 'two'}" in path.read_text()


def test_user_template_is_what_install_unit_writes():
    rendered = cmd_daemon.USER_UNIT.format(environment="GUILD_HOME=%h/.guild", guildd="%h/.local/bin/guildd")
    assert USER_TEMPLATE.read_text().endswith(rendered)


@pytest.mark.parametrize("value, word", [
    ("/home/al/venv/bin/guildd", "/home/al/venv/bin/guildd"),
    ("/home/al/my venv/bin/guildd", '"/home/al/my venv/bin/guildd"'),
    ("/home/al/100%/bin/guildd", "/home/al/100%%/bin/guildd"),
    ("GUILD_HOME=/home/al/$x", "GUILD_HOME=/home/al/$x"),
    ('GUILD_HOME=/home/al/say "hi"\\', '"GUILD_HOME=/home/al/say \\"hi\\"\\\\"'),
    ("GUILD_HOME=/home/al/it's", "\"GUILD_HOME=/home/al/it's\""),
])
def test_unit_word(value, word):
    assert cmd_daemon.unit_word(value) == word


def test_unit_word_refuses_a_newline():
    with pytest.raises(errors.InvalidArgument, match="newline"):
        cmd_daemon.unit_word("/home/al/a\nb")


@needs_systemd_analyze
def test_systemd_accepts_the_user_unit(tmp_path):
    r = install_unit(tmp_path, "--print", home=tmp_path / "home")
    (tmp_path / "guildd.service").write_text(r.stdout)
    assert verify(tmp_path, "guildd.service") == ""


@needs_systemd_analyze
def test_systemd_runs_the_guildd_named_in_an_awkward_path(tmp_path):
    """Quoting holds: systemd finds a guildd whose path has spaces, a % and a $."""
    odd = tmp_path / "my 100% $venv" / "bin"
    odd.mkdir(parents=True)
    (odd / "guildd").symlink_to(VENV_GUILDD)
    unit = cmd_daemon.user_unit(odd / "guildd", tmp_path / "a home")
    (tmp_path / "guildd.service").write_text(unit)
    assert verify(tmp_path, "guildd.service") == ""
    assert re.search(r'^ExecStart="[^"]+/my 100%% \$venv/bin/guildd" --foreground$', unit, re.M)


@pytest.mark.parametrize("folder", ['my "venv"', "al's venv", "back\\slash"])
def test_user_unit_refuses_a_guildd_path_systemd_cannot_run(tmp_path, folder):
    with pytest.raises(errors.InvalidArgument, match="quotes and backslashes"):
        cmd_daemon.user_unit(tmp_path / folder / "bin" / "guildd", tmp_path / "home")
