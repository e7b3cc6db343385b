"""A thread's filesystem identity (guildd.fsrights): a root daemon's writes into a user's run
dir are that user's, on that thread only."""

import os
import pathlib
import pwd
import shutil
import tempfile
import threading
from typing import Iterator

import pytest

from guildd import fsrights

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching a thread's filesystem identity needs root")


def _account() -> pwd.struct_passwd:
    for name in ("alice", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("no unprivileged account (alice or nobody) on this machine")


@pytest.fixture
def open_tmp() -> Iterator[pathlib.Path]:
    """A temp dir every user can reach (pytest's own is under a 0700 dir of root's)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="guild-fsrights-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def _root_only(tmp_path: pathlib.Path) -> pathlib.Path:
    secret = tmp_path / "root-only"
    secret.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o755)
    return secret


@needs_root
def test_a_thread_as_a_user_cannot_write_where_only_root_may(tmp_path: pathlib.Path) -> None:
    user = _account()
    secret = _root_only(tmp_path)
    with fsrights.as_user(user.pw_uid, user.pw_gid, (user.pw_gid,)):
        assert fsrights.current_fsuid() == user.pw_uid
        with pytest.raises(PermissionError):
            (secret / "planted").write_text("x")
    assert not (secret / "planted").exists()
    # Afterwards the thread is root again.
    assert fsrights.current_fsuid() == 0
    (secret / "root-writes").write_text("x")


@needs_root
def test_other_threads_keep_roots_rights_meanwhile(tmp_path: pathlib.Path) -> None:
    user = _account()
    secret = _root_only(tmp_path)
    inside, done = threading.Event(), threading.Event()

    def as_user() -> None:
        with fsrights.as_user(user.pw_uid, user.pw_gid, (user.pw_gid,)):
            inside.set()
            done.wait(10)

    groups = os.getgroups()
    t = threading.Thread(target=as_user)
    t.start()
    try:
        assert inside.wait(10)
        assert (fsrights.current_fsuid(), fsrights.current_fsgid(), os.getgroups()) == (0, 0, groups)
        (secret / "from-another-thread").write_text("x")  # root's rights, while the other thread is the user
    finally:
        done.set()
        t.join()
    assert (secret / "from-another-thread").read_text() == "x"


@needs_root
def test_files_made_as_the_owner_of_a_dir_are_theirs_and_links_are_not_followed(open_tmp: pathlib.Path) -> None:
    user = _account()
    secret = _root_only(open_tmp)
    run_dir = open_tmp / "run"
    run_dir.mkdir()
    (run_dir / "attrs").symlink_to(secret)  # what the owner may do to their run dir
    fsrights.chown_tree(run_dir, user.pw_uid, user.pw_gid)
    assert os.lstat(run_dir / "attrs").st_uid == user.pw_uid
    assert os.stat(secret).st_uid == 0  # lchown: the link's target is untouched
    with fsrights.as_owner_of(run_dir):
        (run_dir / "made").write_text("x")
        with pytest.raises(PermissionError):
            (run_dir / "attrs" / "label").write_text("x")
    assert os.stat(run_dir / "made").st_uid == user.pw_uid
    assert list(secret.iterdir()) == []


@needs_root
def test_the_identity_is_restored_when_the_body_raises() -> None:
    user = _account()
    groups = os.getgroups()
    with pytest.raises(RuntimeError):
        with fsrights.as_user(user.pw_uid, user.pw_gid, (user.pw_gid,)):
            raise RuntimeError("boom")
    assert (fsrights.current_fsuid(), fsrights.current_fsgid(), os.getgroups()) == (0, 0, groups)


@needs_root
def test_supplementary_groups_are_the_threads_own(tmp_path: pathlib.Path) -> None:
    user = _account()
    groups = os.getgroups()
    seen: list[list[int]] = []

    def as_user() -> None:
        with fsrights.as_user(user.pw_uid, user.pw_gid, (user.pw_gid,)):
            seen.append(os.getgroups())

    t = threading.Thread(target=as_user)
    t.start()
    t.join()
    assert seen == [[user.pw_gid]]
    assert os.getgroups() == groups


@pytest.mark.parametrize(
    "euid, owner, switches",
    [
        (1000, 1000, False),  # a per-user daemon: its own files, as ever
        (0, 0, False),  # root's own run dir (a per-user root daemon)
        (0, 1001, True),  # a shared daemon writing in alice's run dir
    ],
)
def test_who_is_switched_to(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, euid: int, owner: int, switches: bool) -> None:
    calls: list[int] = []
    monkeypatch.setattr(fsrights.os, "geteuid", lambda: euid)
    real_lstat = os.lstat

    def lstat(path: "str | os.PathLike[str]") -> os.stat_result:
        st = real_lstat(path)
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, owner, st.st_gid, st.st_size,
                               st.st_atime, st.st_mtime, st.st_ctime))

    monkeypatch.setattr(fsrights.os, "lstat", lstat)

    def as_user(uid: int, gid: int, groups: tuple = ()):  # type: ignore[no-untyped-def]
        calls.append(uid)
        return fsrights.contextlib.nullcontext()

    monkeypatch.setattr(fsrights, "as_user", as_user)
    with fsrights.as_owner_of(tmp_path):
        pass
    assert calls == ([owner] if switches else [])
