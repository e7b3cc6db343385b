"""Another local user can't take over a user's daemon socket: two real Unix users (a victim
who runs guildd and guildctl, an attacker who plants directories, links and a fake server),
with a GUILD_HOME too long for a socket path and no XDG_RUNTIME_DIR, so the socket falls back
to /tmp/guildd-<uid>."""

import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid

import psutil
import pytest

from guild_common import home as homelib
from tests.conftest import wait_for

GUILDCTL = shutil.which("guildctl")
GUILDD = shutil.which("guildd")

# An attacker's stand-in for guildd: accepts connections one at a time and records each one's
# bytes, so a test can tell whether a client connected or sent anything.
FAKE_SERVER = """\
import os, socket, sys
path, record = sys.argv[1:]
def note(line):
    with open(record, "a") as f:
        f.write(line + "\\n")
s = socket.socket(socket.AF_UNIX)
s.bind(path)
os.chmod(path, 0o777)
s.listen(16)
note("ready")
while True:
    conn, _ = s.accept()
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    conn.close()
    note(f"connection {data[:64]!r}")
"""

SENTINEL = b"sentinel"


class User:
    """A throwaway Unix user, and a way to run commands as them."""

    def __init__(self, name, wrap):
        entry = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, entry.pw_uid, entry.pw_gid
        self._wrap = wrap

    def cmd(self, *args):
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", *self._wrap, "--", *args]

    def run(self, *args, env, cwd=None, timeout=90):
        return subprocess.run(self.cmd(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)

    def popen(self, *args, env, **kw):
        return subprocess.Popen(self.cmd(*args), env=env, stdin=subprocess.DEVNULL, start_new_session=True, **kw)

    @property
    def runtime_dir(self):
        return pathlib.Path(f"/tmp/guildd-{self.uid}")


def _add_user():
    name = f"gdt{uuid.uuid4().hex[:10]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
    return name


def _clear(uid):
    """Ends what a throwaway user runs (all of it started by these tests: guildd, its shims,
    fake servers) and removes their /tmp/guildd-<uid> (the uid may be given out again)."""
    for proc in psutil.process_iter(["uids"]):
        if proc.info["uids"] and proc.info["uids"].real == uid:
            try:
                proc.kill()
                proc.wait(10)
            except psutil.Error:
                pass
    shutil.rmtree(f"/tmp/guildd-{uid}", ignore_errors=True)


def _remove_user(name):
    _clear(pwd.getpwnam(name).pw_uid)
    subprocess.run(["userdel", name], capture_output=True)


def _wrap_for(name):
    """setpriv's extra options that let `name` run the venv's python, or None if it can't.
    A venv's interpreter often sits under a private directory (pyenv under /root): then the
    user gets CAP_DAC_READ_SEARCH, which lets it read and search there and changes nothing
    these tests check (ownership, modes, who can write a directory or connect to a socket)."""
    probe = "import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', 'import guildd, guildctl']))"
    for wrap in ([], ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]):
        r = User(name, wrap).run(sys.executable, "-c", probe, env={"PATH": "/usr/bin:/bin"}, cwd="/")
        if r.returncode == 0:
            return wrap
    return None


@pytest.fixture(scope="module")
def users():
    if os.geteuid() != 0:
        pytest.skip("needs root to create two throwaway Unix users (CI runs as root)")
    for tool in ("useradd", "userdel", "setpriv"):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool} to create throwaway users and run commands as them")
    names = []
    try:
        names.append(_add_user())
        names.append(_add_user())
        wrap = _wrap_for(names[0])
        if wrap is None:
            pytest.skip(f"another user can't run {sys.executable} (nor with CAP_DAC_READ_SEARCH)")
        victim, attacker = User(names[0], wrap), User(names[1], wrap)
        yield victim, attacker
    finally:
        for name in names:
            _remove_user(name)


class Box:
    """A base dir both users can reach: the victim's long GUILD_HOME and project, and the
    attacker's own dir."""

    def __init__(self, base, victim, attacker):
        self.victim, self.attacker = victim, attacker
        self.victim_dir = base / "victim"
        self.home = self.victim_dir / ("long-guild-home-" * 6) / "guild-home"
        self.project = self.victim_dir / "proj"
        self.attacker_dir = base / "attacker"
        self.record = self.attacker_dir / "record.txt"
        assert len(str(homelib.socket_link(self.home))) > homelib.MAX_SOCKET_PATH
        for path in (self.home, self.project):
            path.mkdir(parents=True)
        (self.project / "train.py").write_text("x = 0.1\nprint('loss: %f' % x)\n")
        self.attacker_dir.mkdir()
        self.chown(self.victim_dir, victim)
        self.chown(self.attacker_dir, attacker)
        self.env = {
            "PATH": f"{pathlib.Path(GUILDCTL).parent}:/usr/bin:/bin",
            "HOME": str(self.victim_dir),
            "GUILD_HOME": str(self.home),
        }

    @staticmethod
    def chown(top, user):
        for path in [top, *top.rglob("*")]:
            os.lchown(path, user.uid, user.gid)

    def ctl(self, *args):
        return self.victim.run(GUILDCTL, *args, env=self.env, cwd=self.project)

    def start_fake_server(self, path):
        """The attacker listens on `path`, recording every connection."""
        script = self.attacker_dir / "fake.py"
        script.write_text(FAKE_SERVER)
        self.chown(script, self.attacker)
        self.attacker.popen(sys.executable, str(script), str(path), str(self.record), env={"PATH": "/usr/bin:/bin"})
        wait_for(lambda: self.record.exists() and "ready" in self.record.read_text(), what="the fake server")

    def fake_server_connections(self, path):
        """What the fake server received, up to a sentinel connection of ours: it takes
        connections in order, so one made before ours is recorded before it."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            s.sendall(SENTINEL)
        wait_for(lambda: repr(SENTINEL) in self.record.read_text(), what="the fake server to record our sentinel")
        lines = self.record.read_text().splitlines()
        return [line for line in lines[1:] if repr(SENTINEL) not in line]


@pytest.fixture
def box(users):
    victim, attacker = users
    base = pathlib.Path(tempfile.mkdtemp(prefix="guild-owner-", dir="/tmp"))
    base.chmod(0o755)  # pytest's tmp_path is 0700: other users can't reach it
    try:
        yield Box(base, victim, attacker)
    finally:
        for user in users:
            _clear(user.uid)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("mode", [0o777, 0o755])
def test_guildd_refuses_a_socket_dir_another_user_made(box, mode):
    victim, attacker = box.victim, box.attacker
    r = attacker.run("mkdir", "-m", oct(mode)[2:], str(victim.runtime_dir), env={"PATH": "/usr/bin:/bin"}, cwd="/")
    assert r.returncode == 0, r.stderr

    r = victim.run(GUILDD, "--foreground", "--no-log-stderr", "-H", str(box.home), env=box.env, cwd="/", timeout=30)
    assert r.returncode == 4  # PermissionDenied
    assert r.stderr.count("\n") == 1, r.stderr
    reason = f"refusing socket directory {victim.runtime_dir}: it is owned by {attacker.name} (uid {attacker.uid})"
    assert r.stderr.startswith(f"guildd: {reason}")
    assert reason in homelib.log_path(box.home).read_text()

    # Through guildctl's autostart: the same reason, on the error's one line.
    r = box.ctl("run", "train.py", "-y")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert reason in r.stderr.strip().splitlines()[-1]

    assert list(victim.runtime_dir.iterdir()) == []  # no socket for the attacker to take over
    assert not os.path.lexists(homelib.socket_link(box.home))


def _plant_link_by_attacker(box):
    fake = box.attacker_dir / "guildd.sock"
    box.start_fake_server(fake)
    link = homelib.socket_link(box.home)
    link.symlink_to(fake)
    os.lchown(link, box.attacker.uid, box.attacker.gid)  # as if the attacker had planted it
    return fake, str(link)


def _plant_link_to_attacker_socket(box):
    # The victim's own (stale) link, pointing where the attacker now listens.
    fake = box.attacker_dir / "guildd.sock"
    box.start_fake_server(fake)
    link = homelib.socket_link(box.home)
    link.symlink_to(fake)
    os.lchown(link, box.victim.uid, box.victim.gid)
    return fake, str(box.attacker_dir)


def _replace_dir_after_start(box):
    r = box.ctl("daemon", "start")
    assert r.returncode == 0, r.stderr
    bind = pathlib.Path(os.readlink(homelib.socket_link(box.home)))
    assert bind.parent == box.victim.runtime_dir
    # Root stands in for what a /tmp without its sticky bit (or a tmp cleaner) lets anyone do.
    box.victim.runtime_dir.rename(box.victim_dir / "moved-runtime-dir")
    r = box.attacker.run("mkdir", "-m", "777", str(bind.parent), env={"PATH": "/usr/bin:/bin"}, cwd="/")
    assert r.returncode == 0, r.stderr
    box.start_fake_server(bind)
    return bind, str(bind.parent)


@pytest.mark.parametrize(
    "plant", [_plant_link_by_attacker, _plant_link_to_attacker_socket, _replace_dir_after_start]
)
def test_guildctl_sends_nothing_to_a_socket_another_user_owns(box, plant):
    fake, named = plant(box)
    r = box.ctl("run", "train.py", "-y")
    assert box.fake_server_connections(fake) == []
    assert r.returncode == 4  # PermissionDenied
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    line = r.stderr.strip()
    assert line.startswith("guildctl: refusing to connect to guildd: ")
    assert named in line and f"owned by {box.attacker.name} (uid {box.attacker.uid})" in line



def test_another_users_daemon_is_named_not_reported_missing(box):
    # A GUILD_HOME that root's per-user daemon serves: another user is told whose daemon it
    # is (and how a box serves everyone), not that none runs, and no daemon of theirs is tried.
    home = box.victim_dir.parent / "root-home"
    home.mkdir(mode=0o755)
    env = {"PATH": box.env["PATH"], "HOME": str(home)}
    daemon = subprocess.Popen([GUILDD, "--foreground", "--no-log-stderr", "-H", str(home)], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: homelib.socket_link(home).exists(), what="root's guildd")
        for args in (("daemon", "status"), ("runs",)):
            r = box.victim.run(GUILDCTL, *args, env=dict(box.env, GUILD_HOME=str(home)), cwd="/")
            assert r.returncode != 0, args
            assert f"guildd for {home} is the per-user daemon of root (uid 0)" in r.stderr, (args, r.stderr)
            assert "guildd --shared" in r.stderr
            assert "not running" not in r.stdout + r.stderr and "starting guildd" not in r.stderr
    finally:
        daemon.terminate()
        daemon.wait(30)


def test_a_socket_that_refuses_its_own_user_says_why(box):
    # The user's own daemon runs, but its socket refuses them (permission denied): every
    # command says so, with the way out, never that guildd is not running or a new one starts.
    # (A socket directory closed to its user can't be shown here: these users may search
    # every directory, to reach the venv; guildctl.client.refusal_text's unit test has it.)
    r = box.ctl("daemon", "start")
    assert r.returncode == 0, r.stderr
    bind = pathlib.Path(os.readlink(homelib.socket_link(box.home)))
    bind.chmod(0o000)
    for args in (("runs",), ("daemon", "status")):
        r = box.ctl(*args)
        assert r.returncode == 4, (args, r.stderr)  # PermissionDenied
        assert r.stderr == (f"guildctl: cannot connect to guildd for {box.home} at {bind}: permission denied (the socket "
                            f"is yours but its mode is 0000; 'chmod 600 {bind}' restores it)\n"), args
        assert "not running" not in r.stdout
    bind.chmod(0o600)
    assert box.ctl("runs").returncode == 0
