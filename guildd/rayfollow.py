"""The follower: a run on a Ray cluster, as its shim sees it (`python -m guildd.rayfollow`).

It is the run's process under the run's shim (so it runs as the run's owner, and outlives
the daemon as every run does). It submits the run's command as a Ray job with the
submission id guildd chose, streams the job's log to its stdout (the run's output), keeps
the job's own state in the run's `ray_status` attr, and exits as the job ended: SUCCEEDED 0,
FAILED with the command's exit code and Ray's message, STOPPED by SIGTERM (terminated).
SIGTERM (guildctl stop) stops the job and waits for it to stop; a job still pending can't be
stopped before the cluster places it (Ray's stop reaches it then): the run ends at once.

A follower started again for a submission id whose job exists (the first was killed) attaches
to it: it skips the part of the log the run's output already has. A cluster that stops
answering is tried again for a grace period (GUILD_RAY_GRACE), then the run ends as an error
with one line saying why; its output so far is kept. Files the job copies back through its
log (guildd.raywrap) are unpacked into the run dir, never written to the output.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import signal
import sys
import tarfile
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from guild_common import rundir
from guildd import rayjobs, raywrap

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

POLL_SECONDS = 0.5  # how often the job's state is read
RETAIL_SECONDS = 0.5  # wait before following the log again after it broke off


class Lost(Exception):
    """The cluster did not answer for the whole grace period."""


class Output:
    """The job's log as the run's output: copy-back lines taken out, and what the output
    already has (`skip` bytes: an attached follower's predecessor, or a log followed again
    after a break) not written twice."""

    def __init__(self, skip: int, write: Callable[[bytes], Any]) -> None:
        self.written = skip  # bytes of the log's text the output has
        self.pos = 0  # bytes of the log's text seen in the stream now followed
        self.partial = ""
        self.files = rayjobs.Unframer()
        self.started = False  # past the wrapper's first line (Ray's own lines come before it)
        self.write = write

    def restart(self) -> None:
        """The log is followed again from its start."""
        self.pos, self.partial, self.files, self.started = 0, "", rayjobs.Unframer(), False

    def feed(self, text: str) -> None:
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        for line in lines:
            self._line(line + "\n")

    def close(self) -> None:
        if self.partial:
            self._line(self.partial)
            self.partial = ""

    def _line(self, line: str) -> None:
        if not self.started:
            self.started = line.startswith(raywrap.START)
            return
        if self.files.take(line):
            return
        data = line.encode()
        start, self.pos = self.pos, self.pos + len(data)
        if self.pos > self.written:
            self.write(data[max(self.written - start, 0):])
            self.written = self.pos


class Follower:
    def __init__(self, args: argparse.Namespace) -> None:
        self.address: str = args.address
        self.submission: str = args.submission_id
        self.run_dir: str = args.run_dir
        self.resources: dict[str, float] = json.loads(args.resources)
        self.cmd: list[str] = args.cmd
        self.attach: bool = args.attach  # follow the job that exists; submit none
        self.grace = float(os.environ.get(rayjobs.GRACE_ENV) or rayjobs.DEFAULT_GRACE)
        self.mode = "copy" if os.environ.get(rayjobs.FILES_ENV) == "copy" else "auto"
        self.cap = int(os.environ.get(rayjobs.CAP_ENV) or rayjobs.DEFAULT_CAP)
        self.client: Optional[JobSubmissionClient] = None
        self.stopping = False
        self.status = ""

    async def run(self) -> int:
        """The run's exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop)
        try:
            self.client = await self._with_grace(self._connect)
            try:
                skip = await self._with_grace(self._attach if self.attach else self._submit)
            except (RuntimeError, ValueError) as e:
                what = "cannot be followed again" if self.attach else "could not be submitted"
                self._say(f"guildd: Ray job {self.submission} {what}: {_first_line(e)}")
                return 1
            if self.stopping:  # stopped while it was being submitted
                await asyncio.to_thread(_stop_job, self.client, self.submission)
            out = Output(skip, lambda data: os.write(1, data))
            info = await self._follow(out)
            if info is None:
                self._say(f"guildd: stopped while Ray job {self.submission} was pending: Ray stops the job once the cluster places it")
                return -15
        except Lost as e:
            self._say(f"guildd: lost the Ray cluster at {self.address}: {e}")
            self._set_status("UNREACHABLE")
            return 1
        except (RuntimeError, ValueError) as e:  # the cluster answers, but no longer knows the job
            self._say(f"guildd: lost Ray job {self.submission} at {self.address}: {_first_line(e)}")
            return 1
        out.close()
        self._set_status(str(info.status))
        code = rayjobs.exit_status(str(info.status), getattr(info, "driver_exit_code", None))
        assert code is not None  # _follow returns an ended job
        self._copy_back(out.files)
        if code > 0:
            self._say(rayjobs.failure_line(self.submission, info.message or ""))
        return code

    def _connect(self) -> JobSubmissionClient:
        from ray.job_submission import JobSubmissionClient

        # Ray's INFO lines (uploading the working dir, the log's socket closed) are not the run's.
        logging.getLogger("ray").setLevel(logging.WARNING)
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("ray."):
                logging.getLogger(name).setLevel(logging.WARNING)
        return JobSubmissionClient(self.address)

    def _submit(self) -> int:
        """Submits the job; returns how much of its log the output already has (0, or when a
        job with this submission id exists, the output's size: this follower attaches)."""
        assert self.client is not None
        source = os.path.join(self.run_dir, _dest(self.run_dir))
        runtime_env = {
            "working_dir": source,
            "excludes": ["/.guild/attrs/", "/.guild/output*", "/.guild/LOCK*", "/.guild/.*", "/.guild/opref"],
            "env_vars": rayjobs.job_env(os.environ),
        }
        try:
            self.client.submit_job(
                entrypoint=rayjobs.entrypoint(self.cmd, self.run_dir, self.mode, self.cap),
                submission_id=self.submission,
                runtime_env=runtime_env,
                metadata={"guild_run": os.environ.get("RUN_ID", "")},
                **self.resources,  # type: ignore[arg-type]
            )
        except RuntimeError as e:
            if "already exists" not in str(e):
                raise
            return os.path.getsize(rundir.output_path(self.run_dir))
        return 0

    def _attach(self) -> int:
        """Attaches to the job that exists (RuntimeError when the cluster doesn't know it);
        returns how much of its log the output already has."""
        self._info()
        return os.path.getsize(rundir.output_path(self.run_dir))

    async def _follow(self, out: Output) -> Any:
        """Streams the job's log until the job has ended; returns its JobInfo, or None when
        stopped while the job was pending (see _poll)."""
        poll = asyncio.create_task(self._poll())
        tail = asyncio.create_task(self._tail(out))
        try:
            done, _ = await asyncio.wait({poll, tail}, return_when=asyncio.FIRST_COMPLETED)
            return (tail if tail in done else poll).result()
        finally:
            poll.cancel()
            tail.cancel()

    async def _tail(self, out: Output) -> Any:
        """The job's log into the run's output, followed again after a break, until the job
        has ended; returns its JobInfo."""
        assert self.client is not None
        while True:
            try:
                async for chunk in self.client.tail_job_logs(self.submission):
                    out.feed(chunk)
            except Exception:  # noqa: BLE001 - the log broke off: the job's state says what next
                pass
            info = await self._with_grace(self._info)
            if str(info.status) in rayjobs.ENDED:
                return info
            await asyncio.sleep(RETAIL_SECONDS)
            out.restart()

    async def _poll(self) -> None:
        """Keeps `ray_status` current (PENDING, RUNNING...) while the log streams. Returns once
        stopped while the job is pending: Ray's stop reaches a job only once the cluster
        places it, so the run ends now (terminated) and Ray stops the job when it starts."""
        while True:
            try:
                info = await asyncio.to_thread(self._info)
                self._set_status(str(info.status))
                if self.stopping and str(info.status) == "PENDING":
                    return
            except Exception:  # noqa: BLE001 - _tail decides whether the cluster is lost
                pass
            await asyncio.sleep(POLL_SECONDS)

    def _info(self) -> Any:
        assert self.client is not None
        return self.client.get_job_info(self.submission)

    async def _with_grace(self, call: Callable[[], Any]) -> Any:
        """`call` on a thread, tried again while it fails to reach the cluster, for the grace
        period; Lost with the last reason then. RuntimeError and ValueError (the cluster's
        answer) pass through."""
        deadline = time.monotonic() + self.grace
        while True:
            try:
                return await asyncio.to_thread(call)
            except (RuntimeError, ValueError) as e:
                if not _unreachable(e):
                    raise
                reason = _first_line(e)
            except Exception as e:  # noqa: BLE001 - requests' and aiohttp's connection errors
                reason = _first_line(e)
            if time.monotonic() >= deadline:
                raise Lost(reason)
            await asyncio.sleep(min(1.0, max(deadline - time.monotonic(), 0.05)))

    def _stop(self) -> None:
        if self.stopping or self.client is None:
            self.stopping = True
            return
        self.stopping = True
        client = self.client
        asyncio.get_running_loop().run_in_executor(None, _stop_job, client, self.submission)

    def _set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            try:
                rundir.write_attr(self.run_dir, "ray_status", status)
            except OSError:
                pass  # the run's output and end matter more than this attr

    def _copy_back(self, files: rayjobs.Unframer) -> None:
        """Unpacks the files the job sent back into the run dir (its metadata untouched)."""
        try:
            data = files.data()
            if data is None:
                return
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                members = [m for m in tar.getmembers() if m.isfile() and not m.name.startswith(".guild")]
                tar.extractall(self.run_dir, members=members, filter="data")
        except (ValueError, OSError, tarfile.TarError) as e:
            self._say(f"guildd: files not copied back from Ray job {self.submission}: {e}")

    @staticmethod
    def _say(line: str) -> None:
        os.write(1, (line + "\n").encode())


def _stop_job(client: JobSubmissionClient, submission: str) -> None:
    try:
        client.stop_job(submission)
    except Exception:  # noqa: BLE001 - the shim's SIGKILL follows if the job can't be stopped
        pass


def _dest(run_dir: str) -> str:
    """Where the run's source snapshot is in its dir (its op attr's sourcecode dest)."""
    op = rundir.read_attr(run_dir, "op")
    dest = ((op or {}).get("sourcecode") or {}).get("dest") if isinstance(op, dict) else None
    return "" if not dest or dest == "." else str(dest)


def _unreachable(e: BaseException) -> bool:
    """Whether the job client's error is about reaching the cluster, not its answer."""
    text = str(e).lower()
    return any(word in text for word in ("connect", "timed out", "timeout", "unreachable", "refused"))


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="guildd.rayfollow")
    parser.add_argument("--address", required=True)
    parser.add_argument("--submission-id", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--resources", default="{}")
    parser.add_argument("--attach", action="store_true")
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.cmd[:1] == ["--"]:
        args.cmd = args.cmd[1:]
    return args


def main(argv: Optional[list[str]] = None) -> None:
    """Follows the job; exits with the run's end (a stopped job: killed by SIGTERM, as Guild
    records a terminated run)."""
    code = asyncio.run(Follower(parse_args(sys.argv[1:] if argv is None else argv)).run())
    sys.stdout.flush()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


if __name__ == "__main__":
    main()
