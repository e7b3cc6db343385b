"""The run index (guildd.store): records in and out, which runs a spec names, scalar summaries
folded across passes, transactions, and an index that can always be rebuilt."""

import json
import sqlite3

import pytest

from guild_common import errors, rundir
from guildd import selection, store as storelib
from guildd.store import RunRecord, Store, Summary


def record(run_id, status="completed", created=0, started=0, **kw):
    """A record; `created`/`started` in seconds (stored as µs), other fields as given."""
    fields = dict(
        id=run_id, op_name="train", opref="script:/p '' '' train", status=status, label="",
        created_us=created * 1_000_000, started_us=started * 1_000_000, stopped_us=0, exit_status=None,
        pid=0, shim_pid=0, shim_started=0.0, flags_json="{}", tags_json="[]", user="alice", scalar_offset=0,
    )
    fields.update(kw)
    return RunRecord(**fields)


def summary(tag, *values):
    """The summary of `values` logged at steps 0, 1, ... (as one pass of the output reader)."""
    steps = list(range(len(values)))
    lo, hi = values.index(min(values)), values.index(max(values))
    return Summary(tag, values[0], 0, values[-1], steps[-1], values[lo], lo, values[hi], hi, sum(values), len(values))


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "index.db", tmp_path / "runs")
    yield s
    s.close()


def ids(records):
    return [r.id for r in records]


# Records


def test_a_record_reads_back_as_written(store):
    rec = record("r1", label="best", exit_status=0, flags_json='{"lr": 0.1}', tags_json='["a"]', marked=True,
                 digest="abc", shim_started=12.5)
    store.insert(rec)
    assert store.get("r1") == rec
    assert (store.get("r1").flags, store.get("r1").tags) == ({"lr": 0.1}, ["a"])


def test_insert_of_an_existing_id_replaces_it(store):
    store.insert(record("r1", label="old"))
    store.insert(record("r1", label="new"))
    assert (store.get("r1").label, store.ids()) == ("new", {"r1"})


def test_update_changes_only_the_fields_named(store):
    store.insert(record("r1", status="running", pid=42))
    store.update("r1", status="completed", exit_status=0)
    assert store.get("r1") == record("r1", status="completed", pid=42, exit_status=0)


def test_delete_takes_the_run_and_its_scalars(store):
    store.insert(record("r1"))
    store.merge_scalars("r1", [summary("loss", 1.0)])
    store.delete("r1")
    assert (store.get("r1"), store.scalars("r1")) == (None, [])


def test_get_of_an_unknown_id_is_none(store):
    assert store.get("nope") is None


def test_get_many_keeps_the_order_asked_and_leaves_out_missing_ids(store):
    for n in range(1200):  # more than one chunk of ids
        store.insert(record(f"r{n}"))
    wanted = ["r1100", "missing", "r3", "r600"]
    assert ids(store.get_many(wanted)) == ["r1100", "r3", "r600"]
    assert len(store.get_many(f"r{n}" for n in range(1200))) == 1200


def test_ids_are_live_or_deleted(store):
    store.insert(record("a"))
    store.insert(record("b", deleted=True))
    assert (store.ids(), store.ids(deleted=True)) == ({"a"}, {"b"})


# Listing and run specs

# Latest first: by start time, a run not started yet by its creation time.
RUNS = [
    record("aaaa1111", "completed", created=1, started=10),
    record("aaaa2222", "error", created=2, started=20),
    record("bbbb3333", "staged", created=30),
    record("cccc4444", "running", created=3, started=25),
    record("dddd5555", "completed", created=4, started=5, deleted=True),
]


@pytest.fixture
def listed(store):
    for rec in RUNS:
        store.insert(rec)
    return store


LIST = {
    "latest first, a run not started by its creation time": (
        (), 0, ["bbbb3333", "cccc4444", "aaaa2222", "aaaa1111"], 4),
    "by status": (("completed", "error"), 0, ["aaaa2222", "aaaa1111"], 2),
    "a limit keeps the latest and counts them all": ((), 2, ["bbbb3333", "cccc4444"], 4),
    "a status no run has": (("terminated",), 0, [], 0),
}


@pytest.mark.parametrize("statuses, limit, expected, total", LIST.values(), ids=LIST.keys())
def test_list(listed, statuses, limit, expected, total):
    recs, count = listed.list(statuses, limit=limit)
    assert (ids(recs), count) == (expected, total)


SPECS = {
    "an index, 1 the latest": (["2"], ["cccc4444"]),
    "a range": (["2:3"], ["cccc4444", "aaaa2222"]),
    "an open range": (["3:"], ["aaaa2222", "aaaa1111"]),
    "a unique prefix": (["bb"], ["bbbb3333"]),
    "a full id": (["aaaa1111"], ["aaaa1111"]),
    "several specs in the order given, each once": (["aaaa1111", "1", "1:2"], ["aaaa1111", "bbbb3333", "cccc4444"]),
    "a number past the end is a prefix": (["9"], errors.NotFound),
    "a prefix of several runs": (["aaaa"], errors.InvalidArgument),
    "a deleted run is not among live ones": (["dddd"], errors.NotFound),
    "a backwards range": (["3:2"], errors.InvalidArgument),
}


@pytest.mark.parametrize("specs, expected", SPECS.values(), ids=SPECS.keys())
def test_select_by_run_specs(listed, specs, expected):
    if isinstance(expected, type):
        with pytest.raises(expected):
            listed.select(selection.Criteria(), specs)
    else:
        recs, total = listed.select(selection.Criteria(), specs)
        assert (ids(recs), total) == (expected, len(expected))


def test_select_limit_applies_after_the_specs(listed):
    recs, total = listed.select(selection.Criteria(), ["1:3"], limit=2)
    assert (ids(recs), total) == (["bbbb3333", "cccc4444"], 3)


def test_select_deleted_runs(listed):
    recs, _ = listed.select(selection.Criteria(deleted=True))
    assert ids(recs) == ["dddd5555"]


def test_select_in_another_order(listed):
    for run_id, loss in [("aaaa1111", 0.5), ("aaaa2222", 0.1), ("cccc4444", 0.9)]:
        listed.merge_scalars(run_id, [summary("loss", loss)])
    recs, total = listed.select(selection.Criteria(), order=("loss", False), limit=2)
    assert (ids(recs), total) == (["aaaa2222", "aaaa1111"], 4)


RESOLVE = {
    "'' is the latest": ("", (), "bbbb3333"),
    "'' is the latest of a status": ("", ("completed",), "aaaa1111"),
    "an index among a status": ("2", ("completed", "error"), "aaaa1111"),
    "a prefix": ("cc", (), "cccc4444"),
}


@pytest.mark.parametrize("spec, statuses, expected", RESOLVE.values(), ids=RESOLVE.keys())
def test_resolve(listed, spec, statuses, expected):
    assert listed.resolve(spec, statuses).id == expected


RESOLVE_ERRORS = {
    "no runs of a status": ("", ("terminated",), "there are no runs that are terminated"),
    "no runs at all": ("", ("pending", "running"), "there are no runs that are pending/running"),
    "an unknown id": ("ffff", (), "could not find run 'ffff'"),
    "an ambiguous prefix": ("aaaa", (), r"run 'aaaa' is ambiguous: it matches 2 runs \(aaaa2222, aaaa1111\)"),
}


@pytest.mark.parametrize("spec, statuses, message", RESOLVE_ERRORS.values(), ids=RESOLVE_ERRORS.keys())
def test_resolve_errors(listed, spec, statuses, message):
    listed.update("cccc4444", status="completed")  # none pending or running
    with pytest.raises((errors.NotFound, errors.InvalidArgument), match=message):
        listed.resolve(spec, statuses)


def test_resolve_in_an_empty_index(store):
    with pytest.raises(errors.NotFound, match="^there are no runs$"):
        store.resolve("")


# Scalars


def folded(store, *passes):
    store.insert(record("r1"))
    for summaries in passes:
        store.merge_scalars("r1", summaries)
    return {s.tag: s for s in store.scalars("r1")}


MERGE = {
    "one pass is kept as it is": ([[summary("loss", 3.0, 1.0, 2.0)]], summary("loss", 3.0, 1.0, 2.0)),
    "first from the first pass, last from the latest, min/max/total/count over all": (
        [[summary("loss", 3.0, 2.0)], [Summary("loss", 5.0, 7, 0.5, 9, 0.5, 9, 5.0, 7, 5.5, 2)]],
        Summary("loss", 3.0, 0, 0.5, 9, 0.5, 9, 5.0, 7, 10.5, 4),
    ),
    "a min or max that ties keeps the earlier step": (
        [[summary("acc", 1.0, 2.0)], [Summary("acc", 1.0, 5, 2.0, 6, 1.0, 5, 2.0, 6, 3.0, 2)]],
        Summary("acc", 1.0, 0, 2.0, 6, 1.0, 0, 2.0, 1, 6.0, 4),
    ),
}


@pytest.mark.parametrize("passes, expected", MERGE.values(), ids=MERGE.keys())
def test_merge_scalars(store, passes, expected):
    assert folded(store, *passes)[expected.tag] == expected


def test_merge_keeps_tags_apart_and_lists_them_by_tag(store):
    tags = folded(store, [summary("loss", 1.0)], [summary("acc", 0.5)], [summary("loss", 2.0)])
    assert [s.tag for s in store.scalars("r1")] == ["acc", "loss"]
    assert (tags["acc"].count, tags["loss"].count, tags["loss"].last_val) == (1, 2, 2.0)


def test_merge_records_how_far_the_output_was_read(store):
    folded(store, [summary("loss", 1.0)])
    store.merge_scalars("r1", [], offset=120)
    store.merge_scalars("r1", [summary("loss", 2.0)])  # no offset: left as it was
    assert store.get("r1").scalar_offset == 120


FLOAT32 = {
    "a short decimal stays as it is": (0.2, 0.2),
    "a 32-bit float's exact value reads as its short decimal": (0.20000000298023224, 0.2),
    "more digits than a 32-bit float holds are rounded": (1.23456789012, 1.2345679),
    "an integer past 2**24 is rounded": (16777217.0, 16777216.0),
    "past a 32-bit float's range is an infinity": (1e300, float("inf")),
    "below it is zero": (1e-50, 0.0),
    "an infinity stays": (float("-inf"), float("-inf")),
}


@pytest.mark.parametrize("value, expected", FLOAT32.values(), ids=FLOAT32.keys())
def test_float32(value, expected):
    assert storelib.float32(value) == expected


def test_scalars_are_indexed_as_event_files_hold_them(store):
    """Followed live from the output (64-bit) or rebuilt from event files (32-bit), the same."""
    live = folded(store, [summary("loss", 0.1, 0.3)])["loss"]
    store.replace_scalars("r1", [summary("loss", 0.10000000149011612, 0.30000001192092896)])
    assert store.scalars("r1") == [live]
    assert (live.first_val, live.last_val) == (0.1, 0.3)


def test_replace_scalars_drops_the_old_summaries(store):
    folded(store, [summary("loss", 1.0), summary("acc", 0.1)])
    store.replace_scalars("r1", [summary("loss", 9.0)])
    assert store.scalars("r1") == [summary("loss", 9.0)]


# Transactions


def test_a_transaction_that_raises_leaves_nothing(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.insert(record("r1"))
            raise RuntimeError("boom")
    assert store.ids() == set()


def test_a_nested_transaction_joins_the_outer_one(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            with store.transaction():
                store.insert(record("r1"))
            store.insert(record("r2"))
            raise RuntimeError("boom")
    assert store.ids() == set()
    with store.transaction():
        with store.transaction():
            store.insert(record("r3"))
    assert store.ids() == {"r3"}


def test_merge_scalars_inside_a_failed_transaction_is_undone(store):
    store.insert(record("r1"))
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.merge_scalars("r1", [summary("loss", 1.0)], offset=10)
            raise RuntimeError("boom")
    assert (store.scalars("r1"), store.get("r1").scalar_offset) == ([], 0)


# The index is a cache


def test_a_damaged_index_is_started_anew(tmp_path):
    path = tmp_path / "index.db"
    path.write_bytes(b"this is not a database" * 100)
    s = Store(path, tmp_path / "runs")
    s.insert(record("r1"))
    assert s.ids() == {"r1"}
    s.close()


def test_a_damaged_index_is_kept_aside_and_the_log_says_where(tmp_path, caplog):
    path = tmp_path / "index.db"
    damaged = b"this is not a database" * 100
    path.write_bytes(damaged)
    Store(path, tmp_path / "runs").close()
    [kept] = [p for p in tmp_path.iterdir() if p.name.startswith("index.db.damaged-")]
    assert kept.read_bytes() == damaged
    assert f"kept aside as {kept}" in caplog.text


def test_only_the_latest_damaged_index_is_kept(tmp_path):
    path = tmp_path / "index.db"
    (tmp_path / "index.db.damaged-20000101-000000").write_bytes(b"older")
    path.write_bytes(b"garbage" * 1000)
    Store(path, tmp_path / "runs").close()
    kept = [p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("index.db.damaged-")]
    assert kept == [b"garbage" * 1000]


def test_an_index_is_clean_only_when_the_last_daemon_closed_it(tmp_path):
    path = tmp_path / "index.db"
    s = Store(path, tmp_path / "runs")
    assert s.clean_start  # a new index: nothing in it to distrust
    s.insert(record("r1"))
    s.close()
    s = Store(path, tmp_path / "runs")
    assert s.clean_start
    s.db.close()  # as a daemon killed with -9: never closed through Store.close
    s = Store(path, tmp_path / "runs")
    assert not s.clean_start
    s.close()


def test_an_index_of_another_layout_is_dropped(tmp_path):
    path = tmp_path / "index.db"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE runs (id TEXT, old_column TEXT); INSERT INTO runs VALUES ('r0', 'x');")
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    s = Store(path, tmp_path / "runs")
    s.insert(record("r1"))
    assert s.ids() == {"r1"}
    s.close()


def test_the_index_persists_across_opens(tmp_path):
    s = Store(tmp_path / "index.db", tmp_path / "runs")
    s.insert(record("r1"))
    s.merge_scalars("r1", [summary("loss", 1.0)])
    s.close()
    s = Store(tmp_path / "index.db", tmp_path / "runs")
    assert (s.get("r1"), s.scalars("r1")) == (record("r1"), [summary("loss", 1.0)])
    s.close()


# Records rebuilt from run dirs


def run_dir(tmp_path, markers=(), lock=None, **attrs):
    path = tmp_path / "0123456789abcdef0123456789abcdef"
    rundir.write_attrs(path, {"initialized": 1_000, **attrs})
    rundir.write_opref(path, "script:/proj '' '' train.py")
    for marker in markers:
        rundir.set_marker(path, marker, True)
    if lock is not None:
        rundir.lock_file(path).write_text(str(lock))
    return path


FROM_RUNDIR = {
    "completed": ({"exit_status": 0, "started": 2_000, "stopped": 3_000}, (), None, ("completed", 0, 0)),
    "exited non-zero": ({"exit_status": 3}, (), None, ("error", 3, 0)),
    "stopped by a signal": ({"exit_status": -15}, (), None, ("terminated", -15, 0)),
    "staged": ({}, ("STAGED",), None, ("staged", None, 0)),
    "pending beats staged": ({}, ("STAGED", "PENDING"), None, ("pending", None, 0)),
    "running: its LOCK pid alive": ({}, (), 4242, ("running", None, 4242)),
    "no end and no live process": ({}, (), 4343, ("error", None, 0)),
}


@pytest.mark.parametrize("attrs, markers, lock, expected", FROM_RUNDIR.values(), ids=FROM_RUNDIR.keys())
def test_status_from_a_run_dir(tmp_path, attrs, markers, lock, expected):
    path = run_dir(tmp_path, markers, lock, **attrs)
    rec = storelib.record_from_rundir(path, pid_alive=lambda pid: pid == 4242)
    assert (rec.status, rec.exit_status, rec.pid) == expected


def test_a_run_dir_record_holds_guilds_attrs(tmp_path):
    path = run_dir(tmp_path, started=2_000, stopped=3_000, exit_status=0, label="best", flags={"lr": 0.1},
                   tags=["x"], user="bob", marked=True, sourcecode_digest="d1g")
    rec = storelib.record_from_rundir(path, pid_alive=lambda pid: False, deleted=True)
    assert rec == record(
        path.name, op_name="train.py", opref="script:/proj '' '' train.py", label="best", created_us=1_000,
        started_us=2_000, stopped_us=3_000, exit_status=0, flags_json=json.dumps({"lr": 0.1}), tags_json='["x"]',
        user="bob", marked=True, deleted=True, digest="d1g",
    )


def test_a_run_dir_with_odd_attrs_still_gives_a_record(tmp_path):
    path = run_dir(tmp_path, exit_status=1, tags="not a list", label=5, marked="yes please")
    rec = storelib.record_from_rundir(path, pid_alive=lambda pid: False)
    assert (rec.status, rec.label, rec.tags, rec.marked) == ("error", "5", [], False)
