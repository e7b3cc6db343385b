"""A shared GPU box, from each user's side: root runs `guildd --shared`, and real Unix users
(alice, bob, and an admin in the daemon's --admin-group) use it through guildctl with their
own uid and groups, no capabilities, and a minimal environment. Checked: who can do what,
the identity the daemon believes (the kernel's, never a claim), what a run's process sees
and who owns its files, and fair share between users.

Needs root (CI runs as root); skips, saying why, without it or without the user tools. The
harness is tests/e2e/sharedbox.py. A user reaching another user's per-user daemon is told
whose it is: tests/e2e/test_socket_owner.py::test_another_users_daemon_is_named_not_reported_missing.
"""

import json
import os
import pathlib
import pwd
import shutil
import stat
import subprocess
import types
import uuid

import pytest

from tests.conftest import wait_for
from tests.e2e import sharedbox
from tests.e2e.sharedbox import SharedDaemon, run_id

# What a run reports about itself: the identity its process sees.
TRAIN = """\
import json, os, time
secs = 0.0
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
                  "home": os.environ.get("HOME"), "user": os.environ.get("USER"),
                  "logname": os.environ.get("LOGNAME"), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}))
with open("made-by-run.txt", "w") as f:
    f.write("x")
time.sleep(secs)
print("loss: 0.5")
"""
SECRET = "root-only secret 7d1f"
EXIT_REFUSED = 4


@pytest.fixture(scope="module")
def base():
    path = sharedbox.public_dir("guild-sharedbox-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def people(venv):
    """alice and bob, two plain users, and admin, a member of the admin group."""
    group, made = sharedbox.add_group(), []
    try:
        for groups in ((), (), (group,)):
            made.append(sharedbox.add_user(venv, groups))
        yield types.SimpleNamespace(alice=made[0], bob=made[1], admin=made[2], group=group,
                                    root=sharedbox.Root("root", venv))
    finally:
        for user in made:
            sharedbox.remove_user(user)
        sharedbox.remove_group(group)


@pytest.fixture(scope="module")
def daemons():
    """Every shared daemon this module started (their logs are shown for a failing test)."""
    started: list[SharedDaemon] = []
    yield started
    for daemon in started:
        daemon.stop()


@pytest.fixture(scope="module")
def start(venv, base, daemons):
    """Starts a shared daemon with these options and environment, each on a fresh home."""

    def start(*options, **env):
        home_base = base / f"daemon-{len(daemons)}"
        home_base.mkdir(mode=0o755)
        daemons.append(SharedDaemon(venv, home_base, options, env))
        return daemons[-1]

    return start


@pytest.fixture(autouse=True)
def show_logs_on_failure(daemons):
    """Prints what each daemon logged during the test: pytest shows it only when it fails."""
    offsets = {id(d): len(d.log()) for d in daemons}
    yield
    for d in daemons:
        print(f"--- {d.home}/guildd.log ---\n{d.log()[offsets.get(id(d), 0):]}")


@pytest.fixture(scope="module")
def box(start, people):
    """The box's daemon: two simulated GPUs, and an admin group."""
    return start("--admin-group", people.group, GUILD_SIMULATED_GPUS="2x80G")


@pytest.fixture(scope="module")
def projects(base, people):
    return {u.name: sharedbox.project(base, u, {"train.py": TRAIN}) for u in (people.alice, people.bob, people.admin)}


def _reported(r):
    """The identity line train.py printed."""
    line = next((line for line in r.stdout.splitlines() if line.startswith("{")), None)
    assert line, f"no identity line in the run's output:\n{r.stdout}\n{r.stderr}"
    return json.loads(line)


def _user_of(box, run):
    return next(r["user"] for r in box.runs() if r["id"] == run)


def _one_line(r):
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    return r.stderr.strip()


def test_every_user_reaches_the_shared_daemon(box, people, projects):
    for sock in ("guildd.sock", "guildd-auth.sock"):
        assert stat.S_IMODE(os.stat(box.home / sock).st_mode) == 0o666, sock
    alice = people.alice
    # -H names the home, with no GUILD_HOME set.
    r = alice.run(f"{box.venv}/bin/guildctl", "-H", str(box.home), "run", "train.py", "-y",
                  env={"PATH": f"{box.venv}/bin:/usr/bin:/bin", "HOME": alice.home}, cwd=projects[alice.name])
    assert r.returncode == 0, r.stderr
    assert "loss: 0.5" in r.stdout
    mine = box.runs(alice)[0]
    assert mine["user"] == alice.name
    assert mine["id"] in [run["id"] for run in box.runs(people.bob)]


def test_an_identity_claimed_in_the_environment_is_ignored(box, people, projects):
    # guildctl sends its environment as the run's (spec.env): USER=alice travels in the StartRun.
    bob, alice = people.bob, people.alice
    r = box.ctl(bob, "run", "train.py", "-y", cwd=projects[bob.name], USER=alice.name, LOGNAME=alice.name)
    assert r.returncode == 0, r.stderr
    run = box.runs(bob)[0]["id"]
    assert _user_of(box, run) == bob.name
    assert box.run_dir(run).stat().st_uid == bob.uid
    assert (_reported(r)["uid"], _reported(r)["user"]) == (bob.uid, bob.name)


def test_runs_info_shows_whose_run_it_is(box, people, projects):
    bob = people.bob
    box.ok(bob, "run", "train.py", "-y", cwd=projects[bob.name])
    run = box.runs(bob)[0]["id"]
    assert f"user: {bob.name}" in box.ok(people.alice, "runs", "info", run).stdout.splitlines()


FORGER = """\
import json, sys
import grpc
from guild_common import home as homelib, ownership
from guild_common.pb import guild_pb2 as pb, guild_pb2_grpc

path = ownership.connect_path(sys.argv[1])
stub = guild_pb2_grpc.GuildStub(grpc.insecure_channel(f"unix:{path}"))

def answer(metadata):
    try:
        stub.ListRuns(pb.ListRunsRequest(), metadata=metadata)
        return "OK"
    except grpc.RpcError as e:
        return e.code().name

from guildctl.client import obtain_token
token = obtain_token(homelib.auth_socket_path(path))
info = stub.GetDaemonInfo(pb.GetDaemonInfoRequest(), metadata=(("guild-token", token), ("user", sys.argv[2])))
print(json.dumps({"none": answer(()), "user": answer((("user", sys.argv[2]),)),
                  "made-up": answer((("guild-token", "x"),)), "token and user": info.user}))
"""


def test_a_forged_identity_is_unauthenticated(box, people, projects):
    bob, alice = people.bob, people.alice
    script = pathlib.Path(projects[bob.name]) / "forge.py"
    script.write_text(FORGER)
    r = bob.run(f"{box.venv}/bin/python", str(script), str(box.home), alice.name, env=bob.env(box.home),
                cwd=projects[bob.name])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"none": "UNAUTHENTICATED", "user": "UNAUTHENTICATED",
                                    "made-up": "UNAUTHENTICATED", "token and user": bob.name}


def test_a_uid_without_an_account_is_refused_in_one_line(box):
    uid = next(u for u in range(54321, 60000) if not _has_account(u))
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", f"{box.venv}/bin/guildctl", "runs"]
    r = subprocess.run(cmd, env={"PATH": f"{box.venv}/bin:/usr/bin:/bin", "HOME": "/", "GUILD_HOME": str(box.home)},
                       cwd="/", capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert f"uid {uid} has no account" in _one_line(r)


def _has_account(uid):
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="module")
def alices(box, people, projects):
    """alice's runs in each state bob might try to change: completed (labelled), running,
    staged, and deleted (in the trash)."""
    alice, proj = people.alice, projects[people.alice.name]
    box.ok(alice, "run", "train.py", "-y", "--label", "alices", cwd=proj)
    done = box.runs(alice)[0]["id"]
    running = run_id(box.ok(alice, "run", "train.py", "secs=600", "--background", "-y", cwd=proj))
    box.wait_status(running, "running")
    staged = run_id(box.ok(alice, "run", "train.py", "--stage", "-y", cwd=proj))
    box.ok(alice, "run", "train.py", "-y", cwd=proj)
    trashed = box.runs(alice)[0]["id"]
    box.ok(alice, "runs", "delete", trashed, "-y")
    return {"done": done, "running": running, "staged": staged, "trashed": trashed}


def _state(box):
    """What a refused request must leave as it was: each run's status, label and mark, the
    trash, and the queue's entries."""
    runs = {r["id"]: (r["status"], r["label"], r["marked"], r["tags"]) for r in box.runs()}
    trash = sorted(r["id"] for r in box.runs(None, "--deleted"))
    queue = json.loads(box.ok(box.root, "queue", "--json").stdout)
    entries = [(e["run"]["id"], e["options"]["priority"]) for e in queue["entries"]]
    return runs, trash, entries


def test_anyone_may_read_anyones_runs(box, people, alices, base):
    bob, done = people.bob, alices["done"]
    assert done in [r["id"] for r in box.runs(bob)]
    assert box.info(done, bob)["id"] == done
    assert done[:8] in box.ok(bob, "compare", "--table", done).stdout
    assert "loss: 0.5" in box.ok(bob, "cat", done, "--output").stdout
    assert "loss: 0.5" in box.ok(bob, "watch", done).stdout
    export = base / "bobs-export"
    export.mkdir()
    os.chown(export, bob.uid, bob.gid)
    box.ok(bob, "export", str(export), done, "-y")
    assert (export / done).is_dir()


def _public(path, mode=0o755, owner=None):
    """A fresh dir at `path` with `mode`, root's unless `owner` (a User) is given."""
    path.mkdir(mode=mode)
    path.chmod(mode)
    if owner is not None:
        os.chown(path, owner.uid, owner.gid)
    return path


@pytest.mark.parametrize("where", ["a root dir", "inside a root-only dir"])
def test_an_export_where_only_root_may_write_is_refused(box, people, alices, base, where):
    root_dir = _public(base / f"root-export-{where.replace(' ', '-')}", 0o755 if where == "a root dir" else 0o700)
    dest = root_dir if where == "a root dir" else root_dir / "out"
    r = box.ctl(people.bob, "export", str(dest), alices["done"], "-y")
    assert r.returncode == EXIT_REFUSED, (r.returncode, r.stdout, r.stderr)
    assert str(dest) in _one_line(r)
    assert list(root_dir.iterdir()) == []


def test_an_export_into_bobs_own_dir_is_his(box, people, alices, base):
    bob, done = people.bob, alices["done"]
    dest = _public(base / "bobs-own-export", owner=bob)
    box.ok(bob, "export", str(dest), done, "-y")
    assert {path: uid for path, uid in sharedbox.owners(dest / done).items() if uid != bob.uid} == {}
    assert (dest / done / ".guild" / "output").read_text().count("loss: 0.5") == 1
    # alice's recorded environment is hers alone: it stays out of bob's copy.
    assert not (dest / done / ".guild" / "attrs" / "env").exists()


@pytest.fixture(scope="module")
def archived(box, alices, base):
    """An archive holding a copy of alice's run under a new id: one the box hasn't seen."""

    def archive(name, mode, owner):
        top = _public(base / name, mode, owner)
        new = uuid.uuid4().hex
        shutil.copytree(box.run_dir(alices["done"]), top / new, symlinks=True)
        for path in [top / new, *(top / new).rglob("*")]:
            os.lchown(path, owner.uid if owner else 0, owner.gid if owner else 0)
        return top, new

    return archive


def test_an_import_from_an_archive_alice_can_read_gives_runs_that_are_hers(box, people, archived):
    alice = people.alice
    archive, new = archived("alices-archive", 0o755, alice)
    box.ok(alice, "import", str(archive), "-y")
    assert {path: uid for path, uid in sharedbox.owners(box.run_dir(new)).items() if uid != alice.uid} == {}
    box.ok(alice, "label", new, "--set", "imported", "-y")
    assert box.ctl(people.bob, "label", new, "--set", "bobs", "-y").returncode == EXIT_REFUSED


def test_an_import_from_an_archive_alice_cannot_read_is_refused(box, people, archived):
    alice = people.alice
    archive, new = archived("root-archive", 0o700, None)
    r = box.ctl(alice, "import", str(archive), "-y")
    assert r.returncode == EXIT_REFUSED, (r.returncode, r.stdout, r.stderr)
    assert str(archive) in _one_line(r)
    assert new not in [run["id"] for run in box.runs()]
    assert not box.run_dir(new).exists()


REFUSED = {
    "stop": ("stop", "{running}"),
    "delete": ("runs", "delete", "{done}", "-y"),
    "restore": ("runs", "restore", "{trashed}", "-y"),
    "purge": ("runs", "purge", "{trashed}", "-y"),
    "label": ("label", "{done}", "--set", "bob was here", "-y"),
    "tag": ("label", "{done}", "--tag", "bobs", "-y"),
    "mark": ("mark", "{done}", "-y"),
    "restart": ("run", "--restart", "{done}", "-y"),
    "priority": ("queue", "priority", "{staged}", "10"),
    "cancel": ("queue", "cancel", "{staged}"),
}


@pytest.mark.parametrize("command", REFUSED)
def test_only_the_owner_or_an_admin_may_change_a_run(box, people, projects, alices, command):
    args = [a.format(**alices) for a in REFUSED[command]]
    target = next(alices[k] for k in alices if "{" + k + "}" in REFUSED[command])
    before = _state(box)
    r = box.ctl(people.bob, *args, cwd=projects[people.bob.name])
    assert r.returncode == EXIT_REFUSED, (r.returncode, r.stdout, r.stderr)
    line = _one_line(r)
    assert line.startswith("guildctl: ") and target[:8] in line and people.alice.name in line, line
    assert _state(box) == before


def test_a_missing_run_is_not_found_not_refused(box, people):
    r = box.ctl(people.bob, "label", "0123abcd", "--set", "x", "-y")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "0123abcd" in _one_line(r)


def _audit_lines(box, since):
    return [line for line in box.log()[since:].splitlines() if "[guildd.audit]" in line]


def test_the_owner_and_admins_may_change_a_run_and_each_change_is_audited(box, people, alices):
    done = alices["done"]
    for user in (people.alice, people.admin, people.root):
        since = len(box.log())
        box.ok(user, "label", done, "--set", f"by {user.name}", "-y")
        assert box.info(done)["label"] == f"by {user.name}"
        assert any(user.name in line for line in _audit_lines(box, since)), box.log()[since:]


@pytest.fixture(scope="module")
def spare(start, people):
    """A daemon with no runs, for refusals that would upset the box's runs if they weren't."""
    return start("--admin-group", people.group)


SETTINGS = {
    "queue stop": ("queue", "stop"),
    "queue start": ("queue", "start"),
    "queue limit": ("queue", "limit", "nightly", "2"),
    "queue user-cap": ("queue", "user-cap", "1"),
    "queue cpu-slots": ("queue", "cpu-slots", "5"),
}


def _settings(daemon):
    q = json.loads(daemon.ok(daemon.root, "queue", "--json").stdout)
    return {k: q.get(k) for k in ("paused", "always_on", "cpu_slots", "queue_limits", "user_gpu_cap")}


@pytest.mark.parametrize("command", SETTINGS)
def test_only_admins_may_change_queue_settings(spare, people, command):
    before = _settings(spare)
    r = spare.ctl(people.bob, *SETTINGS[command])
    assert r.returncode == EXIT_REFUSED, (r.returncode, r.stdout, r.stderr)
    assert _one_line(r).startswith("guildctl: ")
    assert _settings(spare) == before
    spare.ok(people.admin, *SETTINGS[command])


def test_only_admins_may_stop_the_daemon(spare, people):
    r = spare.ctl(people.bob, "daemon", "stop")
    assert r.returncode == EXIT_REFUSED, (r.returncode, r.stdout, r.stderr)
    assert _one_line(r).startswith("guildctl: ")
    assert spare.ctl(people.bob, "daemon", "status").returncode == 0
    spare.ok(people.admin, "daemon", "stop")
    wait_for(lambda: spare.proc.poll() is not None, timeout=30, what="the daemon to stop")


def test_a_run_executes_as_its_owner(box, people, projects):
    alice = people.alice
    r = box.ok(alice, "run", "train.py", "-y", cwd=projects[alice.name])
    seen = _reported(r)
    assert (seen["uid"], seen["gid"]) == (alice.uid, alice.gid)
    assert set(seen["groups"]) | {alice.gid} == set(alice.groups)
    assert (seen["home"], seen["user"], seen["logname"]) == (alice.home, alice.name, alice.name)
    assert seen["cuda"] == ""  # it asked for no GPUs
    run_dir = box.run_dir(box.runs(alice)[0]["id"])
    assert (run_dir / "made-by-run.txt").exists()
    assert {path: uid for path, uid in sharedbox.owners(run_dir).items() if uid != alice.uid} == {}
    env = (run_dir / ".guild" / "attrs" / "env").stat()
    assert (env.st_uid, stat.S_IMODE(env.st_mode)) == (alice.uid, 0o600)


# The link reaches a run two ways: guildctl's source-code snapshot (read as alice), and a
# `file:` dependency, which the daemon (root) copies into the run dir.
WITH_LINK = {
    "sourcecode": ("train.py", {"train.py": TRAIN}),
    "file dependency": ("train", {"train.py": TRAIN, "guild.yml": (
        "train:\n  main: train\n  sourcecode:\n    - exclude: secret.txt\n  requires:\n    - file: secret.txt\n")}),
}


@pytest.fixture(scope="module")
def secret(base):
    path = base / "root-secret.txt"
    path.write_text(SECRET)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("way", WITH_LINK)
def test_a_link_to_a_root_only_file_stays_out_of_the_run(box, people, base, secret, way):
    alice, (op, files) = people.alice, WITH_LINK[way]
    proj = sharedbox.project(base, alice, files, name=f"proj-link-{way.replace(' ', '-')}")
    (proj / "secret.txt").symlink_to(secret)
    os.lchown(proj / "secret.txt", alice.uid, alice.gid)
    before = {r["id"] for r in box.runs()}
    r = box.ctl(alice, "run", op, "-y", cwd=proj)
    assert "secret.txt" in r.stdout + r.stderr, (r.returncode, r.stdout, r.stderr)  # said, refused or left out
    assert "Traceback" not in r.stderr
    for run in ({r["id"] for r in box.runs()} - before):
        found = [p for p in box.run_dir(run).rglob("*") if p.name == "secret.txt"
                 or (p.is_file() and SECRET in p.read_text(errors="replace"))]
        assert found == []


def test_fair_share_starts_the_user_with_less_recent_use_first(start, people, projects):
    box = start("--queue-always-on", "--fair-share-half-life", "0.05", GUILD_SIMULATED_GPUS="1x80G")
    alice, bob, admin = people.alice, people.bob, people.admin
    box.ok(alice, "run", "train.py", "secs=3", "--gpus", "1", "-y", cwd=projects[alice.name])  # her recent use
    # The admin's run keeps the GPU busy while both stage theirs (root never runs code here).
    hold = run_id(box.ok(admin, "run", "train.py", "secs=600", "--gpus", "1", "--background", "-y",
                         cwd=projects[admin.name]))
    box.wait_status(hold, "running")
    alices = run_id(box.ok(alice, "run", "train.py", "--gpus", "1", "--stage", "-y", cwd=projects[alice.name]))
    bobs = run_id(box.ok(bob, "run", "train.py", "--gpus", "1", "--stage", "-y", cwd=projects[bob.name]))
    queue = json.loads(box.ok(bob, "queue", "--json").stdout)
    box.ok(admin, "stop", hold)
    for run in (alices, bobs):
        box.wait_status(run, "completed")
    started = {r["id"]: r["started"] for r in box.runs()}
    assert started[bobs] < started[alices]
    # While both waited, `queue` showed each user's share: alice's recent use, bob's none.
    users = {u["user"]: u for u in queue.get("users", [])}
    assert users[alice.name]["usage_gpu_seconds"] > 0 and users[alice.name]["waiting"] == 1, users
    assert users[bob.name]["usage_gpu_seconds"] == 0 and users[bob.name]["waiting"] == 1, users


def test_every_user_sees_the_shared_daemons_status(box, people):
    r = box.ok(people.bob, "daemon", "status")
    assert f"is running for {box.home}" in r.stdout
    assert f"  shared: yes (every local user; you are {people.bob.name}, admin: no)" in r.stdout.splitlines()
    for user, admin in ((people.bob, False), (people.admin, True), (people.root, True)):
        status = json.loads(box.ok(user, "daemon", "status", "--json").stdout)
        assert (status["shared"], status["user"], status["admin"]) == (True, user.name, admin)
