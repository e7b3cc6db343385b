"""A sequential search's next point, asked before its running trial has ended, without
changing the search (skopt's gp, forest and gbrt past their random starts, whose next point
needs the running trial's result: guildd.askahead leaves those alone).

As the running trial logs its objective, a copy of the search is told "the trial ended with
the value it logged last" and asked for the next point, in the daemon's compute process (the
ask's arithmetic then never holds the interpreter lock the loop needs to record the trial's
end, which would otherwise take the ask's time again). The search is pickled to that process
once, as the trial starts, where a copy waits with the ask's candidate points already drawn
(optimizers.Search.prepare_ask): a value heard sends only itself. When the trial ends and its
objective (as the index holds it) is that value, the point is the next trial's, and the told
copy comes back to take the search's place while that trial starts: the search has been told
the same results in the same order, from the same random state, so the point is the one it
would have asked after the result (up to the last digits numpy's sums round differently in
another process), and the gap between one trial's end and the next one's start is what is
left of that ask, if anything. The trial's lines are heard within milliseconds (a prompt listener: see
watching.Followers.listen), so a script that exits right after its last line gives the
ask its exit's few milliseconds. When the objective differs (the trial logged a later value, or none),
the copy is dropped and the search is told and asked as usual.

`decide` is pure (table-tested in tests/unit/test_speculate.py); `Speculation` runs it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import math
import os
import pickle
from typing import Any, Callable, Optional

from guild_common.optdefs import Objective
from guildd import askahead

log = logging.getLogger("guildd")


def may_apply(algorithm: str, parallel: int, objective: Objective) -> bool:
    """Whether a batch's trials may be speculated once its random starts are done: one trial
    at a time, a skopt model, and an objective that is the scalar's last value (what a trial
    logs last)."""
    return max(1, parallel) == 1 and algorithm in askahead.LEARNING and objective.qualifier == "last"


def applies(algorithm: str, random_start: bool, parallel: int, objective: Objective) -> bool:
    """Whether a batch's next point is speculated: may_apply, past its random starts."""
    return may_apply(algorithm, parallel, objective) and not random_start


def decide(speculated: Optional[float], objective: Optional[float]) -> bool:
    """Whether the speculated point may be used for a trial that ended with `objective`: only
    when it was asked with exactly that value told (None: no speculation, or no objective)."""
    return speculated is not None and objective is not None and math.isfinite(objective) and speculated == objective


# In the compute process, by speculation key: the search as the daemon pickled it, a copy
# unpickled with its candidate points drawn (for the first value heard), and the copy last
# told and asked (the search, if the daemon takes it). A compute process that died and was
# replaced has none: the asks fail, and the batch tells and asks its own search.
_BASES: dict[str, bytes] = {}
_READY: dict[str, Any] = {}
_TOLD: dict[str, Any] = {}
_KEYS = itertools.count()


def _copy(key: str) -> Any:
    search = pickle.loads(_BASES[key])
    search.prepare_ask()  # optimizers.Search: what the ask does first, done before the value comes
    return search


def _load(key: str, pickled: bytes) -> None:
    """The running trial's search, to be told its values as they come."""
    _BASES[key] = pickled
    _READY[key] = _copy(key)


def _tell_and_ask(key: str, values: dict[str, Any], objective: float) -> dict[str, Any]:
    """A copy of the search told (values, objective), and its next point; the copy is kept."""
    ahead = _READY.pop(key, None) or _copy(key)
    ahead.tell(values, objective)
    point = ahead.ask(1)[0]
    _TOLD[key] = ahead
    return point


def _take(key: str) -> bytes:
    """The copy last told and asked, pickled; the key forgotten."""
    told = _TOLD.pop(key)
    _forget(key)
    return pickle.dumps(told)


def _forget(key: str) -> None:
    for kept in (_BASES, _READY, _TOLD):
        kept.pop(key, None)


@dataclasses.dataclass
class _Asked:
    value: float
    future: "asyncio.Future[dict[str, Any]]"


class Speculation:
    """The speculation for one running trial. `heard` is given each new last value (on the
    loop); once the trial has ended, `settle` and then `result_for(objective)` answer the next
    point and the told copy of the search (to come), or None. The search must not change
    while a speculation runs (sequential: nothing tells or asks it while its one trial runs):
    it is pickled once, as the trial starts, and the compute process keeps it (see _load)."""

    def __init__(self, search: Any, values: dict[str, Any], as_indexed: Callable[[float], float],
                 compute: Callable[..., "asyncio.Future[Any]"]) -> None:
        self.compute = compute  # Runtime.compute
        self.values = values
        self.as_indexed = as_indexed  # a logged value as the index (and so the objective) holds it
        self.key = f"{os.getpid()}-{next(_KEYS)}"
        self._live = True  # False once settled: nothing more is asked
        self._asked: Optional[_Asked] = None
        self._latest: Optional[float] = None  # the last value heard, asked once the running ask is done
        try:
            pickled = pickle.dumps(search)
        except Exception:  # noqa: BLE001 - not speculated: the batch asks after the trial's end
            log.warning("a search could not be copied for a speculative ask", exc_info=True)
            self._live = False
            return
        self._call(_load, self.key, pickled)  # a failed load fails the asks after it (see result_for)

    def _call(self, fn: Callable[..., Any], *args: Any) -> "Optional[asyncio.Future[Any]]":
        """fn(*args) in the compute process; None, and nothing more asked, if it can't be sent
        there (the batch then tells and asks its own search)."""
        try:
            future = self.compute(fn, *args)
        except Exception:  # noqa: BLE001 - a compute process that can't be started
            log.warning("a speculative ask could not be sent to the compute process", exc_info=True)
            self._live = False
            return None
        future.add_done_callback(_quiet)
        return future

    def heard(self, value: float) -> None:
        if not math.isfinite(value):
            return
        self._latest = self.as_indexed(value)
        self._next()

    def _next(self) -> None:
        if not self._live or self._latest is None or (self._asked is not None and not self._asked.future.done()):
            return  # one ask at a time: the newest value goes next
        if self._asked is not None and self._asked.value == self._latest:
            return
        value, self._latest = self._latest, None
        future = self._call(_tell_and_ask, self.key, self.values, value)
        if future is None:
            return
        self._asked = _Asked(value, future)
        future.add_done_callback(lambda _f: self._next())

    async def settle(self) -> None:
        """The trial has ended: waits for the ask in flight, and asks for the last value heard
        if that one was for an earlier value (its ask would be the search's own next); then
        stops."""
        while self._asked is not None and not self._asked.future.done():
            await asyncio.wait([self._asked.future])
            self._next()  # the last value heard, if it came while the earlier one was asked
        self._next()
        if self._asked is not None:
            await asyncio.wait([self._asked.future])
        self._live = False

    def result_for(self, objective: Optional[float]) -> Optional[tuple[dict[str, Any], "asyncio.Future[Any]"]]:
        """After settle: when the speculation was for `objective`, the next point and the
        search told it (a future: the point is ready first, the search comes back from the
        compute process while the next trial starts); else None, the compute process's copy
        forgotten."""
        asked = self._asked
        if asked is not None and asked.future.done() and asked.future.exception() is None and decide(asked.value, objective):
            return asked.future.result(), asyncio.ensure_future(self._told())
        self._call(_forget, self.key)
        return None

    async def _told(self) -> Any:
        return pickle.loads(await self.compute(_take, self.key))


def _quiet(future: "asyncio.Future[Any]") -> None:
    """Retrieves a future's exception (a compute process that died): its caller copes."""
    if not future.cancelled():
        future.exception()
