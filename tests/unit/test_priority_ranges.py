"""Priorities the queue can hold (protobuf int32): a larger one is a clear error, not a traceback."""

from click.testing import CliRunner

from guild_common import errors

from guildctl.main import cli


def test_run_priority_out_of_range_is_a_usage_error():
    r = CliRunner().invoke(cli, ["run", "train.py", "--priority", "99999999999999999999999", "-y"])
    assert r.exit_code == 2 and "is not in the range -2147483648<=x<=2147483647" in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_queue_priority_out_of_range_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("GUILD_HOME", str(tmp_path))
    monkeypatch.setenv("GUILDCTL_NO_AUTOSTART", "1")
    # Raised before any daemon is reached; guildctl's main() prints it as one line.
    r = CliRunner().invoke(cli, ["queue", "priority", "1", "99999999999999999999"])
    assert isinstance(r.exception, errors.InvalidArgument)
    assert str(r.exception) == "invalid priority '99999999999999999999': expected an integer from -2147483648 to 2147483647"
