"""guildctl check: the setup, and with --space the disk used by runs and the trash."""

import platform
import sys

import click

from guild_common import __version__
from guildctl import output


def _size(n):
    for unit in ("", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{n:.1f}{unit}" if unit else f"{n}"
        n /= 1024


@click.command()
@click.option("--space", is_flag=True, help="Show disk space used by runs, deleted runs and the cache.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def check(ctx, space, as_json):
    """Check the setup: versions, GUILD_HOME and the daemon."""
    import grpc
    import psutil

    client = ctx.client
    info = {
        "guildctl_version": __version__,
        "guildd_version": client.info.version,
        "guildd_pid": client.info.pid,
        "guild_home": str(ctx.home),
        "python_version": sys.version.split()[0],
        "python_exe": sys.executable,
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "grpcio_version": grpc.__version__,
        "psutil_version": psutil.__version__,
    }
    usage = client.disk_usage() if space else []
    if as_json:
        info["disk_space"] = {u.name: {"path": u.path, "bytes": u.bytes} for u in usage}
        output.print_json(info)
        return
    width = max(len(k) for k in info) + 2
    for key, value in info.items():
        click.echo(f"{key + ':':<{width}}{value}")
    if usage:
        click.echo("disk_space:")
        for u in usage:
            click.echo(f"  {u.name + ':':<{width - 2}}{_size(u.bytes):<8} {u.path}")
