"""`guildd`: the daemon's command line."""

import pathlib
import subprocess
import sys
import tempfile
import time

import click

from guild_common import errors, home as homelib


@click.command()
@click.option("-H", "--guild-home", "guild_home", type=click.Path(file_okay=False), help="GUILD_HOME to serve (default: as Guild resolves it).")
@click.option("--foreground", is_flag=True, help="Stay in the foreground (for systemd and tests).")
@click.option("--log-stderr/--no-log-stderr", default=True, hidden=True, help="Also log to stderr in the foreground.")
@click.option("--queue-always-on", is_flag=True,
              help="Process staged runs always (a shared box's service); by default, as in Guild, staged runs wait for `guildctl queue start`.")
@click.version_option(package_name="guildd", prog_name="guildd")
def cli(guild_home, foreground, log_stderr, queue_always_on):
    """Run the guildd daemon: the run store, executor and queue for one GUILD_HOME.

    It listens on a Unix socket, GUILD_HOME/guildd.sock (mode 0600). guildctl starts one on
    demand, so you rarely need to run this yourself. Stop it with `guildctl daemon stop` or
    SIGTERM: running runs keep running and are adopted by the next daemon.
    """
    home = pathlib.Path(guild_home).absolute() if guild_home else homelib.guild_home()
    try:
        if foreground:
            _serve(home, log_stderr, queue_always_on)
        else:
            _start_background(home, queue_always_on)
    except errors.GuildError as e:
        click.echo(f"guildd: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        pass
    except Exception as e:  # noqa: BLE001 - logged with its traceback; the user gets one line
        from guildd import daemonlog

        click.echo(f"guildd: {daemonlog.describe(e)} (see {homelib.log_path(home)})", err=True)
        sys.exit(1)


def _serve(home, log_stderr, queue_always_on):
    from guildd import daemonlog, homelock

    try:
        lock_fd = homelock.claim(home)  # before loading gRPC: a losing daemon exits fast
    except Exception as e:
        daemonlog.log_exit(home, e)  # serve() logs the exits after this one
        raise
    from guildd import server

    server.serve(home, log_to_stderr=log_stderr, lock_fd=lock_fd, queue_always_on=queue_always_on)


def _start_background(home, queue_always_on):
    from guildd import homelock

    homelock.check_home(home)
    # An unnamed file, not a pipe: the daemon outlives us, and its last words must not hit a
    # closed pipe (they are in guildd.log too).
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "guildd.main", "--foreground", "--no-log-stderr", "-H", str(home)]
        + (["--queue-always-on"] if queue_always_on else []),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stderr.seek(0)
            err = stderr.read().decode(errors="replace").strip().splitlines()
            raise errors.GuildError(err[-1].removeprefix("guildd: ") if err else "guildd exited at start")
        if homelib.socket_connect_path(home).exists():
            click.echo(f"guildd started for {home} (pid {proc.pid})")
            return
        time.sleep(0.05)
    raise errors.DaemonUnavailable(f"guildd did not start in time; see {homelib.log_path(home)}")


def main():
    cli(prog_name="guildd")


if __name__ == "__main__":
    main()
