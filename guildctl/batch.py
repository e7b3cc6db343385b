"""Batches from flag values (Guild's grid search): a flag given a list (`x=[-1,0,1]`) makes
one trial per value, several lists their cartesian product. The batch is a run of its own
(`train.py+`) whose trials run as child runs, one after another.

Optimizers (random, gp, ...) and batch files are not here yet.
"""

import itertools
import json

from guild_common import flags as flaglib
from guild_common.pb import guild_pb2 as pb


def trials(values):
    """Each trial's flag values, or [] when no flag has a list value (not a batch). Trial
    order as Guild's: flag names ascending, values in the order given."""
    grid = sorted(name for name, value in values.items() if isinstance(value, list))
    if not grid:
        return []
    return [
        {**values, **dict(zip(grid, combo))}
        for combo in itertools.product(*(values[name] for name in grid))
    ]


def batch_spec(trial_spec_for, op_name, values, trial_values, keep_batch, label="", tags=()):
    """The batch run's spec: its trials as steps; deleted when it completes unless
    `keep_batch` (Guild 0.9 deletes list batches on success)."""
    steps = [
        pb.StepSpec(name=f"trial-{i}", spec=trial_spec_for(trial))
        for i, trial in enumerate(trial_values, 1)
    ]
    first = steps[0].spec
    kind, _, rest = first.opref.rpartition(" ")
    return pb.RunSpec(
        op_name=f"{op_name}+",
        opref=f"{kind} {rest}+",
        flags_json=json.dumps(values),
        user_flags_json=json.dumps(values),
        env=dict(first.env),
        cmd_dir=first.cmd_dir,
        project_dir=first.project_dir,
        guild_op=f"{op_name}+",
        label=label,
        tags=list(tags),
        python_exe=first.python_exe,
        steps=steps,
        batch=True,
        delete_on_success=not keep_batch,
    )


def confirm_lines(op_name, values, count):
    lines = [f"You are about to run {op_name} as a batch ({count} trials)"]
    lines += [f"  {name}: {flaglib.encode_flag_value(v)}" for name, v in sorted(values.items())]
    return lines
