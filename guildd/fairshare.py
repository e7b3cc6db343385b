"""Fair share: how much GPU time each user has had lately, so that among waiting runs of equal
priority the user who used the least goes first (guildd.scheduler orders by it).

Usage is GPU-seconds with each second weighted by 0.5 ** (age / half_life): a GPU held for an
hour a half-life ago counts as half an hour now. A user's past use is one `Usage`, a value and
the time it was taken at, decayed when it is read or added to (as Slurm's PriorityDecayHalfLife),
so keeping it costs O(users) whatever the number of runs. A running run counts as it runs: the
queue adds its GPUs' time to its user's `Usage` now and then (`charge`), and the time since then
is added when usage is read (`usage_now`). A `Ledger` holds both.

The queue keeps the ledger in GUILD_HOME/guildd-usage.json (`read_file`, `write_file`), so a
restarted daemon still knows who used the GPUs yesterday; a damaged file is logged and ignored.
"""

import collections
import dataclasses
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from guild_common import rundir

log = logging.getLogger("guildd.fairshare")

DEFAULT_HALF_LIFE = 24 * 3600.0  # seconds
USAGE_FILE = "guildd-usage.json"  # in GUILD_HOME
FORGOTTEN = 0.01  # GPU-seconds: a user whose usage decayed below this is left out of the usage file


@dataclasses.dataclass(frozen=True)
class Usage:
    """A user's decayed GPU-seconds as they counted at `at_us`."""

    gpu_seconds: float = 0.0
    at_us: int = 0


@dataclasses.dataclass(frozen=True)
class Share:
    """One user's line in `guildctl queue`."""

    user: str
    gpus_held: int  # GPUs their runs hold now
    usage: float  # decayed GPU-seconds now
    share: float  # usage over all users' usage, 0 to 1
    waiting: int  # their runs waiting in the queue


def decayed(usage: Usage, now_us: int, half_life: float) -> float:
    """`usage`'s GPU-seconds as they count at `now_us` (a clock that went back decays nothing)."""
    age = max(0, now_us - usage.at_us) / 1e6
    return usage.gpu_seconds * 0.5 ** (age / half_life)


def held(gpus: int, since_us: int, until_us: int, half_life: float) -> float:
    """The decayed GPU-seconds, as they count at `until_us`, of `gpus` GPUs held from `since_us`
    to `until_us`: the integral of gpus * 0.5 ** (age / half_life) over that time."""
    seconds = max(0, until_us - since_us) / 1e6
    rate = math.log(2) / half_life
    return gpus * -math.expm1(-rate * seconds) / rate  # expm1: exact for a few seconds of a long half-life


def charge(usage: Usage, gpus: int, since_us: int, until_us: int, half_life: float) -> Usage:
    """`usage` with `gpus` GPUs held from `since_us` to `until_us` added, as of `until_us`.
    Charging a holding in pieces adds up to charging it at once."""
    return Usage(decayed(usage, until_us, half_life) + held(gpus, since_us, until_us, half_life), until_us)


def usage_now(ledger: Mapping[str, Usage], running: Iterable[tuple[str, int, int]], now_us: int,
              half_life: float) -> dict[str, float]:
    """{user: decayed GPU-seconds at `now_us`}: the ledger's, plus for each running holding
    (user, GPUs, charged up to when) its GPUs' time not charged yet. Users with none are left out."""
    usage = {user: decayed(u, now_us, half_life) for user, u in ledger.items()}
    for user, gpus, since_us in running:
        if gpus:
            usage[user] = usage.get(user, 0.0) + held(gpus, since_us, now_us, half_life)
    return {user: value for user, value in usage.items() if value > 0}


def shares(usage: Mapping[str, float], holding: Iterable[tuple[str, int]], waiting: Iterable[str]) -> list[Share]:
    """Each user who has used, holds or waits for something, in the order fair share favours
    them: least usage first (then fewest GPUs held, then by name, as the scheduler breaks ties).
    `holding`: (user, GPUs) of each running run; `waiting`: the user of each waiting run."""
    gpus_held: collections.Counter[str] = collections.Counter()
    for user, gpus in holding:
        gpus_held[user] += gpus
    waiting = collections.Counter(waiting)
    total = sum(usage.values())
    users = {u for u, v in usage.items() if v > 0} | {u for u, n in gpus_held.items() if n} | {
        u for u, n in waiting.items() if n}
    lines = [Share(u, gpus_held.get(u, 0), usage.get(u, 0.0), usage.get(u, 0.0) / total if total else 0.0,
                   waiting.get(u, 0)) for u in users]
    return sorted(lines, key=lambda s: (s.usage, s.gpus_held, s.user))


# A running run, as the ledger sees it: (run id, user, GPUs held, started_us).
Running = tuple[str, str, int, int]


class Ledger:
    """Each user's usage charged so far, and when each running run's GPUs were last charged
    (one never charged is charged from its start). Plain state: the queue saves and loads it."""

    def __init__(self, half_life: float = DEFAULT_HALF_LIFE, users: "dict[str, Usage] | None" = None,
                 charged: "dict[str, int] | None" = None) -> None:
        self.half_life = half_life
        self.users = users or {}
        self.charged = charged or {}

    def charge(self, running: Iterable[Running], now_us: int, ended: Iterable[Running] = ()) -> None:
        """Adds the GPU time of `running` and `ended` runs since they were last charged to their
        users' usage; from now on only `running` runs have a charge time (the others ended)."""
        charged = {}
        for runs, still in ((running, True), (ended, False)):
            for run_id, user, gpus, started_us in runs:
                if gpus:
                    since = self.charged.get(run_id, started_us)
                    self.users[user] = charge(self.users.get(user, Usage()), gpus, since, now_us, self.half_life)
                    if still:
                        charged[run_id] = now_us
        self.charged = charged

    def usage(self, running: Iterable[Running], now_us: int) -> dict[str, float]:
        """{user: decayed GPU-seconds at `now_us`}, `running` runs included."""
        uncharged = ((user, gpus, self.charged.get(run_id, started_us)) for run_id, user, gpus, started_us in running)
        return usage_now(self.users, uncharged, now_us, self.half_life)

    def to_json(self, now_us: int) -> dict[str, Any]:
        """The usage file's content: each user's usage as of now (those all but forgotten left
        out), and when each running run was last charged."""
        users = {}
        for user, u in sorted(self.users.items()):
            value = decayed(u, now_us, self.half_life)
            if value >= FORGOTTEN:
                users[user] = {"gpu_seconds": value, "at_us": now_us}
        return {"users": users, "charged": dict(sorted(self.charged.items()))}


def from_json(data: Any, half_life: float) -> Ledger:
    """The ledger of a usage file's content; ValueError when it is not what `Ledger.to_json` writes."""
    try:
        users = {str(user): Usage(float(u["gpu_seconds"]), int(u["at_us"])) for user, u in data["users"].items()}
        charged = {str(run_id): int(at) for run_id, at in data.get("charged", {}).items()}
    except (TypeError, KeyError, AttributeError, ValueError) as e:
        raise ValueError(f"not a usage file ({type(e).__name__}: {e})") from None
    bad = next((user for user, u in users.items() if not math.isfinite(u.gpu_seconds) or u.gpu_seconds < 0), None)
    if bad is not None:
        raise ValueError(f"user {bad}: usage must be a finite number of GPU-seconds, 0 or more")
    return Ledger(half_life, users, charged)


def read_file(home: "str | os.PathLike[str]", half_life: float) -> Ledger:
    """The ledger saved in `home` (blocking: on the I/O thread); an empty one when there is no
    file, or when it is damaged (logged: fair share then starts from no usage, never fails)."""
    path = os.path.join(home, USAGE_FILE)
    try:
        with open(path) as f:
            return from_json(json.load(f), half_life)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:
        log.warning("ignoring %s (fair share starts from no usage): %s", path, e)
    return Ledger(half_life)


def write_file(home: "str | os.PathLike[str]", data: Mapping[str, Any]) -> None:
    """Saves `Ledger.to_json`'s `data` in `home`, atomically (blocking: on the I/O thread). A failed
    write is logged, never raised: the next one has it all again."""
    path = os.path.join(home, USAGE_FILE)
    try:
        rundir.write_atomic(path, json.dumps(data, sort_keys=True).encode())
    except OSError as e:
        log.warning("could not write %s: %s", path, e)
