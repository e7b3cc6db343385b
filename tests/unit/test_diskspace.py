"""A full disk, without one: telling its errors apart, the daemon's reserve, the shim's end
written in place of what it reserved, and attrs writes that leave no temporary file."""

import errno
import os
import sqlite3

import pytest

from guild_common import errors, rundir
from guildd import diskspace, shim


def _enospc(*_args, **_kw):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _sqlite_full(tmp_path):
    db = sqlite3.connect(tmp_path / "full.db")
    db.execute("CREATE TABLE t (x TEXT)")
    db.execute("PRAGMA max_page_count = 3")  # a database that can't grow: SQLite says it is full
    with pytest.raises(sqlite3.OperationalError) as e:
        for _ in range(100):
            db.execute("INSERT INTO t VALUES (?)", ("x" * 1000,))
    return e.value


def test_is_full_knows_a_full_disk_from_other_errors(tmp_path):
    assert diskspace.is_full(OSError(errno.ENOSPC, "No space left on device"))
    assert diskspace.is_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert diskspace.is_full(_sqlite_full(tmp_path))
    assert not diskspace.is_full(OSError(errno.EACCES, "Permission denied"))
    assert not diskspace.is_full(sqlite3.OperationalError("no such table: x"))
    assert not diskspace.is_full(ValueError("No space left on device"))


def test_full_error_names_guild_home_or_the_file_elsewhere(tmp_path):
    home = tmp_path / "home"
    inside = OSError(errno.ENOSPC, "No space left on device", str(home / "runs" / "x"))
    err = diskspace.full_error(home, inside, "cannot start run abcd1234")
    assert isinstance(err, errors.ResourcesUnavailable)
    assert err.message.startswith(f"cannot start run abcd1234: no space left on device for GUILD_HOME {home}")
    assert "\n" not in err.message
    elsewhere = OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp_path / "export" / "x"))
    assert diskspace.full_error(home, elsewhere).message == f"disk quota exceeded writing {tmp_path / 'export' / 'x'}"


SHORT = {
    "nothing free": (0, True),
    "less than twice the reserve": (diskspace.SHORT_BYTES - 1, True),
    "twice the reserve": (diskspace.SHORT_BYTES, False),
    "a big disk": (1 << 40, False),
}


@pytest.mark.parametrize("free, expected", SHORT.values(), ids=SHORT.keys())
def test_is_short(free, expected):
    assert diskspace.is_short(free) is expected


def test_the_notes_name_guild_home(tmp_path):
    assert str(tmp_path) in diskspace.ended_note(tmp_path) and "full" in diskspace.ended_note(tmp_path)
    assert str(tmp_path) in diskspace.waiting_note(tmp_path) and "full" in diskspace.waiting_note(tmp_path)


def test_reserve_is_taken_whole_and_freed_once(tmp_path):
    reserve = diskspace.Reserve(tmp_path, size=64 * 1024)
    assert reserve.take() and reserve.take()
    assert os.path.getsize(reserve.path) == 64 * 1024
    assert reserve.release()
    assert not reserve.release()
    assert os.listdir(tmp_path) == []


def test_reserve_not_taken_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "posix_fallocate", _enospc)
    reserve = diskspace.Reserve(tmp_path)
    assert not reserve.take()
    assert os.listdir(tmp_path) == []


def test_reserve_is_freed_for_a_record_a_full_disk_stopped(tmp_path):
    reserve = diskspace.Reserve(tmp_path, size=4096)
    reserve.take()
    calls = []

    def record():
        calls.append(reserve.path.exists())
        if len(calls) == 1:
            _enospc()
        return "recorded"

    assert reserve.use(record) == "recorded"
    assert calls == [True, False]
    # With the reserve spent, or for another error, the error is the caller's.
    with pytest.raises(OSError):
        reserve.use(_enospc)
    reserve.take()
    with pytest.raises(ValueError):
        reserve.use(lambda: int("x"))
    assert reserve.path.exists()


@pytest.fixture
def run_dir(tmp_path):
    rundir.attrs_dir(tmp_path).mkdir(parents=True)
    return tmp_path


def _leftovers(run_dir):
    return sorted(p.name for p in run_dir.rglob("*") if p.name.endswith((".reserved", ".tmp")))


def test_the_end_is_written_in_place_of_the_files_reserved_at_start(run_dir, monkeypatch):
    shim.reserve(run_dir)
    assert _leftovers(run_dir) == [".LOCK.reserved", ".exit_status.reserved", ".stopped.reserved"]
    # No new file can be made now (as on a full disk): the reserved ones are written in place.
    real_open = os.open

    def open_no_new_file(path, flags, *args):
        return _enospc() if flags & os.O_CREAT else real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", open_no_new_file)
    shim.write_end(run_dir, 3, 1_700_000_000_000_000)
    assert rundir.read_attr(run_dir, "exit_status") == 3
    assert rundir.read_attr(run_dir, "stopped") == 1_700_000_000_000_000
    assert (rundir.attrs_dir(run_dir) / "exit_status").read_text() == "3\n"
    assert _leftovers(run_dir) == [".LOCK.reserved"]


def test_an_end_that_cannot_be_written_is_left_to_try_again(run_dir, monkeypatch):
    monkeypatch.setattr(os, "pwrite", _enospc)
    with pytest.raises(OSError):
        shim.write_end(run_dir, 1, 1)  # nothing reserved: no half-written file is left
    assert _leftovers(run_dir) == []
    shim.reserve(run_dir)
    with pytest.raises(OSError):
        shim.write_end(run_dir, 1, 1)  # reserved: kept for the next try
    assert ".exit_status.reserved" in _leftovers(run_dir)
    assert rundir.read_attr(run_dir, "exit_status") is None
    monkeypatch.undo()
    shim.write_end(run_dir, 1, 1)
    assert rundir.read_attr(run_dir, "exit_status") == 1


def test_a_failed_attr_write_keeps_the_old_value_and_leaves_no_tmp(run_dir, monkeypatch):
    rundir.write_attr(run_dir, "label", "old")
    monkeypatch.setattr(os, "replace", _enospc)
    with pytest.raises(OSError):
        rundir.write_attrs(run_dir, {"label": "new"})
    assert rundir.read_attr(run_dir, "label") == "old"
    assert _leftovers(run_dir) == []
