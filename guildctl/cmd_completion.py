"""Shell completion: `guildctl completion [bash|zsh|fish]` prints click's completion script,
and the completers behind it: operation names from the Guild file in the current directory
(read locally, no daemon), and run ids from the daemon when one is already running.

Completion runs on every Tab press, so it must be quick and must never have side effects:
it never starts a daemon, gives up after a short timeout, and completes nothing rather than
print an error into the user's command line."""

import contextlib
import io
import os

import click

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_GUILDCTL_COMPLETE"
RUN_LIMIT = 50  # the latest runs offered; more would drown the shell's list
TIMEOUT = 2.0

# Argument names whose values are run specs, and the one that names an operation.
RUN_ARGS = ("run", "runs")
OPSPEC_ARGS = ("opspec",)


def shell_for(name, env_shell):
    """The shell to print a script for: the one named, else $SHELL's basename; None when
    neither is bash, zsh or fish."""
    shell = name or os.path.basename(env_shell or "")
    return shell if shell in SHELLS else None


def install_line(shell):
    """The line that loads the script in a shell's startup file."""
    if shell == "fish":
        return f"{COMPLETE_VAR}=fish_source guildctl | source"
    return f'eval "$({COMPLETE_VAR}={shell}_source guildctl)"'


@click.command()
@click.argument("shell_arg", required=False, metavar="[bash|zsh|fish]", type=click.Choice(SHELLS))
@click.option("-s", "--shell", "shell_opt", type=click.Choice(SHELLS), help="Shell to print the script for (default: $SHELL's).")
@click.pass_context
def completion(ctx, shell_arg, shell_opt):
    """Print the shell completion script for bash, zsh or fish.

    It completes commands, options, the operations of the Guild file in the current
    directory (`guildctl run <Tab>`) and run ids (when guildd is running). Load it from
    your shell's startup file:

    \b
      bash (~/.bashrc):  eval "$(_GUILDCTL_COMPLETE=bash_source guildctl)"
      zsh (~/.zshrc):    eval "$(_GUILDCTL_COMPLETE=zsh_source guildctl)"
      fish (~/.config/fish/completions/guildctl.fish):
                         _GUILDCTL_COMPLETE=fish_source guildctl | source
    """
    from click.shell_completion import get_completion_class

    from guild_common import errors

    shell = shell_for(shell_arg or shell_opt, os.environ.get("SHELL"))
    if shell is None:
        raise errors.InvalidArgument(f"cannot tell the shell from $SHELL; name one of {', '.join(SHELLS)}")
    cls = get_completion_class(shell)
    click.echo(cls(ctx.find_root().command, {}, "guildctl", COMPLETE_VAR).source())


def complete_runs(ctx, param, incomplete):
    """Short ids of the latest runs starting with `incomplete`, labelled with the operation,
    from the daemon of the Guild home the command line names, if it answers already."""
    runs = _latest_runs(_guild_home(ctx))
    return [
        click.shell_completion.CompletionItem(r.id[:8], help=f"{r.op_name} {r.status} {r.label}".strip())
        for r in runs
        if r.id.startswith(incomplete)
    ]


def complete_ops(ctx, param, incomplete):
    """What `run` takes first: the operations of the Guild file in the current directory
    (full names, and bare names where the project's default or anonymous model makes them
    unique; private ones only once a `_` is typed), and files, for scripts."""
    from click.shell_completion import CompletionItem

    files = [CompletionItem(incomplete, type="file")]
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            from guild_common import guildfile

            gf = guildfile.for_dir(os.getcwd())
    except Exception:  # a broken guild.yml: `run` itself says what is wrong
        return files
    if gf is None:
        return files
    names = op_names(gf)
    private = incomplete.split(":")[-1].startswith("_")
    return [
        CompletionItem(name)
        for name in names
        if name.startswith(incomplete) and (private or not name.split(":")[-1].startswith("_"))
    ] + files


def op_names(gf):
    """The names `run` accepts for the Guild file's operations: every MODEL:OP, and the
    bare OP of the default model's operations and of the anonymous model's."""
    full = [op.full_name for model in gf.models.values() for op in model.operations.values()]
    bare = [name for model in (gf.default_model, gf.models.get("")) if model is not None for name in model.operations]
    return sorted(set(full) | set(bare))


def attach(command):
    """Gives the RUN and operation arguments of `command` (and of its subcommands) their
    completers, so each command module need not repeat them. An argument that has its own
    keeps it."""
    for param in command.params:
        if isinstance(param, click.Argument) and getattr(param, "_custom_shell_complete", False) is None:
            if param.name in RUN_ARGS:
                param._custom_shell_complete = complete_runs
            elif param.name in OPSPEC_ARGS:
                param._custom_shell_complete = complete_ops
    for sub in getattr(command, "commands", {}).values():
        attach(sub)
    return command


def _guild_home(ctx):
    root = ctx.find_root()
    return (root.params or {}).get("guild_home")


def _latest_runs(guild_home):
    """The latest runs, or none when no daemon answers (never starts one) or anything fails."""
    import pathlib

    from guild_common import home as homelib

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            from guildctl.client import Client
            from guild_common.pb import guild_pb2 as pb

            home = pathlib.Path(guild_home).absolute() if guild_home else homelib.guild_home()
            client = Client(home, autostart=False)
            try:
                resp = client.call("ListRuns", pb.ListRunsRequest(filter=pb.RunFilter(), limit=RUN_LIMIT), timeout=TIMEOUT)
            finally:
                client.close()
    except Exception:  # completion must never show an error: no daemon, no runs to offer
        return []
    return list(resp.runs)
