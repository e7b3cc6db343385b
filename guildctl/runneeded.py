"""`run --needed` as guildctl says it: the daemon answers a start, batch or restart it made
needless with the runs that made it so (guildd.needed), and nothing is run; this says why,
in Guild's words, and the command exits 0."""

import click

from guildctl import output


def skipped(matches, restarted_id=""):
    """Says why nothing was run when the daemon answered `matches`; True when it did (none:
    the run was made). A restart whose own run is among them hasn't changed its flags."""
    if not matches:
        return False
    if restarted_id and any(m.id == restarted_id for m in matches):
        click.echo("Skipping run because flags have not changed (--needed specified)")
        return True
    click.echo("Skipping because the following runs match this operation (--needed specified):")
    for line in match_lines(matches):
        click.echo(f"  {line}")
    return True


def match_lines(runs):
    """Guild's lines for the matches: `[56a82f8b]  echo.py  2026-12-04 20:34:40  completed  x=1.0`
    (the short id, not an index: the list isn't the runs list)."""
    rows = [(f"[{r.id[:8]}]", output.op_display(r), output.fmt_time(r.started_us), r.status, r.label) for r in runs]
    return output.table(rows)
