"""Who may own the daemon's socket, its directory, its link and its files: the pure checks as
tables, then the client's connect path and the daemon's own files on real temp dirs."""

import os
import pathlib
import pwd
import socket
import stat

import pytest

from guild_common import errors, home as homelib, ownership
from guildd import daemonlog, homelock, server

def _has_account(uid):
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


ME = os.getuid()
OTHER = next(uid for uid in range(54321, 64000) if not _has_account(uid))  # named "uid N"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to another uid")


def st(kind, mode, uid=ME):
    return os.stat_result((kind | mode, 1, 1, 1, uid, 0, 0, 0, 0, 0))


def test_user_name():
    assert ownership.user_name(0) == "root (uid 0)"
    assert ownership.user_name(OTHER) == f"uid {OTHER}"


@pytest.mark.parametrize(
    "stat_result, group_write_ok, expected",
    [
        (st(stat.S_IFDIR, 0o700), False, None),
        (st(stat.S_IFDIR, 0o755), False, None),
        (st(stat.S_IFDIR, 0o1700), False, None),
        (st(stat.S_IFDIR, 0o777), False, "is writable by other users (mode 0777)"),
        (st(stat.S_IFDIR, 0o1777), False, "is writable by other users (mode 1777)"),
        (st(stat.S_IFDIR, 0o770), False, "is writable by other users (mode 0770)"),
        (st(stat.S_IFDIR, 0o702), False, "is writable by other users (mode 0702)"),
        (st(stat.S_IFDIR, 0o775), True, None),
        (st(stat.S_IFDIR, 0o757), True, "is writable by other users (mode 0757)"),
        # Someone else's directory: who owns it is the first thing to say.
        (st(stat.S_IFDIR, 0o700, OTHER), False, f"is owned by uid {OTHER}, not by"),
        (st(stat.S_IFDIR, 0o777, OTHER), False, f"is owned by uid {OTHER}, not by"),
        (st(stat.S_IFDIR, 0o775, OTHER), True, f"is owned by uid {OTHER}, not by"),
        (st(stat.S_IFLNK, 0o777), False, "is a symbolic link, not a directory"),
        (st(stat.S_IFREG, 0o600), False, "is a regular file, not a directory"),
    ],
)
def test_check_dir(stat_result, group_write_ok, expected, monkeypatch):
    monkeypatch.setattr(ownership, "user_name", lambda uid: f"uid {uid}")
    reason = ownership.check_dir(stat_result, ME, group_write_ok=group_write_ok)
    if expected is None:
        assert reason is None
    else:
        assert reason.startswith(expected)


@pytest.mark.parametrize(
    "check, stat_result, expected",
    [
        (ownership.check_socket, st(stat.S_IFSOCK, 0o600), None),
        (ownership.check_socket, st(stat.S_IFSOCK, 0o777, OTHER), f"is owned by uid {OTHER}, not by uid {ME}"),
        (ownership.check_socket, st(stat.S_IFLNK, 0o777), "is a symbolic link, not a socket"),
        (ownership.check_socket, st(stat.S_IFREG, 0o600), "is a regular file, not a socket"),
        (ownership.check_link, st(stat.S_IFSOCK, 0o600), None),
        (ownership.check_link, st(stat.S_IFLNK, 0o777), None),
        (ownership.check_link, st(stat.S_IFLNK, 0o777, OTHER), f"is owned by uid {OTHER}, not by uid {ME}"),
        (ownership.check_link, st(stat.S_IFREG, 0o600), "is a regular file, not a socket or a symbolic link"),
        (ownership.check_link, st(stat.S_IFDIR, 0o700), "is a directory, not a socket or a symbolic link"),
        (ownership.check_file, st(stat.S_IFREG, 0o600), None),
        (ownership.check_file, st(stat.S_IFREG, 0o666, OTHER), f"is owned by uid {OTHER}, not by uid {ME}"),
        (ownership.check_file, st(stat.S_IFLNK, 0o777), "is a symbolic link, not a regular file"),
        (ownership.check_file, st(stat.S_IFIFO, 0o600), "is a special file, not a regular file"),
    ],
)
def test_checks(check, stat_result, expected, monkeypatch):
    monkeypatch.setattr(ownership, "user_name", lambda uid: f"uid {uid}")
    assert check(stat_result, ME) == expected


# The client's connect path


def _listen(path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    return s


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir(mode=0o755)
    return h


@pytest.fixture
def linked(tmp_path, home):
    """A home whose guildd.sock links to a socket in a private runtime dir."""
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    target = run / "guildd-abc.sock"
    (home / "guildd.sock").symlink_to(target)
    return home, target


def test_connect_path_with_nothing_there(tmp_path, home):
    assert ownership.connect_path(tmp_path / "absent") == tmp_path / "absent" / "guildd.sock"
    assert ownership.connect_path(home) == home / "guildd.sock"
    # A path under a file: nothing to connect to (starting the daemon says why).
    (tmp_path / "file").write_text("")
    assert ownership.connect_path(tmp_path / "file" / "home") == tmp_path / "file" / "home" / "guildd.sock"


def test_connect_path_to_own_socket(home):
    with _listen(home / "guildd.sock"):
        assert ownership.connect_path(home) == home / "guildd.sock"


def test_connect_path_follows_own_link(linked):
    home, target = linked
    assert ownership.connect_path(home) == target  # not there yet: a daemon is starting
    with _listen(target):
        assert ownership.connect_path(home) == target


def test_connect_path_group_writable_home_is_fine(home):
    home.chmod(0o775)  # umask 002 with a user-private group
    assert ownership.connect_path(home) == home / "guildd.sock"


@pytest.mark.parametrize("mode", [0o777, 0o757])
def test_connect_path_refuses_a_home_others_can_write(home, mode):
    home.chmod(mode)
    with pytest.raises(errors.PermissionDenied) as e:
        ownership.connect_path(home)
    assert str(e.value) == f"refusing to connect to guildd: GUILD_HOME {home} is writable by other users (mode {mode:04o})"


@needs_root
def test_connect_path_refuses_a_home_of_another_uid(home):
    os.chown(home, OTHER, -1)
    with pytest.raises(errors.PermissionDenied, match=f"GUILD_HOME {home} is owned by uid {OTHER}, not by root"):
        ownership.connect_path(home)


@needs_root
def test_connect_path_trusts_a_home_root_owns(home):
    # A shared box's GUILD_HOME is root's: its users connect to it (root could do anything a
    # planted socket could).
    assert ownership.connect_path(home, uid=OTHER) == home / "guildd.sock"


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_connect_path_refuses_a_socket_dir_others_can_write(linked, mode):
    home, target = linked
    target.parent.chmod(mode)
    with pytest.raises(errors.PermissionDenied) as e:
        ownership.connect_path(home)
    assert str(e.value) == (
        f"refusing to connect to guildd: its socket directory {target.parent} is writable by other users (mode {mode:04o})"
    )


def test_connect_path_refuses_a_socket_dir_that_is_a_link(tmp_path, home):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "run").symlink_to(real)
    (home / "guildd.sock").symlink_to(tmp_path / "run" / "guildd-abc.sock")
    with pytest.raises(errors.PermissionDenied, match="its socket directory .*/run is a symbolic link, not a directory"):
        ownership.connect_path(home)


def test_connect_path_refuses_what_is_not_a_socket(linked):
    home, target = linked
    target.write_text("")
    with pytest.raises(errors.PermissionDenied, match=f"its socket {target} is a regular file, not a socket"):
        ownership.connect_path(home)
    (home / "guildd.sock").unlink()
    (home / "guildd.sock").write_text("")
    with pytest.raises(errors.PermissionDenied, match="guildd.sock is a regular file, not a socket or a symbolic link"):
        ownership.connect_path(home)


@needs_root
def test_connect_path_refuses_a_link_another_user_made(linked):
    home, _target = linked
    os.lchown(home / "guildd.sock", OTHER, OTHER)
    with pytest.raises(errors.PermissionDenied, match=f"guildd.sock is owned by uid {OTHER}, not by root"):
        ownership.connect_path(home)


@needs_root
def test_connect_path_refuses_a_socket_another_user_owns(linked):
    home, target = linked
    os.chown(target.parent, OTHER, OTHER)
    with pytest.raises(errors.PermissionDenied, match=f"its socket directory {target.parent} is owned by uid {OTHER}"):
        ownership.connect_path(home)
    os.chown(target.parent, ME, ME)
    with _listen(target):
        os.chown(target, OTHER, OTHER)
        with pytest.raises(errors.PermissionDenied, match=f"its socket {target} is owned by uid {OTHER}"):
            ownership.connect_path(home)
    (home / "guildd.sock").unlink()
    with _listen(home / "guildd.sock"):
        os.chown(home / "guildd.sock", OTHER, OTHER)
        with pytest.raises(errors.PermissionDenied, match=f"guildd.sock is owned by uid {OTHER}"):
            ownership.connect_path(home)


# The daemon's socket and files


@pytest.fixture
def long_home(tmp_path, monkeypatch):
    """A home too long for a socket path, with XDG_RUNTIME_DIR pointing at tmp_path/run."""
    h = tmp_path / ("h" * 100)
    h.mkdir()
    runtime = tmp_path / "run"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    return h, runtime


def test_runtime_dir_is_made_private(long_home):
    home, runtime = long_home
    bind = server._prepare_socket(home)
    assert bind.parent == runtime
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    assert os.readlink(home / "guildd.sock") == str(bind)


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770])
def test_daemon_refuses_a_runtime_dir_others_can_write(long_home, mode):
    home, runtime = long_home
    runtime.mkdir()
    runtime.chmod(mode)
    with pytest.raises(errors.PermissionDenied) as e:
        server._prepare_socket(home)
    assert str(e.value).startswith(
        f"refusing socket directory {runtime}: it is writable by other users (mode {mode:04o}); remove it"
    )
    assert not os.path.lexists(home / "guildd.sock")


@pytest.mark.parametrize("dangling", [False, True])
def test_daemon_refuses_a_runtime_dir_that_is_a_link(long_home, tmp_path, dangling):
    home, runtime = long_home
    real = tmp_path / "elsewhere"
    if not dangling:
        real.mkdir(mode=0o700)
    runtime.symlink_to(real)
    with pytest.raises(errors.PermissionDenied, match=f"refusing socket directory {runtime}: it is a symbolic link"):
        server._prepare_socket(home)
    assert not real.exists() or list(real.iterdir()) == []


@needs_root
def test_daemon_refuses_a_runtime_dir_another_user_owns(long_home):
    home, runtime = long_home
    runtime.mkdir(mode=0o700)
    os.chown(runtime, OTHER, OTHER)
    with pytest.raises(errors.PermissionDenied, match=f"refusing socket directory {runtime}: it is owned by uid {OTHER}"):
        server._prepare_socket(home)


def test_daemon_replaces_its_own_stale_socket_and_link(long_home):
    home, runtime = long_home
    bind = server._prepare_socket(home)
    _listen(bind).close()  # what a daemon killed with -9 leaves
    assert server._prepare_socket(home) == bind
    assert not bind.exists() and os.readlink(home / "guildd.sock") == str(bind)


def test_daemon_refuses_to_replace_a_file_at_the_socket_path(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "guildd.sock").write_text("keep me")
    with pytest.raises(errors.PermissionDenied, match="guildd.sock: it is a regular file, not a socket or a symbolic link"):
        server._prepare_socket(home)
    assert (home / "guildd.sock").read_text() == "keep me"


@needs_root
def test_daemon_never_removes_another_users_socket_or_link(tmp_path, long_home):
    home, runtime = long_home
    bind = server._prepare_socket(home)
    with _listen(bind):
        os.chown(bind, OTHER, OTHER)
        with pytest.raises(errors.PermissionDenied, match=f"refusing to replace {bind}: it is owned by uid {OTHER}"):
            server._prepare_socket(home)
        assert bind.is_socket()
        server._remove_socket(home)
        assert bind.is_socket()
    # Its own link went with it; one someone else put there is left where it is.
    link = home / "guildd.sock"
    assert not os.path.lexists(link)
    link.symlink_to(tmp_path / "theirs.sock")
    os.lchown(link, OTHER, OTHER)
    server._remove_socket(home)
    assert link.is_symlink()


def test_daemon_removes_its_own_socket_and_link(long_home):
    home, _runtime = long_home
    bind = server._prepare_socket(home)
    _listen(bind).close()
    server._remove_socket(home)
    assert not os.path.lexists(bind) and not os.path.lexists(home / "guildd.sock")


def test_lock_file_link_is_not_followed(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    homelib.lock_path(home).symlink_to(victim)
    with pytest.raises(errors.PermissionDenied) as e:
        homelock.claim(home)
    assert str(e.value) == f"refusing {homelib.lock_path(home)}: it is a symbolic link, not a regular file"
    assert victim.read_text() == "precious\n"


@needs_root
def test_lock_file_of_another_user_is_refused(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    homelib.lock_path(home).write_text("")
    os.chown(homelib.lock_path(home), OTHER, OTHER)
    with pytest.raises(errors.PermissionDenied, match=f"guildd.lock: it is owned by uid {OTHER}"):
        homelock.claim(home)


def test_home_files_made_at_start_follow_no_link(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    planted = tmp_path / "planted"
    (home / ".guild-nocopy").symlink_to(planted)
    homelock.check_home(home)
    assert not planted.exists()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (home / f".guildd-write-test-{os.getpid()}").symlink_to(victim)
    with pytest.raises(errors.PermissionDenied, match=f"cannot use GUILD_HOME {home}"):
        homelock.check_home(home)
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("mode, refused", [(0o777, True), (0o757, True), (0o775, False), (0o755, False)])
def test_home_others_can_write_is_refused(tmp_path, mode, refused):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(mode)
    if refused:
        with pytest.raises(errors.PermissionDenied) as e:
            homelock.check_home(home)
        assert str(e.value) == f"cannot use GUILD_HOME {home}: it is writable by other users (mode {mode:04o})"
    else:
        homelock.check_home(home)


@needs_root
def test_home_of_another_user_is_refused(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, OTHER, OTHER)
    with pytest.raises(errors.PermissionDenied, match=f"cannot use GUILD_HOME {home}: it is owned by uid {OTHER}, not by root"):
        homelock.check_home(home)


def test_log_file_link_is_not_followed(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    homelib.log_path(home).symlink_to(victim)
    with pytest.raises(errors.PermissionDenied) as e:
        daemonlog.setup(home, to_stderr=False)
    assert str(e.value) == f"refusing {homelib.log_path(home)}: it is a symbolic link, not a regular file"
    assert victim.read_text() == "precious\n"
