"""Links that lead out of a run: planted in a run dir by its owner, or brought in by an
archive an import copies. `cat` and `ls` must not read through them, and an import must not
follow them out (its copies are links still, or left out; never the outside file's bytes)."""

import os

import grpc
import pytest

from guild_common.pb import guild_pb2 as pb
from tests.fuzz import messages


def read(stub, run, path):
    return b"".join(m.data for m in stub.ReadRunFile(pb.ReadRunFileRequest(selection=pb.RunSelection(runs=[run]), path=path), timeout=30))


def regular_files_holding(root, token):
    found = []
    for dirpath, _dirs, files in os.walk(root):  # os.walk doesn't descend into dir links
        for name in files:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p) and os.path.isfile(p):
                with open(p, "rb") as f:
                    if token in f.read():
                        found.append(p)
    return found


@pytest.mark.parametrize("path", ["link-out", "dir-out/canary.txt", "dir-out/../dir-out/canary.txt"])
def test_cat_refuses_links_out_of_the_run(box, stub, path):
    with pytest.raises(grpc.RpcError) as e:
        read(stub, messages.PLACES["run"], path)
    assert e.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED,
                              grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION), e.value.details()
    assert box.canary_token.decode() not in e.value.details()


@pytest.mark.parametrize("follow", [False, True])
def test_ls_does_not_list_what_a_link_out_holds(box, stub, follow):
    r = stub.ListRunFiles(pb.ListRunFilesRequest(selection=pb.RunSelection(runs=[messages.PLACES["run"]]), all=True,
                                                 follow_links=follow), timeout=30)
    paths = {f.path for f in r.files}
    assert "link-out" in paths and "dir-out" in paths
    assert not any(p.startswith("dir-out/") for p in paths), sorted(paths)


@pytest.mark.parametrize("move", [False, True])
def test_import_of_an_archive_holding_links_out_does_not_follow_them(box, stub, move):
    archive = box.base / "archive"
    run = messages.PLACES["run_link"]
    try:
        r = stub.ImportRuns(pb.ImportRunsRequest(dir=str(archive), move=move), timeout=60)
        results = {t.run_id: t.result for t in r.runs}
    except grpc.RpcError as e:
        assert e.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), e.details()
        results = {}
    assert (box.base / "outside" / "canary.txt").read_bytes() == box.canary_token + b"\n"
    assert not regular_files_holding(box.home, box.canary_token)
    imported = box.home / "runs" / run
    if results.get(run) in ("copied", "moved"):
        for name in ("link-out", "train.py"):
            assert not (imported / name).exists() or (imported / name).is_symlink()
        with pytest.raises(grpc.RpcError):
            read(stub, run, "train.py")
    assert not box.escapes() and not box.half_written()


def test_ls_following_links_that_loop_back_ends(box, stub, tmp_path):
    # Two links to the run's own dir: followed blindly they make 2^N paths. Last in this
    # module: a daemon that loops here is stuck for every test after it.
    run = messages.PLACES["run_other"]
    run_dir = box.home / "runs" / run
    os.symlink(".", run_dir / "loop-a")
    os.symlink(".", run_dir / "loop-b")
    try:
        r = stub.ListRunFiles(pb.ListRunFilesRequest(selection=pb.RunSelection(runs=[run]), follow_links=True), timeout=30)
    finally:
        os.unlink(run_dir / "loop-a")
        os.unlink(run_dir / "loop-b")
    paths = {f.path for f in r.files}
    assert {"loop-a", "loop-b", "train.py"} <= paths
    assert len(paths) < 100, len(paths)
