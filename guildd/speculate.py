"""A sequential search's next point, asked before its running trial has ended, without
changing the search (skopt's gp, forest and gbrt past their random starts, whose next point
needs the running trial's result: guildd.askahead leaves those alone).

As the running trial logs its objective, a copy of the search is told "the trial ended with
the value it logged last" and asked for the next point, in the daemon's compute process (a
pickled copy: the ask's arithmetic then never holds the interpreter lock the loop needs to
record the trial's end, which would otherwise take the ask's time again). When the trial
ends and its objective (as the index holds it) is that value, the copy takes the search's
place and its point is the next trial's: the search has been told the same results in the
same order, from the same random state, so the point is the one it would have asked after
the result (up to the last digits numpy's sums round differently in another process), and
the gap between one trial's end and the next one's start is what is left of that ask, if
anything. The trial's lines are heard within milliseconds (a prompt listener: see
watching.Followers.listen), so a script that exits right after its last line gives the
ask its exit's few milliseconds. When the objective differs (the trial logged a later value, or none),
the copy is dropped and the search is told and asked as usual.

`decide` is pure (table-tested in tests/unit/test_speculate.py); `Speculation` runs it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import pickle
from typing import Any, Callable, Optional

from guild_common.optdefs import Objective
from guildd import askahead


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


def _tell_and_ask(pickled: bytes, values: dict[str, Any], objective: float) -> tuple[Any, dict[str, Any]]:
    """The search pickled in `pickled`, told (values, objective), and its next point."""
    ahead = pickle.loads(pickled)
    ahead.tell(values, objective)
    return ahead, ahead.ask(1)[0]


@dataclasses.dataclass
class _Asked:
    value: float
    future: "asyncio.Future[tuple[Any, dict[str, Any]]]"


class Speculation:
    """The speculation for one running trial. `heard` is given each new last value (on the
    loop); once the trial has ended, `settle` and then `result_for(objective)` answer the told
    copy of the search and its point, or None. The search must not change while a speculation
    runs (sequential: nothing tells or asks it while its one trial runs)."""

    def __init__(self, search: Any, values: dict[str, Any], as_indexed: Callable[[float], float],
                 compute: Callable[..., "asyncio.Future[Any]"]) -> None:
        self.search = search
        self.compute = compute  # Runtime.compute
        self.values = values
        self.as_indexed = as_indexed  # a logged value as the index (and so the objective) holds it
        self._asked: Optional[_Asked] = None
        self._latest: Optional[float] = None  # the last value heard, asked once the running ask is done

    def heard(self, value: float) -> None:
        if not math.isfinite(value):
            return
        self._latest = self.as_indexed(value)
        self._next()

    def _next(self) -> None:
        if self.search is None or self._latest is None or (self._asked is not None and not self._asked.future.done()):
            return  # one ask at a time (the search's copy is taken in the worker): the newest value goes next
        if self._asked is not None and self._asked.value == self._latest:
            return
        value, self._latest = self._latest, None
        future = self.compute(_tell_and_ask, pickle.dumps(self.search), self.values, value)
        self._asked = _Asked(value, future)
        future.add_done_callback(lambda _f: self._next())

    async def settle(self) -> None:
        """The trial has ended: waits for the ask in flight, and asks for the last value heard
        if that one was for an earlier value (its ask would be the search's own next); then
        stops. Until it returns the search is being copied and must not be told or asked."""
        while self._asked is not None and not self._asked.future.done():
            await asyncio.wait([self._asked.future])
            self._next()  # the last value heard, if it came while the earlier one was asked
        self._next()
        if self._asked is not None:
            await asyncio.wait([self._asked.future])
        self.search = None  # nothing more is asked

    def result_for(self, objective: Optional[float]) -> Optional[tuple[Any, dict[str, Any]]]:
        """After settle: the told copy of the search and its point when the speculation was
        for `objective`; else None."""
        asked = self._asked
        if asked is None or not asked.future.done() or asked.future.exception() is not None:
            return None
        return asked.future.result() if decide(asked.value, objective) else None
