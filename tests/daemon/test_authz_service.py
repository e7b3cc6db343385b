"""Who may change what, in-process: a shared guildd on its own loop thread with a temp
GUILD_HOME, called through guildctl's Client as several local users. Each user's token comes
from the daemon's real handshake, made by a process running as that user (the kernel's
SO_PEERCRED names them); a run dir chowned to its owner stands for a run they started.
Refusals change nothing, and every change (or refused change) leaves an audit line."""

import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import threading

import pytest

from guild_common import errors, home as homelib
from guild_common.handshake import METADATA_KEY
from guild_common.pb import guild_pb2 as pb
from guildctl.client import Client
from guildd import server
from guildd.daemon import Options
from tests.daemon.test_service import ended, spec

SYSTEM_PYTHON = "/usr/bin/python3"  # the handshake, as another user: a Python every user can run
HANDSHAKE = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
    "s.connect(sys.argv[1])\n"
    "print(s.makefile().readline().strip())\n"
)


def _skip_reason():
    if os.geteuid() != 0:
        return "needs root: a shared daemon, tokens for other users, run dirs chowned to them"
    for name in ("alice", "bob"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            return f"needs the local user {name} (useradd -m {name})"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"needs {SYSTEM_PYTHON} to do the handshake as another user"
    return None


def _serve(home, options):
    ready = threading.Event()
    thread = threading.Thread(
        target=server.serve, args=(home,),
        kwargs={"handle_signals": False, "log_to_stderr": False, "ready": ready.set, "options": options},
    )
    thread.start()
    assert ready.wait(20)
    return thread


class Users:
    """Clients of one shared daemon, one per local user, each with the token the daemon gave
    that user."""

    def __init__(self, home):
        self.home = home
        self.root = Client(home, autostart=False)
        self.root.uid = 0
        self.alice = self._as("alice")
        self.bob = self._as("bob")

    def _as(self, name):
        entry = pwd.getpwnam(name)
        auth = homelib.auth_socket_path(homelib.socket_connect_path(self.home))
        r = subprocess.run([SYSTEM_PYTHON, "-c", HANDSHAKE, str(auth)], user=entry.pw_uid, group=entry.pw_gid,
                           extra_groups=[], capture_output=True, text=True, timeout=30, cwd="/")
        token = r.stdout.strip()
        assert r.returncode == 0 and token and not token.startswith("!"), r
        client = Client(self.home, autostart=False)
        client._metadata = ((METADATA_KEY, token),)  # this client now speaks for `name`
        client.uid = entry.pw_uid
        return client

    def audit(self):
        return [line for line in homelib.log_path(self.home).read_text().splitlines() if "[guildd.audit]" in line]


@pytest.fixture
def users():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    base = pathlib.Path(tempfile.mkdtemp(prefix="guild-authz-", dir="/tmp"))  # pytest's tmp dirs are 0700
    base.chmod(0o755)
    home = base / "home"
    thread = _serve(home, Options(shared=True))
    u = Users(home)
    try:
        yield u
    finally:
        u.root.shutdown_daemon()
        thread.join(20)
        shutil.rmtree(base, ignore_errors=True)
    assert not thread.is_alive()


def _staged(users, tmp_path, owner):
    """A staged run of `owner`'s: started by their client, its run dir theirs."""
    run = owner.start_run(spec(tmp_path, "print('x')\n"), stage=True)
    os.chown(homelib.run_dir(users.home, run.id), owner.uid, -1)
    return run


def _state(users, run_id):
    rec = users.root.get_run(run_id)
    return rec.status, rec.label, rec.marked, homelib.run_dir(users.home, run_id).is_dir()


def _sel(*run_ids):
    return pb.RunSelection(runs=list(run_ids))


REFUSED = {
    "stop": (lambda c, r: c.stop_runs([r]), "stop"),
    "label": (lambda c, r: c.label_runs(_sel(r), pb.LABEL_SET, "bob was here"), "label"),
    "tag": (lambda c, r: c.label_runs(_sel(r), pb.LABEL_PREPEND, "bobs"), "label"),
    "mark": (lambda c, r: c.mark_runs(_sel(r)), "mark"),
    "delete": (lambda c, r: c.delete_runs(_sel(r)), "delete"),
    "delete-permanently": (lambda c, r: c.delete_runs(_sel(r), permanent=True), "delete"),
    "restart": (lambda c, r: c.restart_run(run=r), "restart"),
    "start": (lambda c, r: c.start_staged(run=r), "start"),
    "priority": (lambda c, r: c.set_queue_priority([r], 5), "set the priority of"),
    "cancel": (lambda c, r: c.cancel_queued([r]), "cancel"),
    "export-move": (lambda c, r: c.export_runs(_sel(r), "/tmp/guild-authz-never-written", move=True), "move"),
}


@pytest.mark.parametrize("what", REFUSED)
def test_another_users_run_is_refused_and_left_unchanged(users, tmp_path, what):
    call, verb = REFUSED[what]
    run = _staged(users, tmp_path, users.alice)
    before = _state(users, run.id)
    with pytest.raises(errors.PermissionDenied) as e:
        call(users.bob, run.id)
    assert str(e.value) == f"cannot {verb} run {run.id[:8]}: it belongs to alice (uid {users.alice.uid})"
    assert e.value.exit_code == 4  # not 1, "not found"'s
    assert _state(users, run.id) == before
    assert users.bob.daemon_info().user == "bob"  # and the daemon serves on
    line = users.audit()[-1]
    assert f"bob (uid {users.bob.uid})" in line and f"-> refused: cannot {verb} run {run.id[:8]}" in line


@pytest.mark.parametrize("what, verb", [("restore", "restore"), ("purge", "purge")])
def test_another_users_deleted_run_stays_in_the_trash(users, tmp_path, what, verb):
    run = _staged(users, tmp_path, users.alice)
    users.alice.delete_runs(_sel(run.id))
    trashed = pb.RunSelection(runs=[run.id], filter=pb.RunFilter(deleted=True))
    with pytest.raises(errors.PermissionDenied, match=f"^cannot {verb} run {run.id[:8]}: it belongs to alice"):
        getattr(users.bob, f"{what}_runs")(trashed)
    assert [r.id for r in users.root.list_runs(run_filter=pb.RunFilter(deleted=True))[0]] == [run.id]
    assert [r.id for r in users.alice.restore_runs(trashed)] == [run.id]


def test_the_owner_and_an_admin_may_change_it_and_each_change_is_audited(users, tmp_path):
    run = _staged(users, tmp_path, users.alice)
    for who, client in (("alice", users.alice), ("root", users.root)):
        [labeled] = client.label_runs(_sel(run.id), pb.LABEL_SET, f"by {who}")
        assert labeled.label == f"by {who}"
        line = users.audit()[-1]
        assert line.endswith(f"LabelRuns runs '{run.id}' set 'by {who}' -> ok: {run.id}"), line
        assert f"] {who} (uid {client.uid}) LabelRuns" in line
    [stopped] = users.alice.stop_runs([run.id])
    assert stopped.status == "terminated"


def test_a_selection_with_one_run_not_yours_changes_none_of_them(users, tmp_path):
    alices = _staged(users, tmp_path, users.alice)
    bobs = _staged(users, tmp_path, users.bob)
    with pytest.raises(errors.PermissionDenied) as e:
        users.bob.delete_runs(_sel(bobs.id, alices.id))
    assert str(e.value) == (f"cannot delete run {alices.id[:8]}: it belongs to alice (uid {users.alice.uid}); "
                            f"none of the 2 runs selected was changed")
    assert homelib.run_dir(users.home, bobs.id).is_dir() and homelib.run_dir(users.home, alices.id).is_dir()
    assert {r.id for r in users.root.list_runs()[0]} == {alices.id, bobs.id}
    # With only their own run selected, it is done.
    assert [r.id for r in users.bob.delete_runs(_sel(bobs.id))] == [bobs.id]


def test_the_run_dirs_owner_decides_not_the_user_it_records(users, tmp_path):
    run = _staged(users, tmp_path, users.alice)
    (homelib.run_dir(users.home, run.id) / ".guild" / "attrs" / "user").write_text("bob\n")
    with pytest.raises(errors.PermissionDenied, match=f"it belongs to alice \\(uid {users.alice.uid}\\)$"):
        users.bob.label_runs(_sel(run.id), pb.LABEL_SET, "mine now")


def test_everyone_may_read_every_run(users, tmp_path):
    run = _staged(users, tmp_path, users.alice)
    audited = len(users.audit())
    assert users.bob.get_run(run.id).id == run.id
    assert [r.id for r in users.bob.list_runs()[0]] == [run.id]
    assert users.bob.list_queue() is not None
    assert len(users.audit()) == audited  # reads leave no audit line


def test_a_runs_environment_is_shown_to_its_owner_and_admins_only(users, tmp_path):
    run = users.alice.start_run(spec(tmp_path, "print('x')\n"))  # its env is recorded as it starts
    ended(users.alice, run.id)  # whether her process could run here or not
    assert users.alice.get_run(run.id).env, "the owner sees the run's recorded environment"
    assert users.root.get_run(run.id).env, "an administrator does too"
    seen = users.bob.get_run(run.id)
    assert seen.id == run.id and not seen.env  # the run, but not the secrets its environment may hold


def test_queue_settings_and_shutdown_need_an_administrator(users):
    paused = users.root.list_queue().paused
    for call in (lambda c: c.configure_queue(paused=not paused), lambda c: c.configure_queue(user_gpu_cap=1)):
        with pytest.raises(errors.PermissionDenied, match="^cannot change queue settings: that needs an administrator \\(root\\)$"):
            call(users.alice)
    assert users.root.list_queue().paused == paused
    with pytest.raises(errors.PermissionDenied, match="^cannot stop guildd: that needs an administrator"):
        users.bob.shutdown_daemon()
    assert users.bob.daemon_info().ready  # still serving
    assert "ShutdownDaemon -> refused: cannot stop guildd" in users.audit()[-1]
    users.root.configure_queue(paused=not paused)
    assert users.root.list_queue().paused == (not paused)


@pytest.fixture
def own(tmp_path):
    """A per-user daemon (no root needed): its one user may do everything, as before."""
    home = tmp_path / "home"
    thread = _serve(home, Options())
    c = Client(home, autostart=False)
    yield c
    c.shutdown_daemon()
    thread.join(20)
    assert not thread.is_alive()


def test_a_per_user_daemon_allows_its_user_everything_and_audits_changes(own, tmp_path):
    user = pwd.getpwuid(os.getuid()).pw_name
    own.configure_queue(paused=True)
    run = own.start_run(spec(tmp_path, "print('x')\n"), stage=True)
    own.label_runs(_sel(run.id), pb.LABEL_SET, "line\nbreak")
    own.list_runs()
    own.get_run(run.id)
    with pytest.raises(errors.NotFound):
        own.delete_runs(_sel("ffff"))
    lines = [line.split("[guildd.audit] ", 1)[1] for line in homelib.log_path(own.home).read_text().splitlines()
             if "[guildd.audit]" in line]
    who = f"{user} (uid {os.getuid()})"
    assert lines == [
        f"{who} ConfigureQueue paused: true -> ok",
        f"{who} StartRun op 'op.py' staged -> ok: {run.id}",
        f"{who} LabelRuns runs '{run.id}' set 'line\\nbreak' -> ok: {run.id}",
        f"{who} DeleteRuns runs 'ffff' -> error: could not find run 'ffff'",
    ]
