"""A batch run's spec: the files its dir keeps (`.guild/batch.json`, the BatchSpec with the
seed drawn and where the current session's trials begin, and `.guild/batch-proto`, the trial
run spec), the checks that refuse a batch before it is made, and its objective. Kept apart
from the loop (guildd.batches) for its size."""

import json
import math
import os
import random
import re
from typing import Any, Optional

from guild_common import errors, flagfuncs, optdefs, prunedefs, rundir
from guild_common.paths import StrPath
from guild_common.pb import guild_pb2 as pb
from guildd import fsrights

SPEC_FILE = "batch.json"
PROTO_FILE = "batch-proto"


def read_spec(run_dir: StrPath) -> Optional[tuple[pb.BatchSpec, int, pb.RunSpec]]:
    """(BatchSpec, session start, trial RunSpec) of a batch run dir, or None."""
    gdir = rundir.guild_dir(run_dir)
    try:
        # read_regular: the run dir is its owner's, and a FIFO there must not hold the I/O thread.
        data = json.loads(rundir.read_regular(gdir / SPEC_FILE))
        proto = pb.RunSpec.FromString(rundir.read_regular(gdir / PROTO_FILE))
    except (OSError, ValueError):
        return None
    session = data.pop("session_start", 0)
    seed = data.pop("random_seed", None)
    spec = pb.BatchSpec(**data)
    if seed is not None:
        spec.random_seed = seed
    return spec, session, proto


def spec_files(spec: pb.BatchSpec, proto: pb.RunSpec, session_start: int = 0) -> list[tuple[str, bytes]]:
    """The files a batch run's dir gets (see the module doc)."""
    data = {f.name: getattr(spec, f.name) for f in pb.BatchSpec.DESCRIPTOR.fields if f.name != "random_seed"}
    data["random_seed"] = spec.random_seed
    data["session_start"] = session_start
    return [(SPEC_FILE, json.dumps(data, sort_keys=True).encode()), (PROTO_FILE, proto.SerializeToString())]


def write_spec(run_dir: StrPath, spec: pb.BatchSpec, proto: pb.RunSpec, session_start: int) -> None:
    with fsrights.as_owner_of(run_dir):  # the owner's dir: written with their rights
        for name, data in spec_files(spec, proto, session_start):
            rundir.write_atomic(rundir.guild_dir(run_dir) / name, data)  # a full disk leaves the old spec


def check(spec: pb.BatchSpec) -> None:
    """Refuses a batch that can't run, before its run is created: an unknown optimizer or
    optimizer flag, a bad objective, a search with no dimensions, no trials."""
    if spec.max_trials < 0 or (spec.HasField("random_seed") and spec.random_seed < 0):
        raise errors.InvalidArgument("--max-trials and --random-seed must not be negative")
    if spec.parallel < 0:
        raise errors.InvalidArgument(f"invalid --parallel {spec.parallel}: expected 1 or more")
    check_pruning(spec)
    if spec.kind == "grid":
        if not json.loads(spec.trials_json or "[]"):
            raise errors.InvalidArgument("batch has no trials")
        return
    algorithm = optdefs.algorithm_for(spec.kind)
    optdefs.optimizer_flags(algorithm, json.loads(spec.optimizer_flags_json or "{}"))
    if spec.stage_trials and algorithm != "random":
        raise errors.InvalidArgument(f"--stage-trials cannot be used with optimizer {algorithm}: it needs each trial's result")
    from guildd import optimizers

    optimizers.dims_for(search_values(json.loads(spec.values_json or "{}")))


def check_pruning(spec: pb.BatchSpec) -> None:
    """Refuses a pruner the batch can't use: unknown, a bad flag, an objective with no value
    by step, or staged trials (the queue starts them, and no loop watches them)."""
    goal = objective(spec)
    if not spec.pruner:
        if spec.pruner_flags_json and json.loads(spec.pruner_flags_json):
            raise errors.InvalidArgument("-Fp/--prune-flag needs --prune PRUNER")
        return
    try:
        given = json.loads(spec.pruner_flags_json or "{}")
    except ValueError:
        given = None
    if not isinstance(given, dict):
        raise errors.InvalidArgument("invalid pruner flags: expected a JSON object")
    prunedefs.pruner_flags(spec.pruner, given)
    prunedefs.check_objective(goal)
    if spec.stage_trials:
        raise errors.InvalidArgument("--prune cannot be used with --stage-trials: staged trials are started by the queue, unwatched")


def objective(spec: pb.BatchSpec) -> optdefs.Objective:
    """The batch's objective (optdefs.Objective): --maximize COL, else --minimize COL or loss."""
    return optdefs.parse_objective(*((None, spec.objective) if spec.maximize else (spec.objective or None, None)))


def search_values(values: dict[str, Any]) -> dict[str, Any]:
    """Flag values with their search functions as SearchDims (lists stay categorical)."""
    out = {}
    for name, value in values.items():
        dim = flagfuncs.search_dim(value, name) if isinstance(value, str) else None
        out[name] = dim if dim is not None else flagfuncs.expand(value, name) if isinstance(value, str) else value
    return out


def objective_value(summaries: "list[Any]", objective: optdefs.Objective) -> Optional[float]:
    """A trial's objective from its scalar summaries (guildd.store.Summary): the value its
    qualifier names of the scalar whose key (or tag) it names; None when it has none."""
    key = objective.scalar
    tag = key.split("#", 1)[1] if "#" in key else key
    for s in summaries:
        if s.tag in (key, tag):
            value = {
                "last": s.last_val,
                "first": s.first_val,
                "min": s.min_val,
                "max": s.max_val,
                "total": s.total,
                "avg": s.total / s.count if s.count else None,
                "count": s.count,
            }.get(objective.qualifier, s.last_val)
            return value if value is not None and math.isfinite(value) else None
    return None


def objective_column(objective: optdefs.Objective) -> str:
    """The objective in compare's column syntax (`loss`, `max acc`)."""
    return objective.scalar if objective.qualifier == "last" else f"{objective.qualifier} {objective.scalar}"


TRIAL_LINK = re.compile(r"^trial-(\d+)$")


def trial_ids(run_dir: StrPath) -> list[str]:
    """The batch's trials, in the order they were made (its `trial-N` links)."""
    numbered = []
    try:
        entries = os.listdir(run_dir)
    except FileNotFoundError:
        return []
    for name in entries:
        m = TRIAL_LINK.match(name)
        if m:
            numbered.append((int(m.group(1)), os.path.basename(os.readlink(os.path.join(run_dir, name)))))
    return [run_id for _, run_id in sorted(numbered)]


def draw_seed() -> int:
    return random.SystemRandom().randrange(2**31)
