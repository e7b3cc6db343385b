"""A root daemon's reads and writes in a user's run dir are made with her rights (guildd.fsrights):
scalars, watch, cat, ls, appends to the output, the queue file, and the pid a restart adopts.
The run dir is alice's; she put links in it to a file and a dir only root may read. Without
those rights root would parse, stream or list the file for her, or write through the link."""

import asyncio
import os
import pathlib
import pwd
import shutil
import tempfile
from typing import Iterator

import pytest

from guild_common import errors, home as homelib, rundir
from guildd import catalog as cataloglib, fsrights, outputs, queue as queuelib, reconcile, shim, watching
from guildd.store import RunRecord, Store
from tests.unit.fakes import InPlaceRuntime

RUN = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"
SECRET = b"loss: 0.25\nroot-only secret\n"


def _alice() -> pwd.struct_passwd:
    for name in ("alice", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("no unprivileged account (alice or nobody) on this machine")


class Box:
    """A GUILD_HOME every user can reach, with alice's run dir in it and root-only things."""

    def __init__(self, base: pathlib.Path) -> None:
        self.user = _alice()
        self.home = base / "home"
        self.run_dir = homelib.runs_dir(self.home) / RUN
        rundir.attrs_dir(self.run_dir).mkdir(parents=True)
        for d in (base, self.home, homelib.runs_dir(self.home)):
            d.chmod(0o755)
        self.secret = base / "secret"
        self.secret.write_bytes(SECRET)
        self.secret.chmod(0o600)
        self.secret_dir = base / "secret-dir"
        self.secret_dir.mkdir(mode=0o700)
        self.output = rundir.output_path(self.run_dir)

    def give(self) -> None:
        """The run dir, and what's in it, to alice."""
        fsrights.chown_tree(self.run_dir, self.user.pw_uid, self.user.pw_gid)

    def link_output(self) -> None:
        """Alice replaces her run's output with a link to the root-only file."""
        self.output.unlink(missing_ok=True)
        self.output.symlink_to(self.secret)
        self.give()

    def link_guild_dir(self) -> None:
        """Alice replaces her run's .guild with a link to the root-only dir."""
        guild = rundir.guild_dir(self.run_dir)
        shutil.rmtree(guild)
        guild.symlink_to(self.secret_dir)
        self.give()


@pytest.fixture
def box() -> Iterator[Box]:
    """(Skips unless root: a run dir of another user's needs root.)"""
    if os.geteuid() != 0:
        pytest.skip("a run dir of another user's needs root")
    base = pathlib.Path(tempfile.mkdtemp(prefix="guild-rights-"))
    try:
        yield Box(base)
    finally:
        shutil.rmtree(base)


def record(status: str = "running") -> RunRecord:
    return RunRecord(id=RUN, op_name="train.py", opref="", status=status, created_us=1, started_us=1)


def test_scalars_are_parsed_from_her_output_and_their_events_file_is_hers(box: Box) -> None:
    box.output.write_bytes(b"loss: 0.5\n")
    box.give()
    reader = outputs.ScalarReader(box.run_dir, 0)
    assert [s.tag for s in reader.read() or []] == ["loss"]
    reader.close()
    events = [p for p in rundir.guild_dir(box.run_dir).iterdir() if p.name.startswith("events.out.tfevents")]
    assert [p.stat().st_uid for p in events] == [box.user.pw_uid]


def test_scalars_are_not_parsed_from_a_root_only_file_she_linked(box: Box) -> None:
    box.link_output()
    reader = outputs.ScalarReader(box.run_dir, 0)
    assert reader.read() is None
    assert reader.offset == 0


def test_her_dir_refusing_the_event_file_drops_the_events_and_writes_nothing_of_roots(box: Box) -> None:
    box.link_guild_dir()
    reader = outputs.ScalarReader(box.run_dir, 0)
    reader._write_events([("loss", 0.5, 0, 1.0)])
    assert reader.unwritten == [] and reader.writer is None
    assert list(box.secret_dir.iterdir()) == []


def test_the_daemon_appends_no_line_through_her_link(box: Box) -> None:
    box.link_output()
    with pytest.raises(PermissionError):
        outputs.append_line(box.run_dir, "INFO: [guild] hello")
    assert box.secret.read_bytes() == SECRET
    assert not (box.secret_dir / shim.STDERR_RANGES).exists()


def test_the_daemon_appends_to_her_own_output(box: Box) -> None:
    box.output.write_bytes(b"")
    box.give()
    outputs.append_line(box.run_dir, "INFO: [guild] hello")
    assert box.output.read_bytes() == b"INFO: [guild] hello\n"
    assert (box.run_dir / shim.STDERR_RANGES).stat().st_uid == box.user.pw_uid


def test_a_fifo_in_place_of_her_output_is_refused_not_waited_on(box: Box) -> None:
    os.mkfifo(box.output)
    box.give()
    with pytest.raises(OSError, match="not a regular file"):
        fsrights.open_as_owner(box.run_dir, box.output)


def test_the_queue_file_is_not_written_through_her_link(box: Box) -> None:
    box.link_guild_dir()
    with pytest.raises(PermissionError):
        queuelib.write_file(box.run_dir, {"cancelled": "x"})
    assert list(box.secret_dir.iterdir()) == []


def _followers(box: Box, store: Store) -> watching.Followers:
    async def wait_change(run_id: str) -> None:
        await asyncio.sleep(0.01)

    return watching.Followers(InPlaceRuntime(), store, lambda run_id: box.run_dir, lambda run_id: None, wait_change,
                              lambda run_id: False)


def _watch(box: Box) -> bytes:
    store = Store(box.home / "index.db", homelib.runs_dir(box.home))
    store.insert(record("completed"))

    async def watch() -> bytes:
        return b"".join([data async for _, data in _followers(box, store).watch(record("completed"), 0, False)])

    try:
        return asyncio.run(watch())
    finally:
        store.close()


def test_watch_streams_her_own_output(box: Box) -> None:
    box.output.write_bytes(b"epoch 1\n")
    box.give()
    assert _watch(box) == b"epoch 1\n"


def test_watch_tells_her_it_may_not_read_a_root_only_file_she_linked(box: Box) -> None:
    box.link_output()
    told = _watch(box)
    assert told.startswith(b"guildd: cannot read the output of run 1a2b3c4d: Permission denied")
    assert b"secret" not in told.replace(str(box.secret).encode(), b"")


def _catalog(box: Box) -> tuple[cataloglib.Catalog, Store]:
    store = Store(homelib.index_path(box.home), homelib.runs_dir(box.home))
    return cataloglib.Catalog(InPlaceRuntime(), store, box.home, lambda run_id: None), store


def _cat(box: Box, path: str, output: bool) -> bytes:
    catalog, store = _catalog(box)

    async def read() -> bytes:
        return b"".join([chunk async for chunk in catalog.read_file(record(), path, output)])

    try:
        return asyncio.run(read())
    finally:
        store.close()


def test_cat_reads_her_own_files(box: Box) -> None:
    box.output.write_bytes(b"epoch 1\n")
    (box.run_dir / "model.txt").write_bytes(b"weights")
    box.give()
    assert _cat(box, "", True) == b"epoch 1\n"
    assert _cat(box, "model.txt", False) == b"weights"


def test_cat_refuses_a_root_only_file_she_linked(box: Box) -> None:
    box.link_output()
    with pytest.raises(errors.PermissionDenied, match="cannot read the output of run 1a2b3c4d"):
        _cat(box, "", True)


def test_ls_following_links_lists_only_what_she_may(box: Box) -> None:
    (box.secret_dir / "root-file").write_text("x")
    (box.run_dir / "data").symlink_to(box.secret_dir)
    (box.run_dir / "mine.txt").write_text("x")
    box.give()
    catalog, store = _catalog(box)
    try:
        listed = asyncio.run(catalog.list_files(record(), "", False, False, True))
    finally:
        store.close()
    assert [name for name, *_ in listed] == ["data", "mine.txt"]  # not data/root-file


@pytest.mark.parametrize(
    "confines, process_uid, owner_uid, adopted",
    [
        (False, 0, 1000, True),  # a per-user daemon signals only what its user may
        (True, 1000, 1000, True),  # her own process
        (True, 0, 1000, False),  # init, or root's: she wrote its pid in her LOCK
        (True, 1001, 1000, False),  # another user's
        (True, None, 1000, False),  # gone meanwhile
        (True, 1000, None, False),  # her run dir gone
        (True, 0, 0, True),  # a run of root's own
    ],
)
def test_a_lock_pid_is_adopted_only_when_it_is_the_owners_process(confines: bool, process_uid: "int | None",
                                                                   owner_uid: "int | None", adopted: bool) -> None:
    assert reconcile.may_adopt(confines, process_uid, owner_uid) is adopted


def test_pid_1_in_her_lock_is_not_adoptable(box: Box) -> None:
    box.give()
    assert not reconcile.adoptable(1, box.run_dir)
    assert reconcile.adoptable(os.getpid(), box.home)  # root's own dir, root's own process


@pytest.mark.parametrize(
    "error, kind, told",
    [
        (FileNotFoundError(2, "No such file or directory", "/r/.guild/output"), errors.NotFound, "/r/.guild/output does not exist"),
        (PermissionError(13, "Permission denied", "/r/.guild/output"), errors.PermissionDenied,
         "cannot read the output of run 1a2b3c4d: Permission denied (its owner may not read /r/.guild/output)"),
        (OSError(22, "not a regular file", "/r/.guild/output"), errors.FailedPrecondition,
         "cannot read the output of run 1a2b3c4d: /r/.guild/output: not a regular file"),
    ],
)
def test_a_file_her_rights_cannot_open_is_hers_to_fix(error: OSError, kind: type, told: str) -> None:
    refused = fsrights.refusal(error, "the output of run 1a2b3c4d")
    assert type(refused) is kind and str(refused) == told
