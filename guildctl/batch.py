"""Batches as `guildctl run` sees them: which kind of batch the flags make (grid from lists,
sequence functions and batch files; random search from `[MIN:MAX]`; an optimizer), the trials
to preview or save, the confirmation, and the StartBatch request. The daemon runs the loop
(guildd.batches)."""

import dataclasses
import json

import click

from guild_common import errors, flagfuncs, flags as flaglib, guildfile_ops, optdefs, prunedefs, trials as trialslib
from guild_common.pb import guild_pb2 as pb
from guildctl import output


@dataclasses.dataclass(frozen=True)
class Options:
    """run's batch options."""

    optimizer: str | None = None
    optimize: bool = False
    opt_flags: tuple = ()  # -Fo NAME=VAL
    max_trials: int | None = None
    random_seed: int | None = None
    minimize: str | None = None
    maximize: str | None = None
    parallel: int = 0
    fail_on_trial_error: bool = False
    stage_trials: bool = False
    keep_batch: bool = False
    print_trials: bool = False
    save_trials: str | None = None
    batch_label: str = ""  # the batch run's own label and tags (its trials get the run's)
    batch_tags: tuple = ()
    pruner: str | None = None  # --prune
    prune_flags: tuple = ()  # -Fp NAME=VAL
    preemptible_trials: bool = False

    @property
    def given(self):
        """Options that only make sense for a batch."""
        return (self.optimizer or self.optimize or self.opt_flags or self.print_trials or self.save_trials or self.pruner
                or self.prune_flags or self.preemptible_trials)


@dataclasses.dataclass(frozen=True)
class Plan:
    kind: str  # grid, random, gp, forest, gbrt
    values: dict  # the flag values as shown (sequences expanded, search functions as written)
    trials: list  # grid: the trials; random: the trials it will draw (for previews); else []
    max_trials: int
    opt_flags: dict  # optimizer flags with defaults
    objective: object  # optdefs.Objective
    prune: tuple | None = None  # (pruner, its flags with defaults): --prune or guild.yml `prune:`

    @property
    def is_optimizer(self):
        return self.kind not in ("grid", "random")


def split_batch_files(flag_args):
    """(`@file` arguments, the other flag arguments)."""
    files = [a[1:] for a in flag_args if a.startswith("@")]
    return files, [a for a in flag_args if not a.startswith("@")]


def plan(op, values, user, batch_files, opts, cwd, force_flags=False):
    """The batch the flags and options make, or None for a plain run."""
    p = _plan(op, values, user, batch_files, opts, cwd, force_flags)
    if p is None:
        return None
    prune = _prune(getattr(op, "opdef", None), opts)
    if prune is not None:
        prunedefs.check_objective(p.objective)
    return dataclasses.replace(p, prune=prune)


def _prune(opdef, opts):
    """(pruner, flags) from --prune and -Fp, else the Guild file's `prune:` (-Fp on top of
    its flags); None: no pruning."""
    assigns = prunedefs.parse_assigns(opts.prune_flags)
    configured = guildfile_ops.prune(opdef.data.get("prune"), opdef.guildfile_path) if opdef is not None else None
    if opts.pruner:
        pruner, given = opts.pruner, assigns
    elif configured is not None:
        pruner, given = configured[0], {**configured[1], **assigns}
    elif assigns:
        raise errors.InvalidArgument("-Fp/--prune-flag needs --prune PRUNER")
    else:
        return None
    return pruner, prunedefs.pruner_flags(pruner, given)


def _plan(op, values, user, batch_files, opts, cwd, force_flags):
    if opts.max_trials is not None and opts.max_trials < 1:
        raise errors.InvalidArgument(f"invalid --max-trials {opts.max_trials}: expected 1 or more")
    opdef = getattr(op, "opdef", None)
    algorithm, opt_flags = _optimizer(opdef, opts)
    objective = optdefs.parse_objective(opts.minimize, opts.maximize) if (opts.minimize or opts.maximize) else _op_objective(opdef)
    default_max = (opdef.default_max_trials if opdef is not None else None) or trialslib.DEFAULT_MAX_TRIALS
    if batch_files:
        file_trials = []
        for path in batch_files:
            read = trialslib.read_batch_file(path, cwd)
            if not force_flags:
                trialslib.validate_batch_columns(path, read, list(op.flag_defs), op.name)
            file_trials += read
        grid = trialslib.batch_file_trials(file_trials, user, values)
        if len(grid) <= 1 and not algorithm:
            return None
        return _grid_plan(values, grid, opts, objective)
    if algorithm is None and trialslib.search_dims(values):
        algorithm = "random"
    if algorithm is not None:
        opt_flags = optdefs.optimizer_flags(algorithm, opt_flags)
        max_trials = opts.max_trials or default_max
        preview = []
        if algorithm == "random":
            preview = trialslib.random_trials(values, max_trials, opts.random_seed)
        return Plan(algorithm, values, preview, max_trials, opt_flags, objective)
    expanded = trialslib.expand_values(values)
    grid = trialslib.grid(expanded)
    if not any(isinstance(v, list) for v in expanded.values()):
        if opts.given:
            raise errors.InvalidArgument("not a batch: give a flag a list ([1,2]), a range ([0.1:0.5]) or a batch file (@trials.csv)")
        return None
    return _grid_plan(expanded, grid, opts, objective)


def _grid_plan(values, grid, opts, objective):
    grid = trialslib.sample(grid, opts.max_trials, opts.random_seed)
    return Plan("grid", values, grid, len(grid), {}, objective)


def _optimizer(opdef, opts):
    """(algorithm or None, optimizer flag values) from -o/--optimize and the Guild file."""
    assigns = flaglib.parse_flag_assigns(list(opts.opt_flags)) if opts.opt_flags else {}
    configured = {o.name: o for o in getattr(opdef, "optimizers", ()) or ()}
    if opts.optimize and not opts.optimizer:
        chosen = opdef.default_optimizer if opdef is not None else None
        if chosen is None:
            raise errors.InvalidArgument("--optimize: the operation has no optimizer in its Guild file; use --optimizer NAME")
        return optdefs.algorithm_for(chosen.algorithm), {**chosen.flags, **assigns}
    if opts.optimizer:
        if opts.optimizer in configured:
            chosen = configured[opts.optimizer]
            return optdefs.algorithm_for(chosen.algorithm), {**chosen.flags, **assigns}
        return optdefs.algorithm_for(opts.optimizer), assigns
    if assigns:
        raise errors.InvalidArgument("-Fo/--opt-flag needs an optimizer (--optimizer NAME)")
    return None, {}


def _op_objective(opdef):
    objective = getattr(opdef, "objective", None)
    if isinstance(objective, dict):
        return optdefs.parse_objective(objective.get("minimize"), objective.get("maximize"))
    if isinstance(objective, str):
        return optdefs.parse_objective(objective)
    return optdefs.parse_objective()


def op_suffix(kind):
    """The batch run's operation suffix as Guild 0.9 names it: `+` for grids, `+skopt:random`,
    `+skopt:gp`, ..."""
    return "+" if kind == "grid" else "+" + optdefs.opspec(kind)


def confirm_lines(op_name, p):
    if p.kind == "grid":
        head = f"You are about to run {op_name} as a batch ({len(p.trials)} trials)"
    elif p.kind == "random":
        head = f"You are about to run {op_name} with random search (max {p.max_trials} trials)"
    else:
        goal = f"{'maximize' if p.objective.maximize else 'minimize'} {p.objective.scalar}"
        head = f"You are about to run {op_name} with '{optdefs.opspec(p.kind)}' optimizer (max {p.max_trials} trials, {goal})"
    lines = [head] + [f"  {name}: {shown(v)}" for name, v in sorted(p.values.items())]
    if p.is_optimizer:
        lines.append("Optimizer flags:")
        lines += [f"  {name}: {flaglib.encode_flag_value(v)}" for name, v in sorted(p.opt_flags.items())]
    if p.prune is not None:
        goal = f"{'maximize' if p.objective.maximize else 'minimize'} {p.objective.scalar}"
        lines.append(f"Pruner: {p.prune[0]} (stops trials whose {goal} by step is losing)")
        lines += [f"  {name}: {flaglib.encode_flag_value(v)}" for name, v in sorted(p.prune[1].items())]
    return lines


def shown(value):
    """A flag value as the confirmation shows it: functions as written (`[-2.0:2.0]`)."""
    return value if flagfuncs.is_function(value) else flaglib.encode_flag_value(value)


def print_trials(p):
    if p.is_optimizer:
        raise errors.InvalidArgument(f"optimizer {p.kind} does not support printing trials: its trials depend on earlier results")
    names = sorted({name for t in p.trials for name in t})
    rows = [["#", *names]] + [[str(i), *(flaglib.encode_flag_value(t.get(n)) for n in names)] for i, t in enumerate(p.trials, 1)]
    for line in output.table(rows):
        click.echo(line)


def save_trials(p, path):
    if p.is_optimizer:
        raise errors.InvalidArgument(f"optimizer {p.kind} does not support saving trials: its trials depend on earlier results")
    click.echo(f"Saving trials to {path}")
    trialslib.write_csv(path, p.trials)


def batch_spec(p, opts):
    spec = pb.BatchSpec(
        kind=p.kind,
        max_trials=p.max_trials,
        objective=p.objective.scalar if p.objective.qualifier == "last" else f"{p.objective.qualifier} {p.objective.scalar}",
        maximize=p.objective.maximize,
        parallel=opts.parallel or 0,
        fail_on_trial_error=opts.fail_on_trial_error,
        stage_trials=opts.stage_trials,
        keep_batch=opts.keep_batch,
        preemptible_trials=opts.preemptible_trials,
    )
    if p.kind == "grid":
        spec.trials_json = json.dumps(p.trials)
    else:
        spec.values_json = json.dumps(p.values)
        spec.optimizer_flags_json = json.dumps(p.opt_flags)
    if opts.random_seed is not None:
        spec.random_seed = opts.random_seed
    if p.prune is not None:
        spec.pruner = p.prune[0]
        spec.pruner_flags_json = json.dumps(p.prune[1])
    return spec


def proto_values(values):
    """A trial template's flag values: a search function or a list has no single value, so
    the template keeps the flag's first concrete value where it has one."""
    out = {}
    for name, value in values.items():
        if isinstance(value, list):
            out[name] = value[0] if value else None
        elif flagfuncs.is_function(value):
            continue
        else:
            out[name] = value
    return out
