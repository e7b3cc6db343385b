"""guildctl's commands, in-process against a real daemon, with hostile values in the options
and arguments users type: a value or one clear line, never a traceback (guildctl's main()
turns our errors into one line; anything else would reach the user as a traceback)."""

import contextlib
import functools
import io
import os
import sys

import pytest
from hypothesis import given, settings, strategies as st

from guildctl.main import cli
from tests.fuzz import hostile
from tests.fuzz.figures import FIGURES
from tests.fuzz.messages import FILE_WORDS, RUN_WORDS, fill
from tests.fuzz.outcome import clear_or_value

# `V` is the fuzzed value; `{run}` and the other places are the fixture's.
COMMANDS = [
    ["runs", "-F", "V"], ["runs", "-S", "V"], ["runs", "info", "V"], ["runs", "V"], ["runs", "--json", "-n", "V"],
    ["compare", "-t", "-c", "V"], ["compare", "-t", "--min", "V"], ["compare", "--json", "-cc", "V"],
    ["select", "--max", "V"], ["select", "-a", "V", "{run}"],
    ["cat", "-p", "V", "{run}"], ["ls", "-p", "V", "{run}"], ["ls", "-L", "{run}", "-p", "V"], ["cat", "V"],
    ["run", "train.py", "x=V", "--stage", "-y"], ["run", "train.py", "--gpu-memory", "V", "--stage", "-y"],
    ["run", "train.py", "--priority", "V", "--stage", "-y"], ["run", "train.py", "--gpus", "V", "--stage", "-y"],
    ["run", "train.py", "--after", "V", "--stage", "-y"], ["run", "train.py", "x=[V]", "--stage", "-y", "--max-trials", "2"],
    ["queue", "priority", "V", "{run}"], ["queue", "priority", "1", "V"], ["queue", "cancel", "V"],
    ["label", "--set", "x", "V", "-y"], ["tag", "-a", "t", "V", "-y"], ["runs", "rm", "V"],
    ["diff", "{run}", "V"],
]
CLI_TEXT = st.one_of(hostile.text(), st.sampled_from(RUN_WORDS + FILE_WORDS).map(fill)).filter(lambda s: "\x00" not in s)


def guildctl(box, args):
    """guildctl ARGS in-process, its output and input bytes (an empty stdin: prompts abort)."""
    out, err = io.TextIOWrapper(io.BytesIO()), io.TextIOWrapper(io.BytesIO())
    stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(b""))
    try:
        with contextlib.chdir(box.guild.project), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                return cli.main(args=["-H", str(box.home), "--no-autostart", *args], prog_name="guildctl",
                                standalone_mode=False)
            except SystemExit as e:
                return e.code
            except OSError:  # main() says these in one line: a path the user named
                return 1
    finally:
        sys.stdin = stdin


@pytest.mark.parametrize("template", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_commands_take_any_value(box, template):
    @settings(max_examples=max(10, settings().max_examples // 2))  # a process's work per case
    @given(CLI_TEXT)
    def prop(value):
        FIGURES.tried(f"cli {template[0]}")
        args = [fill(a).replace("V", value) if "V" in a else fill(a) for a in template]
        clear_or_value(f"cli {template[0]}", functools.partial(guildctl, box), args)
        assert not box.escapes() and not box.half_written()

    prop()
