"""guildctl help: a Guild file's models, operations and flags, as Guild's `help` shows them."""

import os
import sys

import click

from guild_common import errors

OVERVIEW = """\
You are viewing help for operations defined in {where}.

To run an operation use 'guildctl run OPERATION' where OPERATION is one of
options listed below. If an operation is associated with a model, include
the model name as MODEL:OPERATION.

To list available operations, run 'guildctl operations'.

Set operation flags using 'FLAG=VALUE' arguments to the run command. Refer
to the operations below for a list of supported flags.

For more information on running operations, try 'guildctl run --help'.

For general information, try 'guildctl --help'."""


def guildfile_for(path, cwd):
    """The Guild file PATH names (a project directory or the file itself; default: `cwd`),
    or NotFound saying what is missing."""
    from guild_common import guildfile

    target = os.path.join(cwd, path) if path else cwd
    if os.path.isfile(target):
        return guildfile.load(os.path.abspath(target))
    if not os.path.isdir(target):
        raise errors.NotFound(f"{path} does not exist")
    gf = guildfile.for_dir(target)
    if gf is None:
        where = "the current directory" if not path else f"'{path}'"
        raise errors.NotFound(
            f"{where} does not contain a Guild file (guild.yml)\n"
            "Try specifying a project path or 'guildctl help --help' for help."
        )
    return gf


@click.command("help")
@click.argument("path", required=False, default="", metavar="[PATH]")
@click.option("-n", "--no-pager", is_flag=True, help="Don't page the help through $PAGER on a terminal.")
@click.option("--json", "as_json", is_flag=True, help="Print the models, operations and flags as JSON.")
def help_(path, no_pager, as_json):
    """Show the models, operations and flags of the Guild file in PATH (a project
    directory or a Guild file; default: the current directory)."""
    from guildctl import ophelp, output

    gf = guildfile_for(path, os.getcwd())
    for warning in gf.warnings:
        click.echo(f"WARNING: {warning}", err=True)
    if as_json:
        output.print_json(ophelp.help_json(gf))
        return
    where = "the current directory" if not path else path
    text = ophelp.help_text(gf, OVERVIEW.format(where=where))
    if no_pager or not sys.stdout.isatty():
        click.echo(text, nl=False)
    else:
        click.echo_via_pager(text)
