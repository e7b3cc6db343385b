"""guildctl tag and comment (also `runs tag`, `runs comment`): runs' tags and comments, kept
as Guild AI 0.9 keeps them. Changing tags leaves the label alone unless --sync-labels asks."""

import click

from guild_common import errors
from guild_common.pb import guild_pb2 as pb
from guildctl import output
from guildctl.filters import pop_filter, run_filters
from guildctl.selecting import has_filter

RUNS = click.argument("runs", nargs=-1, metavar="[RUN...]")
YES = click.option("-y", "--yes", is_flag=True, help="Don't ask to confirm.")
# `-l` is comment's --list (as in Guild), so the label filter is -Fl/--label only.
LABEL_FILTER = click.option("-Fl", "--label", "f_labels", multiple=True, metavar="VAL", help="Label contains VAL (repeatable).")

EDITOR_TEMPLATE = """
# Type a comment for the runs below. Lines starting with '#' are
# ignored. An empty comment aborts the command.
#
# Runs:
"""


@click.command()
@RUNS
@click.option("-a", "--add", "add", multiple=True, metavar="TAG", help="Add TAG to the runs (repeatable).")
@click.option("-d", "--delete", "--remove", "remove", multiple=True, metavar="TAG",
              help="Remove TAG from the runs (repeatable); a run without it refuses the change.")
@click.option("-c", "--clear", is_flag=True, help="Remove every tag first.")
@click.option("-s", "--sync-labels", is_flag=True, help="Also put added tags in front of the label and take removed ones out of it.")
@click.option("--list-all", is_flag=True, help="List the tags of the runs instead (sorted, each once).")
@click.option("--json", "as_json", is_flag=True, help="With --list-all: print the tags as a JSON list.")
@run_filters(label_option=False)
@LABEL_FILTER
@YES
@click.pass_obj
def tag(ctx, runs, add, remove, clear, sync_labels, list_all, as_json, yes, **kw):
    """Add or remove run tags (default: the latest run).

    Tags select runs in every command that takes filters (`--tag TAG`). Changing tags
    leaves the label alone, which may hold tags given when the run started: use
    --sync-labels to change both, or `guildctl label`.

    Tags are changed for every run selected or for none: removing a tag a run doesn't have
    is refused, naming it.
    """
    run_filter = pop_filter(kw)
    if as_json and not list_all:
        raise errors.InvalidArgument("--json goes with --list-all (changing tags prints no data)")
    if list_all:
        found = _runs(ctx, runs, run_filter, "tag")
        tags = sorted({t for r in found for t in r.tags})
        if as_json:
            output.print_json(tags)
        else:
            for t in tags:
                click.echo(t)
        return
    if not (add or remove or clear):
        raise errors.InvalidArgument("specify --add, --delete or --clear (or --list-all to show tags)")
    found = _runs(ctx, runs, run_filter, "tag")
    if not found:
        click.echo("Nothing to tag.")
        return
    note = None if sync_labels else "Labels are not updated - use --sync-labels to change run labels too."
    _confirm(found, "modify tags for", yes, note=note)
    request = pb.TagRunsRequest(selection=_exact(found, run_filter), add=add, remove=remove, clear=clear,
                                sync_labels=sync_labels)
    changed = ctx.client.call("TagRuns", request).runs
    click.echo(f"Modified tags for {len(changed)} run(s)")


@click.command()
@RUNS
@click.option("-l", "--list", "list_", is_flag=True, help="List the runs' comments.")
@click.option("-a", "--add", "body", metavar="COMMENT", help="Add COMMENT to the runs (without: an editor, $VISUAL or $EDITOR).")
@click.option("-e", "--edit", is_flag=True, help="Type the comment in an editor (the default without --add).")
@click.option("-d", "--delete", "index", type=click.IntRange(min=1), metavar="INDEX",
              help="Delete the comment at INDEX (as --list numbers them) from each run.")
@click.option("-c", "--clear", is_flag=True, help="Delete every comment of the runs.")
@click.option("--json", "as_json", is_flag=True, help="With --list: print the comments as JSON.")
@run_filters(label_option=False)
@LABEL_FILTER
@YES
@click.pass_obj
def comment(ctx, runs, list_, body, edit, index, clear, as_json, yes, **kw):
    """Add, list or delete run comments (default: the latest run).

    Without an action, an editor opens ($VISUAL or $EDITOR) for a comment to add. Each
    comment records who wrote it (your account, as guildd knows it), the host and the time;
    `runs info --comments` shows them too. Comments can't be added to deleted runs: restore
    them first.
    """
    run_filter = pop_filter(kw)
    chosen = [name for name, on in (("--list", list_), ("--add", body is not None), ("--edit", edit),
                                    ("--delete", index is not None), ("--clear", clear)) if on]
    if len(chosen) > 1:
        raise errors.InvalidArgument(f"{' and '.join(chosen)} cannot be used together")
    if as_json and not list_:
        raise errors.InvalidArgument("--json goes with --list (changing comments prints no data)")
    found = _runs(ctx, runs, run_filter, "comment on")
    if list_:
        _list_comments(ctx, found, as_json)
        return
    if not found:
        click.echo("Nothing to comment on.")
        return
    if index is not None:
        _confirm(found, f"delete comment {index} from", yes)
        action = pb.COMMENT_DELETE
    elif clear:
        _confirm(found, "delete ALL comments from", yes, warn=True)
        action = pb.COMMENT_CLEAR
    else:
        if body is None:
            body = _edited(found)
        elif not body.strip():
            raise errors.InvalidArgument("a comment cannot be empty")
        else:
            _confirm(found, "add a comment to", yes)
        action = pb.COMMENT_ADD
    request = pb.CommentRunsRequest(selection=_exact(found, run_filter), action=action, body=body or "", index=index or 0)
    changed = ctx.client.call("CommentRuns", request).runs
    done = {pb.COMMENT_ADD: "Added comment to", pb.COMMENT_DELETE: "Deleted comment for", pb.COMMENT_CLEAR: "Deleted all comments for"}
    click.echo(f"{done[action]} {len(changed)} run(s)")


def _runs(ctx, runs, run_filter, verb):
    """The runs RUN and the filters name (the latest run when neither does). A run named
    that is in the trash is refused, saying so, rather than not found."""
    specs = list(runs) or ([] if has_filter(run_filter) else ["1"])
    try:
        found, _ = ctx.client.list_runs(runs=specs, run_filter=run_filter)
    except errors.NotFound as e:
        deleted = pb.RunFilter()
        deleted.CopyFrom(run_filter)
        deleted.deleted = True
        try:
            trashed, _ = ctx.client.list_runs(runs=specs, run_filter=deleted)
        except errors.GuildError:
            raise e from None
        rid = trashed[0].id[:8]
        raise errors.FailedPrecondition(f"cannot {verb} run {rid}: it is deleted (restore it first: guildctl runs restore {rid})") from None
    return found


def _exact(found, run_filter):
    """A selection of exactly the runs shown (their ids), whatever is started meanwhile."""
    return pb.RunSelection(runs=[r.id for r in found], filter=pb.RunFilter(deleted=run_filter.deleted))


def _confirm(found, verb, yes, note=None, warn=False):
    """Guild's preview and `Continue?`; a destructive one (warn) defaults to no."""
    if yes:
        return
    click.echo(f"{'WARNING: ' if warn else ''}You are about to {verb} the following runs:")
    if note:
        click.echo(note)
    for row in output.run_rows(found):
        click.echo(f"  {row}")
    agreed = click.confirm("Continue? (y/N)", default=False, show_default=False) if warn else output.confirm()
    if not agreed:
        raise click.exceptions.Abort()


def _edited(found):
    """A comment typed in the user's editor; lines starting with '#' dropped. An empty one
    aborts."""
    rows = "".join(f"#  {row}\n" for row in output.run_rows(found))
    text = click.edit(EDITOR_TEMPLATE + rows, extension=".GUILD_COMMENT", require_save=False)
    body = "\n".join(line for line in (text or "").splitlines() if not line.startswith("#")).strip()
    if not body:
        click.echo("Aborting due to an empty comment.", err=True)
        raise click.exceptions.Exit(1)
    return body


def _list_comments(ctx, found, as_json):
    """Each run and its comments, numbered as --delete takes them."""
    runs = [ctx.client.get_run(r.id) for r in found]
    if as_json:
        output.print_json([{"id": r.id, "comments": [output.comment_json(c) for c in r.comments]} for r in runs])
        return
    for row, r in zip(output.run_rows(runs), runs):
        click.echo(row)
        click.echo("\n".join(output.comment_lines(r.comments)) or "  <no comments>")
