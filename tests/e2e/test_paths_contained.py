"""Every path the daemon writes or reads for a request stays where it belongs: inside the run's
own dir, inside GUILD_HOME, or in an absolute directory the client named. A guild.yml from a
cloned project, or a hostile client on the socket, must not make guildd write elsewhere."""

import os
import pathlib
import subprocess
import sys

import grpc
import pytest

from guild_common import home as homelib
from guild_common.pb import guild_pb2 as pb, guild_pb2_grpc
from tests.e2e.conftest import Guild

TRAIN = "print('loss: 0.5')\n"


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    base = tmp_path_factory.mktemp("paths")
    proj = base / "proj"
    proj.mkdir()
    (proj / "train.py").write_text(TRAIN)
    guild = Guild(base / "guild-home", proj)
    # The daemon's working directory is a temp dir of its own, so a relative path it wrongly
    # accepted would land somewhere this test can see (and never in the source tree).
    cwd = base / "daemon-cwd"
    cwd.mkdir()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        guild.start_daemon()
    finally:
        os.chdir(old)
    guild.daemon_cwd = cwd
    yield guild
    guild.stop()


@pytest.fixture
def stub(g):
    channel = grpc.insecure_channel(f"unix:{homelib.socket_connect_path(g.home)}")
    yield guild_pb2_grpc.GuildStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def done_run(g):
    """A completed run of train.py."""
    g.ctl("run", "train.py", "-y")
    return g.runs()[0]["id"]


def run_ids(g):
    return {p.name for p in g.run_dirs()}


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in pathlib.Path(path).rglob("*"))


def one_line_error(r):
    assert r.returncode != 0, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "INTERNAL" not in r.stderr and "Traceback" not in r.stderr
    return lines[0]


def climbing_to(target):
    """A relative path that climbs from any run dir up to / and down to `target`."""
    return "../" * 40 + str(target).lstrip("/")


def spec(files=(), dest=""):
    return pb.RunSpec(
        op_name="x.py",
        opref="script:/tmp '' '' x.py",
        cmd_args=[sys.executable, "-c", "pass"],
        flags_json="{}",
        user_flags_json="{}",
        python_exe=sys.executable,
        sourcecode=[pb.SourceFile(path=p, data=b"written by a hostile client\n", mode=0o644) for p in files],
        sourcecode_dest=dest,
    )


# (a) a guild.yml's sourcecode dest


def test_guildfile_sourcecode_dest_outside_the_run_is_refused(g, tmp_path):
    outside = tmp_path / "outside"
    proj = tmp_path / "evil-proj"
    proj.mkdir()
    (proj / "train.py").write_text(TRAIN)
    (proj / "guild.yml").write_text(
        f"train:\n  exec: echo ok\n  sourcecode:\n    dest: {climbing_to(outside / 'x')}\n"
    )
    before = run_ids(g)
    r = g.ctl("run", "train", "-y", cwd=proj, check=False)
    line = one_line_error(r)
    assert "dest" in line and "outside the run directory" in line
    assert not outside.exists()
    assert run_ids(g) == before


def test_guildfile_absolute_sourcecode_dest_is_refused(g, tmp_path):
    outside = tmp_path / "outside"
    proj = tmp_path / "evil-proj"
    proj.mkdir()
    (proj / "train.py").write_text(TRAIN)
    (proj / "guild.yml").write_text(f"train:\n  exec: echo ok\n  sourcecode:\n    dest: {outside}\n")
    before = run_ids(g)
    line = one_line_error(g.ctl("run", "train", "-y", cwd=proj, check=False))
    assert "dest" in line
    assert not outside.exists()
    assert run_ids(g) == before


def test_guildfile_sourcecode_dest_inside_the_run_still_works(g, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text(TRAIN)
    (proj / "guild.yml").write_text("train:\n  exec: echo ok\n  sourcecode:\n    dest: src/./code\n")
    g.ctl("run", "train", "-y", cwd=proj)
    run_dir = g.home / "runs" / g.runs()[0]["id"]
    assert (run_dir / "src" / "code" / "train.py").read_text() == TRAIN


# (b) a hostile client's StartRun


@pytest.mark.parametrize(
    "files, dest",
    [
        (["{outside}/abs/x"], ""),
        (["../x"], ""),
        (["a/../../x"], ""),
        (["x"], "../../.."),
        (["x"], "{outside}"),
        (["ok.py", "../x"], ""),
        ([".guild/attrs/exit_status"], ""),
        (["exit_status"], ".guild/attrs"),
        (["x\0y"], ""),
    ],
    ids=["absolute", "dotdot", "a-dotdot-dotdot", "dest-dotdot", "dest-absolute", "second-file", "attrs", "dest-attrs", "nul"],
)
def test_start_run_with_paths_outside_the_run_is_refused(g, stub, tmp_path, files, dest):
    outside = tmp_path / "outside"
    files = [f.format(outside=outside) for f in files]
    dest = dest.format(outside=outside)
    before = run_ids(g)
    home_files = set(files_under(g.home))
    with pytest.raises(grpc.RpcError) as e:
        stub.StartRun(pb.StartRunRequest(spec=spec(files, dest), stage=True), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert len(e.value.details().splitlines()) == 1
    assert not outside.exists()
    assert not (tmp_path / "x").exists()
    assert run_ids(g) == before
    # `../x` and `a/../../x` would be GUILD_HOME/runs/x; dest `../../..` GUILD_HOME's parent.
    assert not (g.home / "runs" / "x").exists()
    assert not (g.home.parent / "x").exists()
    assert set(files_under(g.home)) - home_files <= {"guildd.log"}


def test_batch_and_pipeline_with_paths_outside_are_refused_before_any_run(g, stub):
    # A batch's trials and a pipeline's steps are made later: their snapshots are checked now.
    before = run_ids(g)
    batch = pb.StartBatchRequest(
        proto=spec(["../x"]), batch=pb.BatchSpec(kind="grid", trials_json='[{}]'), batch_op_name="x.py+"
    )
    with pytest.raises(grpc.RpcError) as e:
        stub.StartBatch(batch, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    pipeline = spec()
    pipeline.steps.add(name="step", spec=spec(["x"], "../../.."))
    with pytest.raises(grpc.RpcError) as e:
        stub.StartRun(pb.StartRunRequest(spec=pipeline), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert run_ids(g) == before
    assert not (g.home / "runs" / "x").exists() and not (g.home.parent / "x").exists()


def test_start_run_with_contained_paths_is_accepted(g, stub):
    # The same request with harmless paths works: the refusals above are about the paths.
    resp = stub.StartRun(pb.StartRunRequest(spec=spec(["a/b/../x.py", "y.py"], "src"), stage=True), timeout=30)
    run_dir = pathlib.Path(resp.run.run_dir)
    assert (run_dir / "src" / "a" / "x.py").exists() and (run_dir / "src" / "y.py").exists()


def test_start_proto_run_with_paths_outside_is_refused(g, stub, done_run, tmp_path):
    before = run_ids(g)
    req = pb.StartProtoRunRequest(proto=done_run, stage=True, sourcecode=[pb.SourceFile(path="../../x", data=b"x")])
    with pytest.raises(grpc.RpcError) as e:
        stub.StartProtoRun(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert run_ids(g) == before
    assert not (g.home / "x").exists()


# Restart and proto read the run's own manifest, which the run's process can rewrite.


def tampered_run(g, victim):
    g.ctl("run", "train.py", "-y")
    run_id = g.runs()[0]["id"]
    manifest = g.home / "runs" / run_id / ".guild" / "manifest"
    manifest.write_text(manifest.read_text() + f"s {victim} 0 {victim}\n")
    return run_id


def test_restart_force_sourcecode_with_a_tampered_manifest_unlinks_nothing_outside(g, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    run_id = tampered_run(g, climbing_to(victim))
    r = g.ctl("run", "--restart", run_id, "--force-sourcecode", "-y", check=False)
    line = one_line_error(r)
    assert "manifest" in line and "outside the run directory" in line
    assert victim.read_text() == "keep me\n"
    assert g.info(run_id)["status"] == "completed"


def test_proto_with_a_tampered_manifest_reads_nothing_outside(g, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours\n")
    run_id = tampered_run(g, str(secret))
    before = run_ids(g)
    r = g.ctl("run", "--proto", run_id, "-y", check=False)
    line = one_line_error(r)
    assert "manifest" in line and "outside the run directory" in line
    assert run_ids(g) == before


# ls and cat


def test_cat_and_ls_refuse_paths_outside_the_run(g, done_run, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("elsewhere\n")
    for path in ("../" + done_run + "/.guild/attrs/id", str(other), climbing_to(other)):
        line = one_line_error(g.ctl("cat", done_run, "-p", path, check=False))
        assert "outside the run directory" in line
        line = one_line_error(g.ctl("ls", done_run, "-p", path, check=False))
        assert "outside the run directory" in line


def test_cat_refuses_a_link_that_leads_outside_the_run(g, done_run, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("elsewhere\n")
    run_dir = g.home / "runs" / done_run
    (run_dir / "link.txt").symlink_to(other)
    (run_dir / "inside.txt").symlink_to("train.py")
    try:
        line = one_line_error(g.ctl("cat", done_run, "-p", "link.txt", check=False))
        assert "link.txt" in line and "outside the run directory" in line
        assert g.ctl("cat", done_run, "-p", "inside.txt").stdout == TRAIN
        listed = g.ctl("ls", done_run, "-n").stdout.split()
        assert "link.txt" in listed and "inside.txt" in listed
    finally:
        (run_dir / "link.txt").unlink()
        (run_dir / "inside.txt").unlink()


# (c) export into GUILD_HOME's runs


def test_export_into_the_run_being_exported_is_refused(g, done_run):
    run_dir = g.home / "runs" / done_run
    before = files_under(run_dir)
    line = one_line_error(g.ctl("export", str(run_dir / "exported"), done_run, "-y", check=False))
    assert "export" in line and str(g.home / "runs") in line
    assert files_under(run_dir) == before


def test_export_into_guild_home_runs_is_refused(g, done_run):
    before = run_ids(g)
    for dest in (g.home / "runs", g.home / "runs" / "sub", g.home / "trash" / "runs" / "sub"):
        line = one_line_error(g.ctl("export", str(dest), done_run, "-y", check=False))
        assert "export" in line
    assert run_ids(g) == before
    assert not (g.home / "trash" / "runs" / "sub").exists()


def test_export_through_a_link_into_guild_home_runs_is_refused(g, done_run, tmp_path):
    link = tmp_path / "runs-link"
    link.symlink_to(g.home / "runs")
    before = run_ids(g)
    one_line_error(g.ctl("export", str(link / "sub"), done_run, "-y", check=False))
    assert run_ids(g) == before


# (d) relative and empty directories over the socket


@pytest.mark.parametrize("dir_", ["out", "./out", ""])
def test_export_runs_with_a_relative_dir_is_refused(g, stub, done_run, dir_):
    sel = pb.RunSelection(runs=[done_run])
    with pytest.raises(grpc.RpcError) as e:
        stub.ExportRuns(pb.ExportRunsRequest(dir=dir_, selection=sel), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert files_under(g.daemon_cwd) == []


@pytest.mark.parametrize("dir_", ["out", "./out", ""])
def test_import_runs_with_a_relative_dir_is_refused(g, stub, dir_, tmp_path):
    with pytest.raises(grpc.RpcError) as e:
        stub.ImportRuns(pb.ImportRunsRequest(dir=dir_), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        stub.ListRuns(pb.ListRunsRequest(filter=pb.RunFilter(archive=dir_ or ".")), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_guildctl_export_and_import_a_relative_dir(g, done_run):
    # guildctl makes a command line's relative path absolute before sending it.
    out = g.project / "out"
    g.ctl("export", "./out", done_run, "-y")
    assert (out / done_run / ".guild" / "attrs" / "id").exists()
    listed = g.ctl("runs", "--archive", "out", "--json").stdout
    assert done_run in listed
    r = g.ctl("import", "out", "-y", check=False)
    assert f"{done_run} exists, skipping" in r.stderr
    assert files_under(g.daemon_cwd) == []
