"""guildctl runs: list runs and show one."""

import json

import click

from guildctl import output

PAGE = 20


def list_options(fn):
    """The options of `runs` and `runs list` (the same command under two names)."""
    fn = click.option("--json", "as_json", is_flag=True, help="Print runs as JSON (Guild 0.9's keys).")(fn)
    fn = click.option("-n", "--limit", type=click.IntRange(min=1), help="Show at most N runs.")(fn)
    fn = click.option("-m", "--more", count=True, help="Show 20 more runs (repeatable).")(fn)
    return click.option("-a", "--all", "show_all", is_flag=True, help="Show every run.")(fn)


@click.group(invoke_without_command=True)
@list_options
@click.pass_context
def runs(ctx, show_all, more, limit, as_json):
    """Show or manage runs (latest first; `runs list` is the same)."""
    if ctx.invoked_subcommand is None:
        _list(ctx.obj, show_all, more, limit, as_json)


@runs.command("list")
@list_options
@click.pass_obj
def list_runs(ctx, show_all, more, limit, as_json):
    """Show runs, latest first."""
    _list(ctx, show_all, more, limit, as_json)


def _list(ctx, show_all, more, limit, as_json):
    if as_json:
        # Guild 0.9's `runs list --json` lists every run, for scripts.
        show_all = not limit
    count = 0 if show_all else (limit or PAGE * (1 + more))
    found, total = ctx.client.list_runs(limit=count)
    if as_json:
        output.print_json([output.run_json(r) for r in found])
        return
    for row in output.run_rows(found):
        click.echo(row)
    if len(found) < total:
        click.echo(f"Showing {len(found)} of {total} runs (use -m for more or -a for all)", err=True)


@runs.command("info")
@click.argument("run", required=False, default="")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (Guild 0.9's keys).")
@click.pass_obj
def info(ctx, run, as_json):
    """Show a run's details, flags and scalars (default: the latest run)."""
    r = ctx.client.get_run(run)
    flags = json.loads(r.flags_json or "{}")
    if as_json:
        value = output.run_json(r)
        value["operation"] = r.op_name
        output.print_json(value)
        return
    from guild_common import flags as flaglib

    lines = [
        f"id: {r.id}",
        f"operation: {r.op_name}",
        f"status: {r.status}",
        f"started: {output.fmt_time(r.started_us)}",
        f"stopped: {output.fmt_time(r.stopped_us)}",
        f"label: {r.label}",
        f"run_dir: {output.shorten_path(r.run_dir)}",
        f"exit_status: {r.exit_status if r.has_exit_status else ''}",
        f"pid: {r.pid or ''}",
        f"user: {r.user}",
        "flags:",
        *(f"  {k}: {flaglib.encode_flag_value(v)}" for k, v in sorted(flags.items())),
        "scalars:",
        *(f"  {s.tag}: {s.last:f} (step {s.last_step})" for s in r.scalars),
    ]
    click.echo("\n".join(lines))
