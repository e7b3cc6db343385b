"""A run's scalars as series for plots (GetRunScalars): every value by step, per tag, thinned
to a number of points a page can draw. Pure; the values come from
guildd.manage.run_scalars."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Series = tuple[str, list[int], list[float]]  # (tag, steps, values)


def series(scalars: Iterable[tuple[str, float, int]], max_points: int = 0) -> list[Series]:
    """(key, value, step) values, in the order they were written, as one series per tag
    (tags sorted), each ordered by step (a step written twice keeps its last value, as a
    restarted run that logs a step again means it), at most `max_points` values each (0: all)."""
    by_tag: dict[str, dict[int, float]] = {}
    for tag, value, step in scalars:
        by_tag.setdefault(tag, {})[step] = value
    out = []
    for tag in sorted(by_tag):
        points = sorted(by_tag[tag].items())
        kept = thin(points, max_points)
        out.append((tag, [s for s, _ in kept], [v for _, v in kept]))
    return out


def thin(points: Sequence[tuple[int, float]], max_points: int) -> list[tuple[int, float]]:
    """At most `max_points` of `points`, evenly spread, the first and the last always kept;
    all of them when `max_points` is 0 or they are few enough."""
    n = len(points)
    if max_points <= 0 or n <= max_points:
        return list(points)
    if max_points == 1:
        return [points[-1]]
    picks = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
    return [points[i] for i in picks]
