"""The run-directory format (ARCHITECTURE.md, contract 1): attrs, opref, status, source code."""

import hashlib
import os

import pytest
import yaml

from guild_common import rundir

# attrs

ATTRS = {
    "flags": {"lr": 0.1, "epochs": 10, "name": "a b", "on": True, "off": None},
    "exit_status": 0,
    "label": "lr=0.1 epochs=10",
    "tags": ["x", "y"],
    "started": 1700000000123456,
    "unicode": "ünï",
}


def test_attrs_round_trip(tmp_path):
    rundir.write_attrs(tmp_path, ATTRS)
    assert rundir.read_attrs(tmp_path) == ATTRS
    for name, value in ATTRS.items():
        assert rundir.read_attr(tmp_path, name) == value


def test_attrs_one_yaml_value_per_file(tmp_path):
    rundir.write_attrs(tmp_path, ATTRS)
    attrs_dir = tmp_path / ".guild" / "attrs"
    assert sorted(p.name for p in attrs_dir.iterdir()) == sorted(ATTRS)
    # Guild 0.9 reads each file as YAML.
    assert yaml.safe_load((attrs_dir / "flags").read_text()) == ATTRS["flags"]
    assert yaml.safe_load((attrs_dir / "exit_status").read_text()) == 0
    assert yaml.safe_load((attrs_dir / "label").read_text()) == "lr=0.1 epochs=10"


def test_write_attr_leaves_no_temp_files(tmp_path):
    rundir.write_attrs(tmp_path, {"a": 1})
    for i in range(5):
        rundir.write_attr(tmp_path, "a", i)
    rundir.write_attr(tmp_path, "b", "x")
    attrs_dir = tmp_path / ".guild" / "attrs"
    assert sorted(p.name for p in attrs_dir.iterdir()) == ["a", "b"]
    assert rundir.read_attr(tmp_path, "a") == 4


@pytest.mark.parametrize(
    "private, leftover, mode",
    [
        pytest.param(False, None, 0o644, id="an attr: readable by all, as the umask allows"),
        pytest.param(True, None, 0o600, id="a private attr: its owner only"),
        pytest.param(True, 0o644, 0o600, id="a private attr over a leftover temporary file"),
    ],
)
def test_a_private_attr_is_readable_by_its_owner_only(tmp_path, private, leftover, mode):
    old = os.umask(0o022)
    try:
        rundir.attrs_dir(tmp_path).mkdir(parents=True)
        if leftover is not None:
            tmp = rundir.attrs_dir(tmp_path) / ".env.tmp"
            tmp.write_text("old")
            tmp.chmod(leftover)
        rundir.write_attr(tmp_path, "env", {"TOKEN": "x"}, private=private)
        path = rundir.attrs_dir(tmp_path) / "env"
        assert (path.stat().st_mode & 0o777, rundir.read_attr(tmp_path, "env")) == (mode, {"TOKEN": "x"})
    finally:
        os.umask(old)


def test_read_attrs_skips_dotfiles(tmp_path):
    rundir.write_attrs(tmp_path, {"a": 1})
    (tmp_path / ".guild" / "attrs" / ".a.tmp").write_text("2\n")
    (tmp_path / ".guild" / "attrs" / ".hidden").write_text("x\n")
    assert rundir.read_attrs(tmp_path) == {"a": 1}


def test_read_attr_missing_and_default(tmp_path):
    assert rundir.read_attr(tmp_path, "nope") is None
    assert rundir.read_attr(tmp_path, "nope", default=7) == 7
    assert rundir.read_attrs(tmp_path) == {}
    rundir.write_attrs(tmp_path, {"zero": 0, "false": False, "empty": ""})
    # Falsy values are values, not missing.
    assert rundir.read_attr(tmp_path, "zero", default=7) == 0
    assert rundir.read_attr(tmp_path, "false", default=7) is False
    assert rundir.read_attr(tmp_path, "empty", default=7) == ""


def test_damaged_attrs_read_as_their_default(tmp_path):
    # Whatever reads a run (start-up, the index) gets no value, not an exception.
    rundir.write_attrs(tmp_path, {"ok": 1})
    attrs = rundir.attrs_dir(tmp_path)
    (attrs / "binary").write_bytes(b"\xff\xfe\x00garbage")
    (attrs / "yaml").write_text("{not: yaml: [")
    (attrs / "dir").mkdir()
    for name in ("binary", "yaml", "dir"):
        assert rundir.read_attr(tmp_path, name, default=7) == 7
    assert rundir.read_attrs(tmp_path) == {"ok": 1, "binary": None, "yaml": None, "dir": None}


def test_a_fifo_in_a_run_dir_reads_as_missing_and_is_never_waited_on(tmp_path):
    # A run dir is its owner's: a FIFO she put in place of an attr, the LOCK or the opref would
    # hold the daemon's I/O thread; it reads as a file with no value instead.
    rundir.write_attrs(tmp_path, {"ok": 1})
    for path in (rundir.attrs_dir(tmp_path) / "cmd", rundir.lock_file(tmp_path), rundir.guild_dir(tmp_path) / "opref"):
        os.mkfifo(path)
    assert rundir.read_attr(tmp_path, "cmd", default=7) == 7
    assert rundir.read_attrs(tmp_path) == {"ok": 1, "cmd": None}
    assert rundir.read_lock_pid(tmp_path) is None
    assert rundir.read_opref(tmp_path) == ""
    assert rundir.read_status(tmp_path, lambda pid: True) == "error"


def test_delete_attr(tmp_path):
    rundir.write_attrs(tmp_path, {"a": 1, "b": 2})
    rundir.delete_attr(tmp_path, "a")
    rundir.delete_attr(tmp_path, "missing")  # no error
    assert rundir.read_attrs(tmp_path) == {"b": 2}


# opref


def test_script_opref():
    opref = rundir.script_opref("/abs/dir", "train.py")
    assert opref == "script:/abs/dir '' '' train.py"
    assert rundir.op_name_for_opref(opref) == "train.py"


@pytest.mark.parametrize(
    "opref, op_name",
    [
        ("script:/abs/dir '' '' train.py", "train.py"),
        ("guildfile:/p/guild.yml abc123 '' train", "train"),
        ("guildfile:/p/guild.yml abc123 m1 train", "m1:train"),
        ("guildfile:'/my project/guild.yml' abc123 'm 1' train", "m 1:train"),
        ("", ""),
        ("garbage", ""),
    ],
)
def test_op_name_for_opref(opref, op_name):
    assert rundir.op_name_for_opref(opref) == op_name


def test_opref_paths_with_spaces_are_quoted():
    opref = rundir.script_opref("/my project/dir", "my train.py")
    assert opref == "script:'/my project/dir' '' '' 'my train.py'"
    assert rundir.op_name_for_opref(opref) == "my train.py"


def test_opref_write_read(tmp_path):
    (tmp_path / ".guild").mkdir()
    assert rundir.read_opref(tmp_path) == ""
    opref = rundir.script_opref("/abs/dir", "train.py")
    rundir.write_opref(tmp_path, opref)
    assert (tmp_path / ".guild" / "opref").read_text() == opref + "\n"
    assert rundir.read_opref(tmp_path) == opref


# status


@pytest.mark.parametrize(
    "exit_status, status",
    [(0, "completed"), (-15, "terminated"), (-9, "terminated"), (1, "error"), (3, "error"), (137, "error")],
)
def test_status_for_exit_status(exit_status, status):
    assert rundir.status_for_exit_status(exit_status) == status


def _run_dir(tmp_path, markers=(), exit_status=None, lock_pid=None):
    (tmp_path / ".guild" / "attrs").mkdir(parents=True)
    for marker in markers:
        rundir.set_marker(tmp_path, marker, True)
    if exit_status is not None:
        rundir.write_attr(tmp_path, "exit_status", exit_status)
    if lock_pid is not None:
        rundir.lock_file(tmp_path).write_text(f"{lock_pid}\n")
    return tmp_path


def _alive(pid):
    return pid == 4242


@pytest.mark.parametrize(
    "markers, exit_status, lock_pid, status",
    [
        (("PENDING", "STAGED"), 0, 4242, "pending"),
        (("PENDING",), None, None, "pending"),
        (("STAGED",), 0, 4242, "staged"),
        (("STAGED",), None, None, "staged"),
        ((), 0, 4242, "completed"),
        ((), -15, 4242, "terminated"),
        ((), 2, None, "error"),
        ((), None, 4242, "running"),
        ((), None, 999, "error"),  # LOCK left by a process that is gone
        ((), None, None, "error"),
    ],
)
def test_read_status_precedence(tmp_path, markers, exit_status, lock_pid, status):
    run_dir = _run_dir(tmp_path, markers, exit_status, lock_pid)
    assert rundir.read_status(run_dir, _alive) == status


def test_read_status_garbage_lock_is_not_running(tmp_path):
    run_dir = _run_dir(tmp_path)
    rundir.lock_file(run_dir).write_text("not a pid\n")
    assert rundir.read_lock_pid(run_dir) is None
    assert rundir.read_status(run_dir, lambda pid: True) == "error"


def test_set_marker(tmp_path):
    (tmp_path / ".guild").mkdir()
    rundir.set_marker(tmp_path, "STAGED", True)
    assert rundir.has_marker(tmp_path, "STAGED")
    assert (tmp_path / ".guild" / "STAGED").exists()
    rundir.set_marker(tmp_path, "STAGED", False)
    rundir.set_marker(tmp_path, "STAGED", False)  # idempotent
    assert not rundir.has_marker(tmp_path, "STAGED")


# source code

SOURCES = [
    ("train.py", b"print('hi')\n", 0o755),
    ("pkg/util.py", b"X = 1\n", 0o644),
    ("my data.txt", b"spaces\n", 0),
]


def test_write_sourcecode_files_and_manifest(tmp_path):
    (tmp_path / ".guild").mkdir()
    rundir.write_sourcecode(tmp_path, SOURCES)
    for path, data, _mode in SOURCES:
        assert (tmp_path / path).read_bytes() == data
    assert (tmp_path / "train.py").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "pkg/util.py").stat().st_mode & 0o777 == 0o644
    lines = (tmp_path / ".guild" / "manifest").read_text().splitlines()
    sha = lambda data: hashlib.sha1(data).hexdigest()  # noqa: E731
    assert lines == [
        f"s train.py {sha(SOURCES[0][1])} train.py",
        f"s pkg/util.py {sha(SOURCES[1][1])} pkg/util.py",
        f"s 'my data.txt' {sha(SOURCES[2][1])} 'my data.txt'",
    ]


def test_sourcecode_files_reads_manifest(tmp_path):
    (tmp_path / ".guild").mkdir()
    assert rundir.sourcecode_files(tmp_path) == []
    rundir.write_sourcecode(tmp_path, SOURCES)
    assert rundir.sourcecode_files(tmp_path) == ["train.py", "pkg/util.py", "my data.txt"]


def test_sourcecode_files_ignores_other_manifest_entries(tmp_path):
    (tmp_path / ".guild").mkdir()
    (tmp_path / ".guild" / "manifest").write_text(
        "s train.py 0123abcd train.py\nd data.csv 4567ef01 /data/data.csv\n"
    )
    assert rundir.sourcecode_files(tmp_path) == ["train.py"]


# tail_lines


@pytest.mark.parametrize(
    "data, n, expected",
    [
        (b"a\nb\nc\n", 1, b"c\n"),
        (b"a\nb\nc\n", 2, b"b\nc\n"),
        (b"a\nb\nc\n", 3, b"a\nb\nc\n"),
        (b"a\nb\nc\n", 10, b"a\nb\nc\n"),
        (b"a\nb\nc", 1, b"c"),
        (b"a\nb\nc", 2, b"b\nc"),
        (b"a\nb\nc", 10, b"a\nb\nc"),
        (b"a\nb\nc\n", 0, b"a\nb\nc\n"),
        (b"a\nb\nc\n", -1, b"a\nb\nc\n"),
        (b"", 3, b""),
        (b"only\n", 1, b"only\n"),
        (b"a\n\nb\n", 2, b"\nb\n"),
    ],
)
def test_tail_lines(data, n, expected):
    assert rundir.tail_lines(data, n) == expected


def test_new_run_id_is_32_hex():
    ids = {rundir.new_run_id() for _ in range(10)}
    assert len(ids) == 10
    for run_id in ids:
        assert len(run_id) == 32
        int(run_id, 16)
