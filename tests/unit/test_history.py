"""guildd.history: a run's scalars as plot series."""

import pytest

from guildd import history

SERIES = [
    ("no values", [], 0, []),
    ("one tag in step order", [("loss", 0.5, 0), ("loss", 0.4, 1)], 0, [("loss", [0, 1], [0.5, 0.4])]),
    ("steps written out of order are sorted", [("loss", 0.4, 2), ("loss", 0.5, 1)], 0, [("loss", [1, 2], [0.5, 0.4])]),
    ("a step written again keeps its last value", [("loss", 0.5, 1), ("loss", 0.3, 1)], 0, [("loss", [1], [0.3])]),
    ("tags sorted, each its own series", [("x", 1.0, 0), ("a#y", 2.0, 0), ("x", 3.0, 1)], 0,
     [("a#y", [0], [2.0]), ("x", [0, 1], [1.0, 3.0])]),
    ("thinned per tag", [("loss", float(i), i) for i in range(10)], 3, [("loss", [0, 4, 9], [0.0, 4.0, 9.0])]),
]


@pytest.mark.parametrize("scalars, max_points, expected", [c[1:] for c in SERIES], ids=[c[0] for c in SERIES])
def test_series(scalars, max_points, expected):
    assert history.series(scalars, max_points) == expected


THIN = [
    ("all when 0", 5, 0, [0, 1, 2, 3, 4]),
    ("all when few enough", 5, 5, [0, 1, 2, 3, 4]),
    ("first and last kept", 100, 2, [0, 99]),
    ("evenly spread", 101, 5, [0, 25, 50, 75, 100]),
    ("one point: the last", 10, 1, [9]),
    ("never more than asked", 1000, 7, [0, 166, 333, 500, 666, 832, 999]),
]


@pytest.mark.parametrize("n, max_points, steps", [c[1:] for c in THIN], ids=[c[0] for c in THIN])
def test_thin(n, max_points, steps):
    points = [(i, float(i)) for i in range(n)]
    assert [s for s, _ in history.thin(points, max_points)] == steps
