"""End-to-end fixtures: a real guildd process on a temp GUILD_HOME, driven by the real
guildctl console script."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from tests.conftest import wait_for


ROW = re.compile(
    r"^\[(?P<index>\d+):(?P<id>[0-9a-f]{8})\]\s+(?P<op>.+?)\s+(?:(?P<started>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+)?"
    r"(?P<status>running|completed|error|terminated|pending|staged)(?:\s+(?P<label>.*))?$"
)


def run_row(line):
    """A `runs` row's fields: index, id, op, started, status, label."""
    m = ROW.match(line)
    assert m, f"not a run row: {line!r}"
    return {k: v or "" for k, v in m.groupdict().items()}


class Guild:
    """A GUILD_HOME with a daemon, and a way to run guildctl against it."""

    def __init__(self, home, project, extra_env=None):
        self.home = home
        self.project = project
        self.env = {**os.environ, "GUILD_HOME": str(home), "GUILDCTL_NO_AUTOSTART": "1", **(extra_env or {})}
        self.env.pop("VIRTUAL_ENV", None)
        self.daemon = None

    def start_daemon(self, *options):
        self.daemon = subprocess.Popen(
            ["guildd", "--foreground", "--no-log-stderr", "-H", str(self.home), *options],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        wait_for(self.daemon_answers, what="guildd to answer")
        return self.daemon

    def daemon_answers(self):
        r = self.ctl("daemon", "status", check=False)
        return r.returncode == 0

    def stop(self):
        """Stops the daemon (SIGTERM, SIGKILL after 20 s) and whatever runs it left."""
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
        _stop_everything(self.home)

    def kill_daemon(self, sig=signal.SIGKILL):
        self.daemon.send_signal(sig)
        self.daemon.wait(timeout=20)

    def ctl(self, *args, check=True, timeout=60, cwd=None, env=None, input=None):
        r = subprocess.run(
            ["guildctl", *args],
            cwd=cwd or self.project,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"guildctl {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def popen(self, *args, **kw):
        return subprocess.Popen(["guildctl", *args], cwd=self.project, env=self.env, **kw)

    def runs(self):
        return json.loads(self.ctl("runs", "--json").stdout)

    def info(self, run="1"):
        return json.loads(self.ctl("runs", "info", run, "--json").stdout)

    def run_dirs(self):
        runs = self.home / "runs"
        return sorted(runs.iterdir()) if runs.exists() else []

    def wait_status(self, run_id, *statuses, timeout=30):
        return wait_for(
            lambda: self.info(run_id)["status"] in statuses and self.info(run_id),
            timeout=timeout,
            what=f"run {run_id[:8]} to be {'/'.join(statuses)}",
        )


def _stop_everything(home):
    """Kills whatever a test left running under `home` (shims and their runs)."""
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            cwd = proc.info["cwd"] or ""
            cmd = " ".join(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
        if cwd.startswith(str(home)) or (str(home) in cmd and proc.pid != os.getpid()):
            try:
                proc.kill()
            except psutil.Error:
                pass


def serve_module(tmp_path_factory, name, project=None):
    """A daemon for a whole test module (a module-scoped fixture yields from this): its home
    and projects under one temp dir, stopped with whatever it left at the end."""
    base = tmp_path_factory.mktemp(name)
    guild = Guild(base / "guild-home", project or base)
    guild.start_daemon()
    yield guild
    guild.stop()


@pytest.fixture
def proj(tmp_path):
    """An empty project dir, for a test that writes its own files (see write)."""
    p = tmp_path / "proj"
    p.mkdir()
    return p


def write(proj, files):
    """Writes {relative path: text} into a project, the text dedented."""
    for rel, text in files.items():
        path = proj / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def run(g, proj, *args, check=True, input=None):
    """`guildctl run ARGS -y` in a project."""
    return g.ctl("run", *args, "-y", cwd=proj, check=check, input=input)


@pytest.fixture
def guild(tmp_path, project):
    g = Guild(tmp_path / "guild-home", project)
    g.start_daemon()
    yield g
    g.stop()


@pytest.fixture
def guild_no_daemon(tmp_path, project):
    g = Guild(tmp_path / "guild-home", project)
    yield g
    subprocess.run(["guildctl", "-H", str(g.home), "daemon", "stop"], capture_output=True, env=g.env, timeout=30)
    _stop_everything(g.home)


PY = sys.executable


@pytest.fixture(scope="session")
def venv(request):
    """A venv every user can execute, with the project installed (as an administrator would
    install guildd), built once for every module that runs real users: test_shared_box.py,
    test_view_http.py."""
    from tests.e2e import sharedbox  # it imports this module

    reason = sharedbox.skip_reason()
    if reason:
        pytest.skip(reason)
    base = sharedbox.public_dir("guild-sharedbox-venv-")
    try:
        path, seconds = sharedbox.build_venv(base)
        plugins = request.config.pluginmanager
        reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
        if reporter and capture:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"sharedbox: built {path} (every user can run it) in {seconds:.1f}s")
        yield path
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def simulated_daemons(tmp_path, project):
    """Starts daemons on `project` whose GPUs are simulated (GUILD_SIMULATED_GPUS=setting: a spec
    such as `4x80G` or a GPUs file); each is stopped after the test."""
    started = []

    def start(setting, home=None, options=()):
        g = Guild(home or tmp_path / "guild-home", project, extra_env={"GUILD_SIMULATED_GPUS": str(setting)})
        started.append(g)
        g.start_daemon(*options)
        return g

    yield start
    for g in started:
        g.stop()
