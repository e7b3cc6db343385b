"""guildctl run, watch and stop."""

import contextlib
import dataclasses
import json
import os
import re
import shlex
import sys
import time

import click

from guild_common import errors, flags as flaglib, opconfig
from guild_common.pb import guild_pb2 as pb
from guildctl import output, runneeded, runops
from guildctl.filters import pop_filter, run_filters

@dataclasses.dataclass(frozen=True)
class _Tests:
    """The options that show something about the operation instead of running it."""

    print_cmd: bool = False
    print_env: bool = False
    help_op: bool = False
    test_flags: bool = False
    test_sourcecode: bool = False
    test_output_scalars: str | None = None


DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*$")


def parse_stop_after(value):
    """Seconds from `N` (seconds), `Ns`, `Nm` or `Nh`."""
    if value is None:
        return 0.0
    m = DURATION.match(value)
    if not m or float(m.group(1)) <= 0:
        raise errors.InvalidArgument(f"invalid --stop-after '{value}': expected a positive number of seconds (or Nm, Nh)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("opspec", required=False)
@click.argument("flags", nargs=-1)
@click.option("-y", "--yes", is_flag=True, help="Don't ask to confirm.")
@click.option("-l", "--label", default="", help="Run label; may use ${flag} and ${default_label}.")
@click.option("-t", "--tag", "tags", multiple=True, help="Tag the run (repeatable); tags go in front of the label.")
@click.option("--batch-label", default="", metavar="LABEL", help="A batch run's own label (its trials get --label's); may use ${flag}.")
@click.option("--batch-tag", "batch_tags", multiple=True, metavar="TAG", help="Tag a batch run (repeatable); its trials get --tag's.")
@click.option("--needed", is_flag=True, help="Run only if no run of the operation with the same flag values exists, or, with "
              "--restart/--start, if the flags have changed (pending and failed runs don't count).")
@click.option("--stage", is_flag=True, help="Stage the run: it waits until queue processing takes it ('guildctl queue start') or --start.")
@click.option("--start", "start_run", metavar="RUN", help="Start a staged run now, whether queue processing is on or not.")
@click.option("--restart", "restart_run", metavar="RUN", help="Run RUN again in its own directory (new flag values allowed).")
@click.option("--proto", "proto_run", metavar="RUN", help="New run from RUN's operation, flags and source code.")
@click.option("--force-sourcecode", is_flag=True, help="With --restart or --proto: snapshot the project's source code again.")
@click.option("--background", is_flag=True, help="Return at once with the run id; follow it with `guildctl watch`.")
@click.option("--stop-after", metavar="SECONDS", help="Stop the run after SECONDS (or Nm / Nh).")
@click.option("--force-flags", is_flag=True, help="Accept flags the operation doesn't define, and values of any type.")
@click.option("--print-cmd", is_flag=True, help="Print the command the run would execute, and exit.")
@click.option("--print-env", is_flag=True, help="Print the environment the run would get, and exit.")
@click.option("--help-op", is_flag=True, help="Show the operation's help and flags, and exit.")
@click.option("--test-flags", is_flag=True, help="Show the operation's flags and their values, and exit.")
@click.option("--test-sourcecode", is_flag=True, help="Show which source files a run would copy, and exit.")
@click.option("--test-output-scalars", metavar="FILE|-", help="Show the scalars the operation captures from FILE's lines, and exit.")
@click.option("-o", "--optimizer", metavar="ALGORITHM", help="Search with an optimizer: gp (bayesian), forest, gbrt, random, or one the Guild file names.")
@click.option("-O", "--optimize", is_flag=True, help="Search with the operation's default optimizer (Guild file).")
@click.option("-Fo", "--opt-flag", "opt_flags", metavar="NAME=VAL", multiple=True, help="Optimizer flag (repeatable), e.g. -Fo random-starts=5.")
@click.option("-m", "--max-trials", type=click.IntRange(-(2**31), 2**31 - 1), metavar="N", help="Most trials a batch runs (random and optimizers: default 20; a larger grid is sampled).")
@click.option("--random-seed", type=click.IntRange(-(2**63), 2**63 - 1), metavar="N", help="Seed for random choices in a batch (reproducible trials).")
@click.option("--minimize", metavar="COLUMN", help="The optimizer's objective to minimize (default: loss).")
@click.option("--maximize", metavar="COLUMN", help="The optimizer's objective to maximize.")
@click.option("--parallel", type=click.IntRange(-(2**31), 2**31 - 1), metavar="N", default=0, help="Run up to N trials of a batch at once, each placed by the queue.")
@click.option("--fail-on-trial-error", is_flag=True, help="Stop a batch when a trial fails.")
@click.option("--stage-trials", is_flag=True, help="Stage a batch's trials: the queue starts them.")
@click.option("--print-trials", is_flag=True, help="Show a batch's trials and exit.")
@click.option("--save-trials", metavar="FILE", help="Write a batch's trials to FILE (CSV) and exit.")
@click.option("--prune", "pruner", metavar="PRUNER", help="Stop a batch's losing trials early, from their objective by step: median, asha or hyperband.")
@click.option("-Fp", "--prune-flag", "prune_flags", metavar="NAME=VAL", multiple=True, help="Pruner flag (repeatable), e.g. -Fp warmup-steps=5.")
@click.option("--preemptible", is_flag=True, help="A higher-priority run waiting for GPUs may stop this run; it is requeued and starts again later.")
@click.option("--preemptible-trials", is_flag=True, help="A batch's trials are preemptible (see --preemptible).")
@click.option("--keep-batch", is_flag=True, help="Keep a batch run (x=[1,2,3]) when it completes; by default it goes to the trash.")
@click.option("--gpus", metavar="N|I,J", help="GPUs the run needs: --gpus N asks for N GPUs (any free ones); GPU indices: --gpus 0,3, "
              "one: --gpus 3, (Guild's --gpus 1 for device 1 is --gpus 1, here); --gpus 0: none. Without it the run sees every GPU.")
@click.option("--no-gpus", is_flag=True, help="Run without GPUs (CUDA_VISIBLE_DEVICES is set empty).")
@click.option("--gpu-memory", metavar="SIZE", help="Free memory the run needs on each GPU (20G); lets small runs share a GPU.")
@click.option("--cpus", metavar="N", help="Runs on Ray (--executor ray): CPUs the job asks of the cluster (2, 0.5; default 1).")
@click.option("--memory", metavar="SIZE", help="Runs on Ray (--executor ray): memory the job asks of the cluster (4G, 512M).")
@click.option("--priority", type=click.IntRange(-(2**31), 2**31 - 1), default=0, help="Queue priority: higher starts first (default 0).")
@click.option("--queue", "queue_name", metavar="NAME", default="", help="Put the run in a named queue (see 'guildctl queue limit').")
@click.option("--after", "after", metavar="RUN", multiple=True, help="Start only when RUN has completed (repeatable); cancelled if RUN fails.")
@click.option("--executor", default="", metavar="ray[:ADDRESS]", help="Execute on a Ray cluster (its dashboard address; default: "
              "RAY_ADDRESS, the daemon's --ray-address, http://127.0.0.1:8265); the run's record stays here. Batches: each trial.")
@click.option("--run-dir", metavar="DIR", help="Run in DIR instead of a new run of GUILD_HOME (reused if it exists), in the "
              "foreground without guildd; the run is not listed by 'guildctl runs'.")
@click.pass_obj
def run(ctx, opspec, flags, yes, label, tags, batch_label, batch_tags, needed, stage, start_run, restart_run, proto_run,
        force_sourcecode, background, stop_after, force_flags, gpus, no_gpus, gpu_memory, cpus, memory, priority, queue_name, after,
        optimizer, optimize, opt_flags, max_trials, random_seed, minimize, maximize, parallel, fail_on_trial_error, stage_trials, print_trials, save_trials,
        pruner, prune_flags, preemptible, preemptible_trials, keep_batch, executor, run_dir, **tests):
    """Run an operation as a recorded run: an operation of the Guild file here (guild.yml),
    a Python script, or an executable.

    \b
      guildctl run train.py x=0.2 -y      run train.py with x=0.2, stream its output
      guildctl run train lr=0.1           run the Guild-file operation `train`
      guildctl run train.py --background  start it and return its run id
      guildctl run --restart 1 x=0.3      run the latest run again with x=0.3
      guildctl run train --stage --gpus 2 stage it: 'guildctl queue start' runs it on 2 free GPUs

    The run goes through guildd, so it keeps running if this terminal closes; Ctrl-C stops
    it (status 'terminated') unless --background. The exit code is the script's.
    """
    from guildctl import batch, queueopts

    batch_opts = batch.Options(
        optimizer=optimizer, optimize=optimize, opt_flags=opt_flags, max_trials=max_trials, random_seed=random_seed,
        minimize=minimize, maximize=maximize, parallel=parallel, fail_on_trial_error=fail_on_trial_error,
        stage_trials=stage_trials, keep_batch=keep_batch, print_trials=print_trials, save_trials=save_trials,
        batch_label=batch_label, batch_tags=batch_tags, pruner=pruner, prune_flags=prune_flags,
        preemptible_trials=preemptible_trials,
    )
    if parallel < 0:
        raise errors.InvalidArgument(f"invalid --parallel {parallel}: expected 1 or more")

    stop_after_s = parse_stop_after(stop_after)
    wants = _Wants(
        gpus=gpus, no_gpus=no_gpus, gpu_memory=gpu_memory, cpus=cpus, memory=memory,
        queue=queueopts.queue_options(priority, queue_name, after, preemptible),
    )
    if (cpus is not None or memory is not None) and (start_run or restart_run or proto_run or run_dir is not None):
        raise errors.InvalidArgument("--cpus and --memory can't be used with --start, --restart, --proto or --run-dir "
                                     "(they are asked of Ray when a run is made with --executor ray)")
    queueopts.resource_request(gpus, no_gpus, gpu_memory, None, cpus, memory, executor)  # bad values are refused before anything else
    if (preemptible or preemptible_trials) and (no_gpus or (gpus is not None and gpus.strip() == "0")):
        option = "--preemptible" if preemptible else "--preemptible-trials"
        raise errors.InvalidArgument(f"{option}: the run asks for no GPUs (--no-gpus or --gpus 0), so there is nothing to preempt it for")
    if executor and (start_run or restart_run or proto_run or run_dir is not None):
        raise errors.InvalidArgument("--executor can't be used with --start, --restart, --proto or --run-dir (a run keeps where it executes)")
    if run_dir is not None:
        from guildctl import rundir_run

        why = rundir_run.option_refusal(dict(
            stage=stage, background=background, start=start_run, restart=restart_run, proto=proto_run, needed=needed,
            gpus=gpus is not None, gpu_memory=gpu_memory, queue=wants.queue, batch=batch_opts != batch.Options(),
        ))
        if why:
            raise errors.InvalidArgument(why)
    if opspec == "queue" and not existing_op(opspec):
        from guildctl import cmd_queue

        return cmd_queue.guild_queue_op(ctx, flags, yes, background)
    existing = start_run or restart_run
    offset = 0
    if existing and opspec and "=" in opspec:
        flags = (opspec, *flags)
        opspec = None
    if existing:
        if opspec:
            raise errors.InvalidArgument(f"--start/--restart takes no operation (got '{opspec}')")
        run_msg, offset = _restart(ctx, existing, flags, yes, label, force_sourcecode, force_flags, stop_after_s, bool(start_run), wants,
                                   batch_opts, needed)
    elif proto_run:
        if needed:
            raise errors.InvalidArgument("--needed can't be used with --proto")
        if opspec and "=" in opspec:
            flags = (opspec, *flags)
        run_msg = _proto(ctx, proto_run, flags, yes, label, tags, stage, force_sourcecode, force_flags, stop_after_s)
    else:
        if opspec and "=" in opspec:
            flags = (opspec, *flags)
            opspec = None  # the default operation of the project's Guild file
        run_msg = _new(ctx, opspec, flags, yes, label, tags, stage, force_flags, stop_after_s, background, _Tests(**tests), wants,
                       batch_opts, needed, run_dir, executor)
    if run_msg is None:
        return
    if run_msg.status == "staged":
        click.echo(f"{run_msg.op_name} staged as {run_msg.id}")
        click.echo("It starts when queue processing takes it ('guildctl queue start'; 'guildctl queue' shows where it stands);")
        click.echo(f"to start it now, use 'guildctl run --start {run_msg.id}'")
        return
    if run_msg.status == "pending":
        _say_why_waiting(ctx.client, run_msg, executor)
    if background:
        click.echo(f"{run_msg.op_name} started in background as {run_msg.id}")
        click.echo(f"Follow it with 'guildctl watch {run_msg.id[:8]}'")
        return
    _say_gpus(ctx.client, run_msg)
    sys.exit(follow(ctx.client, run_msg, stop_on_interrupt=True, offset=offset))


@dataclasses.dataclass(frozen=True)
class _Wants:
    """What the run asks of the queue (GPUs, priority, named queue, --after), and of Ray (CPUs, memory)."""

    gpus: str | None = None
    no_gpus: bool = False
    gpu_memory: str | None = None
    cpus: str | None = None  # runs on Ray only
    memory: str | None = None  # runs on Ray only
    queue: object = None  # pb.QueueOptions or None

    @property
    def given(self):
        """Whether a GPU option was given."""
        return self.gpus is not None or self.no_gpus or self.gpu_memory is not None

    def request(self, defaults=None):
        from guildctl import queueopts

        return queueopts.resource_request(self.gpus, self.no_gpus, self.gpu_memory, defaults)


def existing_op(opspec):
    """True when `opspec` names something here (a file, or an op of the Guild file) rather
    than Guild's built-in `queue` operation."""
    cwd = os.getcwd()
    if os.path.exists(os.path.join(cwd, opspec)):
        return True
    if any(os.path.isfile(os.path.join(cwd, name)) for name in ("guild.yml", "guild.yaml")):
        try:
            runops.resolve_op(opspec, cwd)
            return True
        except errors.GuildError:
            return False
    return False


def _say_gpus(client, run_msg):
    """Says which GPUs a run that asked for some got (Guild users write `--gpus 1` for device
    1, which asks for one GPU here: this shows which). Only a run the queue places gets GPUs,
    and it is pending until it starts: wait for that (Ctrl-C stops it, as while following)."""
    if run_msg.status != "pending" or "+" in run_msg.op_name:
        return
    try:
        while run_msg.status == "pending":
            time.sleep(0.2)
            run_msg = client.get_run(run_msg.id)  # with its env, once started
    except KeyboardInterrupt:
        click.echo(f"\nStopping run {run_msg.id[:8]}", err=True)
        client.stop_runs([run_msg.id])
        return
    if run_msg.status != "staged":
        gpus = run_msg.env.get("GUILD_GPUS")
        if gpus:
            click.echo(f"Running on GPU{'s' if ',' in gpus else ''} {gpus} (CUDA_VISIBLE_DEVICES={gpus})", err=True)


def _say_why_waiting(client, run_msg, executor=""):
    for entry in client.list_queue().entries:
        if entry.run.id == run_msg.id:
            click.echo(f"Waiting to start: {entry.reason} (see 'guildctl queue')", err=True)
            return
    if executor:  # pending until the cluster runs its job
        click.echo("Submitted to Ray: the run starts when the cluster places its job "
                   "('guildctl runs info' shows ray_status)", err=True)


def _new(ctx, opspec, flag_args, yes, label, tags, stage, force_flags, stop_after, background, tests, wants, batch_opts, needed,
         run_dir=None, executor=""):
    from guildctl import batch

    cwd = os.getcwd()
    op, kind = runops.resolve_op(opspec, cwd)
    if tests != _Tests():
        from guildctl import optest
    if tests.help_op:
        click.echo(optest.help_op(op))
        return None
    if tests.test_sourcecode:
        click.echo(_test_sourcecode(op, kind))
        return None
    if tests.test_output_scalars:
        config = getattr(getattr(op, "opdef", None), "output_scalars", None)
        path = tests.test_output_scalars
        stream = sys.stdin if path == "-" else open(path)
        with stream if path != "-" else contextlib.nullcontext(stream):
            click.echo(optest.test_output_scalars(config, stream))
        return None
    if tests.test_flags:
        click.echo(optest.test_flags(op))
        kind.flag_values(op, batch.split_batch_files(flag_args)[1], force_flags, cwd)  # bad flags still fail
        return None
    opts = runops.NewRun(
        label=label, tags=tuple(tags), stage=stage, background=background, force_flags=force_flags, stop_after=stop_after,
        gpus=wants.gpus, no_gpus=wants.no_gpus, gpu_memory=wants.gpu_memory, cpus=wants.cpus, memory=wants.memory,
        queue=wants.queue, needed=needed,
        batch=batch_opts, executor=executor,
    )
    prepared = runops.prepare(op, kind, opspec, flag_args, opts, cwd)
    if tests.print_cmd:
        click.echo(shlex.join(opconfig.render_cmd(opconfig.config_from_spec(prepared.spec), prepared.values)))
        return None
    if tests.print_env:
        env = {**prepared.spec.op_env, **flaglib.flag_env(prepared.values, op.flag_defs)}
        click.echo(optest.print_env(env))
        return None
    plan = runops.plan(prepared, opts)
    if run_dir is not None:
        from guildctl import rundir_run

        why = rundir_run.spec_refusal(prepared.spec, prepared.resources, plan)
        if why:
            raise errors.InvalidArgument(why)
        output.confirm_op("run", op.name, prepared.values, yes)
        sys.exit(rundir_run.run(prepared, run_dir, wants.no_gpus, stop_after))
    if plan is None:
        output.confirm_op("stage" if stage else "run", op.name, prepared.values, yes)
        run_msg, matches = runops.start_single(ctx.client, prepared, opts)
    else:
        if batch_opts.print_trials:
            batch.print_trials(plan)
            return None
        if batch_opts.save_trials:
            batch.save_trials(plan, batch_opts.save_trials)
            return None
        if not yes:
            click.echo("\n".join(batch.confirm_lines(op.name, plan)))
            if not output.confirm():
                raise click.exceptions.Abort()
        run_msg, matches = runops.start_batch(ctx.client, prepared, plan, opts)
    return None if runneeded.skipped(matches or []) else run_msg


def _test_sourcecode(op, kind):
    from guildctl import optest

    if hasattr(op, "gf"):
        config = kind.source_config(op)
        return optest.test_sourcecode(op.gf.dir, config)  # config.root is applied there
    return optest.test_sourcecode(str(op.project_dir))


def _restart(ctx, ref, flag_args, yes, label, force_sourcecode, force_flags, stop_after, is_start, wants, batch_opts, needed):
    client = ctx.client
    old = client.get_run(ref)
    known, overrides = _flag_overrides(old, flag_args, force_flags)
    sourcecode = []
    if force_sourcecode:
        sourcecode = _project_sourcecode(old)
    verb = "start" if is_start else "restart"
    if is_start and old.status != "staged":
        pass  # nothing to confirm: guildd refuses it, or (taken by the queue meanwhile) it is followed
    elif "+" in old.op_name:
        _confirm_batch_restart(verb, old, {**known, **overrides}, batch_opts, yes)
    else:
        output.confirm_op(verb, f"{old.id[:8]} ({old.op_name})", {**known, **overrides}, yes)
    request = dict(
        run=old.id,
        flags_json=json.dumps(overrides),
        label=label,
        sourcecode=sourcecode,
        force_sourcecode=force_sourcecode,
        stop_after=stop_after,
        env=dict(os.environ),
        resources=wants.request() if wants.given else None,
        set_resources=wants.given,
        optimizer_flags_json=json.dumps(flaglib.parse_flag_assigns(list(batch_opts.opt_flags))) if batch_opts.opt_flags else "",
        max_trials=batch_opts.max_trials or 0,
        start=is_start,
        needed=needed,
    )
    resp = client.call("RestartRun", pb.RestartRunRequest(**request))
    if runneeded.skipped(resp.needed_matches, old.id):
        return None, 0
    if resp.already_started:
        click.echo(f"Run {resp.run.id[:8]} was started by queue processing: following it", err=True)
    return resp.run, resp.output_offset


def _confirm_batch_restart(verb, old, values, opts, yes):
    """Guild's words for starting a batch again: `You are about to start 1a2b3c4d (train.py)
    with 'skopt:gp' optimizer (max 10 trials)`, its flags and optimizer flags."""
    from guild_common import optdefs
    from guildctl import batch

    if yes:
        return
    base, _, suffix = old.op_name.partition("+")
    kind = optdefs.algorithm_for(suffix) if suffix else ""  # `skopt:gp`; `gp` from older guildd
    attrs = json.loads(old.attrs_json or "{}")
    max_trials = opts.max_trials or attrs.get("max_trials")
    head = f"You are about to {verb} {old.id[:8]} ({base})"
    if kind and kind != "random":
        head += f" with '{optdefs.opspec(kind)}' optimizer (max {max_trials} trials)"
    elif kind:
        head += f" with random search (max {max_trials} trials)"
    else:
        head += " as a batch"
    lines = [head] + [f"  {name}: {batch.shown(v)}" for name, v in sorted(values.items())]
    if kind and kind != "random":
        opt_flags = optdefs.optimizer_flags(kind, flaglib.parse_flag_assigns(list(opts.opt_flags)))
        lines += ["Optimizer flags:"] + [f"  {name}: {batch.shown(v)}" for name, v in sorted(opt_flags.items())]
    click.echo("\n".join(lines))
    if not output.confirm():
        raise click.exceptions.Abort()


def _flag_overrides(run_msg, flag_args, force_flags):
    """An existing run's flag values, and the new values given for them (names checked)."""
    overrides = flaglib.parse_flag_assigns(flag_args)
    known = json.loads(run_msg.flags_json or "{}")
    if not force_flags:
        for name in overrides:
            if name not in known:
                raise errors.InvalidArgument(
                    f"unsupported flag '{name}' (run {run_msg.id[:8]} has no such flag)\n"
                    "Try --force-flags to skip this check."
                )
    return known, overrides


def _project_sourcecode(run_msg):
    """The current source of the project a run came from (for --force-sourcecode)."""
    from guildctl import scriptop

    project = _opref_project(run_msg.opref)
    script = run_msg.op_name
    op = scriptop.for_opspec(os.path.join(project, script), os.getcwd())
    return scriptop.source_files(op)


def _opref_project(opref):
    from guild_common import rundir

    kind, project = rundir.opref_origin(opref)
    if kind != "script":
        raise errors.FailedPrecondition("--force-sourcecode needs a run of a script")
    return project


def _proto(ctx, ref, flag_args, yes, label, tags, stage, force_sourcecode, force_flags, stop_after):
    client = ctx.client
    proto = client.get_run(ref)
    known, overrides = _flag_overrides(proto, flag_args, force_flags)
    output.confirm_op("stage" if stage else "run", proto.op_name, {**known, **overrides}, yes)
    return client.start_proto_run(
        proto=proto.id,
        flags_json=json.dumps(overrides),
        label=label,
        tags=list(tags),
        stage=stage,
        sourcecode=_project_sourcecode(proto) if force_sourcecode else [],
        stop_after=stop_after,
        env=dict(os.environ),
    )


def follow(client, run_msg, stop_on_interrupt=False, tail=0, new_only=False, announce_end=False, offset=0):
    """Streams a run's output until it ends; returns the exit code for its end. Ctrl-C stops
    the run (when `stop_on_interrupt`) and keeps following until it has ended; a second
    Ctrl-C leaves at once."""
    received = offset
    stopping = False
    first = True
    while True:
        if first and not offset:
            stream = client.watch_run(run_msg.id, tail=tail, new_only=new_only)
        else:
            stream = client.watch_run(run_msg.id, offset=received)
        first = False
        try:
            for msg in stream:
                kind = msg.WhichOneof("event")
                if kind in ("output", "stderr"):
                    data = getattr(msg, kind)
                    output.write_output(data, stderr=kind == "stderr")
                    received += len(data)
                elif kind == "ended":
                    if announce_end:
                        click.echo(f"Run {msg.ended.id} stopped with a status of '{msg.ended.status}'", err=True)
                    return output.exit_code_for(msg.ended)
            return 1
        except KeyboardInterrupt:
            stream.cancel()
            if not stop_on_interrupt or stopping:
                return 130
            stopping = True
            click.echo(f"\nStopping run {run_msg.id[:8]} (Ctrl-C again to leave it stopping)", err=True)
            client.stop_runs([run_msg.id])


@click.command()
@click.argument("run", required=False, default="")
@click.option("-n", "--tail", type=click.IntRange(min=0, max=2**31 - 1), default=0, help="Start with the last N lines of output.")
@click.option("--new", "new_only", is_flag=True, help="Show only output written from now on.")
@click.pass_obj
def watch(ctx, run, tail, new_only):
    """Follow a run's output until it ends (default: the latest running run).

    Works from any terminal, for runs started anywhere; Ctrl-C stops watching, not the run.
    """
    client = ctx.client
    if run:
        target = client.get_run(run)
    else:
        running, _ = client.list_runs(statuses=["running"], limit=1)
        if not running:
            raise errors.NotFound("nothing to watch\nYou can view the output of a specific run using 'guildctl watch RUN'.")
        target = running[0]
    click.echo(f"Watching run {target.id}", err=True)
    follow(client, target, tail=tail, new_only=new_only, announce_end=True)


@click.command()
@click.argument("runs", nargs=-1)
@click.option("-y", "--yes", is_flag=True, help="Don't ask to confirm stopping every running run.")
@click.option("-n", "--no-wait", is_flag=True, help="Return once the stop is sent, without waiting for the runs to end.")
@run_filters
@click.pass_obj
def stop(ctx, runs, yes, no_wait, **kw):
    """Stop runs (default: every running run). They end with status 'terminated'.

    With filters, only the running runs that match (or the RUNs among them) are stopped.
    """
    client = ctx.client
    run_filter = pop_filter(kw)
    if run_filter.ByteSize():
        if not run_filter.statuses:
            run_filter.statuses.append("running")
        matched, _ = client.list_runs(runs=runs, run_filter=run_filter)
        if not matched:
            click.echo("Nothing to stop.")
            return
        runs = [r.id for r in matched]
    if not runs and not yes:
        running, _ = client.list_runs(statuses=["running"])
        if not running:
            click.echo("Nothing to stop.")
            return
        click.echo("You are about to stop the following runs:")
        for row in output.run_rows(running):
            click.echo(f"  {row}")
        if not output.confirm():
            raise click.exceptions.Abort()
    stopped = client.stop_runs(list(runs))
    if not stopped:
        click.echo("Nothing to stop.")
        return
    for r in stopped:
        click.echo(f"Stopping {r.id} (pid {r.pid})" if r.pid else f"Stopping {r.id}")
    if not no_wait:
        for r in stopped:
            for msg in client.watch_run(r.id, new_only=True):
                if msg.WhichOneof("event") == "ended":
                    break
