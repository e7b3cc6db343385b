"""Asking an optimizer ahead: when to compute the next trial's point while trials run (pure).

An optimizer's suggestion takes tens of ms (a gp refit, more as trials accumulate). Asked when
a trial ends, it sits between that trial's end and the next one's start. So once every slot
of a batch is busy and trials remain to be made, the batch loop (guildd.batches) asks for the
next point at once, off its event loop, with the running trials' points pending (skopt's
constant liar, Optuna's running trials): when a slot frees, the point is ready. The point the
next trial gets was thus chosen before the last result was known; the one after it learns
from that result. bench/batches.py measures both the gap and the search quality this keeps:
TPE (built for it, with its constant liar) and random starts lose nothing, but skopt's models
(gp, forest, gbrt) past their random starts find the optimum less often when each point is
chosen one result early (14 of 20 seeds against 19 for gp), so those are asked when a slot
frees, after the result (one trial at a time, guildd.speculate asks the same point earlier).

A point asked ahead lives only in the daemon's memory: a daemon killed before it starts it
asks again after its restart (batches' resume), so nothing is persisted here.
"""

import dataclasses

LEARNING = ("gp", "forest", "gbrt")  # skopt's models: asked after each result once past their random starts


@dataclasses.dataclass(frozen=True)
class LoopState:
    """What the decision reads of a batch loop."""

    optimizer: bool  # its trials' points come from a search (not a grid or random list)
    needs_results: bool  # its next point is worse chosen before the running trials' results (a skopt model's)
    parallel: int  # trials at once (1: sequential)
    running: int  # trials running now
    made: int  # trials this session has made
    target: int  # trials this session makes in all
    asked: bool  # a point asked ahead is being computed or waits to be started
    stopping: bool = False  # the batch is being stopped
    failed: bool = False  # a trial failed with --fail-on-trial-error: no new trials


def ask_ahead(state: LoopState) -> bool:
    """Whether to ask the search for the next trial's point now: it is an optimizer's batch
    that will make another trial, whose point doesn't need the running trials' results, every slot is busy (a free slot asks at once instead), and
    no point is already asked ahead."""
    return (state.optimizer and not state.needs_results and not state.asked and not state.stopping and not state.failed
            and state.made < state.target and state.running >= max(1, state.parallel))
