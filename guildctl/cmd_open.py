"""guildctl open: a run's directory, a file in it or its output, opened with a command, a
shell or the desktop's handler. The daemon says where the run is; the opening happens here,
as the user, since it is the user's program that opens it."""

import os
import shlex
import shutil
import subprocess
import sys

import click

from guild_common import errors, paths, rundir
from guildctl import runattrs
from guildctl.filters import pop_filter, run_filters

# The desktop's "open this" program, by platform.
OPENERS = {"darwin": "open"}
DEFAULT_OPENER = "xdg-open"


def target(run_dir, path="", sourcecode_dest="", output=False):
    """The path to open: the run's output, or PATH under the run dir (under the source code
    snapshot's dest with --sourcecode); refuses (InvalidArgument) one outside the run dir,
    by `..`, as an absolute path, or through a link. A directory ends with `/`, as Guild
    shows it."""
    if output:
        return str(rundir.output_path(run_dir))
    base = run_dir
    if sourcecode_dest:
        paths.contained(run_dir, sourcecode_dest, "sourcecode dest")
        base = os.path.normpath(os.path.join(run_dir, sourcecode_dest))
    full = base
    if path:
        paths.contained(base, path, "path")
        full = os.path.normpath(os.path.join(base, path))
    return full + "/" if os.path.isdir(full) and not full.endswith("/") else full


def argv_for(cmd, *paths):
    """The command that opens `paths`: CMD's words with the paths appended."""
    try:
        return shlex.split(cmd) + list(paths)
    except ValueError as e:
        raise errors.InvalidArgument(f"invalid command '{cmd}': {e}") from None


def opener(platform=None):
    """The desktop's open program for this platform, or None when it isn't installed."""
    name = OPENERS.get(platform or sys.platform, DEFAULT_OPENER)
    return shutil.which(name)


@click.command("open")
@click.argument("run", required=False, default="")
@click.option("-p", "--path", default="", metavar="PATH", help="Open PATH, relative to the run dir (default: the run dir).")
@click.option("-s", "--sourcecode", is_flag=True, help="Open the source code snapshot (PATH is relative to it).")
@click.option("-O", "--output", "show_output", is_flag=True, help="Open the run's output file.")
@click.option("-c", "--cmd", metavar="CMD", help="Open with CMD: the path is appended ('less', 'code -n').")
@click.option("--shell", is_flag=True, help="Start a shell ($SHELL) in the run dir, or in PATH's directory.")
@click.option("--shell-cmd", metavar="CMD", help="Start the shell CMD in the run dir, or in PATH's directory.")
@run_filters
@click.pass_obj
def open_(ctx, run, path, sourcecode, show_output, cmd, shell, shell_cmd, **kw):
    """Open a run's directory, a file in it or its output (default: the latest run).

    With --cmd the command gets the path as its last argument (`guildctl open -c 'ls -l'`);
    with --shell a new shell starts there; otherwise the desktop's handler (xdg-open, or
    open on macOS) opens it. The command's exit status is guildctl's.
    """
    if show_output and (path or sourcecode):
        raise errors.InvalidArgument("--output cannot be used with --path or --sourcecode")
    if sum(bool(x) for x in (cmd, shell, shell_cmd)) > 1:
        raise errors.InvalidArgument("use only one of --cmd, --shell and --shell-cmd")
    r = ctx.client.get_run(run, run_filter=pop_filter(kw))
    dest = runattrs.sourcecode_dest(runattrs.op_attr(ctx.client, r)) if sourcecode else ""
    full = target(r.run_dir, path, dest, show_output)
    if not os.path.lexists(full.rstrip("/")):
        raise errors.NotFound(f"{full} does not exist")
    if shell or shell_cmd:
        where = full if os.path.isdir(full) else os.path.dirname(full)
        click.echo(f"Running a new shell in {where}\nTo exit the shell, type 'exit' and press Enter.", err=True)
        argv = argv_for(shell_cmd) if shell_cmd else [os.environ.get("SHELL") or "/bin/sh"]
        sys.exit(_call(argv, cwd=where))
    if cmd:
        sys.exit(_call(argv_for(cmd, full)))
    program = opener()
    if program is None:
        name = OPENERS.get(sys.platform, DEFAULT_OPENER)
        raise errors.NotFound(f"cannot open {full}: {name} is not installed (use --cmd CMD or --shell)")
    sys.exit(_call([program, full]))


def _call(argv, cwd=None):
    try:
        return subprocess.call(argv, cwd=cwd)
    except OSError as e:
        raise errors.GuildError(f"cannot run '{argv[0]}': {e.strerror}") from None
