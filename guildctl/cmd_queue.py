"""guildctl queue: what waits to start and why; pause, resume, priorities, cancelling,
limits. Also Guild's built-in `queue` operation (`guildctl run queue ...`), mapped onto the
daemon's queue."""

import time

import click

from guild_common import errors, flags as flaglib, sizes
from guildctl import output, queueopts


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (the ListQueue message's fields).")
@click.pass_context
def queue(click_ctx, as_json):
    """Show the queue: runs waiting to start, in the order they will be considered, and why
    each waits; runs holding GPUs; the queue's settings.

    \b
      guildctl queue                      what waits, and why
      guildctl queue pause | resume       hold staged runs / let them start again
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
    state = "paused" if msg.paused else "running"
    lines = [f"Queue {state}: {len(msg.entries)} waiting, GPUs held {len(held)} of {msg.gpu_count}"]
    settings = []
    if msg.queue_limits:
        settings.append("limits " + ", ".join(f"{name}={n}" for name, n in sorted(msg.queue_limits.items())))
    if msg.user_gpu_cap:
        settings.append(f"user cap {msg.user_gpu_cap} GPUs")
    settings.append(f"CPU slots {msg.cpu_slots or 'unlimited'}")
    lines.append("  " + "; ".join(settings))
    if msg.entries:
        rows = [("#", "RUN", "OPERATION", "USER", "PRI", "NEEDS", "QUEUED", "WAITING BECAUSE")]
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
    return lines


@queue.command()
@click.pass_obj
def pause(ctx):
    """Hold the queue: staged runs wait (runs started explicitly still start)."""
    ctx.client.configure_queue(paused=True)
    click.echo("Queue paused: staged runs wait until 'guildctl queue resume'")


@queue.command()
@click.pass_obj
def resume(ctx):
    """Let staged runs start again."""
    msg = ctx.client.configure_queue(paused=False)
    click.echo(f"Queue resumed: {msg.waiting} run(s) waiting")


@queue.command()
@click.argument("runs", nargs=-1, required=True)
@click.argument("priority_value", metavar="PRIORITY")
@click.pass_obj
def priority(ctx, runs, priority_value):
    """Set queued runs' priority (higher starts first; default 0)."""
    try:
        value = int(priority_value)
    except ValueError:
        raise errors.InvalidArgument(f"invalid priority '{priority_value}': expected an integer") from None
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
@click.argument("limit", type=click.IntRange(min=0))
@click.pass_obj
def limit(ctx, name, limit):
    """At most LIMIT runs of the named queue NAME run at once (0: no limit)."""
    ctx.client.configure_queue(queue_limits={name: limit})
    click.echo(f"Queue '{name}': " + (f"at most {limit} run(s) at once" if limit else "no limit"))


@queue.command("user-cap")
@click.argument("gpus", type=click.IntRange(min=0))
@click.pass_obj
def user_cap(ctx, gpus):
    """At most GPUS GPUs held by one user's runs at once (0: no cap)."""
    ctx.client.configure_queue(user_gpu_cap=gpus)
    click.echo(f"User cap: {gpus} GPUs" if gpus else "User cap: none")


@queue.command("cpu-slots")
@click.argument("slots", type=click.IntRange(min=0))
@click.pass_obj
def cpu_slots(ctx, slots):
    """At most SLOTS CPU-only staged runs at once (0: no limit; default: one per CPU)."""
    ctx.client.configure_queue(cpu_slots=slots)
    click.echo(f"CPU slots: {slots or 'unlimited'}")


# Guild's queue operation

QUEUE_FLAGS = {"gpus": None, "poll-interval": 10, "run-once": False, "wait-for-running": False}


def guild_queue_op(ctx, flag_args, yes, background):
    """`guildctl run queue [gpus=0,1] [run-once=yes] ...`: Guild's queue operation. guildd's
    queue already starts staged runs as resources free, so this resumes it; `gpus` starts
    staged runs that asked for no GPUs on those GPUs, as Guild's queue does; with
    `run-once=yes` it waits until the staged runs have ended, like Guild's queue draining
    once."""
    values = dict(QUEUE_FLAGS)
    for name, value in flaglib.parse_flag_assigns(flag_args).items():
        if name not in QUEUE_FLAGS:
            raise errors.InvalidArgument(f"unsupported flag '{name}' for queue (flags: {', '.join(QUEUE_FLAGS)})")
        values[name] = value
    client = ctx.client
    output.confirm_op("start", "the queue", values, yes)
    gpus = values["gpus"]
    staged, _ = client.list_runs(statuses=["staged"])
    queued = {e.run.id for e in client.list_queue().entries}
    for run in staged:
        if run.id not in queued:
            # A run staged by Guild itself (not in our queue): start it the way Guild's queue would.
            client.restart_run(
                run=run.id,
                resources=queueopts.resource_request(f"{gpus}," if isinstance(gpus, int) else gpus) if gpus is not None else None,
                set_resources=gpus is not None,
            )
    waiting = [e.run.id for e in client.list_queue().entries]  # before any of them starts
    client.configure_queue(paused=False)
    click.echo(f"guildd's queue is running: {len(waiting)} run(s) waiting")
    if not values["run-once"] or background:
        return
    while waiting:
        time.sleep(0.2)
        live = {run.id for run in client.list_runs(statuses=["staged", "pending", "running"])[0]}
        waiting = [run_id for run_id in waiting if run_id in live]
    click.echo("Staged runs have ended")
