"""How guildctl shows operations in run lists (Guild's `Displayed As` table, 001:L23269)."""

import pytest

from guild_common.pb import guild_pb2 as pb
from guildctl import output


@pytest.mark.parametrize(
    "origin, cwd, shown",
    [
        ("/p", "/p", "train.py"),
        ("/p", "/p/a", "train.py (../)"),
        ("/p", "/p/a/b", "train.py (/p)"),
        ("/p/a", "/p", "train.py (a)"),
        ("/p/a", "/p/b", "train.py (../a)"),
        ("/p/a/b", "/p", "train.py (a/b)"),
        ("/p/a/b", "/p/a", "train.py (b)"),
        ("/p/a/b", "/p/b", "train.py (../a/b)"),
    ],
)
def test_operation_shows_where_it_came_from(origin, cwd, shown):
    run = pb.Run(op_name="train.py", opref=f"script:{origin} '' '' train.py")
    assert output.op_display(run, cwd) == shown


def test_marked_runs_say_so():
    run = pb.Run(op_name="train.py", opref="script:/p '' '' train.py", marked=True)
    assert output.op_display(run, "/p") == "train.py [marked]"
