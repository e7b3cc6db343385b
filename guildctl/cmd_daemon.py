"""guildctl daemon start|stop|status."""

import os
import time

import click

from guild_common import errors, home as homelib
from guildctl import output


@click.group()
def daemon():
    """Start, stop or query the guildd daemon for this GUILD_HOME."""


def _running_client(ctx):
    from guildctl.client import Client

    try:
        return Client(ctx.home, autostart=False)
    except errors.DaemonUnavailable:
        return None


@daemon.command()
@click.pass_obj
def start(ctx):
    """Start guildd in the background (if it isn't running)."""
    client = _running_client(ctx)
    if client is None:
        from guildctl.client import Client, start_daemon

        # A daemon that exits after it answered (its start-up failed) still says why.
        client = Client(ctx.home, autostart=False, started=start_daemon(ctx.home, quiet=True))
        info = client.info
        click.echo(f"guildd {info.version} started for {info.guild_home} (pid {info.pid})")
    else:
        info = client.info
        click.echo(f"guildd is already running for {info.guild_home} (pid {info.pid})")


@daemon.command()
@click.pass_obj
def stop(ctx):
    """Stop guildd gracefully. Running runs keep running; the next daemon adopts them."""
    client = _running_client(ctx)
    if client is None:
        click.echo(f"guildd is not running for {ctx.home}")
        return
    info = client.info
    client.shutdown_daemon()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(info.pid):
        time.sleep(0.05)
    if _alive(info.pid):
        raise errors.DaemonUnavailable(f"guildd (pid {info.pid}) did not stop in 30s; see {homelib.log_path(ctx.home)}")
    click.echo(f"guildd stopped (pid {info.pid})")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@daemon.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def status(ctx, as_json):
    """Show whether guildd is running for this GUILD_HOME (exit 1 when it isn't)."""
    client = _running_client(ctx)
    if client is None:
        if as_json:
            output.print_json({"running": False, "guild_home": str(ctx.home)})
        else:
            click.echo(f"guildd is not running for {ctx.home}")
        raise click.exceptions.Exit(1)
    info = client.info
    if as_json:
        output.print_json(
            {
                "running": True,
                "version": info.version,
                "pid": info.pid,
                "guild_home": info.guild_home,
                "started": info.started_us,
                "runs_running": info.running,
                "user": info.user,
            }
        )
        return
    click.echo(
        f"guildd {info.version} is running for {info.guild_home}\n"
        f"  pid: {info.pid}\n  started: {output.fmt_time(info.started_us)}\n"
        f"  running runs: {info.running}\n  log: {homelib.log_path(ctx.home)}"
    )
