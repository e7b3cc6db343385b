"""`guildd`: the daemon's command line."""

import grp
import os
import pathlib
import signal
import sys
from typing import TYPE_CHECKING

import click

from guild_common import daemonstart, errors, home as homelib

if TYPE_CHECKING:
    from guildd.daemon import Options

START_TIMEOUT = 15.0


@click.command()
@click.option("-H", "--guild-home", "guild_home", type=click.Path(file_okay=False), help="GUILD_HOME to serve (default: as Guild resolves it).")
@click.option("--foreground", is_flag=True, help="Stay in the foreground (for systemd and tests).")
@click.option("--log-stderr/--no-log-stderr", default=True, hidden=True, help="Also log to stderr in the foreground.")
@click.option("--queue-always-on", is_flag=True,
              help="Process staged runs always (a shared box's service); by default, as in Guild, staged runs wait for `guildctl queue start`.")
@click.option("--shared", is_flag=True,
              help="Serve every local user (run as root, e.g. by systemd/guildd.service): sockets mode 0666, each request "
                   "attributed to the caller's uid as the kernel reports it, runs executed as their owners.")
@click.option("--admin-group", metavar="GROUP",
              help="With --shared: members of GROUP may act on every run and change queue settings, as root may.")
@click.option("--unconfined-gpus", is_flag=True,
              help="With --shared: a run that asks for no GPUs sees every GPU (by default it sees none).")
@click.option("--fair-share-half-life", "half_life_h", type=click.FloatRange(min=0, min_open=True), default=24.0, show_default=True,
              metavar="HOURS", help="Fair share: past GPU-seconds count half as much after HOURS.")
@click.option("--preempt-grace", "preempt_grace", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="SECONDS", help="A preempted run gets SIGTERM, then SIGKILL after SECONDS (to save a checkpoint).")
@click.option("--ray-address", "ray_address", metavar="ADDRESS", default="",
              help="The Ray cluster (its dashboard, http://HOST:PORT) of `run --executor ray` when the client's RAY_ADDRESS names none.")
@click.option("--allow-ray", is_flag=True,
              help="With --shared: accept `run --executor ray` (Ray jobs run as the cluster's user, not as the run's owner).")
@click.version_option(package_name="guildd", prog_name="guildd")
def cli(guild_home: str | None, foreground: bool, log_stderr: bool, queue_always_on: bool, shared: bool, admin_group: str | None,
        unconfined_gpus: bool, half_life_h: float, preempt_grace: float, ray_address: str, allow_ray: bool) -> None:
    """Run the guildd daemon: the run store, executor and queue for one GUILD_HOME.

    It listens on a Unix socket, GUILD_HOME/guildd.sock (mode 0600). guildctl starts one on
    demand, so you rarely need to run this yourself. Stop it with `guildctl daemon stop` or
    SIGTERM: running runs keep running and are adopted by the next daemon.
    """
    home = pathlib.Path(guild_home).absolute() if guild_home else homelib.guild_home()
    try:
        options = _options(queue_always_on, shared, admin_group, unconfined_gpus, half_life_h, preempt_grace,
                           home if foreground else None, ray_address, allow_ray)
        if foreground:
            _serve(home, log_stderr, options)
        else:
            _start_background(home, options)
    except errors.GuildError as e:
        click.echo(f"guildd: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        pass
    except Exception as e:  # noqa: BLE001 - logged with its traceback; the user gets one line
        from guildd import daemonlog

        click.echo(f"guildd: {daemonlog.describe(e)} (see {homelib.log_path(home)})", err=True)
        sys.exit(1)


def _options(queue_always_on: bool, shared: bool, admin_group: str | None, unconfined_gpus: bool, half_life_h: float,
             preempt_grace: float, log_home: pathlib.Path | None = None, ray_address: str = "", allow_ray: bool = False) -> "Options":
    """The options, or InvalidArgument in one line, logged in `log_home`'s guildd.log too (in
    the foreground, systemd's way, whose user reads guildd.log)."""
    from guildd.daemon import Options

    try:
        _check_options(shared, admin_group, unconfined_gpus)
        if allow_ray and not shared:
            raise errors.InvalidArgument("--allow-ray needs --shared (a per-user daemon's Ray jobs are its user's)")
        if ray_address:
            from guildd import rayjobs

            ray_address = rayjobs.normalize_address(ray_address)
    except errors.GuildError as e:
        if log_home is not None:
            from guildd import daemonlog

            daemonlog.log_exit(log_home, e)
        raise
    return Options(queue_always_on, shared, admin_group, unconfined_gpus, half_life_h * 3600.0, preempt_grace, ray_address, allow_ray)


def _check_options(shared: bool, admin_group: str | None, unconfined_gpus: bool) -> None:
    if (admin_group or unconfined_gpus) and not shared:
        raise errors.InvalidArgument("--admin-group and --unconfined-gpus need --shared (a per-user daemon has one user)")
    if shared and os.geteuid() != 0:
        raise errors.InvalidArgument("--shared needs root: it runs each user's runs as that user")
    if admin_group:
        try:
            grp.getgrnam(admin_group)
        except KeyError:
            raise errors.InvalidArgument(f"--admin-group: no group named {admin_group!r}") from None


class StoppedAtStart(errors.GuildError):
    """SIGTERM before the daemon serves (its own handler is installed once its event loop
    runs): without this, the default action would end it without a word in guildd.log."""


def _stopped_at_start(signum: int, _frame: object) -> None:
    raise StoppedAtStart(f"stopped by {signal.Signals(signum).name} during start-up")


def _serve(home: pathlib.Path, log_stderr: bool, options: "Options") -> None:
    from guildd import daemonlog, homelock

    signal.signal(signal.SIGTERM, _stopped_at_start)
    try:
        lock_fd = homelock.claim(home, options.shared)  # before loading gRPC: a losing daemon exits fast
        from guildd import server
    except Exception as e:
        daemonlog.log_exit(home, e)  # serve() logs the exits after this one
        raise
    server.serve(home, log_to_stderr=log_stderr, lock_fd=lock_fd, options=options)


def _start_background(home: pathlib.Path, options: "Options") -> None:
    from guildd import homelock

    homelock.check_home(home, options.shared)
    args = ["--queue-always-on"] if options.queue_always_on else []
    if options.shared:
        args += ["--shared"] + (["--admin-group", options.admin_group] if options.admin_group else [])
        args += ["--unconfined-gpus"] if options.unconfined_gpus else []
    args += ["--fair-share-half-life", f"{options.fair_share_half_life / 3600.0:g}"]
    args += ["--preempt-grace", f"{options.preempt_grace:g}"]
    args += ["--ray-address", options.ray_address] if options.ray_address else []
    args += ["--allow-ray"] if options.allow_ray else []
    try:
        started = daemonstart.start(home, lambda: homelib.socket_connect_path(home).exists(), START_TIMEOUT, args)
    except daemonstart.DaemonExited as e:
        raise errors.GuildError(e.reason) from None
    assert started is not None  # only a lost race (lost_race_ok) gives None
    click.echo(f"guildd started for {home} (pid {started.proc.pid})")


def main() -> None:
    cli(prog_name="guildd")


if __name__ == "__main__":
    main()
