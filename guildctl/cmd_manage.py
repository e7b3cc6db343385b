"""guildctl label, mark, runs rm|delete|restore|purge, export and import."""

import click

from guild_common import errors
from guild_common.pb import guild_pb2 as pb
from guildctl.filters import pop_filter, run_filters
from guildctl.selecting import preview_and_confirm, selection

RUNS = click.argument("runs", nargs=-1, metavar="[RUN...]")
YES = click.option("-y", "--yes", is_flag=True, help="Don't ask to confirm.")


@click.command()
@RUNS
@click.option("-s", "--set", "set_", metavar="VAL", help="Set the label to VAL.")
@click.option("-p", "--prepend", "--tag", "prepend", metavar="VAL", help="Put VAL in front of the label.")
@click.option("-a", "--append", metavar="VAL", help="Put VAL at the end of the label.")
@click.option("-rm", "--remove", "-u", "--untag", "remove", metavar="VAL", help="Remove VAL (whole words) from the label.")
@click.option("-c", "--clear", is_flag=True, help="Clear the label.")
@run_filters(tag_option=False)
@YES
@click.pass_obj
def label(ctx, runs, set_, prepend, append, remove, clear, yes, **kw):
    """Set, extend or clear run labels (default: the latest run)."""
    run_filter = pop_filter(kw)
    actions = [(pb.LABEL_SET, set_), (pb.LABEL_PREPEND, prepend), (pb.LABEL_APPEND, append), (pb.LABEL_REMOVE, remove)]
    chosen = [(a, v) for a, v in actions if v is not None] + ([(pb.LABEL_CLEAR, "")] if clear else [])
    if len(chosen) != 1:
        raise errors.InvalidArgument("specify one of --set, --prepend/--tag, --append, --remove/--untag or --clear")
    action, value = chosen[0]
    sel = preview_and_confirm(ctx.client, runs, run_filter, "label" if not clear else "clear the label of", yes, default_latest=True)
    if sel is None:
        return
    changed = ctx.client.label_runs(sel, action, value)
    click.echo(f"Cleared label for {len(changed)} run(s)" if clear else f"Labeled {len(changed)} run(s)")


@click.command()
@RUNS
@click.option("-c", "--clear", is_flag=True, help="Unmark instead.")
@run_filters
@YES
@click.pass_obj
def mark(ctx, runs, clear, yes, **kw):
    """Mark runs (default: the latest unmarked run; with --clear: every marked run)."""
    _mark(ctx, runs, clear, yes, pop_filter(kw))


@click.command()
@RUNS
@run_filters
@YES
@click.pass_obj
def unmark(ctx, runs, yes, **kw):
    """Unmark runs (default: every marked run)."""
    _mark(ctx, runs, True, yes, pop_filter(kw))


def _mark(ctx, runs, clear, yes, run_filter):
    if not runs:
        # Guild: marking takes the latest unmarked run, clearing every marked run.
        if clear:
            run_filter.marked = True
        else:
            run_filter.unmarked = True
            runs = ("1",)
    sel = preview_and_confirm(ctx.client, runs, run_filter, "unmark" if clear else "mark", yes)
    if sel is None:
        return
    changed = ctx.client.mark_runs(sel, clear)
    click.echo(f"{'Unmarked' if clear else 'Marked'} {len(changed)} run(s)")


@click.command("rm")
@RUNS
@click.option("-p", "--permanent", is_flag=True, help="Delete for good instead of moving to the trash.")
@run_filters
@YES
@click.pass_obj
def delete(ctx, runs, permanent, yes, **kw):
    """Delete runs: move them to the trash (default: every run the filters keep).

    Running runs are refused: stop them first. `runs restore` brings runs back from the
    trash; `runs purge` empties it.
    """
    run_filter = pop_filter(kw)
    verb = "permanently delete" if permanent else "delete"
    sel = preview_and_confirm(ctx.client, runs, run_filter, verb, yes)
    if sel is None:
        return
    deleted = ctx.client.delete_runs(sel, permanent)
    click.echo(f"{'Permanently deleted' if permanent else 'Deleted'} {len(deleted)} run(s)")


@click.command()
@RUNS
@run_filters
@YES
@click.pass_obj
def restore(ctx, runs, yes, **kw):
    """Restore deleted runs from the trash (default: every deleted run the filters keep)."""
    sel = _deleted_selection(ctx, runs, kw, "restore", yes)
    if sel is None:
        return
    click.echo(f"Restored {len(ctx.client.restore_runs(sel))} run(s)")


@click.command()
@RUNS
@run_filters
@YES
@click.pass_obj
def purge(ctx, runs, yes, **kw):
    """Delete runs in the trash for good (default: every deleted run the filters keep)."""
    sel = _deleted_selection(ctx, runs, kw, "permanently delete", yes)
    if sel is None:
        return
    click.echo(f"Permanently deleted {len(ctx.client.purge_runs(sel))} run(s)")


def _deleted_selection(ctx, runs, kw, verb, yes):
    """The deleted runs RUN and the filters name, after the preview and confirmation."""
    run_filter = pop_filter(kw)
    run_filter.deleted = True
    return preview_and_confirm(ctx.client, runs, run_filter, verb, yes)


@click.command("export")
@click.argument("directory")
@RUNS
@click.option("-m", "--move", is_flag=True, help="Move the runs instead of copying them.")
@run_filters
@YES
@click.pass_obj
def export(ctx, directory, runs, move, yes, **kw):
    """Copy (or move) runs to DIRECTORY, keeping their ids (default: every run the filters
    keep). `guildctl runs --archive DIRECTORY` lists them; `guildctl import` brings them back."""
    import os

    dest = os.path.abspath(directory)
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise errors.InvalidArgument(f"'{dest}' is not a directory")
    run_filter = pop_filter(kw)
    verb = f"{'move' if move else 'copy'} to '{dest}'"
    sel = preview_and_confirm(ctx.client, runs, run_filter, verb, yes, empty="Nothing to export.")
    if sel is None:
        return
    results = ctx.client.export_runs(sel, dest, move)
    _report(results, "Exported")


@click.command("import")
@click.argument("archive")
@RUNS
@click.option("-m", "--move", is_flag=True, help="Move the runs instead of copying them.")
@run_filters
@YES
@click.pass_obj
def import_(ctx, archive, runs, move, yes, **kw):
    """Copy (or move) runs from an export directory ARCHIVE into GUILD_HOME, keeping their
    ids; runs that exist already are skipped."""
    import os

    path = os.path.abspath(archive)
    run_filter = pop_filter(kw)
    run_filter.archive = path
    found, _ = ctx.client.list_runs(runs=runs, run_filter=run_filter)
    if not found:
        raise errors.NotFound(f"there are no runs to import in '{path}'")
    if not yes:
        from guildctl import output

        click.echo(f"You are about to import ({'move' if move else 'copy'}) the following runs from '{path}':")
        for row in output.run_rows(found):
            click.echo(f"  {row}")
        if not output.confirm():
            raise click.exceptions.Abort()
    results = ctx.client.import_runs(path, selection([r.id for r in found], pb.RunFilter()), move)
    _report(results, "Imported")


def _report(results, done):
    """Prints what happened to each run, and what was left out of a run copied (files the
    caller may not read, in a shared daemon); exits 1 when any run was skipped."""
    for r in results:
        if r.result == "skipped":
            click.echo(f"WARNING: {r.reason}", err=True)
        else:
            click.echo(f"{'Moving' if r.result == 'moved' else 'Copying'} {r.run_id}")
            if r.reason:
                click.echo(f"  {r.reason}", err=True)
    click.echo(f"{done} {sum(r.result != 'skipped' for r in results)} run(s)")
    if any(r.result == "skipped" for r in results):
        raise click.exceptions.Exit(1)
