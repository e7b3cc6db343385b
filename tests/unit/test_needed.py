"""`run --needed`'s rule (guildd.needed): which runs make a new run needless, as Guild 0.9
decides it."""

import json

import pytest

from guildd import needed
from guildd.store import RunRecord

OPREF = "script:/p '' '' echo.py"


def rec(id, status="completed", opref=OPREF, **flags):
    return RunRecord(id=id, op_name="echo.py", opref=opref, status=status, flags_json=json.dumps(flags or {"x": 1}))


@pytest.mark.parametrize(
    "run, matches",
    [
        (rec("a"), True),
        (rec("a", x=1.0), True),  # 1 and 1.0 are the same value, as in Guild
        (rec("a", x=2), False),
        (rec("a", x=1, y=2), False),  # a flag more is other flags
        (rec("a", opref="script:/other '' '' echo.py"), False),  # another project's echo.py
        (rec("a", status="staged"), True),
        (rec("a", status="running"), True),
        (rec("a", status="terminated"), True),
        (rec("a", status="pending"), False),  # not started yet: not done
        (rec("a", status="error"), False),  # failed: worth running again
    ],
)
def test_matching(run, matches):
    assert needed.matching([run], OPREF, {"x": 1}) == ([run] if matches else [])


@pytest.mark.parametrize(
    "status, op_attr, opt_flags, batch_opt_flags, counted",
    [
        ("completed", {}, None, None, True),
        ("completed", None, None, None, True),  # no readable op attr: it counts
        ("completed", {"delete-on-success": True}, None, None, False),  # on its way to the trash
        ("terminated", {"delete-on-success": True}, None, None, True),  # stays
        ("completed", {}, {"xi": 0.1}, {"xi": 0.1}, True),
        ("completed", {}, {"xi": 0.1}, {"xi": 0.05}, False),  # other optimizer flags
        ("completed", {}, {}, None, False),  # asked for a batch: a run without a batch spec isn't one
    ],
)
def test_counts(status, op_attr, opt_flags, batch_opt_flags, counted):
    assert needed.counts(status, op_attr, opt_flags, batch_opt_flags) is counted
