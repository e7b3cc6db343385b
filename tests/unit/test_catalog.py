"""The catalog (guildd.catalog): runs selected from a temp GUILD_HOME's run dirs and a real
index, the index kept in line with dirs added and removed by hand, the trash, compare tables
and archives. No daemon: the runtime's threads are a fake that calls in place."""

import asyncio
import os
import shutil
import sqlite3

import pytest

from guild_common import errors, home as homelib, rundir
from guildd import catalog as cataloglib, manage, outputs
from guildd.selection import Criteria
from guildd.store import RunRecord, Store, Summary
from tests.unit.fakes import InPlaceRuntime

OPREF = "script:/p '' '' train.py"


def run_id(n):
    """Run `n`'s id: its short id (first 8 chars) tells it too."""
    return f"{n:02x}" * 16


def write_run(base, n, started, exit_status=0, label="", flags=None, marked=False, lock_pid=None, op=None):
    """A finished run's dir as the daemon writes it (`started` in seconds); running when
    `exit_status` is None and `lock_pid` names a live process."""
    run_dir = base / run_id(n)
    rundir.attrs_dir(run_dir).mkdir(parents=True)
    rundir.write_opref(run_dir, OPREF)
    attrs = {"initialized": started * 1_000_000, "started": started * 1_000_000, "flags": flags or {},
             "label": label, "cmd": ["python", "train.py", f"--n={n}"]}
    if exit_status is not None:
        attrs.update(exit_status=exit_status, stopped=(started + 1) * 1_000_000)
    if marked:
        attrs["marked"] = True
    if op is not None:
        attrs["op"] = op
    rundir.write_attrs(run_dir, attrs)
    if lock_pid is not None:
        rundir.lock_file(run_dir).write_text(str(lock_pid))
    return run_dir


@pytest.fixture
def home(tmp_path):
    runs = homelib.runs_dir(tmp_path)
    runs.mkdir(parents=True)
    write_run(runs, 1, started=10, label="best", flags={"x": 1}, marked=True)
    write_run(runs, 2, started=20, exit_status=1, flags={"x": 2})
    write_run(runs, 3, started=30, label="other", flags={"x": 3})
    return tmp_path


@pytest.fixture
def store(home):
    s = Store(homelib.index_path(home), homelib.runs_dir(home))
    yield s
    s.close()


@pytest.fixture
def discarded():
    return []


@pytest.fixture
def catalog(home, store, discarded):
    return cataloglib.Catalog(InPlaceRuntime(), store, home, discarded.append)


def run(coro):
    return asyncio.run(coro)


def ids(recs):
    return [int(r.id[:2], 16) for r in recs]


def selected(catalog, criteria=Criteria(), specs=(), limit=0, order=None, archive=""):
    recs, total = run(catalog.select(criteria, specs, limit, order, archive))
    return ids(recs), total


SELECT = {
    "all, latest first": (dict(), ([3, 2, 1], 3)),
    "by status": (dict(criteria=Criteria(statuses=("completed",))), ([3, 1], 2)),
    "not a status": (dict(criteria=Criteria(not_statuses=("completed",))), ([2], 1)),
    "by label": (dict(criteria=Criteria(labels=("best",))), ([1], 1)),
    "unlabeled": (dict(criteria=Criteria(unlabeled=True)), ([2], 1)),
    "marked": (dict(criteria=Criteria(marked=True)), ([1], 1)),
    "a limit keeps the total": (dict(limit=2), ([3, 2], 3)),
    "run specs by index": (dict(specs=["1", "3"]), ([3, 1], 2)),
    "by a flag, ascending": (dict(order=("=x", False)), ([1, 2, 3], 3)),
    "by a flag, descending": (dict(order=("=x", True)), ([3, 2, 1], 3)),
    "started after": (dict(criteria=Criteria(started_after_us=15 * 1_000_000)), ([3, 2], 2)),
}


@pytest.mark.parametrize("case", SELECT)
def test_select(catalog, case):
    args, expected = SELECT[case]
    assert selected(catalog, **args) == expected


def test_the_first_read_indexes_the_run_dirs_found(catalog, store):
    assert store.ids() == set()
    rec = run(catalog.get_run("1"))
    assert (ids([rec])[0], rec.label, rec.status) == (3, "other", "completed")
    assert store.ids() == {run_id(n) for n in (1, 2, 3)}


SYNC = {
    "a run dir added by hand is indexed": (lambda home: write_run(homelib.runs_dir(home), 4, started=40), [4, 3, 2, 1]),
    "a run dir removed by hand is dropped": (lambda home: shutil.rmtree(homelib.runs_dir(home) / run_id(2)), [3, 1]),
    "a dir that is no run is left out": (lambda home: (homelib.runs_dir(home) / "notes").mkdir(), [3, 2, 1]),
    "a run dir with no attrs is left out": (lambda home: (homelib.runs_dir(home) / run_id(9)).mkdir(), [3, 2, 1]),
    "a run dir being made is left out": (lambda home: half_made_run(homelib.runs_dir(home), 4), [3, 2, 1]),
}


def half_made_run(base, n, written_us=None):
    """Run `n`'s dir as a daemon killed while making it leaves it: attrs, and the marker
    (written at `written_us`)."""
    write_run(base, n, started=40)
    marker = cataloglib.making_marker(base / run_id(n))
    marker.touch()
    if written_us is not None:
        os.utime(marker, ns=(written_us * 1000, written_us * 1000))


@pytest.mark.parametrize("case", SYNC)
def test_sync_index_notices_changes_made_by_hand(catalog, home, case):
    change, expected = SYNC[case]
    selected(catalog)
    change(home)
    bump_mtime(homelib.runs_dir(home))
    assert selected(catalog)[0] == expected


def bump_mtime(path):
    """Makes sure a change shows in the dir's mtime even on a coarse clock."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_changing_dirs_keeps_our_own_changes_from_looking_external(catalog, home):
    selected(catalog)
    catalog.changing_dirs(write_run, homelib.runs_dir(home), 4, 40)
    assert selected(catalog)[0] == [3, 2, 1]  # made by us, not indexed by us: not picked up as a change by hand


def test_changing_dirs_leaves_a_change_by_hand_before_it_noticed(catalog, home):
    selected(catalog)
    write_run(homelib.runs_dir(home), 4, started=40)
    bump_mtime(homelib.runs_dir(home))
    catalog.changing_dirs(write_run, homelib.runs_dir(home), 5, 50)
    assert 4 in selected(catalog)[0]


def test_a_large_sync_shows_as_the_daemon_state(catalog, home, monkeypatch):
    monkeypatch.setattr(cataloglib, "BIG_SYNC", 2)
    assert catalog.state == "starting"
    selected(catalog)
    assert catalog.state == "indexing 3 runs found on disk"


def test_delete_moves_to_the_trash_and_restore_brings_back(catalog, home, store, discarded):
    recs, _ = run(catalog.select(Criteria(), ["3"]))
    run(catalog.delete_runs(recs, permanent=False))
    assert discarded == [run_id(1)]
    assert not (homelib.runs_dir(home) / run_id(1)).exists()
    assert (manage.trash_runs_dir(home) / run_id(1)).is_dir()
    assert selected(catalog)[0] == [3, 2]
    trashed, _ = run(catalog.select(Criteria(deleted=True)))
    assert ids(trashed) == [1]
    restored = run(catalog.restore_runs(trashed))
    assert [r.deleted for r in restored] == [False]
    assert (homelib.runs_dir(home) / run_id(1)).is_dir()
    assert selected(catalog)[0] == [3, 2, 1]


def test_delete_permanent_and_purge_remove_dir_and_row(catalog, home, store):
    recs, _ = run(catalog.select(Criteria(), ["1"]))
    run(catalog.delete_runs(recs, permanent=True))
    assert not (homelib.runs_dir(home) / run_id(3)).exists() and store.get(run_id(3)) is None
    recs, _ = run(catalog.select(Criteria(), ["1"]))
    run(catalog.delete_runs(recs, permanent=False))
    trashed, _ = run(catalog.select(Criteria(deleted=True)))
    run(catalog.purge_runs(trashed))
    assert not (manage.trash_runs_dir(home) / run_id(2)).exists() and store.get(run_id(2)) is None
    assert selected(catalog)[0] == [1]
    assert run(catalog.select(Criteria(deleted=True)))[1] == 0


def test_an_active_run_is_not_deleted(catalog, home):
    write_run(homelib.runs_dir(home), 4, started=40, exit_status=None, lock_pid=os.getpid())
    recs, _ = run(catalog.select(Criteria(statuses=("running",))))
    with pytest.raises(Exception, match="it is running"):
        run(catalog.delete_runs(recs, permanent=False))


def test_listing_reads_running_pids_and_commands(catalog, home):
    write_run(homelib.runs_dir(home), 4, started=40, exit_status=None, lock_pid=os.getpid())
    found = run(catalog.listing(Criteria(), [], 0, None, "", with_command=True))
    assert ids(found.recs) == [4, 3, 2, 1] and found.total == 4
    assert found.pids == {run_id(4): os.getpid()}
    assert found.commands[run_id(2)] == ["python", "train.py", "--n=2"]
    assert run(catalog.listing(Criteria(), [], 0, None, "", with_command=False)).commands == {}


def summary(tag, last):
    return Summary(tag, last, 0, last, 1, last, 1, last, 1, last, 1)


def test_compare_rows_and_columns(catalog, store):
    selected(catalog)
    store.replace_scalars(run_id(1), [summary("loss", 0.5)])
    store.replace_scalars(run_id(3), [summary("loss", 0.25), summary("acc", 0.9)])
    cols, rows = run(catalog.compare(Criteria(statuses=("completed",)), [], "", False, True, False, None, 0))
    assert [(c.header, c.kind) for c in cols] == [("run", "core"), ("x", "flag"), ("step", "core"), ("acc", "scalar"),
                                                  ("loss", "scalar")]
    assert rows == [(run_id(3), ["03030303", 3, 1, 0.9, 0.25]), (run_id(1), ["01010101", 1, 1, None, 0.5])]


def test_compare_strict_shows_only_the_columns_asked(catalog, store):
    cols, rows = run(catalog.compare(Criteria(), ["1"], "=x", True, False, False, None, 0))
    assert [c.header for c in cols] == ["run", "x"]
    assert rows == [(run_id(3), [run_id(3)[:8], 3])]


def test_compare_adds_a_guildfile_operations_columns(catalog, home):
    run_dir = write_run(homelib.runs_dir(home), 4, started=40, flags={"x": 4}, op={"compare": ["=x as ex"]})
    rundir.write_opref(run_dir, "guildfile:/p/guild.yml '' '' train")
    cols, _rows = run(catalog.compare(Criteria(), ["1"], "", False, True, False, None, 0))
    assert "ex" in [c.header for c in cols]


def test_an_archive_is_selected_like_the_index(catalog, home, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    write_run(archive, 7, started=70, label="kept")
    write_run(archive, 8, started=80, exit_status=1)
    assert selected(catalog, archive=str(archive)) == ([8, 7], 2)
    assert selected(catalog, criteria=Criteria(labels=("kept",)), archive=str(archive)) == ([7], 1)
    results = run(catalog.import_runs(str(archive), [], Criteria(labels=("kept",)), move=False))
    assert results == [(run_id(7), "copied", "")]
    assert selected(catalog)[0] == [7, 3, 2, 1]


def test_an_archive_that_is_missing_is_not_found(catalog, tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        selected(catalog, archive=str(tmp_path / "nowhere"))


def test_files_are_listed_and_read(catalog, home):
    run_dir = homelib.runs_dir(home) / run_id(3)
    (run_dir / "model.txt").write_text("weights")
    rec = run(catalog.get_run("1"))
    assert run(catalog.list_files(rec, "", False, False, False)) == [("model.txt", False, False, 7)]

    async def read(path):
        return b"".join([chunk async for chunk in catalog.read_file(rec, path, False)])

    assert run(read("model.txt")) == b"weights"



# An index not closed cleanly is checked against the run dirs once

ENDED = dict(id="r", status="completed", label="a", exit_status=0, stopped_us=2, scalar_offset=10)
STALE = {
    "the same: nothing": (ENDED, ENDED, []),
    "JSON fields compare as values, keys in any order": (
        dict(ENDED, flags_json='{"a": 1, "b": 2}'), dict(ENDED, flags_json='{"b": 2, "a": 1}'), []),
    "a label, tags, comments and a mark set since": (
        ENDED, dict(ENDED, label="b", tags_json='["t"]', comments_json='[{"body": "c"}]', marked=True),
        ["label", "tags_json", "comments_json", "marked"]),
    "an end the index lost": (
        dict(ENDED, status="staged", exit_status=None, stopped_us=0), ENDED, ["stopped_us", "exit_status", "status"]),
    "scalars read short of the output's end": (ENDED, dict(ENDED, scalar_offset=20), ["scalar_offset"]),
    "a run going: only what a user set (its end and scalars are the reconcile's)": (
        dict(ENDED, status="running", exit_status=None, scalar_offset=1), dict(ENDED, label="b", scalar_offset=20),
        ["label"]),
    "a run going on disk: only what a user set": (
        ENDED, dict(ENDED, status="running", label="b", exit_status=None), ["label"]),
}


@pytest.mark.parametrize("indexed, on_disk, expected", STALE.values(), ids=STALE.keys())
def test_stale_fields(indexed, on_disk, expected):
    assert cataloglib.stale_fields(RunRecord(**indexed), RunRecord(**on_disk)) == expected


def test_an_index_not_closed_cleanly_is_read_again_where_it_is_older_than_the_run_dirs(home, store, discarded):
    run(cataloglib.Catalog(InPlaceRuntime(), store, home, discarded.append).list_runs((), 0))
    store.db.close()  # killed: never closed cleanly
    runs = homelib.runs_dir(home)
    rundir.write_attr(runs / run_id(1), "label", "changed since")
    rundir.write_attr(runs / run_id(2), "tags", ["late"])
    reopened = Store(homelib.index_path(home), runs)
    try:
        recs, _ = run(cataloglib.Catalog(InPlaceRuntime(), reopened, home, discarded.append).list_runs((), 0))
        assert {r.id[:2]: (r.label, r.tags) for r in recs} == {
            "01": ("changed since", []), "02": ("", ["late"]), "03": ("other", [])}
    finally:
        reopened.close()



def test_an_end_recorded_before_the_last_scalars_were_indexed_gets_them_after_an_unclean_start(home, store, discarded):
    # The daemon recorded the run's end, then was killed before its follower read the rest of
    # the output: the index holds the first value only, the event file guildd makes of the
    # output has no more, and the row's read position stops short of the output's end.
    runs = homelib.runs_dir(home)
    run_dir = runs / run_id(1)
    first = b"loss: 0.5\n"
    rundir.output_path(run_dir).write_bytes(first)
    run(cataloglib.Catalog(InPlaceRuntime(), store, home, discarded.append).list_runs((), 0))
    reader = outputs.ScalarReader(run_dir, 0)  # its follower read the first line (and wrote its event)
    store.merge_scalars(run_id(1), reader.read(), reader.offset)
    reader.close()
    rundir.output_path(run_dir).write_bytes(first + b"step: 1\nloss: 0.25\n")  # then the rest came, unread
    assert [(s.tag, s.last_val, s.count) for s in store.scalars(run_id(1))] == [("loss", 0.5, 1)]
    store.db.close()  # killed: never closed cleanly
    reopened = Store(homelib.index_path(home), runs)
    try:
        run(cataloglib.Catalog(InPlaceRuntime(), reopened, home, discarded.append).list_runs((), 0))
        [loss] = [s for s in reopened.scalars(run_id(1)) if s.tag == "loss"]
        assert (loss.first_val, loss.last_val, loss.last_step, loss.count) == (0.5, 0.25, 1, 2)  # none twice
        assert reopened.get(run_id(1)).scalar_offset == rundir.output_size(run_dir)
    finally:
        reopened.close()


def test_a_move_to_the_trash_a_full_index_cannot_record_is_undone(catalog, store, home, monkeypatch):
    rec = run(catalog.get_run(run_id(1)))

    def full(*_args, **_kw):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "update", full)
    with pytest.raises(errors.ResourcesUnavailable, match=r"cannot move runs to the trash .*'guildctl runs rm -p'"):
        run(catalog.delete_runs([rec], permanent=False))
    assert (homelib.runs_dir(home) / run_id(1)).is_dir()
    assert not (manage.trash_runs_dir(home) / run_id(1)).exists()
    assert not run(catalog.get_run(run_id(1))).deleted


START_US = 1_800_000_000 * 10**6  # the daemon's start
HALF_MADE = {
    "marked before the start: half-made": (lambda base: half_made_run(base, 4, START_US - 10**6), [4]),
    "marked since the start: being made now": (lambda base: half_made_run(base, 4, START_US + 10**6), []),
    "a run without the marker (Guild AI's too)": (lambda base: write_run(base, 4, started=40), []),
    "a file with a run's name": (lambda base: (base / run_id(4)).write_text("x"), []),
    "a link to a dir with the marker": (
        lambda base: (half_made_run(base, 5, START_US - 10**6), os.symlink(base / run_id(5), base / run_id(4))), [5]),
}


@pytest.mark.parametrize("case", HALF_MADE)
def test_half_made(home, case):
    make, expected = HALF_MADE[case]
    base = homelib.runs_dir(home)
    make(base)
    assert cataloglib.half_made(base, START_US) == [base / run_id(n) for n in expected]


def test_remove_half_made_removes_only_those_and_says_so(home, caplog):
    base = homelib.runs_dir(home)
    half_made_run(base, 4, START_US - 10**6)
    assert cataloglib.remove_half_made(base, START_US) == 1
    assert sorted(p.name for p in base.iterdir()) == [run_id(n) for n in (1, 2, 3)]
    assert f"run {run_id(4)[:8]}: removed its half-made dir" in caplog.text
    assert cataloglib.remove_half_made(home / "no-such-dir", START_US) == 0


def test_a_run_made_is_no_longer_being_made(home):
    run_dir = homelib.runs_dir(home) / run_id(7)
    cataloglib.begin_making(run_dir)
    assert cataloglib.being_made(run_dir)
    assert set(run_dir.rglob("*")) == {rundir.guild_dir(run_dir), cataloglib.making_marker(run_dir)}
    cataloglib.made(run_dir)
    assert not cataloglib.being_made(run_dir)
