"""A shared GPU box for end-to-end tests: throwaway Unix users, a venv every one of them can
execute, and a shared guildd that root runs from it (used by tests/e2e/test_shared_box.py).

Why a venv of its own: the interpreter the test venv is built from may sit where other users
can't execute it (pyenv under /root, mode 0700), and so may the checkout. A box's
administrator installs guildd for everyone; so does this: Debian's /usr/bin/python3, a venv
in a directory every user can reach, the project installed into it (not editable: an
editable install would point into the checkout).
"""

import json
import os
import pathlib
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import psutil

from tests.conftest import wait_for
from tests.e2e.conftest import _stop_everything

SYSTEM_PYTHON = "/usr/bin/python3"
TOOLS = ("useradd", "userdel", "groupadd", "groupdel", "setpriv")
REPO = pathlib.Path(__file__).resolve().parents[2]
# What a copy of the checkout to install from leaves out: build outputs (a stale build/ would
# be installed too) and the test venv.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
                                    ".mypy_cache", ".pytest_cache", "*.tmp")


def skip_reason() -> str | None:
    """Why this machine can't host the shared box (None when it can): real users need root,
    the user tools, and a system Python that makes venvs (Debian: python3-venv)."""
    if os.geteuid() != 0:
        return "needs root to create throwaway Unix users and run a shared guildd (CI runs as root)"
    for tool in TOOLS:
        if not shutil.which(tool):
            return f"needs {tool} (Debian: passwd / util-linux) to create users and act as them"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"needs {SYSTEM_PYTHON} to build a venv every user can execute"
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import venv, ensurepip"], capture_output=True)
    if r.returncode != 0:
        return f"{SYSTEM_PYTHON} can't make venvs (Debian: apt-get install python3-venv)"
    return None


def public_dir(prefix: str) -> pathlib.Path:
    """A fresh dir under /tmp that every user can reach (pytest's tmp dirs are 0700)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def build_venv(base: pathlib.Path) -> tuple[pathlib.Path, float]:
    """A venv under `base` that every user can execute, with the project installed from a copy
    of the checkout, and the seconds that took (pip's cache makes the dependencies quick)."""
    started = time.monotonic()
    src, venv = base / "src", base / "venv"
    shutil.copytree(REPO, src, ignore=NOT_SOURCE)
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True, capture_output=True)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(src)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"pip install of the project into {venv} failed:\n{r.stdout}\n{r.stderr}")
    return venv, time.monotonic() - started


class User:
    """A Unix user, and a way to run commands as them: their uid, gid and groups (no
    capabilities), a minimal environment, in a dir of theirs."""

    def __init__(self, name: str, venv: pathlib.Path) -> None:
        entry = pwd.getpwnam(name)
        self.name, self.uid, self.gid, self.home = name, entry.pw_uid, entry.pw_gid, entry.pw_dir
        self.groups = sorted(set(os.getgrouplist(name, entry.pw_gid)))
        self.venv = venv

    def __str__(self) -> str:
        return self.name

    def env(self, guild_home: pathlib.Path, **extra: str) -> dict[str, str]:
        return {"PATH": f"{self.venv}/bin:/usr/bin:/bin", "HOME": self.home, "GUILD_HOME": str(guild_home), **extra}

    def cmd(self, *args: str) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--", *args]

    def run(self, *args: str, env: dict[str, str], cwd: str | os.PathLike, timeout: float = 90,
            input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.cmd(*args), env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, input=input)


class Root(User):
    """root, as the box's administrator: its guildctl from the same venv."""

    def cmd(self, *args: str) -> list[str]:
        return list(args)


def add_group() -> str:
    name = f"gsg{uuid.uuid4().hex[:8]}"
    subprocess.run(["groupadd", name], check=True, capture_output=True)
    return name


def remove_group(name: str) -> None:
    subprocess.run(["groupdel", name], capture_output=True)


def add_user(venv: pathlib.Path, groups: tuple[str, ...] = ()) -> User:
    """A new user with a home dir (useradd -m), in `groups` besides their own."""
    name = f"gsu{uuid.uuid4().hex[:8]}"
    extra = ["-G", ",".join(groups)] if groups else []
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", *extra, name], check=True, capture_output=True)
    return User(name, venv)


def remove_user(user: User) -> None:
    """Ends everything the user runs (all of it started by the tests), then the user and
    their home (userdel -r)."""
    for proc in psutil.process_iter(["uids"]):
        if proc.info["uids"] and proc.info["uids"].real == user.uid:
            try:
                proc.kill()
                proc.wait(10)
            except psutil.Error:
                pass
    subprocess.run(["userdel", "-r", user.name], capture_output=True)


def project(base: pathlib.Path, user: User, files: dict[str, str], name: str = "") -> pathlib.Path:
    """A project dir of `user`'s under `base` (named `name`, default proj-USER), holding
    `files` (relative path: text)."""
    proj = base / (name or f"proj-{user.name}")
    proj.mkdir(mode=0o755)
    for rel, text in files.items():
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_text(text)
    for path in [proj, *proj.rglob("*")]:
        os.lchown(path, user.uid, user.gid)
    return proj


class SharedDaemon:
    """`guildd --shared --foreground` run by root from the venv on a fresh GUILD_HOME, and
    guildctl against it as any user."""

    def __init__(self, venv: pathlib.Path, base: pathlib.Path, options: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.venv = venv
        self.home = base / "guild-home"
        self.stderr_path = base / "guildd.stderr"
        self.root = Root("root", venv)
        daemon_env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": "/root", **(env or {})}
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [f"{venv}/bin/guildd", "--shared", "--foreground", "--no-log-stderr", "-H", str(self.home), *options],
                env=daemon_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                start_new_session=True,
            )
        # Reaped as soon as it exits: an unreaped zombie still has its pid, and `guildctl daemon
        # stop` waits for the pid to go.
        threading.Thread(target=self.proc.wait, daemon=True).start()
        wait_for(self._answers, timeout=60, what="the shared guildd to answer")

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"guildd exited {self.proc.returncode}:\n{self.stderr_path.read_text()}\n{self.log()}")
        return self.ctl(self.root, "daemon", "status").returncode == 0

    def ctl(self, user: User, *args: str, cwd: str | os.PathLike | None = None, timeout: float = 90,
            input: str | None = None, **env: str) -> subprocess.CompletedProcess:
        """guildctl ARGS as `user`, in `cwd` (default: the user's home dir)."""
        return user.run(f"{self.venv}/bin/guildctl", *args, env=user.env(self.home, **env),
                        cwd=cwd or user.home, timeout=timeout, input=input)

    def ok(self, user: User, *args: str, cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
        """guildctl ARGS as `user`, which must succeed."""
        r = self.ctl(user, *args, cwd=cwd)
        assert r.returncode == 0, f"{user}: guildctl {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def info(self, run: str, user: User | None = None) -> dict:
        return json.loads(self.ok(user or self.root, "runs", "info", run, "--json").stdout)

    def runs(self, user: User | None = None, *args: str) -> list[dict]:
        return json.loads(self.ok(user or self.root, "runs", "--all", "--json", *args).stdout)

    def run_dir(self, run_id: str) -> pathlib.Path:
        return self.home / "runs" / run_id

    def wait_status(self, run_id: str, *statuses: str, timeout: float = 60) -> dict:
        return wait_for(lambda: (i := self.info(run_id))["status"] in statuses and i, timeout=timeout,
                        what=f"run {run_id[:8]} to be {'/'.join(statuses)}")

    def log(self) -> str:
        path = self.home / "guildd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM, then wait (SIGKILL after 30 s); then whatever runs it left."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        _stop_everything(self.home)


def run_id(started: subprocess.CompletedProcess) -> str:
    """The run id `guildctl run --background` or `--stage` printed (its last 32-hex word)."""
    words = [w.strip(".:()") for w in (started.stdout + started.stderr).split()]
    ids = [w for w in words if len(w) == 32 and all(c in "0123456789abcdef" for c in w)]
    assert ids, f"no run id in:\n{started.stdout}\n{started.stderr}"
    return ids[-1]


def owners(top: pathlib.Path) -> dict[str, int]:
    """Every path under `top` (itself included, links not followed) -> its owner's uid."""
    return {str(p.relative_to(top)): p.lstat().st_uid for p in [top, *top.rglob("*")]}
