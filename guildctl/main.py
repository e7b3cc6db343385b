"""`guildctl`: parse, one or a few RPCs, format. Commands import grpc (through
guildctl.client) only when they run, so `--help` stays instant."""

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


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


from guildctl import cmd_check, cmd_compare, cmd_daemon, cmd_files, cmd_gpus, cmd_manage, cmd_ops, cmd_run, cmd_runs  # noqa: E402

for command in (
    cmd_run.run,
    cmd_run.watch,
    cmd_run.stop,
    cmd_runs.runs,
    cmd_files.ls,
    cmd_files.cat,
    cmd_manage.label,
    cmd_manage.mark,
    cmd_manage.unmark,
    cmd_manage.export,
    cmd_manage.import_,
    cmd_compare.compare,
    cmd_compare.select,
    cmd_check.check,
    cmd_gpus.gpus,
    cmd_daemon.daemon,
):
    cli.add_command(command)
cli.add_command(cmd_files.diff, "diff")
cli.add_command(cmd_ops.operations)
cli.add_command(cmd_ops.operations, "ops")
