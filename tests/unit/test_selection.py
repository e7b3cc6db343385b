"""Which runs a request is about (guildd.selection): filters as SQL over the index, filter
expressions, orders, and the top-N shortcut that must agree with the full sort."""

import datetime
import json

import pytest

from guild_common import errors
from guildd import selection
from guildd.selection import Criteria
from guildd.store import RunRecord, Store, Summary

S = 1_000_000  # µs


def record(run_id, started, status="completed", op="train", label="", flags=None, tags=(), **kw):
    return RunRecord(
        id=run_id, op_name=op, opref="", status=status, label=label, created_us=kw.pop("created", 1) * S,
        started_us=started * S, stopped_us=kw.pop("stopped", 0) * S, exit_status=None, pid=0, shim_pid=0,
        shim_started=0.0, flags_json=json.dumps(flags or {}), tags_json=json.dumps(list(tags)), user="alice",
        scalar_offset=0, **kw,
    )


def last(tag, value):
    """A summary whose every qualifier is `value` (one value logged at step 7)."""
    return Summary(tag, value, 7, value, 7, value, 7, value, 7, value, 1)


# Latest first: r5 (created 70, not started), r1, r2, r3, r4; r6 is in the trash.
RUNS = [
    record("r1", 60, label="best lr_1", flags={"lr": 0.1}, tags=["a", "b"], marked=True, digest="abc123",
           stopped=70),
    record("r2", 50, op="train+", digest="abd999", stopped=80),
    record("r3", 40, status="error", op="model:eval", label="50% done", flags={"lr": 0.01}, digest="zabc",
           stopped=41),
    record("r4", 30, status="running", label="50x lrx1", flags={"lr": "high"}, tags=["ab"]),
    record("r5", 0, status="staged", op="prepare", label="Under_score", created=70),
    record("r6", 20, label="gone", deleted=True),
]
LOSS = {"r1": 0.5, "r3": 0.2, "r4": 0.9}


@pytest.fixture
def db(tmp_path):
    store = Store(tmp_path / "index.db", tmp_path / "runs")
    for rec in RUNS:
        store.insert(rec)
    for run_id, loss in LOSS.items():
        store.merge_scalars(run_id, [last("loss", loss)])
    yield store.db
    store.close()


CRITERIA = {
    "none: live runs latest first": (Criteria(), ["r5", "r1", "r2", "r3", "r4"]),
    "any of the statuses": (Criteria(statuses=("error", "running")), ["r3", "r4"]),
    "none of the not-statuses": (Criteria(not_statuses=("completed", "staged")), ["r3", "r4"]),
    "a label containing any of": (Criteria(labels=("done", "BEST")), ["r1", "r3"]),
    "% in a label is itself": (Criteria(labels=("50%",)), ["r3"]),
    "_ in a label is itself": (Criteria(labels=("lr_1",)), ["r1"]),
    "unlabeled": (Criteria(unlabeled=True), ["r2"]),
    "marked": (Criteria(marked=True), ["r1"]),
    "unmarked": (Criteria(unmarked=True), ["r5", "r2", "r3", "r4"]),
    "started at or after, never a run not started": (Criteria(started_after_us=40 * S), ["r1", "r2", "r3"]),
    "started before, never a run not started": (Criteria(started_before_us=40 * S), ["r4"]),
    "a digest prefix": (Criteria(digests=("ab",)), ["r1", "r2"]),
    "an operation containing any of": (Criteria(ops=("eval", "prep")), ["r5", "r3"]),
    "a whole tag, not part of one": (Criteria(tags=("a",)), ["r1"]),
    "the trash": (Criteria(deleted=True), ["r6"]),
    "no batch runs": (Criteria(exclude_batch=True), ["r5", "r1", "r3", "r4"]),
    "an expression on a flag": (Criteria(expr="lr < 0.5"), ["r1", "r3"]),
    "an expression on a scalar": (Criteria(expr="loss >= 0.5"), ["r1", "r4"]),
    "an expression on attributes": (Criteria(expr="status = error or marked = true"), ["r1", "r3"]),
    "an expression and a status": (Criteria(statuses=("completed",), expr="loss is undefined"), ["r2"]),
    "an expression on tags": (Criteria(expr="tags contains b"), ["r1"]),
    "a label longer than SQLite's LIKE takes": (Criteria(labels=("x" * 60_000,)), []),
    "an op longer than SQLite's LIKE takes": (Criteria(ops=("x" * 60_000,)), []),
}


@pytest.mark.parametrize("criteria, expected", CRITERIA.values(), ids=CRITERIA.keys())
def test_criteria(db, criteria, expected):
    assert selection.ordered_ids(db, criteria) == expected
    assert selection.count(db, criteria) == len(expected)


def test_an_expression_on_the_start_time_compares_as_guild_shows_it(db):
    shown = datetime.datetime.fromtimestamp(45).strftime("%Y-%m-%d %H:%M:%S")
    assert selection.ordered_ids(db, Criteria(expr=f"started > '{shown}'")) == ["r1", "r2"]


def test_a_bad_expression_is_the_users_mistake(db):
    with pytest.raises(errors.InvalidArgument):
        selection.ordered_ids(db, Criteria(expr="loss <"))


# Orders: runs without a value come last either way; ties keep latest-first.

ORDERS = {
    "a scalar, ascending": ("loss", False, ["r3", "r1", "r4", "r5", "r2"]),
    "a scalar, descending": ("loss", True, ["r4", "r1", "r3", "r5", "r2"]),
    "a scalar's step": ("loss step", False, ["r1", "r3", "r4", "r5", "r2"]),
    "a flag: numbers before text": ("=lr", False, ["r3", "r1", "r4", "r5", "r2"]),
    "an attribute's text, case aside": (".label", False, ["r2", "r3", "r4", "r1", "r5"]),
    "a status": (".status", False, ["r1", "r2", "r3", "r4", "r5"]),
}


@pytest.mark.parametrize("spec, descending, expected", ORDERS.values(), ids=ORDERS.keys())
def test_order(db, spec, descending, expected):
    assert selection.ordered_ids(db, Criteria(), (spec, descending)) == expected


def test_ended_runs_by_how_long_they_ran(db):
    ended = Criteria(statuses=("completed", "error"))
    assert selection.ordered_ids(db, ended, (".time", True)) == ["r2", "r1", "r3"]


def test_an_attribute_the_index_has_not_cannot_order(db):
    with pytest.raises(errors.InvalidArgument, match="cannot order runs by attribute 'model'"):
        selection.ordered_ids(db, Criteria(), (".model", False))


SORT = {
    "missing values last, ascending": ({"a": 2, "b": None, "c": 1}, False, ["c", "a", "b"]),
    "missing values last, descending": ({"a": 2, "b": None, "c": 1}, True, ["a", "c", "b"]),
    "ties keep the order they came in": ({"a": 1, "b": 1, "c": 0}, False, ["c", "a", "b"]),
    "text compares case-insensitively": ({"a": "b", "b": "A", "c": "C"}, False, ["b", "a", "c"]),
    "numbers before text ascending": ({"a": "x", "b": 10, "c": 2.5}, False, ["c", "b", "a"]),
}


@pytest.mark.parametrize("values, descending, expected", SORT.values(), ids=SORT.keys())
def test_sort_ids(values, descending, expected):
    assert selection.sort_ids(list(values), values, descending) == expected


# `compare --min loss --top N` reads the scalar index in order and stops early: it must
# pick what the full sort picks, ties and runs without the scalar included.

TIED = {"t1": 0.3, "t2": 0.1, "t3": 0.3, "t4": 0.2, "t5": 0.3}


@pytest.fixture
def tied(tmp_path):
    store = Store(tmp_path / "index.db", tmp_path / "runs")
    for n in range(1, 8):
        store.insert(record(f"t{n}", 100 - n))  # t1 the latest
    for run_id, loss in TIED.items():
        store.merge_scalars(run_id, [last("loss", loss)])
    yield store.db
    store.close()


@pytest.mark.parametrize("descending", [False, True], ids=["min", "max"])
@pytest.mark.parametrize("want", range(1, 9))
def test_top_by_last_value_is_the_full_sort_cut_short(tied, want, descending):
    full = selection.ordered_ids(tied, Criteria(), ("loss", descending))
    assert selection.ordered_ids(tied, Criteria(), ("loss", descending), want=want) == full[:want]


def test_top_by_last_value_keeps_to_the_criteria(tied):
    top = selection.ordered_ids(tied, Criteria(statuses=("completed",), expr="loss > 0.15"), ("loss", False), want=2)
    assert top == ["t4", "t1"]


SPECS = {
    "an index": (["3"], ["c3"]),
    "a range, each spec's runs latest first": (["2:3", "1"], ["b2", "c3", "a1"]),
    "a range to the end": (["3:"], ["c3", "d4"]),
    "a range from the start": ([":2"], ["a1", "b2"]),
    "spaces around a spec": ([" b "], ["b2"]),
    "no specs: all": ([], ["a1", "b2", "c3", "d4"]),
    "a range to an index of 5,000 digits: to the end": (["1:" + "9" * 5000], ["a1", "b2", "c3", "d4"]),
}


@pytest.mark.parametrize("specs, expected", SPECS.values(), ids=SPECS.keys())
def test_apply_specs(specs, expected):
    assert selection.apply_specs(["a1", "b2", "c3", "d4"], specs) == expected


SPEC_ERRORS = {
    "range from 0": ("0:2", errors.InvalidArgument, "invalid run range '0:2'"),
    "an empty spec": ("", errors.NotFound, "could not find run ''"),
    "ambiguous, first 5 shown": ("x", errors.InvalidArgument, r"matches 6 runs \(x1, x2, x3, x4, x5, \.\.\.\)"),
    "a digit that is no index ('²')": ("²", errors.NotFound, "could not find run '²'"),
    "a huge number, not an index nor a prefix": ("9" * 5000, errors.NotFound, "could not find run"),
}


@pytest.mark.parametrize("spec, error, message", SPEC_ERRORS.values(), ids=SPEC_ERRORS.keys())
def test_apply_specs_errors(spec, error, message):
    with pytest.raises(error, match=message):
        selection.apply_specs([f"x{n}" for n in range(1, 7)], [spec])


def test_one_id_of_a_range_past_the_end_is_not_found():
    # It once failed inside the daemon (IndexError) for `queue priority 5:9` with fewer runs.
    assert selection.one_id(["a1", "b2"], "2:5") == "b2"
    with pytest.raises(errors.NotFound, match="no run matches '3:5'"):
        selection.one_id(["a1", "b2"], "3:5")
