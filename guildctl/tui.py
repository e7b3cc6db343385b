"""The interactive table `guildctl compare` shows on a terminal, as Guild's tabview one does.

`Viewport` is the pure part (cursor, scrolling, sorting, which text goes where on the screen) so
tests need no terminal; `show_table()` is the thin curses shell that draws its cells and feeds it
key names. Plain curses, so it works over SSH.
"""

import curses
import locale
import math
import os

MAX_WIDTH = 30  # widest a column gets; longer text is cut with an ellipsis
GAP = 2  # spaces between columns

# Cell styles `visible_cells` hands the shell; the shell alone knows what they look like.
HEADER, CELL, PINNED, CURRENT = "header", "cell", "pinned", "current"

HELP = [
    ("arrows, h j k l", "move one cell"),
    ("PgUp / PgDn", "move one page"),
    ("Home / End, ^ $", "first / last column"),
    ("g / G", "first / last row"),
    ("1", "sort current column ascending"),
    ("2", "sort current column descending"),
    ("/ then n", "search rows, next match"),
    ("?", "this help"),
    ("q, Esc", "quit"),
]

# Key names `Viewport.press` understands, mapped to the move they make ("page" = one screen).
_MOVES = {
    "down": (1, 0), "j": (1, 0), "up": (-1, 0), "k": (-1, 0),
    "right": (0, 1), "l": (0, 1), "left": (0, -1), "h": (0, -1),
    "npage": ("page", 0), "ppage": ("-page", 0),
}


def format_cell(value):
    """A cell's text: None empty, floats with 6 decimals as Guild's tables, one line."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    text = str(value)
    return text if text.isprintable() else "".join(ch if ch.isprintable() else " " for ch in text)


def truncate(text, width, ellipsis="…"):
    if len(text) <= width:
        return text
    if width <= len(ellipsis):
        return text[:width]
    return text[: width - len(ellipsis)] + ellipsis


def _is_number(value):
    return isinstance(value, (int, float))


def _is_empty(value):
    # NaN sorts nowhere sensibly, so it goes last with the empty cells.
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _sort_key(value):
    # Numbers compare as numbers, text case-insensitively; in a mixed column numbers come first.
    if _is_number(value):
        return (0, value, "")
    return (1, 0, str(value).casefold())


def sort_rows(rows, col, descending=False):
    """Rows sorted stably on column `col`; empty cells stay last in both directions."""
    filled = [r for r in rows if not _is_empty(r[col])]
    empty = [r for r in rows if _is_empty(r[col])]
    return sorted(filled, key=lambda r: _sort_key(r[col]), reverse=descending) + empty


def help_lines():
    return [f"{keys:<18}{what}" for keys, what in HELP]


class Viewport:
    """Cursor, scroll offsets and sort order over a table of raw cell values.

    Mutable on purpose: it is one screen's state, changed key by key, and never shared.
    Column 0 (the run) is pinned at the left; `left` is the first scrollable column shown.
    """

    def __init__(self, header, rows, title="", ellipsis="…"):
        self.header = [format_cell(h) for h in header]
        ncols = len(self.header)
        self.rows = [(list(r) + [None] * ncols)[:ncols] for r in rows]
        self.title = title
        self.ellipsis = ellipsis
        self.widths = [
            min(MAX_WIDTH, max([len(self.header[c])] + [len(format_cell(r[c])) for r in self.rows]))
            for c in range(ncols)
        ]
        # Numeric columns are right-aligned, header included.
        self.numeric = [
            any(_is_number(r[c]) for r in self.rows)
            and all(_is_number(r[c]) or _is_empty(r[c]) for r in self.rows)
            for c in range(ncols)
        ]
        self.row = self.col = self.top = 0
        self.left = 1
        self.sort_col = None
        self.descending = False
        self.query = ""

    def move(self, drow=0, dcol=0):
        self.goto(self.row + drow, self.col + dcol)

    def goto(self, row=None, col=None):
        if row is not None:
            self.row = max(0, min(row, len(self.rows) - 1))
        if col is not None:
            self.col = max(0, min(col, len(self.header) - 1))

    def sort(self, col=None, descending=False):
        """Sort on `col` (default: the current column) and go to the first row.

        Users sort to see the best runs, so the cursor goes to the top rather than following its
        old run somewhere down the list.
        """
        col = self.col if col is None else col
        if not self.rows or not 0 <= col < len(self.header):
            return
        self.rows = sort_rows(self.rows, col, descending)
        self.row = self.top = 0
        self.sort_col, self.descending = col, descending

    def find(self, query, start=None):
        """Move to the next row (wrapping) with a cell containing `query`; False if none does."""
        needle = query.casefold()
        n = len(self.rows)
        start = self.row + 1 if start is None else start
        for i in range(n):
            r = (start + i) % n
            if any(needle in format_cell(v).casefold() for v in self.rows[r]):
                self.row = r
                return True
        return False

    def press(self, key, page=10):
        """Act on a key name ("down", "npage", "g", "1", ...); False if the key means nothing."""
        if key in _MOVES:
            drow, dcol = _MOVES[key]
            drow = {"page": page, "-page": -page}.get(drow, drow)
            self.move(drow, dcol)
        elif key in ("home", "^"):
            self.goto(col=0)
        elif key in ("end", "$"):
            self.goto(col=len(self.header) - 1)
        elif key == "g":
            self.goto(row=0)
        elif key == "G":
            self.goto(row=len(self.rows) - 1)
        elif key in ("1", "2"):
            self.sort(descending=key == "2")
        elif key == "n" and self.query:
            self.find(self.query)
        else:
            return False
        return True

    def _x_end(self, left, col):
        """Screen column just past `col` when scrollable columns start at `left`."""
        return self.widths[0] + GAP + sum(self.widths[c] + GAP for c in range(left, col)) + self.widths[col]

    def _scroll(self, height, width):
        """Shift `top`/`left` so the cursor is visible in a `height` x `width` table area."""
        nrows = max(1, height - 1)
        if self.row < self.top:
            self.top = self.row
        elif self.row >= self.top + nrows:
            self.top = self.row - nrows + 1
        # After a resize, fill the screen instead of leaving blank rows below the last one.
        self.top = max(0, min(self.top, len(self.rows) - nrows))
        ncols = len(self.header)
        if self.col >= 1:
            if self.col < self.left:
                self.left = self.col
            while self.left < self.col and self._x_end(self.left, self.col) > width:
                self.left += 1
        # Likewise pull columns back in from the left when everything to the right fits.
        while self.left > 1 and self._x_end(self.left - 1, ncols - 1) <= width:
            self.left -= 1

    def _text(self, text, col, room, number):
        text = truncate(text, self.widths[col], self.ellipsis)
        text = text.rjust(self.widths[col]) if number else text.ljust(self.widths[col])
        return text[:room]

    def visible_cells(self, height, width):
        """[(y, x, text, style)] for a table area of `height` lines (header included) x `width`.

        Scrolls first so the cursor is visible. The last column may be cut at the right edge.
        """
        if height < 1 or width < 1 or not self.header:
            return []
        self._scroll(height, width)
        cols, x = [(0, 0)], self.widths[0] + GAP
        for c in range(self.left, len(self.header)):
            if x >= width:
                break
            cols.append((c, x))
            x += self.widths[c] + GAP
        cells = [(0, x, self._text(self.header[c], c, width - x, self.numeric[c]), HEADER) for c, x in cols]
        for y, r in enumerate(range(self.top, min(len(self.rows), self.top + height - 1)), 1):
            for c, x in cols:
                value = self.rows[r][c]
                style = CURRENT if (r, c) == (self.row, self.col) else PINNED if c == 0 else CELL
                cells.append((y, x, self._text(format_cell(value), c, width - x, self.numeric[c]), style))
        return cells

    def status_line(self, width, message=""):
        parts = [f"row {self.row + 1 if self.rows else 0} of {len(self.rows)}"]
        if self.header:
            parts.append(f"col {self.header[self.col]}")
        if self.sort_col is not None:
            order = "descending" if self.descending else "ascending"
            parts.append(f"sorted by {self.header[self.sort_col]} {order}")
        if self.title:
            parts.append(self.title)
        parts.append(message or "? help  q quit")
        # One short of the width: curses can't write the screen's bottom-right cell cleanly.
        return " " + truncate("  |  ".join(parts), max(0, width - 2), self.ellipsis).ljust(max(0, width - 2))


_KEY_NAMES = {
    curses.KEY_DOWN: "down", curses.KEY_UP: "up", curses.KEY_LEFT: "left", curses.KEY_RIGHT: "right",
    curses.KEY_NPAGE: "npage", curses.KEY_PPAGE: "ppage", curses.KEY_HOME: "home", curses.KEY_END: "end",
    ord(" "): "npage",
}


def show_table(header, rows, title=""):
    """Show rows in an interactive table until the user quits. Needs a terminal."""
    try:
        locale.setlocale(locale.LC_ALL, "")
    except locale.Error:
        pass
    ellipsis = "…" if _encodes("…") else "~"
    os.environ.setdefault("ESCDELAY", "25")  # Esc quits without ncurses' default 1s wait
    view = Viewport(header, rows, title, ellipsis)
    try:
        curses.wrapper(_loop, view)
    except KeyboardInterrupt:
        pass


def _encodes(text):
    try:
        text.encode(locale.getpreferredencoding(False) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _loop(stdscr, view):
    try:
        curses.curs_set(0)
    except curses.error:
        pass
    stdscr.keypad(True)
    message = ""
    while True:
        height, width = stdscr.getmaxyx()
        _draw(stdscr, view, height, width, message)
        key = stdscr.getch()
        message = ""
        if key in (ord("q"), ord("Q"), 27):
            return
        if key == curses.KEY_RESIZE:
            continue  # getmaxyx already reports the new size; the next pass redraws
        if key == ord("?"):
            _show_help(stdscr)
        elif key == ord("/"):
            query = _prompt(stdscr, height - 1, width, "/")
            if query:
                view.query = query
                if not view.find(query, start=view.row):
                    message = f"not found: {query}"
        else:
            name = _KEY_NAMES.get(key) or (chr(key) if 0 <= key < 256 else None)
            view.press(name, page=max(1, height - 2))


def _put(win, y, x, text, attr=0):
    try:
        win.addstr(y, x, text, attr)
    except curses.error:
        pass  # writing into the last cell of a window raises after drawing; nothing lost


def _draw(stdscr, view, height, width, message):
    styles = {
        HEADER: curses.A_BOLD | curses.A_UNDERLINE,
        CELL: curses.A_NORMAL,
        PINNED: curses.A_BOLD,
        CURRENT: curses.A_REVERSE,
    }
    stdscr.erase()
    for y, x, text, style in view.visible_cells(height - 1, width):
        _put(stdscr, y, x, text, styles[style])
    if height >= 1:
        _put(stdscr, height - 1, 0, view.status_line(width, message), curses.A_REVERSE)
    stdscr.refresh()


def _show_help(stdscr):
    lines = help_lines() + ["", "press any key"]
    height, width = stdscr.getmaxyx()
    box_h, box_w = min(height, len(lines) + 2), min(width, max(map(len, lines)) + 4)
    if box_h < 3 or box_w < 5:
        return
    win = curses.newwin(box_h, box_w, (height - box_h) // 2, (width - box_w) // 2)
    win.erase()
    win.box()
    _put(win, 0, 2, " keys "[: box_w - 4], curses.A_BOLD)
    for y, line in enumerate(lines[: box_h - 2], 1):
        _put(win, y, 2, line[: box_w - 4])
    win.refresh()
    win.getch()


def _prompt(stdscr, y, width, prompt):
    stdscr.move(y, 0)
    stdscr.clrtoeol()
    _put(stdscr, y, 0, prompt)
    curses.echo()
    try:
        curses.curs_set(1)
    except curses.error:
        pass
    try:
        raw = stdscr.getstr(y, len(prompt), max(1, width - len(prompt) - 1))
    finally:
        curses.noecho()
        try:
            curses.curs_set(0)
        except curses.error:
            pass
    return raw.decode(locale.getpreferredencoding(False) or "utf-8", errors="replace").strip()
