"""`guildctl`: parse, one or a few RPCs, format. Commands import grpc (through
guildctl.client) only when they run, so `--help` stays instant."""

import importlib
import os
import pathlib
import sys

import click

from guild_common import errors, home as homelib


class Ctx:
    def __init__(self, guild_home, autostart):
        self.home = pathlib.Path(guild_home).absolute() if guild_home else homelib.guild_home()
        self.autostart = autostart
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from guildctl.client import Client

            self._client = Client(self.home, autostart=self.autostart)
        return self._client


# Command name -> (module, attribute, one-line help). Commands load when used, so a command
# pays only for its own imports and `guildctl --help` stays instant.
COMMANDS = {
    "run": ("cmd_run", "run", "Run an operation: a script, an executable or a Guild-file op."),
    "watch": ("cmd_run", "watch", "Follow a run's output until it ends."),
    "stop": ("cmd_run", "stop", "Stop runs (status 'terminated')."),
    "runs": ("cmd_runs", "runs", "Show or manage runs."),
    "ls": ("cmd_files", "ls", "List a run's files."),
    "cat": ("cmd_files", "cat", "Show a run file or the run's output."),
    "diff": ("cmd_files", "diff", "Diff two runs."),
    "open": ("cmd_open", "open_", "Open a run's directory, a file in it or its output."),
    "label": ("cmd_manage", "label", "Set, extend or clear run labels."),
    "mark": ("cmd_manage", "mark", "Mark runs."),
    "tag": ("cmd_tags", "tag", "Add or remove run tags."),
    "comment": ("cmd_tags", "comment", "Add, list or delete run comments."),
    "unmark": ("cmd_manage", "unmark", "Unmark runs."),
    "export": ("cmd_manage", "export", "Copy or move runs to a directory."),
    "import": ("cmd_manage", "import_", "Copy or move runs from a directory."),
    "compare": ("cmd_compare", "compare", "Compare runs: flags, scalars and attributes as columns."),
    "select": ("cmd_compare", "select", "Print a run's id."),
    "check": ("cmd_check", "check", "Check the setup and disk space."),
    "tensorboard": ("cmd_tensorboard", "tensorboard", "Show runs in TensorBoard, with their flags and scalars as HParams."),
    "view": ("cmd_view", "view", "Open the web view of runs, the queue and the GPUs (it can act on them too)."),
    "gpus": ("cmd_gpus", "gpus", "Show the GPUs and who holds them."),
    "queue": ("cmd_queue", "queue", "Show the queue and why runs wait; start and stop processing, prioritize, cancel."),
    "operations": ("cmd_ops", "operations", "List the Guild file's operations."),
    "ops": ("cmd_ops", "operations", "List the Guild file's operations."),
    "help": ("cmd_help", "help_", "Show the Guild file's models, operations and flags."),
    "completion": ("cmd_completion", "completion", "Print the shell completion script (bash, zsh, fish)."),
    "daemon": ("cmd_daemon", "daemon", "Start, stop or query guildd, or install a systemd user unit for it."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _help = COMMANDS[name]
        command = getattr(importlib.import_module(f"guildctl.{module}"), attr)
        if ctx.resilient_parsing:  # shell completion: RUN and operation arguments complete
            from guildctl import cmd_completion

            cmd_completion.attach(command)
        return command

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-H", "--guild-home", "guild_home", metavar="PATH", help="Guild home (default: $GUILD_HOME, the active venv's .guild, or ~/.guild).")
@click.option("--no-autostart", is_flag=True, help="Don't start guildd when none answers (also: GUILDCTL_NO_AUTOSTART=1).")
@click.version_option(package_name="guildd", prog_name="guildctl")
@click.pass_context
def cli(ctx, guild_home, no_autostart):
    """Run and manage ML experiments through the guildd daemon.

    guildctl speaks Guild AI's command line: `guildctl run train.py x=0.2` runs a script as a
    recorded run, through a per-user daemon that guildctl starts on demand.
    """
    autostart = not (no_autostart or os.environ.get("GUILDCTL_NO_AUTOSTART"))
    ctx.obj = Ctx(guild_home, autostart)


def main():
    try:
        # Outside standalone mode click returns a ctx.exit() code instead of exiting.
        code = cli(prog_name="guildctl", standalone_mode=False)
        if isinstance(code, int):
            sys.exit(code)
    except errors.GuildError as e:
        click.echo(f"guildctl: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as e:  # a file the user named or a path we were given: not a bug of ours
        click.echo(f"guildctl: {e.strerror or e}: {e.filename}" if e.filename else f"guildctl: {e}", err=True)
        sys.exit(1)
