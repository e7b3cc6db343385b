"""A root daemon's reads and writes in a user's run dir are made with her rights (guildd.fsrights):
scalars, watch, cat, ls, appends to the output, the queue file, and the pid a restart adopts.
The run dir is alice's; she put links in it to a file and a dir only root may read. Without
those rights root would parse, stream or list the file for her, or write through the link."""

import asyncio
import dataclasses
import os
import pathlib
import pwd
import shutil
import tempfile
import types
from typing import Iterator

import pytest

from guild_common import errors, home as homelib, rundir
from guildd import catalog as cataloglib, fsrights, manage, outputs, queue as queuelib, resources as resourceslib, selection, shim
from guildd import watching
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
        self.base = base
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
    assert fsrights.may_adopt(confines, process_uid, owner_uid) is adopted


def test_pid_1_in_her_lock_is_not_adoptable(box: Box) -> None:
    box.give()
    assert not fsrights.adoptable(1, box.run_dir)
    assert fsrights.adoptable(os.getpid(), box.home)  # root's own dir, root's own process


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


# Reads of her attrs, LOCK and queue file, and of an archive a caller names

ROOT_ATTR = b"root-only secret\n"  # one YAML value, as an attr holds


def _root_only(box: Box, name: str, data: bytes) -> pathlib.Path:
    path = box.base / name
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _link_attr(box: Box, name: str, data: bytes = ROOT_ATTR) -> None:
    """Alice replaces her run's attr `name` with a link to a root-only file holding `data`."""
    attr = rundir.attrs_dir(box.run_dir) / name
    attr.unlink(missing_ok=True)
    attr.symlink_to(_root_only(box, f"root-{name}", data))
    box.give()


def test_runs_info_shows_her_attrs_and_nothing_of_a_root_only_file_she_linked(box: Box) -> None:
    rundir.write_attrs(box.run_dir, {"label": "mine"})
    _link_attr(box, "x")
    catalog, store = _catalog(box)
    try:
        assert asyncio.run(catalog.details(record())) == {"label": "mine", "x": None}
    finally:
        store.close()


def test_runs_with_their_command_show_none_read_through_her_link(box: Box) -> None:
    rundir.write_attrs(box.run_dir, {"initialized": 1})
    _link_attr(box, "cmd", b"- root-only secret\n")
    catalog, store = _catalog(box)
    try:
        found = asyncio.run(catalog.listing(selection.Criteria(), (), 0, None, "", True))
    finally:
        store.close()
    assert [r.id for r in found.recs] == [RUN] and found.commands == {RUN: None}


def test_the_index_takes_no_attr_of_roots_she_linked(box: Box) -> None:
    rundir.write_attrs(box.run_dir, {"initialized": 1})
    _link_attr(box, "label")
    store = Store(homelib.index_path(box.home), homelib.runs_dir(box.home))
    try:
        manage.index_run_dir(store, box.run_dir, lambda pid: False)
        indexed = store.get(RUN)
    finally:
        store.close()
    assert indexed is not None and indexed.label == ""


def test_compare_takes_no_columns_from_an_op_she_linked(box: Box) -> None:
    _link_attr(box, "op", b"compare: [=secret-column]\n")
    catalog, store = _catalog(box)
    try:
        columns = catalog._op_columns([dataclasses.replace(record(), opref="guildfile:/p/guild.yml '' '' train")])
    finally:
        store.close()
    assert columns == []


def _alice_account(box: Box) -> fsrights.Account:
    return fsrights.Account(box.user.pw_uid, box.user.pw_gid, (box.user.pw_gid,))


def test_an_archive_is_listed_with_the_callers_rights(box: Box) -> None:
    archive = box.base / "archive"
    rundir.write_attrs(archive / RUN, {"initialized": 1, "label": "exported"})
    archive.chmod(0o700)  # root's: alice may not list it
    catalog, store = _catalog(box)
    try:
        with pytest.raises(errors.PermissionDenied, match="cannot read archive"):
            asyncio.run(catalog.select(selection.Criteria(), archive=str(archive), caller=_alice_account(box)))
        archive.chmod(0o755)
        _root_only(box, "root-label", ROOT_ATTR)
        label = rundir.attrs_dir(archive / RUN) / "label"
        label.unlink()
        label.symlink_to(box.base / "root-label")
        recs, _ = asyncio.run(catalog.select(selection.Criteria(), archive=str(archive), caller=_alice_account(box)))
    finally:
        store.close()
    assert [(r.id, r.label) for r in recs] == [(RUN, "")]


def test_the_queue_file_is_not_read_through_her_link(box: Box) -> None:
    _root_only(box, "root-queue", b'{"user": "root-only secret"}')
    (rundir.guild_dir(box.run_dir) / queuelib.QUEUE_FILE).symlink_to(box.base / "root-queue")
    box.give()
    assert queuelib.read_file(box.run_dir) is None


class _States:
    """What a queue asks of the run states when it cancels a run (one gone from the index)."""

    def __init__(self, box: Box) -> None:
        self.box = box

    def listen(self, _callback: object) -> None:
        pass

    def run_dir(self, run_id: str) -> pathlib.Path:
        return self.box.run_dir


def test_a_cancelled_run_notes_why_in_her_output_and_never_through_her_link(box: Box) -> None:
    store = Store(homelib.index_path(box.home), homelib.runs_dir(box.home))
    queue = queuelib.Queue(InPlaceRuntime(), store, _States(box), box.home, None, None, lambda: False)  # type: ignore[arg-type]
    try:
        box.output.write_bytes(b"")
        box.give()
        asyncio.run(queue._cancel(RUN, "cancelled by user"))
        assert box.output.read_bytes() == b"guildctl: run cancelled: cancelled by user\n"
        box.link_output()
        asyncio.run(queue._cancel(RUN, "cancelled by user"))
    finally:
        store.close()
    assert box.secret.read_bytes() == SECRET
    assert queuelib.read_file(box.run_dir) == {"cancelled": "cancelled by user"}


def test_a_lock_naming_another_users_process_marks_no_gpu_process_as_her_runs(box: Box) -> None:
    rundir.lock_file(box.run_dir).write_text("1\n")  # init's
    box.give()
    store = types.SimpleNamespace(list=lambda statuses: ([types.SimpleNamespace(id=RUN, shim_pid=0, pid=1)], 1))
    assert resourceslib.run_pids(store, lambda run_id: box.run_dir) == {}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name, read",
    [
        pytest.param("batch.json", "batch", id="a batch's spec"),
        pytest.param("batch-proto", "batch", id="a batch's trial spec"),
        pytest.param("pipeline-steps", "pipeline", id="a pipeline's steps"),
    ],
)
def test_a_fifo_in_place_of_a_loops_spec_reads_as_none_not_waited_on(tmp_path: pathlib.Path, name: str, read: str) -> None:
    # Read at start-up (reconcile) on the I/O thread: a FIFO there would hold the daemon.
    from guildd import batchspec, pipeline

    gdir = tmp_path / ".guild"
    gdir.mkdir()
    for other in {"batch.json", "batch-proto"} - {name}:
        (gdir / other).write_bytes(b"{}" if other.endswith(".json") else b"")
    os.mkfifo(gdir / name)
    reader = batchspec.read_spec if read == "batch" else pipeline.read_steps
    assert reader(tmp_path) is None
