"""In a shared daemon, runs execute as their owners: root runs `guildd --shared` from
/opt/gvenv (a venv every user can execute), alice runs guildctl with her own uid and groups.
Checked: what her run's process is, who owns its files, that the daemon's writes into her run
dir and its reads of her dependencies are made with her rights (a link she plants gets no
root write, a root-only file no root read), GPUs a run didn't ask for, and that a restarted
daemon adopts a run running as its owner.

Needs root, the account alice and /opt/gvenv; skips, saying why, without them.
"""

import json
import os
import pathlib
import pwd
import shutil
import signal
import subprocess
import tempfile

import psutil
import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import _stop_everything

VENV = pathlib.Path("/opt/gvenv")
WHO = """\
import json, os, time
secs = 0.0
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
                  "home": os.environ.get("HOME"), "user": os.environ.get("USER"),
                  "logname": os.environ.get("LOGNAME"), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}), flush=True)
time.sleep(secs)
"""
STEAL = """\
- operations:
    steal:
      main: who
      requires:
        - file: {secret}
          target-type: copy
"""


def _skip_reason() -> "str | None":
    if os.geteuid() != 0:
        return "a shared guildd runs as root"
    try:
        pwd.getpwnam("alice")
    except KeyError:
        return "needs the account alice (useradd -m alice)"
    if not os.access(VENV / "bin" / "guildd", os.X_OK):
        return f"needs {VENV}, a venv every user can execute with the project installed"
    if not shutil.which("setpriv"):
        return "needs setpriv (util-linux) to act as alice"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


class Box:
    """A shared guildd on a fresh GUILD_HOME, alice's project, and guildctl as alice."""

    def __init__(self, base: pathlib.Path, *options: str, gpus: str = "0") -> None:
        self.base = base
        self.gpus = gpus  # GUILD_SIMULATED_GPUS
        self.home = base / "home"
        self.options = options
        self.alice = pwd.getpwnam("alice")
        self.project = base / "proj"
        self.project.mkdir(mode=0o755)
        (self.project / "who.py").write_text(WHO)
        self.secret = base / "root-only.txt"
        self.secret.write_text("root's secret\n")
        self.secret.chmod(0o600)
        (self.project / "guild.yml").write_text(STEAL.format(secret=self.secret))
        self.give_alice(self.project)
        self.proc: "subprocess.Popen[bytes] | None" = None
        self.start()

    def give_alice(self, top: pathlib.Path) -> None:
        for path in [top, *top.rglob("*")]:
            os.lchown(path, self.alice.pw_uid, self.alice.pw_gid)

    def start(self) -> None:
        env = {"PATH": f"{VENV}/bin:/usr/bin:/bin", "HOME": "/root", "GUILD_SIMULATED_GPUS": self.gpus}
        self.proc = subprocess.Popen(
            [str(VENV / "bin" / "guildd"), "--shared", "--foreground", "--no-log-stderr", "-H", str(self.home), *self.options],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for(lambda: self.ctl("daemon", "status").returncode == 0, timeout=60, what="the shared guildd to answer")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def ctl(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        """guildctl ARGS as alice (her uid, gid and groups, no capabilities), in her project."""
        a = self.alice
        full_env = {"PATH": f"{VENV}/bin:/usr/bin:/bin", "HOME": "/tmp/not-alices-home", "USER": "root",
                    "GUILD_HOME": str(self.home), **env}
        cmd = ["setpriv", f"--reuid={a.pw_uid}", f"--regid={a.pw_gid}", "--init-groups", "--", f"{VENV}/bin/guildctl", *args]
        return subprocess.run(cmd, env=full_env, cwd=self.project, capture_output=True, text=True, timeout=90)

    def run_ids(self) -> list[str]:
        return sorted(os.listdir(self.home / "runs"))

    def info(self, run: str) -> dict:
        r = self.ctl("runs", "info", run, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        _stop_everything(self.home)


def _public_dir() -> pathlib.Path:
    """A temp dir alice can reach (pytest's are under a 0700 dir of root's)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="guild-owner-", dir="/tmp"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def box():
    base = _public_dir()
    b = Box(base)
    yield b
    b.stop()
    shutil.rmtree(base, ignore_errors=True)


def _who(r: subprocess.CompletedProcess) -> dict:
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no identity line in:\n{r.stdout}\n{r.stderr}"
    return json.loads(lines[-1])


def test_alices_run_executes_as_alice_and_its_files_are_hers(box):
    before = set(box.run_ids())
    # What her shell says about HOME, USER or the GPUs doesn't count: her account does.
    r = box.ctl("run", "who.py", "-y", CUDA_VISIBLE_DEVICES="0")
    assert r.returncode == 0, r.stdout + r.stderr
    a = box.alice
    groups = sorted(set(os.getgrouplist(a.pw_name, a.pw_gid)))
    assert _who(r) == {"uid": a.pw_uid, "gid": a.pw_gid, "groups": groups, "home": a.pw_dir, "user": "alice",
                       "logname": "alice", "cuda": ""}
    (run_id,) = set(box.run_ids()) - before
    run_dir = box.home / "runs" / run_id
    owners = {str(p.relative_to(run_dir)): p.lstat().st_uid for p in [run_dir, *run_dir.rglob("*")]}
    assert set(owners.values()) == {a.pw_uid}, owners
    env = (run_dir / ".guild" / "attrs" / "env").stat()
    assert (env.st_uid, env.st_mode & 0o777) == (a.pw_uid, 0o600)


def test_a_link_alice_plants_in_her_run_dir_gets_no_write_of_roots(box):
    r = box.ctl("run", "who.py", "-y")
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = box.info("1")["id"]
    attrs = box.home / "runs" / run_id / ".guild" / "attrs"
    target = box.base / "root-owned"
    target.mkdir(mode=0o755)
    # alice's move: her run dir is hers, so she may replace its attrs with a link.
    subprocess.run(["setpriv", f"--reuid={box.alice.pw_uid}", f"--regid={box.alice.pw_gid}", "--init-groups", "--",
                    "sh", "-c", f"mv {attrs} {attrs}.real && ln -s {target} {attrs}"], check=True)
    r = box.ctl("label", "--set", "pwned", run_id[:8], "-y")
    assert r.returncode != 0
    assert f"cannot write to run {run_id[:8]}" in r.stderr and "Traceback" not in r.stderr
    assert list(target.iterdir()) == []


def test_a_run_whose_owner_breaks_its_dir_still_ends_and_root_writes_nothing_there(box):
    r = box.ctl("run", "who.py", "secs=600", "-y", "--background")
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = box.info("1")["id"]
    wait_for(lambda: box.info(run_id)["status"] == "running", what="alice's run to be running")
    attrs = box.home / "runs" / run_id / ".guild" / "attrs"
    target = box.base / "root-owned-2"
    target.mkdir(mode=0o755)
    subprocess.run(["setpriv", f"--reuid={box.alice.pw_uid}", f"--regid={box.alice.pw_gid}", "--init-groups", "--",
                    "sh", "-c", f"mv {attrs} {attrs}.real && ln -s {target} {attrs}"], check=True)
    assert box.ctl("stop", run_id[:8], "-y").returncode == 0
    wait_for(lambda: box.info(run_id)["status"] == "error", what="alice's broken run to end as an error")
    assert list(target.iterdir()) == []


def test_a_run_made_from_alices_earlier_run_is_hers_too(box):
    r = box.ctl("run", "who.py", "-y")
    assert r.returncode == 0, r.stdout + r.stderr
    earlier = box.info("1")["id"]
    r = box.ctl("run", "--proto", earlier[:8], "-y")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _who(r)["uid"] == box.alice.pw_uid
    later = box.info("1")["id"]
    assert later != earlier and (box.home / "runs" / later).stat().st_uid == box.alice.pw_uid


def test_a_file_dependency_on_a_root_only_file_is_refused(box):
    r = box.ctl("run", "steal", "-y")
    assert r.returncode != 0
    assert "dependency was not met" in r.stderr and "Permission denied" in r.stderr, r.stderr
    assert "root's secret" not in r.stdout + r.stderr
    for run_id in box.run_ids():
        assert not (box.home / "runs" / run_id / box.secret.name).exists()


def test_a_root_only_file_in_alices_project_is_refused_by_her_client(box):
    link = box.project / "data.txt"
    link.symlink_to(box.secret)
    before = box.run_ids()
    try:
        r = box.ctl("run", "who.py", "-y")
    finally:
        link.unlink()
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == f"guildctl: Permission denied: {link}"
    assert box.run_ids() == before


def test_a_run_as_its_owner_is_adopted_by_a_restarted_daemon(box):
    r = box.ctl("run", "who.py", "secs=600", "-y", "--background")
    assert r.returncode == 0, r.stdout + r.stderr
    run = box.info("1")
    assert run["status"] in ("pending", "running")
    wait_for(lambda: box.info(run["id"])["status"] == "running", what="alice's run to be running")
    box.kill()
    box.start()
    assert box.info(run["id"])["status"] == "running"
    r = box.ctl("stop", run["id"][:8], "-y")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: box.info(run["id"])["status"] == "terminated", what="alice's run to be stopped")


def _as_alice(box: Box, script: str) -> None:
    a = box.alice
    subprocess.run(["setpriv", f"--reuid={a.pw_uid}", f"--regid={a.pw_gid}", "--init-groups", "--", "sh", "-c", script],
                   check=True)


def test_a_root_only_file_alice_links_as_her_output_is_not_shown_to_her(box):
    secret = box.base / "root-only-scalars.txt"
    secret.write_text("pwned: 42\nroot's scalar secret\n")
    secret.chmod(0o600)
    r = box.ctl("run", "who.py", "secs=600", "-y", "--background")
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = box.info("1")["id"]
    wait_for(lambda: box.info(run_id)["status"] == "running", what="alice's run to be running")
    output = box.home / "runs" / run_id / ".guild" / "output"
    _as_alice(box, f"ln -sf {secret} {output}.new && mv -f {output}.new {output}")
    assert box.ctl("stop", run_id[:8], "-y").returncode == 0
    wait_for(lambda: box.info(run_id)["status"] not in ("running", "pending"), what="alice's run to end")
    r = box.ctl("cat", "--output", run_id[:8])
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stdout + r.stderr
    r2 = box.ctl("cat", "-p", ".guild/output", run_id[:8])  # refused before it is opened: the link leads out
    assert r2.returncode != 0 and "outside the run directory" in r2.stderr, r2.stdout + r2.stderr
    for r in (r, r2):
        assert "pwned" not in r.stdout + r.stderr and "Traceback" not in r.stderr
    r = box.ctl("watch", run_id[:8])
    assert "cannot read the output" in r.stderr and "Permission denied" in r.stderr, r.stdout + r.stderr
    assert "pwned" not in r.stdout + r.stderr and "Traceback" not in r.stderr
    r = box.ctl("runs", "info", run_id[:8], "--json")
    assert r.returncode == 0 and "pwned" not in r.stdout, r.stdout + r.stderr
    assert secret.read_text() == "pwned: 42\nroot's scalar secret\n"


def test_pid_1_alice_writes_in_her_lock_is_not_adopted_by_a_restarted_daemon(box):
    r = box.ctl("run", "who.py", "secs=600", "-y", "--background")
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = box.info("1")["id"]
    wait_for(lambda: box.info(run_id)["status"] == "running", what="alice's run to be running")
    lock = box.home / "runs" / run_id / ".guild" / "LOCK"
    wait_for(lambda: lock.exists() and lock.read_text().strip().isdigit(), what="the run's LOCK")
    run_pid = int(lock.read_text())
    box.kill()
    # Its shim and process are gone too; what's left is her LOCK, naming init.
    shim = psutil.Process(run_pid).parent()
    assert shim is not None and "shim.py" in " ".join(shim.cmdline()), shim
    for pid in (shim.pid, run_pid):
        os.kill(pid, signal.SIGKILL)
    _as_alice(box, f"echo 1 > {lock}.new && mv -f {lock}.new {lock}")
    box.start()
    assert box.info(run_id)["status"] == "error"


def test_a_run_sees_the_gpus_it_was_granted_and_no_others():
    base = _public_dir()
    b = Box(base, gpus="2x80G")
    try:
        r = b.ctl("run", "who.py", "-y", "--gpus", "1", CUDA_VISIBLE_DEVICES="0,1")
        assert r.returncode == 0, r.stdout + r.stderr
        assert _who(r)["cuda"] in ("0", "1")
        r = b.ctl("run", "who.py", "-y", CUDA_VISIBLE_DEVICES="0,1")
        assert r.returncode == 0, r.stdout + r.stderr
        assert _who(r)["cuda"] == ""
    finally:
        b.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_unconfined_gpus_leave_a_run_what_its_caller_sees():
    base = _public_dir()
    b = Box(base, "--unconfined-gpus")
    try:
        r = b.ctl("run", "who.py", "-y", CUDA_VISIBLE_DEVICES="0")
        assert r.returncode == 0, r.stdout + r.stderr
        assert _who(r)["cuda"] == "0"
    finally:
        b.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_root_only_files_alice_links_as_attrs_are_not_shown_to_her_nor_taken_by_a_restart(box):
    secret = box.base / "root-only-attr.yml"
    secret.write_text("pwned_flag: 42\n")
    secret.chmod(0o600)
    r = box.ctl("run", "who.py", "-y")
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = box.info("1")["id"]
    attrs = box.home / "runs" / run_id / ".guild" / "attrs"
    _as_alice(box, " && ".join(f"ln -s {secret} {attrs}/{a}.new && mv -fT {attrs}/{a}.new {attrs}/{a}" for a in ("flags", "cmd", "x")))
    for args in (("runs", "info", run_id[:8], "--json"), ("runs", "--json"), ("run", "--restart", run_id[:8], "-y")):
        r = box.ctl(*args)
        assert r.returncode == 0 and "pwned" not in r.stdout + r.stderr, (args, r.stdout, r.stderr)
    assert "pwned" not in json.dumps(box.info(run_id))


def test_an_archive_only_root_may_read_is_not_listed_for_her(box):
    r = box.ctl("run", "who.py", "-y")
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = box.info("1")["id"]
    archive = box.base / "root-only-archive"
    archive.mkdir(mode=0o700)
    shutil.copytree(box.home / "runs" / run_id, archive / run_id, symlinks=True)
    for args in (("runs", "--archive", str(archive)), ("import", str(archive), "-y")):
        r = box.ctl(*args)
        assert r.returncode != 0 and "cannot read archive" in r.stderr and "Traceback" not in r.stderr, (args, r.stdout, r.stderr)
        assert run_id not in r.stdout
