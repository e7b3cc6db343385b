"""guildctl operations (ops): what the project's Guild file defines."""

import os

import click

from guild_common import errors


@click.command("operations")
@click.argument("filters", nargs=-1, metavar="[FILTER...]")
@click.option("-a", "--all", "show_all", is_flag=True, help="Include private operations (names starting with '_').")
@click.option("-i", "--installed", is_flag=True, help="Include operations of installed Guild packages (guildctl installs none).")
@click.option("-v", "--verbose", is_flag=True, help="Show each operation's command, flags and details.")
@click.option("--json", "as_json", is_flag=True, help="Print the operations, with their flags, as JSON.")
@click.pass_obj
def operations(ctx, filters, show_all, installed, verbose, as_json):
    """List the operations of the Guild file in this directory, with descriptions.

    Only operations whose full name (MODEL:OP) contains every FILTER are listed. guildctl
    runs operations from Guild files only, so with --installed there is nothing more to
    list, and no Guild file here is not an error.
    """
    from guildctl import guildop, ophelp

    gf = guildop.load(os.getcwd())
    if gf is None:
        if not installed:
            raise errors.NotFound("there is no guild.yml in this directory")
        ops = []
    else:
        ops = ophelp.listed_ops(gf, filters, show_private=show_all)
    if as_json:
        from guildctl import output

        output.print_json([ophelp.op_json(op) for op in ops])
        return
    width = max((len(op.full_name) for op in ops), default=0)
    for op in ops:
        click.echo(f"{op.full_name.ljust(width)}  {ophelp.first_line(op.description)}".rstrip())
        if verbose:
            for line in ophelp.verbose_lines(op):
                click.echo(f"  {line}".rstrip())
