"""Fair share's arithmetic (guildd.fairshare): GPU-seconds decayed by a half-life, charged in
pieces or at once, read back from the usage file; and each user's line in `guildctl queue`."""

import json
import logging
import math

import pytest

from guildd import fairshare
from guildd.fairshare import Ledger, Share, Usage

HOUR = 3600.0
H_US = 3600 * 10**6  # an hour in microseconds
T0 = 1_700_000_000 * 10**6  # some wall-clock time, in microseconds
# GPU-seconds of one GPU held for a whole half-life, counted at its end: half-life / ln 2 * (1 - 1/2).
ONE_HALF_LIFE = HOUR / math.log(2) / 2

DECAYED = {
    "now: all of it": (Usage(100.0, T0), T0, 100.0),
    "half-life halves usage": (Usage(100.0, T0), T0 + H_US, 50.0),
    "two half-lives: a quarter": (Usage(100.0, T0), T0 + 2 * H_US, 25.0),
    "a clock that went back decays nothing": (Usage(100.0, T0), T0 - H_US, 100.0),
    "nothing used": (Usage(), T0, 0.0),
}


@pytest.mark.parametrize("usage, now_us, expected", DECAYED.values(), ids=DECAYED.keys())
def test_decayed(usage, now_us, expected):
    assert fairshare.decayed(usage, now_us, HOUR) == pytest.approx(expected)


HELD = {
    "a second of one GPU counts a second": (1, T0, T0 + 10**6, 1.0),
    "8 GPUs for a second count 8": (8, T0, T0 + 10**6, 8.0),
    "a half-life of one GPU: its early seconds count less": (1, T0, T0 + H_US, ONE_HALF_LIFE),
    "a very long hold tends to half-life / ln 2": (1, T0, T0 + 100 * H_US, HOUR / math.log(2)),
    "no GPUs count nothing": (0, T0, T0 + H_US, 0.0),
    "no time counts nothing": (4, T0, T0, 0.0),
}


@pytest.mark.parametrize("gpus, since_us, until_us, expected", HELD.values(), ids=HELD.keys())
def test_held(gpus, since_us, until_us, expected):
    assert fairshare.held(gpus, since_us, until_us, HOUR) == pytest.approx(expected, rel=1e-3)


def test_a_long_half_life_counts_plain_gpu_seconds():
    # alice used 8 GPUs for 10 hours: with a year's half-life, that is about 80 GPU-hours.
    assert fairshare.held(8, T0, T0 + 10 * H_US, 365 * 24 * HOUR) == pytest.approx(80 * HOUR, rel=1e-3)


def test_charging_in_pieces_adds_up_to_charging_at_once():
    at_once = fairshare.charge(Usage(50.0, T0), 2, T0, T0 + 3 * H_US, HOUR)
    pieces = Usage(50.0, T0)
    for k in range(30):  # every 6 minutes, as the queue charges running runs now and then
        pieces = fairshare.charge(pieces, 2, T0 + k * H_US // 10, T0 + (k + 1) * H_US // 10, HOUR)
    assert pieces.at_us == at_once.at_us == T0 + 3 * H_US
    assert pieces.gpu_seconds == pytest.approx(at_once.gpu_seconds)


def test_usage_now_counts_running_runs_since_they_were_charged():
    ledger = {"alice": Usage(100.0, T0), "bob": Usage(10.0, T0)}
    running = [("alice", 1, T0), ("carol", 2, T0), ("dave", 0, T0)]  # dave: a CPU-only run
    usage = fairshare.usage_now(ledger, running, T0 + H_US, HOUR)
    assert usage == pytest.approx({"alice": 50.0 + ONE_HALF_LIFE, "bob": 5.0, "carol": 2 * ONE_HALF_LIFE})


def test_the_ledger_charges_runs_and_forgets_those_that_ended():
    ledger = Ledger(HOUR)
    ledger.charge([("r1", "alice", 1, T0), ("r2", "bob", 1, T0)], T0 + H_US)
    assert ledger.charged == {"r1": T0 + H_US, "r2": T0 + H_US}
    # r2 ends an hour later: charged for that hour too, and then it has no charge time.
    ledger.charge([("r1", "alice", 1, T0)], T0 + 2 * H_US, ended=[("r2", "bob", 1, T0)])
    assert ledger.charged == {"r1": T0 + 2 * H_US}
    assert ledger.usage([("r1", "alice", 1, T0)], T0 + 2 * H_US) == pytest.approx(
        {"alice": 1.5 * ONE_HALF_LIFE, "bob": 1.5 * ONE_HALF_LIFE})
    # r2 no longer runs: it adds nothing more, whoever asks.
    assert ledger.usage([], T0 + 3 * H_US)["bob"] == pytest.approx(0.75 * ONE_HALF_LIFE)


def test_the_usage_file_reads_back_as_written(tmp_path):
    ledger = Ledger(HOUR, {"alice": Usage(200.0, T0), "bob": Usage(20.0, T0 - H_US)}, {"r1": T0})
    fairshare.write_file(tmp_path, ledger.to_json(T0))
    read = fairshare.read_file(tmp_path, HOUR)
    assert read.charged == {"r1": T0}
    assert read.usage([], T0 + H_US) == pytest.approx({"alice": 100.0, "bob": 5.0})


def test_a_user_whose_usage_decayed_away_is_left_out_of_the_file(tmp_path):
    ledger = Ledger(HOUR, {"alice": Usage(100.0, T0), "bob": Usage(1.0, T0 - 20 * H_US)})
    fairshare.write_file(tmp_path, ledger.to_json(T0))
    assert set(json.loads((tmp_path / fairshare.USAGE_FILE).read_text())["users"]) == {"alice"}


DAMAGED = {
    "not JSON": "{not json",
    "not an object": "[1, 2]",
    "no users": '{"charged": {}}',
    "a usage that is not a number": '{"users": {"alice": {"gpu_seconds": "lots", "at_us": 0}}}',
    "a negative usage": '{"users": {"alice": {"gpu_seconds": -5, "at_us": 0}}}',
    "a charge time that is not a number": '{"users": {}, "charged": {"r1": "soon"}}',
}


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_usage_file_is_logged_and_ignored(tmp_path, caplog, content):
    (tmp_path / fairshare.USAGE_FILE).write_text(content)
    with caplog.at_level(logging.WARNING, logger="guildd.fairshare"):
        ledger = fairshare.read_file(tmp_path, HOUR)
    assert (ledger.users, ledger.charged) == ({}, {})
    assert f"ignoring {tmp_path / fairshare.USAGE_FILE}" in caplog.text


def test_no_usage_file_is_no_usage(tmp_path, caplog):
    ledger = fairshare.read_file(tmp_path, HOUR)
    assert (ledger.users, ledger.charged, caplog.text) == ({}, {}, "")


def test_a_failed_write_is_logged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="guildd.fairshare"):
        fairshare.write_file(tmp_path / "no such dir", {"users": {}, "charged": {}})
    assert "could not write" in caplog.text


SHARES = {
    "least usage first, each with their part of the total": (
        {"alice": 300.0, "bob": 100.0}, [("alice", 2)], ["bob", "bob"],
        [Share("bob", 0, 100.0, 0.25, 2), Share("alice", 2, 300.0, 0.75, 0)],
    ),
    "a user who only waits or holds (no usage yet) is listed, with no share": (
        {}, [("carol", 1), ("carol", 2), ("dave", 0)], ["erin"],
        [Share("erin", 0, 0.0, 0.0, 1), Share("carol", 3, 0.0, 0.0, 0)],
    ),
    "nobody": ({}, [], [], []),
}


@pytest.mark.parametrize("usage, holding, waiting, expected", SHARES.values(), ids=SHARES.keys())
def test_shares(usage, holding, waiting, expected):
    assert fairshare.shares(usage, holding, waiting) == expected
