"""guildctl queue: what waits to start and why; queue processing on and off (start, stop),
priorities, cancelling, limits. Also Guild's built-in `queue` operation (`guildctl run queue
...`), mapped onto the daemon's queue processing."""

import time

import click

from guild_common import errors, flags as flaglib, sizes
from guild_common.pb import guild_pb2 as pb
from guildctl import output, queueopts


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (the ListQueue message's fields).")
@click.pass_context
def queue(click_ctx, as_json):
    """Show the queue: runs waiting to start, in the order they will be considered, why each
    waits, and when each is expected to start (from how long earlier completed runs of the same
    operations took, and --stop-after; 'unknown' without them); runs holding GPUs; each user's
    fair share (recent GPU use, which orders waiting runs of equal priority: least first); the
    queue's settings.

    \b
      guildctl queue                      what waits, and why
      guildctl queue start [run-once=yes] start staged runs as resources free
      guildctl queue stop                 staged runs wait again
      guildctl queue priority RUN 10      start RUN ahead of lower priorities
      guildctl queue cancel RUN           take RUN out of the queue (terminated)
      guildctl queue limit NAME 2         at most 2 runs of queue NAME at once
      guildctl queue user-cap 4           at most 4 GPUs per user
    """
    if click_ctx.invoked_subcommand is not None:
        return
    show(click_ctx.obj.client.list_queue(), as_json)


def show(msg, as_json=False):
    if as_json:
        output.print_json(output.message_json(msg))
        return
    for line in summary_lines(msg):
        click.echo(line)


def summary_lines(msg):
    held = sorted({d for h in msg.holdings for d in h.devices})
    lines = [f"Queue processing {_processing_state(msg)}: {len(msg.entries)} waiting, GPUs held {len(held)} of {msg.gpu_count}"]
    if msg.paused and any(not e.front for e in msg.entries):
        lines.append("  Staged runs wait for queue processing: start it with 'guildctl queue start'"
                     " (or start one now with 'guildctl run --start RUN')")
    settings = []
    if msg.queue_limits:
        settings.append("limits " + ", ".join(f"{name}={n}" for name, n in sorted(msg.queue_limits.items())))
    if msg.user_gpu_cap:
        settings.append(f"user cap {msg.user_gpu_cap} GPUs")
    settings.append(f"CPU slots {msg.cpu_slots or 'unlimited'}")
    lines.append("  " + "; ".join(settings))
    if msg.entries:
        rows = [("#", "RUN", "OPERATION", "USER", "PRI", "NEEDS", "QUEUED", "EXPECTED", "WAITING BECAUSE")]
        now_us = time.time_ns() // 1000
        for e in msg.entries:
            needs = queueopts.describe_request(e.resources)
            if e.options.queue:
                needs += f" [{e.options.queue}]"
            rows.append(
                (
                    str(e.position),
                    e.run.id[:8],
                    e.run.op_name,
                    e.run.user,
                    str(e.options.priority),
                    needs,
                    output.fmt_time(e.queued_us),
                    fmt_eta(e, now_us),
                    ("started explicitly; " if e.front else "") + e.reason,
                )
            )
        lines += output.table(rows)
    if msg.holdings:
        lines.append("Holding GPUs:")
        for h in msg.holdings:
            if not h.devices:
                continue
            share = f", {sizes.format_size(h.gpu_memory)} each" if h.gpu_memory else ""
            lines.append(f"  run {h.run_id[:8]} ({h.user}): GPU {','.join(str(d) for d in h.devices)}{share}")
    return lines + user_lines(msg)


def fmt_eta(entry, now_us):
    """When a waiting run is expected to start, from now: 'starts in ~12 min', 'starts now', or
    'unknown' (the daemon has no duration for a run it waits for: no completed run of its
    operation, no --stop-after; or it can't start until something changes, e.g. queue processing)."""
    if not entry.HasField("eta_us"):
        return "unknown"
    left = (entry.eta_us - now_us) / 1e6
    if left < 1:
        return "starts now"
    if left < 60:
        return f"starts in ~{round(left)} s"
    if left < 3600:
        return f"starts in ~{round(left / 60)} min"
    if left < 48 * 3600:
        return f"starts in ~{left / 3600:.1f} h"
    return f"starts in ~{round(left / 86400)} days"


def user_lines(msg):
    """Each user's fair share: GPUs held now, recent use in GPU-hours (decayed by the half-life)
    and its part of everyone's, waiting runs, cap. Least recent use first: the order in which
    waiting runs of equal priority go."""
    if not msg.users:
        return []
    half_life = f"{msg.fair_share_half_life / 3600:g}h"
    lines = [f"Fair share (half-life {half_life}; least recent use goes first at equal priority):"]
    rows = [("USER", "GPUS", "RECENT USE", "SHARE", "WAITING", "CAP")]
    for u in msg.users:
        rows.append((u.user, str(u.gpus_held), f"{u.usage_gpu_seconds / 3600:.1f} GPU-h", f"{u.share:.0%}",
                     str(u.waiting), str(u.cap) if u.cap else "-"))
    return lines + ["  " + line for line in output.table(rows)]


def _processing_state(msg):
    if msg.paused:
        return "off"
    flags = [name for name, on in (("run-once", msg.processing.run_once),
                                   ("wait-for-running", msg.processing.wait_for_running)) if on]
    if msg.processing.gpus:
        flags.append("gpus=" + ",".join(str(i) for i in msg.processing.gpus))
    if msg.always_on:
        flags.append("always on")
    return "on" + (f" ({', '.join(flags)})" if flags else "")


@queue.command()
@click.argument("flags", nargs=-1, metavar="[gpus=I,J] [run-once=yes] [wait-for-running=yes]")
@click.option("--background", is_flag=True, help="With run-once=yes: return at once instead of waiting.")
@click.pass_obj
def start(ctx, flags, background):
    """Start queue processing: staged runs start as their resources free, until 'guildctl queue
    stop'. It goes on in guildd when this terminal closes, and across a daemon restart.

    Guild's queue flags: gpus=0,1 runs staged runs that asked for no GPUs on those GPUs;
    run-once=yes takes the staged runs one at a time, waits until they have ended, then
    switches processing off; wait-for-running=yes starts staged runs only while no other
    run is running."""
    process(ctx.client, flaglib.parse_flag_assigns(list(flags)), background)


@queue.command()
@click.pass_obj
def stop(ctx):
    """Stop queue processing: staged runs wait (runs already started go on; runs started
    explicitly, or without --stage, still start)."""
    msg = ctx.client.configure_queue(paused=True)
    click.echo(f"Queue processing off: {msg.waiting} run(s) waiting")


@queue.command(hidden=True)
@click.pass_obj
def pause(ctx):
    """Same as 'queue stop'."""
    click.get_current_context().invoke(stop)


@queue.command(hidden=True)
@click.pass_obj
def resume(ctx):
    """Same as 'queue start'."""
    process(ctx.client, {}, False)


@queue.command()
@click.argument("runs", nargs=-1, required=True)
@click.argument("priority_value", metavar="PRIORITY")
@click.pass_obj
def priority(ctx, runs, priority_value):
    """Set queued runs' priority (higher starts first; default 0)."""
    try:
        value = int(priority_value)
        if not -(2**31) <= value < 2**31:
            raise ValueError(priority_value)
    except ValueError:
        raise errors.InvalidArgument(f"invalid priority '{priority_value[:30]}': expected an integer from {-(2**31)} to {2**31 - 1}") from None
    changed = ctx.client.set_queue_priority(runs, value)
    for run in changed:
        click.echo(f"Run {run.id[:8]} priority {value}")


@queue.command()
@click.argument("runs", nargs=-1, required=True)
@click.pass_obj
def cancel(ctx, runs):
    """Take queued runs out of the queue; they end as terminated without running."""
    for run in ctx.client.cancel_queued(runs):
        click.echo(f"Cancelled run {run.id[:8]} ({run.op_name})")


@queue.command()
@click.argument("name")
@click.argument("limit", type=click.IntRange(min=0, max=2**31 - 1))
@click.pass_obj
def limit(ctx, name, limit):
    """At most LIMIT runs of the named queue NAME run at once (0: no limit)."""
    ctx.client.configure_queue(queue_limits={name: limit})
    click.echo(f"Queue '{name}': " + (f"at most {limit} run(s) at once" if limit else "no limit"))


@queue.command("user-cap")
@click.argument("gpus", type=click.IntRange(min=0, max=2**31 - 1))
@click.pass_obj
def user_cap(ctx, gpus):
    """At most GPUS GPUs held by one user's runs at once (0: no cap)."""
    ctx.client.configure_queue(user_gpu_cap=gpus)
    click.echo(f"User cap: {gpus} GPUs" if gpus else "User cap: none")


@queue.command("cpu-slots")
@click.argument("slots", type=click.IntRange(min=0, max=2**31 - 1))
@click.pass_obj
def cpu_slots(ctx, slots):
    """At most SLOTS CPU-only staged runs at once (0: no limit; default: one per CPU)."""
    ctx.client.configure_queue(cpu_slots=slots)
    click.echo(f"CPU slots: {slots or 'unlimited'}")


# Guild's queue operation and its flags

QUEUE_FLAGS = {"gpus": None, "poll-interval": 10, "run-once": False, "wait-for-running": False}


def guild_queue_op(ctx, flag_args, yes, background):
    """`guildctl run queue [gpus=0,1] [run-once=yes] ...`: Guild's queue operation, as
    `guildctl queue start` with the same flags (poll-interval is accepted and unused: guildd
    starts staged runs as soon as their resources free)."""
    values = queue_flags(flaglib.parse_flag_assigns(flag_args))
    output.confirm_op("start", "the queue", {**QUEUE_FLAGS, **values}, yes)
    process(ctx.client, values, background)


def queue_flags(assigns):
    """Guild's queue flags from `NAME=VALUE`s, checked: {name: value} of those given."""
    for name in assigns:
        if name not in QUEUE_FLAGS:
            raise errors.InvalidArgument(f"unsupported flag '{name}' for queue (flags: {', '.join(QUEUE_FLAGS)})")
    for name in ("run-once", "wait-for-running"):
        if name in assigns and not isinstance(assigns[name], bool):
            raise errors.InvalidArgument(f"invalid queue {name}={assigns[name]}: expected yes or no")
    return dict(assigns)


def processing_for(values):
    """The pb.QueueProcessing for checked queue flags."""
    gpus = values.get("gpus")
    devices = ()
    if gpus not in (None, ""):
        text = str(gpus)
        try:
            _count, devices = queueopts.parse_gpus(text if "," in text else text + ",")
        except errors.InvalidArgument:
            raise errors.InvalidArgument(f"invalid queue gpus={text}: expected GPU indices (gpus=0 or gpus=0,1)") from None
    return pb.QueueProcessing(
        run_once=bool(values.get("run-once")), gpus=list(devices), wait_for_running=bool(values.get("wait-for-running")))


def process(client, assigns, background):
    """Switches queue processing on with Guild's queue flags; with run-once (and not
    `background`), waits until it is done: the staged runs it took have ended."""
    processing = processing_for(queue_flags(assigns))
    one_by_one = processing.run_once and not background
    try:
        _start_foreign_staged(client, processing.gpus, one_by_one)
    except KeyboardInterrupt:
        click.echo("\nThe run started goes on in guildd; 'guildctl stop' stops it", err=True)
        raise SystemExit(130) from None
    msg = client.configure_queue(paused=False, processing=processing)
    click.echo(f"Queue processing {_processing_state(msg)}: {msg.waiting} run(s) waiting")
    if not one_by_one:
        return
    try:
        while not msg.paused:
            time.sleep(0.2)
            msg = client.list_queue()
    except KeyboardInterrupt:
        click.echo("\nQueue processing goes on in guildd; 'guildctl queue stop' stops it", err=True)
        raise SystemExit(130) from None
    click.echo("Staged runs have ended")


def _start_foreign_staged(client, gpus, one_by_one=False):
    """Runs staged by Guild itself (not in guildd's queue, and pipelines and batches staged
    here, which wait outside it): started the way Guild's queue would, on the queue's GPUs;
    `one_by_one` (run-once), oldest first, each after the one before has ended, as Guild's
    queue runs them."""
    staged, _ = client.list_runs(statuses=["staged"])
    queued = {e.run.id for e in client.list_queue().entries}
    for run in sorted(staged, key=lambda r: r.started_us) if one_by_one else staged:
        if run.id not in queued:
            client.restart_run(
                run=run.id,
                resources=pb.ResourceRequest(gpus=len(gpus), devices=list(gpus)) if gpus else None,
                set_resources=bool(gpus),
            )
            while one_by_one and client.get_run(run.id).status in ("staged", "pending", "running"):
                time.sleep(0.2)
