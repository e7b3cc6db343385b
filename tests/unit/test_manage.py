"""Managing runs that exist (guildd.manage) on a temp GUILD_HOME: labels and marks in the run
dir and the index, the trash, a run's files, export and import, and indexing run dirs made
elsewhere."""

import os
import pathlib
import pwd
import shutil
import tempfile

import pytest

from guild_common import errors, home as homelib, limits, rundir
from guildd import fsrights, manage
from guildd.store import Store
from guildd.tfevents import EventWriter

RUN_IDS = ["%032x" % n for n in range(1, 10)]


def alive(pid):
    return pid == os.getpid()


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    homelib.runs_dir(path).mkdir(parents=True)
    return path


@pytest.fixture
def store(home):
    s = Store(home / "index.db", homelib.runs_dir(home))
    yield s
    s.close()


def write_run(parent, run_id, status="completed", files=None, **attrs):
    """A run dir as guildd and Guild AI leave it, with `files` ({relpath: text}) in it."""
    run_dir = parent / run_id
    rundir.write_attrs(run_dir, {"initialized": 1_000, "started": 2_000, "flags": {"x": 1}, **attrs})
    rundir.write_opref(run_dir, "script:/proj '' '' train.py")
    if status == "completed":
        rundir.write_attrs(run_dir, {"exit_status": 0, "stopped": 3_000})
    elif status == "running":
        rundir.lock_file(run_dir).write_text(str(os.getpid()))
    elif status == "staged":
        rundir.set_marker(run_dir, "STAGED", True)
    for rel, text in (files or {}).items():
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / rel).write_text(text)
    return run_dir


@pytest.fixture
def make_run(home, store):
    def make(n=0, status="completed", files=None, **attrs):
        run_dir = write_run(homelib.runs_dir(home), RUN_IDS[n], status, files, **attrs)
        manage.index_run_dir(store, run_dir, alive)
        return store.get(RUN_IDS[n])

    return make


# Labels and marks

NEW_LABEL = {
    "set replaces": ("old words", "set", "new", "new"),
    "prepend": ("b", "prepend", "a", "a b"),
    "prepend to no label": ("", "prepend", "a", "a"),
    "append": ("a", "append", "b", "a b"),
    "remove whole words only": ("ab a", "remove", "a", "ab"),
    "remove a phrase wherever it is": ("x a b y a b", "remove", "a b", "x y"),
    "remove a phrase whose words are apart": ("a x b", "remove", "a b", "a x b"),
    "remove what isn't there": ("a b", "remove", "c", "a b"),
    "clear": ("a b", "clear", "", ""),
}


@pytest.mark.parametrize("old, action, value, expected", NEW_LABEL.values(), ids=NEW_LABEL.keys())
def test_new_label(old, action, value, expected):
    assert manage.new_label(old, action, value) == expected


def test_an_unknown_label_action():
    with pytest.raises(errors.InvalidArgument, match="unknown label action 'shout'"):
        manage.new_label("a", "shout", "b")


def test_a_label_is_written_to_the_run_dir_and_the_index(home, store, make_run):
    rec = make_run(label="old")
    [changed] = manage.label_runs(store, home, [rec], "append", "new")
    assert changed.label == "old new"
    assert rundir.read_attr(manage.location(home, rec), "label") == "old new"


def test_a_cleared_label_leaves_no_attr(home, store, make_run):
    rec = make_run(label="old")
    [changed] = manage.label_runs(store, home, [rec], "clear", "")
    assert changed.label == ""
    assert not (rundir.attrs_dir(manage.location(home, rec)) / "label").exists()


def test_a_label_on_a_run_in_the_trash(home, store, make_run):
    rec = make_run()
    [rec] = manage.delete_runs(store, home, [rec], permanent=False)
    [changed] = manage.label_runs(store, home, [store.get(rec.id)], "set", "kept")
    assert rundir.read_attr(manage.location(home, changed), "label") == "kept"


def test_mark_and_unmark(home, store, make_run):
    recs = [make_run(0), make_run(1)]
    assert [r.marked for r in manage.mark_runs(store, home, recs, clear=False)] == [True, True]
    assert rundir.read_attr(manage.location(home, recs[0]), "marked") is True
    assert [r.marked for r in manage.mark_runs(store, home, recs[:1], clear=True)] == [False]
    assert rundir.read_attr(manage.location(home, recs[0]), "marked") is None
    assert store.get(recs[1].id).marked


# The trash


def test_delete_moves_runs_to_the_trash(home, store, make_run):
    rec = make_run(files={"model.bin": "weights"})
    manage.delete_runs(store, home, [rec], permanent=False)
    trashed = store.get(rec.id)
    assert trashed.deleted and store.ids() == set()
    assert manage.location(home, trashed) == manage.trash_runs_dir(home) / rec.id
    assert (manage.location(home, trashed) / "model.bin").read_text() == "weights"
    assert not (homelib.runs_dir(home) / rec.id).exists()


def test_delete_over_a_trashed_run_of_the_same_id_replaces_it(home, store, make_run):
    stale = manage.trash_runs_dir(home) / RUN_IDS[0]
    (stale / "old").mkdir(parents=True)
    rec = make_run(files={"new": "x"})
    manage.delete_runs(store, home, [rec], permanent=False)
    assert sorted(p.name for p in stale.iterdir()) == [".guild", "new"]


def test_permanent_delete_leaves_nothing(home, store, make_run):
    rec = make_run()
    manage.delete_runs(store, home, [rec], permanent=True)
    assert store.get(rec.id) is None
    assert not (homelib.runs_dir(home) / rec.id).exists()


@pytest.mark.parametrize("status", ["running", "pending"])
def test_an_active_run_is_not_deleted(home, store, make_run, status):
    done, active = make_run(0), make_run(1, status="running")
    store.update(active.id, status=status)
    with pytest.raises(errors.FailedPrecondition, match=f"cannot delete run {active.id[:8]}: it is {status}"):
        manage.delete_runs(store, home, [done, store.get(active.id)], permanent=True)
    assert store.ids() == {done.id, active.id}  # none of them: the check comes first


def test_restore_brings_a_run_back(home, store, make_run):
    rec = make_run(files={"f": "x"})
    manage.delete_runs(store, home, [rec], permanent=False)
    [restored] = manage.restore_runs(store, home, [store.get(rec.id)])
    assert not restored.deleted
    assert (homelib.runs_dir(home) / rec.id / "f").read_text() == "x"


def test_restore_never_overwrites_a_run(home, store, make_run):
    rec = make_run()
    manage.delete_runs(store, home, [rec], permanent=False)
    write_run(homelib.runs_dir(home), rec.id)
    with pytest.raises(errors.AlreadyExists, match=f"cannot restore {rec.id[:8]}"):
        manage.restore_runs(store, home, [store.get(rec.id)])
    assert (manage.trash_runs_dir(home) / rec.id).is_dir()


def test_purge_empties_the_trash(home, store, make_run):
    rec = make_run()
    manage.delete_runs(store, home, [rec], permanent=False)
    manage.purge_runs(store, home, [store.get(rec.id)])
    assert store.get(rec.id) is None
    assert list(manage.trash_runs_dir(home).iterdir()) == []


# A run's files


@pytest.fixture
def files_run(tmp_path):
    run_dir = write_run(tmp_path, RUN_IDS[0], files={"data/a.csv": "1,2\n", "data/b.txt": "b", "zz.txt": "zz"})
    rundir.write_sourcecode(run_dir, [("train.py", b"print(1)\n", 0o644), ("pkg/util.py", b"", 0o644)])
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    os.symlink(tmp_path / "outside", run_dir / "link")
    return run_dir


LIST_FILES = {
    "all but .guild, sorted": (dict(), ["data", "data/a.csv", "data/b.txt", "link", "pkg", "pkg/util.py", "train.py",
                                        "zz.txt"]),
    "a path prefix": (dict(path="data"), ["data", "data/a.csv", "data/b.txt"]),
    "a glob crosses /": (dict(path="*.txt"), ["data/b.txt", "zz.txt"]),
    "source code only, with its dirs": (dict(sourcecode=True), ["pkg", "pkg/util.py", "train.py"]),
    "links followed": (dict(path="link", follow_links=True), ["link", "link/secret"]),
    "the run's metadata too": (dict(path=".guild/attrs/e", all_files=True), [".guild/attrs/exit_status"]),
}


@pytest.mark.parametrize("options, expected", LIST_FILES.values(), ids=LIST_FILES.keys())
def test_list_files(files_run, options, expected):
    assert [f[0] for f in manage.list_files(files_run, **options)] == expected


def test_list_files_gives_kind_and_size(files_run):
    found = {rel: (is_dir, is_link, size) for rel, is_dir, is_link, size in manage.list_files(files_run)}
    assert (found["data"], found["data/a.csv"], found["link"]) == ((True, False, 0), (False, False, 4), (True, True, 0))


def test_list_files_hides_the_runs_metadata(files_run):
    assert manage.list_files(files_run, path=".guild") == []


def test_list_files_refuses_a_path_outside_the_run(files_run):
    with pytest.raises(errors.InvalidArgument, match="outside"):
        manage.list_files(files_run, path="../x")


def test_file_path_of_a_run_file(files_run):
    assert manage.file_path(files_run, "data/../data/a.csv") == (files_run / "data" / "a.csv").resolve()


FILE_PATH_ERRORS = {
    "up and out": ("../" + RUN_IDS[0] + "x", errors.InvalidArgument, "outside"),
    "absolute": ("/etc/passwd", errors.InvalidArgument, "absolute"),
    "through a link that points out": ("link/secret", errors.InvalidArgument, "outside"),
    "missing": ("nope.txt", errors.NotFound, "does not exist"),
    "a directory": ("data", errors.InvalidArgument, "is a directory"),
}


@pytest.mark.parametrize("rel, error, message", FILE_PATH_ERRORS.values(), ids=FILE_PATH_ERRORS.keys())
def test_file_path_errors(files_run, rel, error, message):
    with pytest.raises(error, match=message):
        manage.file_path(files_run, rel)


# Export and import


def test_export_copies_runs_and_marks_the_dir(home, store, make_run, tmp_path):
    rec = make_run(files={"f": "x"})
    dest = tmp_path / "archive"
    assert manage.export_runs(store, home, [rec], str(dest), move=False) == [(rec.id, "copied", "")]
    assert (dest / rec.id / "f").read_text() == "x" and (dest / ".guild-nocopy").exists()
    assert (homelib.runs_dir(home) / rec.id).is_dir() and store.get(rec.id)
    assert [p.name for p in dest.iterdir() if p.name.endswith(".partial")] == []


def test_export_move_takes_runs_out_of_the_home(home, store, make_run, tmp_path):
    rec = make_run()
    assert manage.export_runs(store, home, [rec], str(tmp_path / "a"), move=True) == [(rec.id, "moved", "")]
    assert store.get(rec.id) is None and not (homelib.runs_dir(home) / rec.id).exists()


def test_export_skips_a_run_already_there(home, store, make_run, tmp_path):
    rec = make_run(files={"f": "new"})
    write_run(tmp_path / "a", rec.id, files={"f": "old"})
    assert manage.export_runs(store, home, [rec], str(tmp_path / "a"), move=True) == [
        (rec.id, "skipped", f"{rec.id} exists, skipping")]
    assert (tmp_path / "a" / rec.id / "f").read_text() == "old" and store.get(rec.id)


def test_export_move_of_a_running_run_is_refused(home, store, make_run, tmp_path):
    rec = make_run(status="running")
    with pytest.raises(errors.FailedPrecondition, match="cannot move run"):
        manage.export_runs(store, home, [rec], str(tmp_path / "a"), move=True)


EXPORT_DEST_ERRORS = {
    "a relative path": (lambda home, tmp: "archive", "is not an absolute path"),
    "the runs dir": (lambda home, tmp: str(homelib.runs_dir(home)), "where guildd keeps runs"),
    "inside a run": (lambda home, tmp: str(homelib.runs_dir(home) / RUN_IDS[0] / "x"), "where guildd keeps runs"),
    "the trash": (lambda home, tmp: str(manage.trash_runs_dir(home)), "where guildd keeps runs"),
    "a file": (lambda home, tmp: str(tmp / "file"), "is not a directory"),
}


@pytest.mark.parametrize("dest, message", EXPORT_DEST_ERRORS.values(), ids=EXPORT_DEST_ERRORS.keys())
def test_export_dest_errors(home, store, make_run, tmp_path, dest, message):
    rec = make_run()
    (tmp_path / "file").write_text("")
    with pytest.raises(errors.InvalidArgument, match=message):
        manage.export_runs(store, home, [rec], dest(home, tmp_path), move=False)


def test_archive_run_dirs_are_the_run_shaped_dirs(tmp_path):
    archive = tmp_path / "a"
    runs = [write_run(archive, RUN_IDS[1]), write_run(archive, RUN_IDS[0])]
    (archive / "notes").mkdir()
    (archive / RUN_IDS[2]).mkdir()  # no .guild/attrs: not a run
    assert manage.archive_run_dirs(str(archive)) == sorted(runs)


@pytest.mark.parametrize("name, error, message", [
    pytest.param("missing", errors.NotFound, "does not exist", id="missing"),
    pytest.param("file", errors.InvalidArgument, "expected a directory", id="a file"),
])
def test_archive_errors(tmp_path, name, error, message):
    (tmp_path / "file").write_text("")
    with pytest.raises(error, match=message):
        manage.archive_run_dirs(str(tmp_path / name))


def test_import_copies_and_indexes_runs(home, store, tmp_path):
    src = write_run(tmp_path / "a", RUN_IDS[0], status="staged", label="from afar")
    assert manage.import_runs(store, home, [src], move=False, pid_alive=alive) == [(src.name, "copied", "")]
    rec = store.get(src.name)
    assert (rec.status, rec.label, rec.flags) == ("staged", "from afar", {"x": 1})
    assert src.is_dir() and (homelib.runs_dir(home) / src.name).is_dir()


def test_import_move_takes_the_source(home, store, tmp_path):
    src = write_run(tmp_path / "a", RUN_IDS[0])
    assert manage.import_runs(store, home, [src], move=True, pid_alive=alive) == [(src.name, "moved", "")]
    assert not src.exists() and store.get(src.name).status == "completed"


@pytest.mark.parametrize("where", ["runs", "trash"])
def test_import_skips_a_run_the_home_has(home, store, make_run, tmp_path, where):
    rec = make_run(label="mine")
    if where == "trash":
        manage.delete_runs(store, home, [rec], permanent=False)
    src = write_run(tmp_path / "a", rec.id, label="theirs")
    assert manage.import_runs(store, home, [src], move=True, pid_alive=alive) == [
        (rec.id, "skipped", f"{rec.id} exists, skipping")]
    assert store.get(rec.id).label == "mine" and src.is_dir()


# Export and import for a shared daemon's caller: with the caller's rights


@pytest.fixture
def alices_box():
    """A public GUILD_HOME (root's), its index, and alice's Account (root and alice needed)."""
    if os.geteuid() != 0:
        pytest.skip("a shared daemon runs as root")
    try:
        alice = pwd.getpwnam("alice")
    except KeyError:
        pytest.skip("needs the account alice")
    base = pathlib.Path(tempfile.mkdtemp(prefix="guild-manage-"))
    base.chmod(0o755)
    home = base / "home"
    homelib.runs_dir(home).mkdir(parents=True)
    s = Store(home / "index.db", homelib.runs_dir(home))
    yield base, home, s, alice, fsrights.Account(alice.pw_uid, alice.pw_gid, (alice.pw_gid,))
    s.close()
    shutil.rmtree(base)


def _give(top, user):
    for path in [top, *top.rglob("*")]:
        os.lchown(path, user.pw_uid, user.pw_gid)


def test_a_callers_export_goes_only_where_they_may_write(alices_box):
    base, home, store, alice, account = alices_box
    run_dir = write_run(homelib.runs_dir(home), RUN_IDS[0], files={"f": "x"})
    _give(run_dir, alice)
    manage.index_run_dir(store, run_dir, alive)
    rec = store.get(RUN_IDS[0])
    roots = base / "roots"
    roots.mkdir(mode=0o755)
    with pytest.raises(errors.PermissionDenied, match="cannot write to"):
        manage.export_runs(store, home, [rec], str(roots / "archive"), move=False, caller=account)
    assert list(roots.iterdir()) == []
    mine = base / "mine"
    mine.mkdir()
    _give(mine, alice)
    assert manage.export_runs(store, home, [rec], str(mine / "archive"), move=True, caller=account) == [(rec.id, "moved", "")]
    assert (mine / "archive" / rec.id / "f").stat().st_uid == alice.pw_uid
    assert store.get(rec.id) is None and not run_dir.exists()


def test_a_callers_import_is_theirs_and_takes_only_what_they_can_read(alices_box):
    base, home, store, alice, account = alices_box
    archive = base / "archive"
    src = write_run(archive, RUN_IDS[0], files={"f": "x"})
    _give(archive, alice)
    secret = write_run(archive, RUN_IDS[1], files={"secret": "root's"})
    (secret / "secret").chmod(0o600)  # root's, in a run dir alice names
    assert manage.import_runs(store, home, [src], move=False, pid_alive=alive, caller=account) == [(src.name, "copied", "")]
    imported = homelib.runs_dir(home) / src.name
    assert {p.lstat().st_uid for p in [imported, *imported.rglob("*")]} == {alice.pw_uid}
    with pytest.raises(errors.PermissionDenied, match=f"cannot import run {RUN_IDS[1][:8]}"):
        manage.import_runs(store, home, [secret], move=False, pid_alive=alive, caller=account)
    assert sorted(os.listdir(homelib.runs_dir(home))) == [src.name] and store.get(RUN_IDS[1]) is None


# Indexing run dirs made elsewhere


def test_index_reads_status_and_the_output_read_so_far(home, store, make_run):
    run_dir = write_run(homelib.runs_dir(home), RUN_IDS[0], status="running", files={".guild/output": "12345"})
    manage.index_run_dir(store, run_dir, alive)
    rec = store.get(RUN_IDS[0])
    assert (rec.status, rec.pid, rec.scalar_offset) == ("running", os.getpid(), 5)


def test_index_reads_scalars_from_event_files(home, store):
    run_dir = write_run(homelib.runs_dir(home), RUN_IDS[0])
    writer = EventWriter(str(rundir.guild_dir(run_dir)))
    writer.add_scalars([("loss", 3.0, 0, 1.0), ("loss", 1.0, 1, 2.0), ("loss", 2.0, 2, 3.0)])
    writer.close()
    manage.index_run_dir(store, run_dir, alive)
    [loss] = store.scalars(RUN_IDS[0])
    assert (loss.first_val, loss.last_val, loss.min_val, loss.min_step, loss.count) == (3.0, 2.0, 1.0, 1, 3)


def test_a_run_dir_that_cannot_be_read_is_indexed_as_an_error(home, store):
    run_dir = write_run(homelib.runs_dir(home), RUN_IDS[0], status="none", exit_status="not a number")
    manage.index_run_dir(store, run_dir, alive, deleted=True)
    rec = store.get(RUN_IDS[0])
    assert (rec.status, rec.deleted, rec.op_name) == ("error", True, "")


def test_damaged_event_files_leave_the_run_listed_without_scalars(home, store):
    run_dir = write_run(homelib.runs_dir(home), RUN_IDS[0])
    (rundir.guild_dir(run_dir) / "events.out.tfevents.1.host").write_bytes(b"\xff" * 64)
    manage.index_run_dir(store, run_dir, alive)
    assert store.get(RUN_IDS[0]).status == "completed" and store.scalars(RUN_IDS[0]) == []


# Disk usage


def test_disk_usage_by_place(home, store, make_run):
    rec = make_run(files={"big": "x" * 1000})
    make_run(1, files={"small": "y" * 10})
    manage.delete_runs(store, home, [rec], permanent=False)
    (home / "cache").mkdir()
    (home / "cache" / "c").write_bytes(b"z" * 100)
    usage = {name: (path, size) for name, path, size in manage.disk_usage(home)}
    meta = rundir.guild_dir(homelib.runs_dir(home) / RUN_IDS[1])
    attrs = sum(f.stat().st_size for f in meta.rglob("*") if f.is_file())  # the same in both runs
    assert usage["runs"] == (str(homelib.runs_dir(home)), 10 + attrs)
    assert usage["deleted_runs"][1] == 1000 + attrs
    assert usage["cache"][1] == 100
    assert usage["guild_home"][1] >= 1110 + 2 * attrs


def test_a_label_appended_to_a_long_one_is_cut_to_the_limit(home, store, make_run):
    rec = make_run(label="a" * limits.MAX_LABEL)
    [changed] = manage.label_runs(store, home, [rec], "append", "more")
    assert changed.label == "a" * (limits.MAX_LABEL - 1) + "\u2026"
    assert rundir.read_attr(manage.location(home, rec), "label") == changed.label


def test_ls_following_links_stays_in_guild_home_and_ends_on_loops(tmp_path):
    # A link out of GUILD_HOME is listed, not entered; two links back to the run's own dir
    # once made 2^N paths (the daemon's I/O thread never came back).
    runs = tmp_path / "runs"
    run_dir = write_run(runs, RUN_IDS[0], files={"a.txt": "a"})
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    os.symlink(tmp_path / "outside", run_dir / "out")
    os.symlink(".", run_dir / "loop-a")
    os.symlink(".", run_dir / "loop-b")
    assert [f[0] for f in manage.list_files(run_dir, follow_links=True)] == ["a.txt", "loop-a", "loop-b", "out"]
