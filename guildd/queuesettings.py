"""The queue's settings file, GUILD_HOME/guildd-queue.json: read, checked, changed, written.

The file is the daemon's, but a person may edit it (or a disk may damage it). A value of the
wrong type must never stop the queue: each key (and each value inside `processing` and
`queue_limits`) is checked on its own, and a bad one is ignored, with one warning line, for
its default. `check` and `changed` are pure; `read` and `write` do the file's I/O.
"""

import json
import logging
import os
from typing import Any, Mapping, Optional

from guild_common import errors, rundir
from guild_common.paths import StrPath

log = logging.getLogger("guildd.queue")

SETTINGS_FILE = "guildd-queue.json"  # in GUILD_HOME
PROCESSING_OFF: dict[str, Any] = {"on": False, "run_once": False, "gpus": [], "wait_for_running": False}
PROCESSING_SWITCHES = ("on", "run_once", "wait_for_running")


def defaults() -> dict[str, Any]:
    """The settings of a fresh home: processing off, no limits, no cap, one CPU slot per CPU."""
    return {"processing": dict(PROCESSING_OFF), "queue_limits": {}, "user_gpu_cap": 0, "cpu_slots": None}


def path(home: StrPath) -> str:
    return os.path.join(home, SETTINGS_FILE)


def _count(value: Any) -> bool:
    """A count the settings hold: an int (not a bool, which JSON's true would make), 0 or more."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check(saved: Any) -> tuple[dict[str, Any], list[str]]:
    """The settings `saved` (the file's JSON value) holds, each bad value replaced by its
    default, and one line per value ignored (why). Keys the daemon doesn't know are kept as
    they are (a newer daemon's); the old `paused` switch is dropped (processing starts off,
    as in Guild)."""
    settings = defaults()
    if not isinstance(saved, dict):
        return settings, [f"not a JSON object ({type(saved).__name__})"]
    bad: list[str] = []
    for key, value in saved.items():
        if key == "paused":
            continue
        if key == "processing":
            settings[key] = _check_processing(value, bad)
        elif key == "queue_limits":
            settings[key] = _check_limits(value, bad)
        elif key == "user_gpu_cap":
            if _count(value):
                settings[key] = value
            else:
                bad.append(f"user_gpu_cap {value!r:.40}: expected a count (0 or more)")
        elif key == "cpu_slots":
            if value is None or _count(value):
                settings[key] = value
            else:
                bad.append(f"cpu_slots {value!r:.40}: expected a count (0 or more) or null")
        else:
            settings[key] = value
    return settings, bad


def _check_processing(value: Any, bad: list[str]) -> dict[str, Any]:
    processing = dict(PROCESSING_OFF)
    if not isinstance(value, dict):
        bad.append(f"processing {value!r:.40}: expected an object")
        return processing
    for name in PROCESSING_SWITCHES:
        if name not in value:
            continue
        if isinstance(value[name], bool):
            processing[name] = value[name]
        else:
            bad.append(f"processing.{name} {value[name]!r:.40}: expected true or false")
    gpus = value.get("gpus", [])
    if isinstance(gpus, list) and all(_count(i) for i in gpus):
        processing["gpus"] = list(gpus)
    else:
        bad.append(f"processing.gpus {gpus!r:.40}: expected a list of GPU indices")
    return processing


def _check_limits(value: Any, bad: list[str]) -> dict[str, int]:
    if not isinstance(value, dict):
        bad.append(f"queue_limits {value!r:.40}: expected an object")
        return {}
    limits = {}
    for name, limit in value.items():
        if _count(limit):
            limits[name] = limit
        else:
            bad.append(f"queue_limits.{name:.40} {limit!r:.40}: expected a count (0 or more)")
    return limits


def read(home: StrPath) -> dict[str, Any]:
    """The settings in `home`'s file (defaults when there is none); a file that can't be read
    or parsed, and each bad value in it, is ignored with a warning line."""
    file = path(home)
    try:
        with open(file) as f:
            saved = json.load(f)
    except FileNotFoundError:
        return defaults()
    except (OSError, ValueError) as e:
        log.warning("ignoring %s: %s", file, e)
        return defaults()
    settings, bad = check(saved)
    for why in bad:
        log.warning("ignoring in %s: %s", file, why)
    return settings


def write(home: StrPath, settings: Mapping[str, Any]) -> None:
    """Writes the settings file whole (atomically: a crash leaves the old one or the new)."""
    rundir.write_atomic(path(home), json.dumps(settings, sort_keys=True).encode())


def changed(settings: Mapping[str, Any], paused: Optional[bool] = None, queue_limits: Optional[Mapping[str, int]] = None,
            user_gpu_cap: Optional[int] = None, cpu_slots: Optional[int] = None,
            processing: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """A copy of `settings` with a `queue` command's changes; InvalidArgument for a negative
    limit, cap or slot count. `paused` False switches processing on with `processing`'s flags
    (run_once, gpus, wait_for_running), True switches it off; a limit of 0 removes it."""
    for name, limit in (queue_limits or {}).items():
        if limit < 0:
            raise errors.InvalidArgument(f"invalid limit {limit} for queue '{name}': expected 0 (no limit) or more")
    for what, value in (("user GPU cap", user_gpu_cap), ("CPU slots", cpu_slots)):
        if value is not None and value < 0:
            raise errors.InvalidArgument(f"invalid {what} {value}: expected 0 (none) or more")
    out: dict[str, Any] = json.loads(json.dumps(settings))
    if paused is not None:
        flags = {} if paused else processing or {}
        out["processing"] = {
            "on": not paused,
            "run_once": bool(flags.get("run_once")),
            "gpus": [int(i) for i in flags.get("gpus") or ()],
            "wait_for_running": bool(flags.get("wait_for_running")),
        }
    for name, limit in (queue_limits or {}).items():
        if limit:
            out["queue_limits"][name] = limit
        else:
            out["queue_limits"].pop(name, None)
    if user_gpu_cap is not None:
        out["user_gpu_cap"] = user_gpu_cap
    if cpu_slots is not None:
        out["cpu_slots"] = cpu_slots
    return out
