"""guildctl daemon start|stop|status."""

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

        start_daemon(ctx.home, quiet=True)
        client = Client(ctx.home, autostart=False)
        info = client.daemon_info()
        click.echo(f"guildd {info.version} started for {info.guild_home} (pid {info.pid})")
    else:
        info = client.daemon_info()
        click.echo(f"guildd is already running for {info.guild_home} (pid {info.pid})")


@daemon.command()
@click.pass_obj
def stop(ctx):
    """Stop guildd gracefully. Running runs keep running; the next daemon adopts them."""
    client = _running_client(ctx)
    if client is None:
        click.echo(f"guildd is not running for {ctx.home}")
        return
    info = client.daemon_info()
    client.shutdown_daemon()
    deadline = time.monotonic() + 15
    path = homelib.socket_link(ctx.home)
    while time.monotonic() < deadline and (path.exists() or path.is_symlink()):
        time.sleep(0.05)
    click.echo(f"guildd stopped (pid {info.pid})")


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
    info = client.daemon_info()
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
