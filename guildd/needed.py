"""`run --needed`: the existing runs that make a new run, batch or restart needless.

Guild's rule (0.9, observed): a run is needless when a run of the same operation (the same
opref line: the project and the script or operation) has the same flag values and is neither
pending (a run that hasn't started yet doesn't count as done) nor failed (`error`: worth
running again). Staged, running, completed and terminated runs count. A batch compares the
batch runs: their operation, their flag values (the trials' lists and search functions as
written) and their optimizer flags; grid and random batches that went to the trash don't
count, so their trials run again, as in Guild. A restart compares the flags the run would
run with: when the run itself matches, its flags have not changed.

The check is made by the daemon, in the request that would create or start the run, so the
client needs one round trip and the matches come from the index the run would join.
"""

import json
from typing import Any, Callable, Iterable, Optional

from guild_common import rundir
from guild_common.paths import StrPath
from guildd import batchspec, fsrights, runstate
from guildd import store as storelib
from guildd.selection import Criteria

NOT_DONE = (runstate.PENDING, runstate.ERROR)


def matching(records: Iterable[storelib.RunRecord], opref: str, flags: dict[str, Any]) -> list[storelib.RunRecord]:
    """The runs of `records` that make a run of `opref` with `flags` needless (see the module
    doc); flag values compare as Guild's do (1 and 1.0 are equal)."""
    return [r for r in records if r.opref == opref and r.status not in NOT_DONE and r.flags == flags]


def counts(status: str, op_attr: Any, opt_flags: Optional[dict[str, Any]], batch_opt_flags: Optional[dict[str, Any]]) -> bool:
    """Whether a run that matches by operation and flags counts: not when it completed and
    deletes itself on success (it is on its way to the trash, as a grid batch is just after
    its end), nor, when `opt_flags` are asked for (a batch), when its optimizer flags differ."""
    if status == runstate.COMPLETED and isinstance(op_attr, dict) and op_attr.get("delete-on-success"):
        return False
    return opt_flags is None or batch_opt_flags == opt_flags


def find(store: storelib.Store, run_dir: Callable[[str], StrPath], op_name: str, opref: str, flags: dict[str, Any],
         opt_flags: Optional[dict[str, Any]] = None) -> list[storelib.RunRecord]:
    """On the I/O thread: the indexed runs (not deleted) that make a run of `op_name`
    (`opref`) with `flags` needless, latest first; with `opt_flags`, batch runs with those
    optimizer flags. Each match's dir (`run_dir(id)`) is read with its owner's rights."""
    records, _total = store.select(Criteria(not_statuses=NOT_DONE, ops=(op_name,)))
    out = []
    for rec in matching(records, opref, flags):
        path = run_dir(rec.id)
        with fsrights.as_owner_of(path):
            op_attr = rundir.read_attr(path, "op")
            found = batchspec.read_spec(path) if opt_flags is not None else None
        if counts(rec.status, op_attr, opt_flags, _opt_flags(found)):
            out.append(rec)
    return out


def _opt_flags(found: Optional[tuple[Any, int, Any]]) -> Optional[dict[str, Any]]:
    """A batch's optimizer flags from its spec (batchspec.read_spec); None: none readable."""
    if found is None:
        return None
    try:
        value = json.loads(found[0].optimizer_flags_json or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
