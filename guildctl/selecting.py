"""Choosing runs for a command: run specs plus filters into a RunSelection, a preview of the
runs a change will touch, and the confirmation Guild asks for before changing them."""

import click

from guild_common.pb import guild_pb2 as pb
from guildctl import output


def selection(runs, run_filter):
    return pb.RunSelection(runs=list(runs), filter=run_filter)


FILTER_FIELDS = ("statuses", "not_statuses", "labels", "unlabeled", "marked", "unmarked", "started_after_us",
                 "started_before_us", "digests", "ops", "tags", "comments", "expr")


def has_filter(run_filter):
    """True when the user narrowed the runs with a filter option."""
    return any(getattr(run_filter, name) for name in FILTER_FIELDS)


def preview_and_confirm(client, runs, run_filter, verb, yes, default_latest=False, empty="Nothing to {verb}."):
    """The runs a change applies to, after showing them and asking (unless `yes`); an
    exact selection of their ids, so the change touches exactly what was shown."""
    specs = list(runs)
    if not specs and default_latest and not has_filter(run_filter):
        specs = ["1"]
    found, _ = client.list_runs(runs=specs, run_filter=run_filter)
    if not found:
        click.echo(empty.format(verb=verb))
        return None
    if not yes:
        click.echo(f"You are about to {verb} the following runs:")
        for row in output.run_rows(found):
            click.echo(f"  {row}")
        if not output.confirm():
            raise click.exceptions.Abort()
    exact = pb.RunFilter(deleted=run_filter.deleted, archive=run_filter.archive)
    return pb.RunSelection(runs=[r.id for r in found], filter=exact)
