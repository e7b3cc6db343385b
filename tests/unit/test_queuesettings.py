"""The queue's settings file (guildd.queuesettings): a value of the wrong type, which a person
editing the file or a damaged disk may leave, is ignored for its default, one line each, and
never stops the queue."""

import json

import pytest

from guild_common import errors
from guildd import queuesettings

OFF = queuesettings.PROCESSING_OFF
DEFAULTS = queuesettings.defaults()

CHECKED = {
    "all good": (
        {"processing": {"on": True, "run_once": False, "gpus": [0, 2], "wait_for_running": True},
         "queue_limits": {"a": 2}, "user_gpu_cap": 3, "cpu_slots": 4},
        {"processing": {"on": True, "run_once": False, "gpus": [0, 2], "wait_for_running": True},
         "queue_limits": {"a": 2}, "user_gpu_cap": 3, "cpu_slots": 4},
        0,
    ),
    "the issue's file": (
        {"processing": "yes", "queue_limits": [1], "user_gpu_cap": "x", "cpu_slots": "many"},
        DEFAULTS,
        4,
    ),
    "not an object": ([1, 2], DEFAULTS, 1),
    "null cpu slots is the default": ({"cpu_slots": None}, DEFAULTS, 0),
    "bools are not counts": ({"user_gpu_cap": True, "cpu_slots": False}, DEFAULTS, 2),
    "negative counts": ({"user_gpu_cap": -1, "cpu_slots": -2, "queue_limits": {"a": -1}}, DEFAULTS, 3),
    "one bad switch keeps the others": (
        {"processing": {"on": True, "run_once": "yes", "gpus": ["0"]}},
        {**DEFAULTS, "processing": {**OFF, "on": True}},
        2,
    ),
    "one bad limit keeps the others": (
        {"queue_limits": {"a": 1, "b": "2", "c": 1.5}}, {**DEFAULTS, "queue_limits": {"a": 1}}, 2,
    ),
    "the old pause switch is dropped": ({"paused": True}, DEFAULTS, 0),
    "a newer daemon's key is kept": ({"later": {"x": 1}}, {**DEFAULTS, "later": {"x": 1}}, 0),
}


@pytest.mark.parametrize("saved, expected, ignored", CHECKED.values(), ids=CHECKED.keys())
def test_check(saved, expected, ignored):
    settings, bad = queuesettings.check(saved)
    assert settings == expected
    assert len(bad) == ignored


def test_a_line_names_the_key_and_is_short():
    _, bad = queuesettings.check({"cpu_slots": "many" * 10000})
    assert len(bad) == 1 and bad[0].startswith("cpu_slots") and len(bad[0]) < 200


def test_read_warns_once_per_bad_value(tmp_path, caplog):
    (tmp_path / queuesettings.SETTINGS_FILE).write_text(json.dumps({"user_gpu_cap": "x", "cpu_slots": 2}))
    settings = queuesettings.read(tmp_path)
    assert settings["cpu_slots"] == 2 and settings["user_gpu_cap"] == 0
    assert [r.getMessage() for r in caplog.records if "ignoring" in r.getMessage()] == [
        f"ignoring in {tmp_path / queuesettings.SETTINGS_FILE}: user_gpu_cap 'x': expected a count (0 or more)"
    ]


@pytest.mark.parametrize("content", ["{not json", "\xff\xfe", ""])
def test_read_of_an_unparsable_file_gives_the_defaults(tmp_path, content):
    (tmp_path / queuesettings.SETTINGS_FILE).write_text(content, errors="surrogateescape")
    assert queuesettings.read(tmp_path) == DEFAULTS


def test_read_without_a_file_gives_the_defaults(tmp_path):
    assert queuesettings.read(tmp_path) == DEFAULTS


def test_what_is_written_reads_back(tmp_path):
    settings = queuesettings.changed(DEFAULTS, paused=False, queue_limits={"a": 2}, cpu_slots=1,
                                     processing={"run_once": True, "gpus": [1]})
    queuesettings.write(tmp_path, settings)
    assert queuesettings.read(tmp_path) == settings
    assert settings["processing"] == {"on": True, "run_once": True, "gpus": [1], "wait_for_running": False}


START = {**DEFAULTS, "queue_limits": {"a": 1}}
CHANGES = {
    "pause": (dict(paused=True), START),
    "a limit of 0 removes it": (dict(queue_limits={"a": 0}), {**START, "queue_limits": {}}),
    "a cap": (dict(user_gpu_cap=2), {**START, "user_gpu_cap": 2}),
}


@pytest.mark.parametrize("change, expected", CHANGES.values(), ids=CHANGES.keys())
def test_changed(change, expected):
    assert queuesettings.changed(START, **change) == expected
    assert START["queue_limits"] == {"a": 1}  # a copy: the settings change only once written


@pytest.mark.parametrize("change", [dict(queue_limits={"a": -1}), dict(user_gpu_cap=-1), dict(cpu_slots=-1)])
def test_changed_refuses_negative_counts(change):
    with pytest.raises(errors.InvalidArgument, match="invalid"):
        queuesettings.changed(DEFAULTS, **change)
