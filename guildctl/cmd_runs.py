"""guildctl runs: list runs and show one; rm/delete/restore/purge/diff live here too."""

import json

import click

from guildctl import output
from guildctl.filters import pop_filter, run_filters

PAGE = 20


def list_options(fn):
    """The options of `runs` and `runs list` (the same command; only `list` takes RUN
    arguments, which the group would read as subcommand names)."""
    fn = run_filters(fn)
    fn = click.option("-A", "--archive", metavar="DIR", help="List the runs in an export directory.")(fn)
    fn = click.option("-d", "--deleted", is_flag=True, help="List deleted runs (the trash).")(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="Print runs as JSON (Guild 0.9's keys).")(fn)
    fn = click.option("-n", "--limit", type=click.IntRange(min=1, max=2**31 - 1), help="Show at most N runs.")(fn)
    fn = click.option("-m", "--more", count=True, help="Show 20 more runs (repeatable).")(fn)
    return click.option("-a", "--all", "show_all", is_flag=True, help="Show every run.")(fn)


@click.group(invoke_without_command=True)
@list_options
@click.pass_context
def runs(ctx, **kw):
    """Show or manage runs (latest first; `runs list` is the same)."""
    if ctx.invoked_subcommand is None:
        _list(ctx.obj, runs=(), **kw)


@runs.command("list")
@click.argument("runs", nargs=-1, metavar="[RUN...]")
@list_options
@click.pass_obj
def list_runs(ctx, **kw):
    """Show runs, latest first."""
    _list(ctx, **kw)


def _list(ctx, runs, show_all, more, limit, as_json, deleted, archive, **kw):
    run_filter = pop_filter(kw)
    run_filter.deleted = deleted
    if archive:
        import os

        run_filter.archive = os.path.abspath(archive)
    if as_json and not limit:
        show_all = True  # Guild 0.9's `runs list --json` lists every run, for scripts
    count = 0 if (show_all or runs) else (limit or PAGE * (1 + more))
    found, total = ctx.client.list_runs(runs=runs, run_filter=run_filter, limit=count, with_command=as_json)
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
@click.option("-e", "--env", "show_env", is_flag=True, help="Show the run's environment.")
@click.option("-d", "--deps", "show_deps", is_flag=True, help="Show the run's resolved dependencies.")
@click.option("-c", "--comments", "show_comments", is_flag=True, help="Show the run's comments.")
@click.option("--private-attrs", is_flag=True, help="Also show Guild's private attributes: opref and the operation's configuration (op).")
@run_filters
@click.pass_obj
def info(ctx, run, as_json, show_env, show_deps, show_comments, private_attrs, **kw):
    """Show a run's details, flags and scalars (default: the latest run)."""
    r = ctx.client.get_run(run, run_filter=pop_filter(kw))
    value = output.run_info(r)
    if private_attrs:
        from guildctl import runattrs

        value = output.with_private_attrs(value, json.loads(r.attrs_json or "{}"), r.opref, runattrs.op_attr(ctx.client, r))
    if show_comments:
        value["comments"] = output.comments_info(r.comments)
    if show_env:
        value["environment"] = dict(sorted(r.env.items()))
    if show_deps:
        value["dependencies"] = json.loads(r.deps_json or "{}")
    if as_json:
        output.print_json(value)
        return
    click.echo(output.info_text(value))


def register(group):
    from guildctl import cmd_files, cmd_manage, cmd_run, cmd_tags

    group.add_command(cmd_manage.delete, "rm")
    group.add_command(cmd_manage.delete, "delete")
    group.add_command(cmd_manage.restore)
    group.add_command(cmd_manage.purge)
    group.add_command(cmd_files.diff)
    group.add_command(cmd_run.stop)
    group.add_command(cmd_tags.tag)
    group.add_command(cmd_tags.comment)


register(runs)
