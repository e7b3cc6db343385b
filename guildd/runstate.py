r"""The run state machine, written once.

    staged -> pending -> running -> completed | error | terminated
                                  \-> (restart) pending -> running ...

`transition()` is the only writer of a status: it checks the edge, writes the facts Guild reads
in the run dir (markers, `started`), updates the index, and wakes whoever watches the run.
"""

from guild_common import errors, rundir

STAGED = "staged"
PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
ERROR = "error"
TERMINATED = "terminated"
ENDED = frozenset({COMPLETED, ERROR, TERMINATED})
ACTIVE = frozenset({PENDING, RUNNING})

# (from, to): why the edge exists. `None` is a run that doesn't exist yet.
EDGES = {
    (None, STAGED): "run created with --stage: waits to be started",
    (None, PENDING): "run created to start now: waits for its process",
    (STAGED, PENDING): "a staged run is started (--start, or the queue)",
    (PENDING, RUNNING): "its shim started the operation's process",
    (PENDING, ERROR): "its process could not be started",
    (RUNNING, COMPLETED): "the process exited 0",
    (RUNNING, ERROR): "the process exited non-zero, or died unrecorded",
    (RUNNING, TERMINATED): "the process was stopped by a signal",
    (COMPLETED, PENDING): "restarted",
    (ERROR, PENDING): "restarted",
    (TERMINATED, PENDING): "restarted",
    (STAGED, TERMINATED): "a staged run is stopped before it starts",
    (PENDING, TERMINATED): "a pending run is stopped before it starts",
}


def check_edge(old, new):
    if (old, new) not in EDGES:
        raise errors.FailedPrecondition(f"a run that is {old or 'new'} cannot become {new}")


def apply_to_rundir(run_dir, old, new, now_us, exit_status=True):
    """The run-dir side of a transition: the facts Guild AI reads a status from.
    `exit_status=False`: a run that ends before it started writes none (a dependency not
    met: Guild 0.9 leaves it unset, and reads such a run as error too)."""
    if new == STAGED:
        # Guild stamps a staged run's start time too: it lists and filters by it.
        rundir.write_attr(run_dir, "started", now_us)
        rundir.set_marker(run_dir, "STAGED", True)
    elif new == PENDING:
        rundir.set_marker(run_dir, "STAGED", False)
        rundir.set_marker(run_dir, "PENDING", True)
        if old in ENDED:
            # A restart: the old end no longer holds.
            rundir.delete_attr(run_dir, "exit_status")
            rundir.delete_attr(run_dir, "stopped")
    elif new == RUNNING:
        rundir.write_attr(run_dir, "started", now_us)
        rundir.set_marker(run_dir, "PENDING", False)
        if old == STAGED:  # staged -> pending -> running in one step (Daemon._apply's `via`)
            rundir.set_marker(run_dir, "STAGED", False)
    elif new in ENDED and old in (STAGED, PENDING):
        for marker in ("STAGED", "PENDING"):
            rundir.set_marker(run_dir, marker, False)
        if exit_status:
            rundir.write_attr(run_dir, "exit_status", -15 if new == TERMINATED else 1)
        rundir.write_attr(run_dir, "stopped", now_us)
    # RUNNING -> ended: the shim has recorded exit_status and stopped already.
