"""guildctl tensorboard: TensorBoard over a log dir that mirrors the selected runs
(guildctl.tbmirror), refreshed while it runs. The runs come from the daemon, like every
other command's; TensorBoard runs in this process, from the tensorboard package (no
TensorFlow)."""

import json
import logging
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from typing import Any

import click

from guild_common import errors
from guild_common.pb import guild_pb2 as pb
from guildctl.filters import pop_filter, run_filters
from guildctl.selecting import selection

TEST_TIMEOUT = 60.0  # seconds --test waits for TensorBoard to list every run
TEST_RELOAD_INTERVAL = 1.0  # seconds between TensorBoard's reloads under --test
STOP_WAIT = 30.0  # seconds a stop waits for a refresh under way before the mirror is removed


def selected_runs(client: Any, runs: tuple[str, ...], run_filter: pb.RunFilter) -> list[Any]:
    """The runs the options select, latest first. The selection is compare's (batch runs
    left out unless the filter includes them); the runs' details come from ListRuns."""
    rows = client.compare_runs(selection(runs, run_filter), columns="", strict=True, skip_core=True,
                               skip_op=True, min="", max="", top=0).rows
    ids = [r.run_id for r in rows]
    if not ids:
        return []
    found, _ = client.list_runs(runs=ids, run_filter=pb.RunFilter(deleted=run_filter.deleted))
    return found


def mirror_run(run: Any) -> Any:
    """A daemon's run as the mirror needs it, its event files found in its run dir."""
    from guildctl import tbmirror

    return tbmirror.MirrorRun(
        id=run.id, op=run.op_name, started_us=run.started_us, label=run.label, run_dir=run.run_dir,
        status=run.status, stopped_us=run.stopped_us, flags=json.loads(run.flags_json or "{}"),
        event_files=tbmirror.find_event_files(run.run_dir),
    )


class Refresher:
    """Keeps the mirror in step with the selection every `interval` seconds, on a thread of
    its own; a failed refresh (the daemon restarting) keeps the mirror as it was."""

    def __init__(self, sync: Any, interval: float) -> None:
        self.sync = sync
        self.interval = interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="tensorboard-refresh", daemon=True)

    def stop(self) -> None:
        """Stops the refreshes, waiting for one under way (it writes into the mirror, which is
        removed next: a sync still writing would leave part of it behind)."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(STOP_WAIT)

    def _loop(self) -> None:
        warned = False
        while not self.stopping.wait(self.interval):
            try:
                self.sync()
                warned = False
            except (errors.GuildError, OSError) as e:
                if not warned:
                    click.echo(f"guildctl: refreshing TensorBoard's runs failed: {e}", err=True)
                    warned = True


def start_tensorboard(logdir: str, host: str, port: int, reload_interval: float, options: tuple[str, ...]) -> str:
    """Starts TensorBoard on `logdir` in this process; its URL. A port in use or a host that
    can't be bound is the user's error, one line."""
    from tensorboard import program

    for name in ("tensorboard", "absl", "werkzeug"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # The data server (tensorboard-data-server, a dependency of tensorboard) reads every event
    # file of a run as it grows; TensorBoard's Python loader reads a dir's files one after
    # another and so misses what a running run writes once the mirror's time file is read.
    argv = ["tensorboard", "--logdir", logdir, "--port", str(port), "--reload_interval", str(reload_interval),
            "--load_fast", "true"]
    if host:
        argv += ["--host", host]
    for opt in options:
        if "=" not in opt:
            raise errors.InvalidArgument(f"-O takes OPTION=VALUE, got '{opt}'")
        argv.append(f"--{opt}")
    tb = program.TensorBoard()
    try:
        tb.configure(argv=argv)
    except (SystemExit, ValueError) as e:
        raise errors.InvalidArgument(f"bad TensorBoard option: {e}") from None
    try:
        return str(tb.launch())
    except program.TensorBoardServerException as e:
        raise errors.GuildError(str(getattr(e, "msg", e))) from None


def _get_json(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"X-XSRF-Protected": "1", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def tensorboard_runs(url: str) -> list[str]:
    """The runs TensorBoard's own data API lists."""
    return list(_get_json(url.rstrip("/") + "/data/runs"))


def scalar_tags(url: str) -> dict[str, list[str]]:
    """{run: its scalar tags}, as TensorBoard's scalars plugin lists them."""
    return {run: sorted(tags) for run, tags in _get_json(url.rstrip("/") + "/data/plugin/scalars/tags").items()}


def hparams_sessions(url: str) -> dict[str, dict[str, Any]]:
    """{session (run) name: its hyperparameters}, as TensorBoard's hparams plugin lists them."""
    body = {"experimentName": "", "startIndex": 0, "sliceSize": 1_000_000, "colParams": [],
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]}
    groups = _get_json(url.rstrip("/") + "/data/plugin/hparams/session_groups", body).get("sessionGroups", [])
    return {s["name"]: g.get("hparams", {}) for g in groups for s in g.get("sessions", [])}


def wait_listed(url: str, names: list[str], sessions_of: list[str],
                timeout: float = TEST_TIMEOUT) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """Waits until TensorBoard lists every run in `names` and an HParams session for each
    in `sessions_of`, and its scalar tags hold still for a reload; the tags and the
    sessions it lists."""
    deadline = time.monotonic() + timeout
    missing: list[str] = sorted(names)
    tags: dict[str, list[str]] | None = None
    while True:
        try:
            seen = set(tensorboard_runs(url))
            sessions = hparams_sessions(url) if sessions_of else {}
            missing = sorted((set(names) - seen) | (set(sessions_of) - set(sessions)))
            before, tags = tags, scalar_tags(url)
            if not missing and tags == before:
                return tags, sessions
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            raise errors.GuildError(f"TensorBoard did not list {len(missing)} run(s) within {timeout:g} s: {', '.join(missing)}")
        time.sleep(TEST_RELOAD_INTERVAL)


@click.command(context_settings={"help_option_names": ["--help"]})
@click.argument("runs", nargs=-1, metavar="[RUN...]")
@click.option("-h", "--host", default="", metavar="HOST", help="Name of the host interface to listen on (default: localhost).")
@click.option("-p", "--port", type=click.IntRange(0, 65535), default=0, help="Port to listen on (default: a free port).")
@click.option("--include-batch", is_flag=True, help="Include batch runs.")
@click.option("--refresh-interval", type=click.FloatRange(min=0.1), default=5.0, metavar="SECONDS",
              help="How often the runs are refreshed (default: 5 seconds).")
@click.option("-n", "--no-open", is_flag=True, help="Don't open TensorBoard in a browser.")
@click.option("--skip-hparams", is_flag=True, help="Don't write HParams summaries.")
@click.option("-O", "tb_options", multiple=True, metavar="OPTION=VALUE", help="Passed to TensorBoard as --OPTION=VALUE (repeatable).")
@click.option("--test", is_flag=True, help="Start TensorBoard, print the runs it lists, and exit.")
@run_filters
@click.pass_obj
def tensorboard(ctx: Any, runs: tuple[str, ...], host: str, port: int, include_batch: bool, refresh_interval: float,
                no_open: bool, skip_hparams: bool, tb_options: tuple[str, ...], test: bool, **kw: Any) -> None:
    """Show runs in TensorBoard: their scalars and summaries, and in HParams their flags as
    hyperparameters, their scalars and run time as metrics.

    TensorBoard shows one run per selected run, named `<short id> <op> <started> <label>`,
    and follows the selection while it runs (new runs appear, deleted ones go, relabelled
    ones are renamed). Ctrl-C stops it. --test starts it, prints the runs it lists and exits.
    """
    from guildctl import tbmirror

    run_filter = pop_filter(kw)
    run_filter.include_batch = include_batch
    client = ctx.client

    def current() -> list[Any]:
        return [mirror_run(r) for r in selected_runs(client, runs, run_filter)]

    first = current()
    if not first:
        raise errors.NotFound("no matching runs")
    logdir = tempfile.mkdtemp(prefix="guildctl-tensorboard-")
    refresher = None
    try:
        mirror = tbmirror.Mirror(logdir, hparams=not skip_hparams)
        wanted = mirror.sync(first)
        reload_interval = TEST_RELOAD_INTERVAL if test else min(refresh_interval, 5.0)
        url = start_tensorboard(logdir, host, port, reload_interval, tb_options)
        if test:
            _test(url, wanted, not skip_hparams)
            return
        refresher = Refresher(lambda: mirror.sync(current()), refresh_interval)
        refresher.thread.start()
        click.echo(f"TensorBoard {_tb_version()} at {url} ({len(wanted)} run(s); Ctrl-C to stop)")
        if not no_open:
            webbrowser.open(url)
        _wait_for_stop()
        refresher.stop()
        click.echo("Stopped TensorBoard")
    finally:
        if refresher is not None:
            refresher.stop()
        shutil.rmtree(logdir, ignore_errors=True)


def _wait_for_stop() -> None:
    """Returns on Ctrl-C or SIGTERM, so the mirror's temp dir is removed either way."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass


def _tb_version() -> str:
    from tensorboard import version

    return str(version.VERSION)


def _test(url: str, wanted: dict[str, dict[str, str]], hparams: bool) -> None:
    from guildctl import tbmirror

    click.echo(f"Running TensorBoard {_tb_version()} at {url}")
    click.echo(f"Testing {url.rstrip('/')}/data/runs")
    tags, sessions = wait_listed(url, tbmirror.listed_runs(wanted, hparams), list(wanted) if hparams else [])
    click.echo(f" - Got {len(wanted)} Guild run(s)")
    for name in sorted(wanted):
        run_tags = sorted({f"{run[len(name) + 1:]}/{t}" if run != name else t
                           for run, ts in tags.items() if run == name or run.startswith(name + "/") for t in ts})
        click.echo(f"   {name}: {', '.join(run_tags) or '(no scalars)'}")
    if hparams:
        click.echo(f" - Got {len(sessions)} HParams session(s)")
        for name in sorted(sessions):
            values = ", ".join(f"{k}={v}" for k, v in sorted(sessions[name].items()))
            click.echo(f"   {name}: {values}")
    sys.stdout.flush()
