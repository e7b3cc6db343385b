"""The compare table's pure state: cell text, sorting, moving, scrolling windows, truncation."""

import pytest

from guildctl import tui
from guildctl.tui import CELL, CURRENT, HEADER, PINNED, Viewport

# cell text and truncation


@pytest.mark.parametrize(
    "value, text",
    [
        (None, ""),
        (1, "1"),
        (0.5, "0.500000"),  # floats with 6 decimals, as Guild's tables
        (1e-7, "0.000000"),
        (True, "True"),
        ("a\nb\tc", "a b c"),  # one screen line per cell
        ("", ""),
    ],
)
def test_format_cell(value, text):
    assert tui.format_cell(value) == text


@pytest.mark.parametrize(
    "text, width, out",
    [
        ("abc", 5, "abc"),
        ("abcde", 5, "abcde"),
        ("abcdef", 5, "abcd…"),
        ("abcdef", 1, "a"),
        ("", 0, ""),
    ],
)
def test_truncate(text, width, out):
    assert tui.truncate(text, width) == out


def test_truncate_ascii_ellipsis():
    assert tui.truncate("abcdef", 5, ellipsis="~") == "abcd~"


def test_column_widths_from_content_capped():
    view = Viewport(["run", "label", "loss"], [["a", "x" * 50, 0.5], ["bb", None, 12.25]])
    assert view.widths == [3, tui.MAX_WIDTH, len("12.250000")]
    label = [text for y, x, text, style in view.visible_cells(10, 200) if y == 1][1]
    assert label == "x" * (tui.MAX_WIDTH - 1) + "…"


# sorting


def col(view, c):
    return [r[c] for r in view.rows]


def test_sort_numbers_as_numbers_empty_last_both_ways():
    rows = [["a", 10], ["b", None], ["c", 9.5], ["d", 100], ["e", ""], ["f", -1]]
    view = Viewport(["run", "x"], rows)
    view.goto(col=1)
    view.press("1")
    assert col(view, 1) == [-1, 9.5, 10, 100, None, ""]
    view.press("2")
    assert col(view, 1) == [100, 10, 9.5, -1, None, ""]
    assert (view.sort_col, view.descending) == (1, True)


def test_sort_strings_case_insensitive():
    view = Viewport(["run"], [["beta"], ["Alpha"], [None], ["alpha2"], ["Gamma"]])
    view.sort(0)
    assert col(view, 0) == ["Alpha", "alpha2", "beta", "Gamma", None]
    view.sort(0, descending=True)
    assert col(view, 0) == ["Gamma", "beta", "alpha2", "Alpha", None]


def test_sort_nan_goes_with_empties_and_mixed_puts_numbers_first():
    rows = [["a", "n/a"], ["b", float("nan")], ["c", 2], ["d", 1]]
    assert [r[0] for r in tui.sort_rows(rows, 1)] == ["d", "c", "a", "b"]


def test_sort_is_stable_and_goes_to_first_row():
    rows = [["r1", 1], ["r2", 0], ["r3", 1], ["r4", 0]]
    view = Viewport(["run", "x"], rows)
    view.goto(row=2, col=1)
    view.press("1")
    assert col(view, 0) == ["r2", "r4", "r1", "r3"]
    assert (view.row, view.col) == (0, 1)


def test_status_line_shows_row_sort_and_title():
    view = Viewport(["run", "loss"], [["a", 2.0], ["b", 1.0]], title="compare")
    view.goto(row=1, col=1)
    view.press("2")
    line = view.status_line(120)
    assert len(line) == 119
    assert "row 1 of 2" in line
    assert "sorted by loss descending" in line
    assert "compare" in line


def test_status_line_empty_table():
    assert "row 0 of 0" in Viewport(["run"], []).status_line(80)


# moving


def grid(nrows=200, ncols=15):
    header = ["run"] + [f"col{c}" for c in range(1, ncols)]
    rows = [[f"run{r}"] + [r * c for c in range(1, ncols)] for r in range(nrows)]
    return Viewport(header, rows, title="t")


def test_moves_clamp_at_edges():
    view = grid()
    view.press("up")
    view.press("left")
    assert (view.row, view.col) == (0, 0)
    view.press("G")
    view.press("end")
    assert (view.row, view.col) == (199, 14)
    view.press("down")
    view.press("right")
    assert (view.row, view.col) == (199, 14)
    view.press("g")
    view.press("home")
    assert (view.row, view.col) == (0, 0)


def test_page_keys_and_unknown_keys():
    view = grid()
    view.press("npage", page=20)
    assert view.row == 20
    view.press("ppage", page=50)
    assert view.row == 0
    assert view.press("z") is False
    assert view.press(None) is False


def test_find_wraps_and_reports_misses():
    view = grid()
    view.goto(row=150)
    assert view.find("run12")  # run12 is the next match after row 150, wrapping round
    assert view.row == 12
    assert not view.find("nope")
    assert view.row == 12


def test_empty_table_moves_and_draws():
    view = Viewport([], [])
    view.press("down")
    view.press("2")
    assert view.visible_cells(10, 80) == []


# scrolling windows


def rows_shown(cells):
    return sorted({y for y, x, text, style in cells if y > 0})


def test_header_stays_and_rows_scroll_with_cursor():
    view = grid()
    cells = view.visible_cells(11, 200)  # header + 10 rows
    assert [t.strip() for y, x, t, s in cells if y == 0][:2] == ["run", "col1"]
    assert rows_shown(cells) == list(range(1, 11))
    view.goto(row=15)
    cells = view.visible_cells(11, 200)
    assert view.top == 6
    assert {s for y, x, t, s in cells if y == 0} == {HEADER}
    first = [t for y, x, t, s in cells if y == 1 and x == 0]
    assert first == ["run6  "]  # padded to the widest run, "run199"
    view.goto(row=3)
    view.visible_cells(11, 200)
    assert view.top == 3


def test_current_cell_and_pinned_column_styles():
    view = grid()
    view.goto(row=1, col=2)
    cells = view.visible_cells(11, 200)
    current = [(y, t) for y, x, t, s in cells if s == CURRENT]
    assert current == [(2, "   2")]  # row 1 * col 2, right-aligned in the width-4 numeric column
    assert {s for y, x, t, s in cells if x == 0 and y > 0} == {PINNED}
    assert CELL in {s for y, x, t, s in cells}


def test_first_column_pinned_while_scrolling_right():
    view = grid()
    view.press("end")
    cells = view.visible_cells(11, 40)
    header = [t.strip() for y, x, t, s in cells if y == 0]
    assert header[0] == "run"
    assert header[-1] == "col14"
    assert all(x + len(t) <= 40 for y, x, t, s in cells)
    assert view.left > 1
    # Back to the left: the window follows the cursor.
    view.press("home")
    view.press("right")
    view.visible_cells(11, 40)
    assert view.left == 1


def test_last_column_cut_at_screen_edge():
    view = grid()
    # run 0-6, col1 8-12, col2 14-18, col3 starts at 20 and is 4 wide: cut to 3.
    cells = view.visible_cells(5, 23)
    assert max(x + len(t) for y, x, t, s in cells) == 23
    assert [t for y, x, t, s in cells if y == 0][-1] == "col"


def test_resize_larger_fills_screen():
    view = grid(nrows=30)
    view.press("G")
    view.press("end")
    view.visible_cells(6, 30)
    assert view.top == 25 and view.left > 1
    cells = view.visible_cells(100, 500)  # everything fits now
    assert (view.top, view.left) == (0, 1)
    assert rows_shown(cells) == list(range(1, 31))
    assert len([1 for y, x, t, s in cells if y == 0]) == 15


def test_tiny_screens_do_not_fail():
    view = grid()
    assert view.visible_cells(0, 80) == []
    assert view.visible_cells(1, 80)  # header only
    view.press("G")
    assert view.visible_cells(2, 3)


def test_help_lists_keys():
    text = "\n".join(tui.help_lines())
    for key in ("PgUp", "Home", "g / G", "1", "2", "?", "q"):
        assert key in text
