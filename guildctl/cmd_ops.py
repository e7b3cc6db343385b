"""guildctl operations (ops): what the project's Guild file defines."""

import os

import click

from guild_common import errors


@click.command("operations")
@click.argument("filter_text", required=False, default="", metavar="[FILTER]")
@click.pass_obj
def operations(ctx, filter_text):
    """List the operations of the Guild file in this directory, with descriptions."""
    from guildctl import guildop

    gf = guildop.load(os.getcwd())
    if gf is None:
        raise errors.NotFound("there is no guild.yml in this directory")
    from guild_common import guildfile

    ops = [(name, desc) for name, desc in guildfile.operations(gf) if filter_text in name]
    width = max((len(name) for name, _ in ops), default=0)
    for name, desc in ops:
        first_line = (desc or "").strip().splitlines()[0] if desc else ""
        click.echo(f"{name.ljust(width)}  {first_line}".rstrip())
