"""The servicers in-process: guildd's serve() on its own loop thread with a temp GUILD_HOME,
called through guildctl's Client over the real Unix socket."""

import json
import sys
import threading

import pytest

from guild_common import errors, opconfig
from guild_common.flagdef import FlagDef
from guild_common.pb import guild_pb2 as pb
from guildctl.client import Client
from guildd import server


@pytest.fixture
def client(tmp_path):
    home = tmp_path / "home"
    ready = threading.Event()
    # The daemon runs on its own loop thread: a sync client on the server's loop would deadlock.
    thread = threading.Thread(
        target=server.serve, args=(home,), kwargs={"handle_signals": False, "log_to_stderr": False, "ready": ready.set}
    )
    thread.start()
    assert ready.wait(20)
    c = Client(home, autostart=False)
    yield c
    c.shutdown_daemon()
    thread.join(20)
    assert not thread.is_alive()


def spec(tmp_path, code, **flags):
    script = tmp_path / "op.py"
    script.write_text(code)
    return pb.RunSpec(
        op_name="op.py",
        opref=f"script:{tmp_path} '' '' op.py",
        cmd_args=["${python_exe}", "-u", "op.py", "__flag_args__"],
        flags_dest="args",
        flags_json=json.dumps(flags),
        sourcecode=[pb.SourceFile(path="op.py", data=script.read_bytes(), mode=0o644)],
        python_exe=sys.executable,
        env={"PATH": "/usr/bin:/bin"},
    )


def ended(client, run_id):
    msgs = list(client.watch_run(run_id))
    assert msgs[0].WhichOneof("event") == "run"
    assert msgs[-1].WhichOneof("event") == "ended"
    out = b"".join(m.output for m in msgs if m.WhichOneof("event") == "output")
    return out, msgs[-1].ended


def test_daemon_info(client):
    info = client.daemon_info()
    assert info.version and info.pid > 0 and info.guild_home.endswith("home")


def test_start_run_and_watch_to_the_end(client, tmp_path):
    run = client.start_run(spec(tmp_path, "import sys\nprint('hello', sys.argv[1:])\n", a=1))
    assert run.status == "running" and len(run.id) == 32
    out, end = ended(client, run.id)
    assert out == b"hello ['--a', '1']\n"
    assert end.status == "completed" and end.has_exit_status and end.exit_status == 0


def test_staged_run_can_be_stopped_before_it_starts(client, tmp_path):
    client.configure_queue(paused=True)  # queue processing off (a fresh daemon's default)
    run = client.start_run(spec(tmp_path, "print('x')\n"), stage=True)
    assert run.status == "staged"
    stopped = client.stop_runs([run.id])
    assert [r.status for r in stopped] == ["terminated"]


def test_spec_without_command_is_invalid(client):
    with pytest.raises(errors.InvalidArgument, match="no command"):
        client.start_run(pb.RunSpec(op_name="x"))


def test_bad_flags_json_is_invalid(client, tmp_path):
    s = spec(tmp_path, "pass\n")
    s.flags_json = "[1, 2]"
    with pytest.raises(errors.InvalidArgument, match="expected an object"):
        client.start_run(s)


def _bad_scalars(s):
    bad = pb.RunSpec()
    bad.CopyFrom(s)
    bad.output_scalars_json = json.dumps("(((")
    return bad


@pytest.mark.parametrize(
    "how",
    [
        lambda c, s: c.start_run(_bad_scalars(s)),
        lambda c, s: c.start_run(_bad_scalars(s), stage=True),
        lambda c, s: c.start_run(pb.RunSpec(op_name="pipe", steps=[pb.StepSpec(name="a", spec=s), pb.StepSpec(name="b", spec=_bad_scalars(s))])),
        lambda c, s: c.start_batch(proto=_bad_scalars(s), batch=pb.BatchSpec(kind="grid", trials_json='[{"a": 1}]'), batch_op_name="op.py+"),
    ],
    ids=["start", "stage", "pipeline-step", "batch"],
)
def test_bad_output_scalars_are_refused_before_any_run_exists(client, tmp_path, how):
    with pytest.raises(errors.InvalidArgument, match=r"^invalid output scalar config: '\(\(\(': "):
        how(client, spec(tmp_path, "print('loss: 1')\n"))
    assert not (client.home / "runs").exists() or list((client.home / "runs").iterdir()) == []
    assert client.list_runs() == ([], 0)


def test_output_scalars_that_are_not_json_are_invalid(client, tmp_path):
    s = spec(tmp_path, "pass\n")
    s.output_scalars_json = "{not json"
    with pytest.raises(errors.InvalidArgument, match="^invalid output scalar config: "):
        client.start_run(s)


def test_restart_with_a_bad_output_scalars_is_refused(client, tmp_path):
    run = client.start_run(spec(tmp_path, "print('loss: 1')\n"))
    ended(client, run.id)
    op = client.home / "runs" / run.id / ".guild" / "attrs" / "op"
    op.write_text(op.read_text().replace("output-scalars: null", "output-scalars: '((('"))
    with pytest.raises(errors.InvalidArgument, match="invalid output scalar config"):
        client.restart_run(run=run.id)
    assert client.get_run(run.id).status == "completed"


def test_unknown_and_ambiguous_runs(client, tmp_path):
    with pytest.raises(errors.NotFound, match="there are no runs"):
        client.get_run("")
    with pytest.raises(errors.NotFound, match="could not find run 'ffff'"):
        client.get_run("ffff")
    # Stage runs until two ids share a first letter (a digit would be read as an index).
    firsts = []
    while not any(firsts.count(c) > 1 for c in firsts if c.isalpha()):
        firsts.append(client.start_run(spec(tmp_path, "pass\n"), stage=True).id[0])
    dup = next(c for c in firsts if c.isalpha() and firsts.count(c) > 1)
    with pytest.raises(errors.InvalidArgument, match=f"run '{dup}' is ambiguous"):
        client.get_run(dup)


def test_list_runs_latest_first_with_index_resolution(client, tmp_path):
    client.configure_queue(paused=True)
    made = [client.start_run(spec(tmp_path, "pass\n"), stage=True).id for _ in range(3)]
    runs, total = client.list_runs()
    assert total == 3 and [r.id for r in runs] == made[::-1]
    assert client.get_run("1").id == made[-1]
    assert client.get_run("3").id == made[0]
    runs, total = client.list_runs(limit=2)
    assert len(runs) == 2 and total == 3


def test_restart_of_a_running_run_is_refused(client, tmp_path):
    run = client.start_run(spec(tmp_path, "import time\ntime.sleep(30)\n"))
    with pytest.raises(errors.FailedPrecondition, match="stop it before restarting"):
        client.restart_run(run=run.id)
    client.stop_runs([run.id])
    _out, end = ended(client, run.id)
    assert end.status == "terminated"


def test_scalars_are_indexed_and_summarized(client, tmp_path):
    code = "for i, v in enumerate([3.0, 1.0, 2.0]):\n    print('step: %d' % i)\n    print('loss: %s' % v)\n"
    run = client.start_run(spec(tmp_path, code))
    _out, end = ended(client, run.id)
    assert end.status == "completed"
    (s,) = client.get_run(run.id).scalars  # waits for the last of the output to be indexed
    assert (s.tag, s.first, s.last, s.min, s.min_step, s.max, s.max_step, s.count) == ("loss", 3.0, 2.0, 1.0, 1, 3.0, 0, 3)
    assert s.total == pytest.approx(6.0)


def test_flag_defs_travel_with_the_spec(client, tmp_path):
    s = spec(tmp_path, "import sys\nprint(sys.argv[1:])\n", fast=True, lr=0.1)
    s.flag_defs.append(opconfig.flagdef_to_pb(FlagDef(name="fast", arg_switch=True)))
    s.flag_defs.append(opconfig.flagdef_to_pb(FlagDef(name="lr", arg_name="learning-rate")))
    out, _end = ended(client, client.start_run(s).id)
    assert out == b"['--fast', '--learning-rate', '0.1']\n"


def test_watch_resumes_from_an_offset(client, tmp_path):
    run = client.start_run(spec(tmp_path, "print('abc')\nprint('def')\n"))
    ended(client, run.id)
    msgs = list(client.watch_run(run.id, offset=4))
    assert b"".join(m.output for m in msgs if m.WhichOneof("event") == "output") == b"def\n"


@pytest.mark.parametrize("offset, expected", [(2**62, b""), (8, b""), (7, b"\n")], ids=["far past the end", "at the end", "before the last byte"])
def test_watch_from_past_the_end_of_the_output_gets_nothing(client, tmp_path, offset, expected):
    run = client.start_run(spec(tmp_path, "print('abc')\nprint('def')\n"))
    ended(client, run.id)
    msgs = list(client.watch_run(run.id, offset=offset))
    assert b"".join(m.output for m in msgs if m.WhichOneof("event") == "output") == expected
    assert msgs[-1].WhichOneof("event") == "ended"


def test_watch_from_a_negative_offset_is_invalid(client, tmp_path):
    run = client.start_run(spec(tmp_path, "print('abc')\n"))
    ended(client, run.id)
    with pytest.raises(errors.InvalidArgument, match="invalid output offset -100"):
        list(client.watch_run(run.id, offset=-100))


def test_stop_with_nothing_running_stops_nothing(client):
    assert client.stop_runs() == []


def test_client_warns_when_the_daemon_is_another_version(client, monkeypatch, capsys):
    import guildctl.client

    monkeypatch.setattr(guildctl.client, "__version__", "0.0.0-other")
    Client(client.home, autostart=False)
    err = capsys.readouterr().err
    assert "guildctl: warning: guildd for" in err and "guildctl is 0.0.0-other" in err


def test_a_huge_run_id_is_not_found_with_a_bounded_message(client):
    with pytest.raises(errors.NotFound) as e:
        client.get_run("a" * 1_000_000)
    assert len(str(e.value)) < 2200 and "more characters" in str(e.value)


def test_deleting_runs_already_in_the_trash_is_refused_and_changes_nothing(client, tmp_path):
    # A filter of deleted runs once moved the trash to the trash (INTERNAL: FileNotFoundError).
    kept = client.start_run(spec(tmp_path, "pass\n"), stage=True)
    gone = client.start_run(spec(tmp_path, "pass\n"), stage=True)
    client.delete_runs(pb.RunSelection(runs=[gone.id]))
    with pytest.raises(errors.InvalidArgument, match="already deleted: purge them"):
        client.delete_runs(pb.RunSelection(filter=pb.RunFilter(deleted=True)))
    assert [r.id for r in client.list_runs()[0]] == [kept.id]
    assert [r.id for r in client.delete_runs(pb.RunSelection(filter=pb.RunFilter(deleted=True)), permanent=True)] == [gone.id]


def test_start_batch_with_json_that_is_not_what_guildctl_sends_is_refused(client, tmp_path):
    for field, text in [("trials_json", " "), ("trials_json", "[1]"), ("values_json", "[]"), ("trials_json", "[" * 5000)]:
        batch = pb.BatchSpec(kind="grid", **{field: text})
        with pytest.raises(errors.InvalidArgument, match="invalid batch"):
            client.start_batch(proto=spec(tmp_path, "pass\n"), batch=batch, needed=True)
