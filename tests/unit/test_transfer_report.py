"""What `guildctl export` and `import` print for each run: a run copied without the files its
caller may not read (another user's recorded environment, in a shared daemon) says so."""

from types import SimpleNamespace

import click
import pytest

from guildctl import cmd_manage


def _result(run_id: str, result: str, reason: str = "") -> SimpleNamespace:
    return SimpleNamespace(run_id=run_id, result=result, reason=reason)


def test_a_run_copied_without_what_the_caller_cannot_read_says_what_was_left_out(capsys: pytest.CaptureFixture) -> None:
    cmd_manage._report([_result("a" * 32, "copied", "left out what you cannot read: .guild/attrs/env"),
                        _result("b" * 32, "moved")], "Exported")
    out, err = capsys.readouterr()
    assert out == f"Copying {'a' * 32}\nMoving {'b' * 32}\nExported 2 run(s)\n"
    assert err == "  left out what you cannot read: .guild/attrs/env\n"


def test_a_skipped_run_is_a_warning_and_exits_1(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(click.exceptions.Exit) as exit:
        cmd_manage._report([_result("a" * 32, "skipped", f"{'a' * 32} exists, skipping")], "Imported")
    out, err = capsys.readouterr()
    assert exit.value.exit_code == 1
    assert (out, err) == ("Imported 0 run(s)\n", f"WARNING: {'a' * 32} exists, skipping\n")
