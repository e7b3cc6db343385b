"""Time-range specs for `-S/--started` (GUILD-REFERENCE.md §5.2).

Rows cite the Guild doctest they come from as `L<line>` in seeds/guild-repo-docs.txt
("Time range spec", L34991); rows marked `ours` pin down a decision where the docs are silent.
Times are written `YYYY-MM-DD HH:MM:SS`; None is an unbounded end.
"""

import datetime

import pytest

from guild_common import timerange
from guild_common.errors import InvalidArgument

REF = datetime.datetime(2019, 5, 1, 14, 35, 23)  # the doctests' reference time (L35259)


def _dt(s):
    return None if s is None else datetime.datetime.fromisoformat(s)


# lexer: (line, spec, [(type, value, pos), ...])

LEX_CASES = [
    ("L35007", "", []),
    # Numbers
    ("L35015", "1", [("NUMBER", 1, 0)]),
    ("L35018", "2 3 4", [("NUMBER", 2, 0), ("NUMBER", 3, 2), ("NUMBER", 4, 4)]),
    # Dates: values are not checked until parse time
    ("L35029", "2019-10-31", [("LONGDATE", (2019, 10, 31), 0)]),
    ("L35032", "19-11-30", [("MEDIUMDATE", (19, 11, 30), 0)]),
    ("L35035", "12-31", [("SHORTDATE", (12, 31), 0)]),
    ("L35038", "9-8", [("SHORTDATE", (9, 8), 0)]),
    ("L35041", "1-31", [("SHORTDATE", (1, 31), 0)]),
    ("L35044", "1-32", [("SHORTDATE", (1, 32), 0)]),
    ("L35047", "2018-13-01", [("LONGDATE", (2018, 13, 1), 0)]),
    # Times
    ("L35056", "11:10", [("SHORTTIME", (11, 10), 0)]),
    ("L35059", "0:00", [("SHORTTIME", (0, 0), 0)]),
    ("L35062", "1:00", [("SHORTTIME", (1, 0), 0)]),
    ("L35069", "13:30", [("SHORTTIME", (13, 30), 0)]),
    ("L35072", "23:59", [("SHORTTIME", (23, 59), 0)]),
    ("L35075", "24:00", [("SHORTTIME", (24, 0), 0)]),
    ("L35078", "24:00:00", [("LONGTIME", (24, 0, 0), 0)]),
    ("L35081", "24:01:02", [("LONGTIME", (24, 1, 2), 0)]),
    # Units
    ("L35094", "minutes hours days weeks months years", [
        ("MINUTE", "minutes", 0), ("HOUR", "hours", 8), ("DAY", "days", 14),
        ("WEEK", "weeks", 19), ("MONTH", "months", 25), ("YEAR", "years", 32)]),
    ("L35102", "minute hour day week month year", [
        ("MINUTE", "minute", 0), ("HOUR", "hour", 7), ("DAY", "day", 12),
        ("WEEK", "week", 16), ("MONTH", "month", 21), ("YEAR", "year", 27)]),
    ("L35110", "MINutes houR DaY WEEKs MONths yeARs", [
        ("MINUTE", "MINutes", 0), ("HOUR", "houR", 8), ("DAY", "DaY", 13),
        ("WEEK", "WEEKs", 17), ("MONTH", "MONths", 23), ("YEAR", "yeARs", 30)]),
    # Variations / abbreviations
    ("L35124", "min minute minutes", [
        ("MINUTE", "min", 0), ("MINUTE", "minute", 4), ("MINUTE", "minutes", 11)]),
    ("L35129", "hr hour hours", [("HOUR", "hr", 0), ("HOUR", "hour", 3), ("HOUR", "hours", 8)]),
    # Other reserved words
    ("L35140", "today yesterday this last ago before after between and", [
        ("TODAY", "today", 0), ("YESTERDAY", "yesterday", 6), ("THIS", "this", 16),
        ("LAST", "last", 21), ("AGO", "ago", 26), ("BEFORE", "before", 30),
        ("AFTER", "after", 37), ("BETWEEN", "between", 43), ("AND", "and", 51)]),
    ("L35151", "toDaY yesTERday thIS LAsT AGO beFoRE AFTer betWEEn AND", [
        ("TODAY", "toDaY", 0), ("YESTERDAY", "yesTERday", 6), ("THIS", "thIS", 16),
        ("LAST", "LAsT", 21), ("AGO", "AGO", 26), ("BEFORE", "beFoRE", 30),
        ("AFTER", "AFTer", 37), ("BETWEEN", "betWEEn", 43), ("AND", "AND", 51)]),
    # Expressions
    ("L35168", "after 5 minutes ago", [
        ("AFTER", "after", 0), ("NUMBER", 5, 6), ("MINUTE", "minutes", 8), ("AGO", "ago", 16)]),
    ("L35174", "before this week", [
        ("BEFORE", "before", 0), ("THIS", "this", 7), ("WEEK", "week", 12)]),
    ("L35179", "between 1 and 3 hours ago", [
        ("BETWEEN", "between", 0), ("NUMBER", 1, 8), ("AND", "and", 10), ("NUMBER", 3, 14),
        ("HOUR", "hours", 16), ("AGO", "ago", 22)]),
    ("L35187", "between 5-1 and 5-31", [
        ("BETWEEN", "between", 0), ("SHORTDATE", (5, 1), 8), ("AND", "and", 12),
        ("SHORTDATE", (5, 31), 16)]),
    # ours: tabs and runs of spaces are whitespace too
    ("ours", "\ttoday  ", [("TODAY", "today", 1)]),
]


@pytest.mark.parametrize("line, spec, expected", LEX_CASES)
def test_lex(line, spec, expected):
    assert [(t.type, t.value, t.pos) for t in timerange.lex(spec)] == expected


# The unexpected text runs from the failing position to the next space.
LEX_ERROR_CASES = [
    ("L35065", "1:2", "unexpected ':2' at position 1"),
    ("L35084", "000:0", "unexpected ':0' at position 3"),
    ("L35199", "a", "unexpected 'a' at position 0"),
    ("L35203", "aftr last week", "unexpected 'aftr' at position 0"),
    ("L35207", "after the equinox", "unexpected 'the' at position 6"),
    ("L35211", "yearsss", "unexpected 'ss' at position 5"),
    ("L35215", "2015-01-03-01", "unexpected '-01' at position 10"),
]


@pytest.mark.parametrize("line, spec, message", LEX_ERROR_CASES)
def test_lex_errors(line, spec, message):
    with pytest.raises(InvalidArgument) as lex_err:
        timerange.lex(spec)
    assert str(lex_err.value) == f"invalid time range {spec!r}: {message}"
    # parse() reports the same thing
    with pytest.raises(InvalidArgument) as parse_err:
        timerange.parse(spec, REF)
    assert str(parse_err.value) == str(lex_err.value)


# parser: (line, spec, ref, start, end)

PARSE_CASES = [
    # Unit ranges: minutes
    ("L35288", "this minute", REF, "2019-05-01 14:35:00", "2019-05-01 14:36:00"),
    ("L35293", "1 minute ago", REF, "2019-05-01 14:34:00", "2019-05-01 14:35:00"),
    ("L35298", "5 minutes ago", REF, "2019-05-01 14:30:00", "2019-05-01 14:31:00"),
    # hours
    ("L35309", "this hour", REF, "2019-05-01 14:00:00", "2019-05-01 15:00:00"),
    ("L35314", "1 hour ago", REF, "2019-05-01 13:00:00", "2019-05-01 14:00:00"),
    ("L35319", "5 hours ago", REF, "2019-05-01 09:00:00", "2019-05-01 10:00:00"),
    ("L35324", "24 hours ago", REF, "2019-04-30 14:00:00", "2019-04-30 15:00:00"),
    # days
    ("L35335", "today", REF, "2019-05-01 00:00:00", "2019-05-02 00:00:00"),
    ("L35340", "yesterday", REF, "2019-04-30 00:00:00", "2019-05-01 00:00:00"),
    ("L35345", "1 day ago", REF, "2019-04-30 00:00:00", "2019-05-01 00:00:00"),
    ("L35350", "2 days ago", REF, "2019-04-29 00:00:00", "2019-04-30 00:00:00"),
    ("L35355", "10 days ago", REF, "2019-04-21 00:00:00", "2019-04-22 00:00:00"),
    ("L35806", "3 days ago", REF, "2019-04-28 00:00:00", "2019-04-29 00:00:00"),
    # weeks (Monday to Monday)
    ("L35366", "this week", REF, "2019-04-29 00:00:00", "2019-05-06 00:00:00"),
    ("L35371", "1 week ago", REF, "2019-04-22 00:00:00", "2019-04-29 00:00:00"),
    ("L35376", "2 weeks ago", REF, "2019-04-15 00:00:00", "2019-04-22 00:00:00"),
    ("L35381", "10 weeks ago", REF, "2019-02-18 00:00:00", "2019-02-25 00:00:00"),
    # months: the range ends on the month's last day at 00:00 (Guild's quirk)
    ("L35392", "this month", REF, "2019-05-01 00:00:00", "2019-05-31 00:00:00"),
    ("L35397", "1 month ago", REF, "2019-04-01 00:00:00", "2019-04-30 00:00:00"),
    ("L35402", "3 months ago", REF, "2019-02-01 00:00:00", "2019-02-28 00:00:00"),
    ("L35407", "15 months ago", REF, "2018-02-01 00:00:00", "2018-02-28 00:00:00"),
    ("L35412", "39 months ago", REF, "2016-02-01 00:00:00", "2016-02-29 00:00:00"),
    # years
    ("L35423", "this year", REF, "2019-01-01 00:00:00", "2020-01-01 00:00:00"),
    ("L35428", "1 year ago", REF, "2018-01-01 00:00:00", "2019-01-01 00:00:00"),
    ("L35433", "5 years ago", REF, "2014-01-01 00:00:00", "2015-01-01 00:00:00"),
    # before an explicit date / date and time
    ("L35461", "before 2018-4-29", REF, None, "2018-04-29 00:00:00"),
    ("L35472", "before 2019-4-29 9:35", REF, None, "2019-04-29 09:35:00"),
    ("L35477", "before 2019-4-29 9:35:05", REF, None, "2019-04-29 09:35:05"),
    ("L35482", "before 19-4-29 9:35", REF, None, "2019-04-29 09:35:00"),
    ("L35487", "before 89-4-1", datetime.datetime(1900, 1, 1), None, "1989-04-01 00:00:00"),
    # short date: the reference year applies
    ("L35498", "before 4-29", REF, None, "2019-04-29 00:00:00"),
    ("L35503", "before 4-29", datetime.datetime(1900, 1, 1), None, "1900-04-29 00:00:00"),
    ("L35514", "before 4-28 15:45", REF, None, "2019-04-28 15:45:00"),
    # time only: the reference date applies
    ("L35525", "before 23:30", REF, None, "2019-05-01 23:30:00"),
    ("L35530", "before 23:30", datetime.datetime(1989, 3, 28), None, "1989-03-28 23:30:00"),
    # before a unit range: ends where the range starts
    ("L35541", "before today", REF, None, "2019-05-01 00:00:00"),
    ("L35546", "before 10 minutes ago", REF, None, "2019-05-01 14:25:00"),
    ("L35551", "before 2 days ago", REF, None, "2019-04-29 00:00:00"),
    # after an explicit point: starts at it
    ("L35567", "after 2018-4-29", REF, "2018-04-29 00:00:00", None),
    ("L35578", "after 2019-4-29 9:35", REF, "2019-04-29 09:35:00", None),
    ("L35583", "after 19-4-29 9:35", REF, "2019-04-29 09:35:00", None),
    # The doc elides the year/date here ('...-04-29'); like `before`, we use ref's.
    ("L35594", "after 4-29", REF, "2019-04-29 00:00:00", None),
    ("L35605", "after 4-28 15:45", REF, "2019-04-28 15:45:00", None),
    ("L35616", "after 23:30", REF, "2019-05-01 23:30:00", None),
    # after a unit range: starts where the range ends
    ("L35627", "after yesterday", REF, "2019-05-01 00:00:00", None),
    ("L35632", "after 1 day ago", REF, "2019-05-01 00:00:00", None),
    ("L35637", "after 12 months ago", REF, "2018-05-31 00:00:00", None),
    ("L35688", "after 5 minutes ago", REF, "2019-05-01 14:31:00", None),
    ("L35750", "after 2 weeks ago", REF, "2019-04-22 00:00:00", None),
    ("L35755", "after 1 month ago", REF, "2019-04-30 00:00:00", None),
    ("L35760", "after 1 year ago", REF, "2019-01-01 00:00:00", None),
    ("L35787", "after 3 days ago", REF, "2019-04-29 00:00:00", None),
    # last N: exactly N units before ref
    ("L35655", "last 2 minutes", REF, "2019-05-01 14:33:23", None),
    ("L35660", "last hour", REF, "2019-05-01 13:35:23", None),
    ("L35665", "last 6 hours", REF, "2019-05-01 08:35:23", None),
    ("L35670", "last 10 days", REF, "2019-04-21 14:35:23", None),
    ("L35700", "last 5 minutes", REF, "2019-05-01 14:30:23", None),
    ("L35774", "last 3 days", REF, "2019-04-28 14:35:23", None),
    # between, in either order: earlier start to later end; dates are single instants
    ("L35830", "between yesterday and today", REF,
     "2019-04-30 00:00:00", "2019-05-02 00:00:00"),
    ("L35835", "between today and yesterday", REF,
     "2019-04-30 00:00:00", "2019-05-02 00:00:00"),
    ("L35840", "between 10 minutes ago and 5 minutes ago", REF,
     "2019-05-01 14:25:00", "2019-05-01 14:31:00"),
    ("L35845", "between 1-1 and 1-31", REF, "2019-01-01 00:00:00", "2019-01-31 00:00:00"),
    ("L35850", "between 1-31 and 1-1", REF, "2019-01-01 00:00:00", "2019-01-31 00:00:00"),
    ("L35855", "between 0:00 and 12:00", REF, "2019-05-01 00:00:00", "2019-05-01 12:00:00"),
    ("L35860", "between 0:00:05 and 12:00:45", REF,
     "2019-05-01 00:00:05", "2019-05-01 12:00:45"),
    ("L35865", "between 1-1 0:00:05 and 1-1 12:00:45", REF,
     "2019-01-01 00:00:05", "2019-01-01 12:00:45"),
    ("L35870", "between 2018-1-1 and 10 days ago", REF,
     "2018-01-01 00:00:00", "2019-04-22 00:00:00"),
    ("L35875", "between 10 days ago and today", REF,
     "2019-04-21 00:00:00", "2019-05-02 00:00:00"),
    # a point standing alone covers the smallest unit it names
    ("L35889", "10:00", REF, "2019-05-01 10:00:00", "2019-05-01 10:01:00"),
    ("L35894", "2018-10-31 14:30", REF, "2018-10-31 14:30:00", "2018-10-31 14:31:00"),
    ("L35899", "2018-10-31 14:30:05", REF, "2018-10-31 14:30:05", "2018-10-31 14:30:06"),
    ("L35904", "2018-10-31", REF, "2018-10-31 00:00:00", "2018-11-01 00:00:00"),
    # ours: forms the brief names but the doctests don't apply
    ("ours", "this day", REF, "2019-05-01 00:00:00", "2019-05-02 00:00:00"),
    ("ours", "last minute", REF, "2019-05-01 14:34:23", None),
    ("ours", "last day", REF, "2019-04-30 14:35:23", None),
    ("ours", "LAST 2 HR", REF, "2019-05-01 12:35:23", None),
    ("ours", "2 min ago", REF, "2019-05-01 14:33:00", "2019-05-01 14:34:00"),
    ("ours", "0 days ago", REF, "2019-05-01 00:00:00", "2019-05-02 00:00:00"),
    ("ours", "This Week", REF, "2019-04-29 00:00:00", "2019-05-06 00:00:00"),
    ("ours", "before THIS week", REF, None, "2019-04-29 00:00:00"),
    ("ours", "after this month", REF, "2019-05-31 00:00:00", None),
    ("ours", "4-29", REF, "2019-04-29 00:00:00", "2019-04-30 00:00:00"),
    ("ours", "19-4-29 9:35:05", REF, "2019-04-29 09:35:05", "2019-04-29 09:35:06"),
    ("ours", "between 1-1 and today", REF, "2019-01-01 00:00:00", "2019-05-02 00:00:00"),
    # ours: two-digit years pivot at 69 like POSIX %y (L35482 and L35487 pin 19 and 89)
    ("ours", "before 68-1-1", REF, None, "2068-01-01 00:00:00"),
    ("ours", "before 69-1-1", REF, None, "1969-01-01 00:00:00"),
    # ours: unit arithmetic across year boundaries and in a leap year
    ("ours", "1 month ago", datetime.datetime(2020, 1, 15), "2019-12-01 00:00:00",
     "2019-12-31 00:00:00"),
    ("ours", "this month", datetime.datetime(2020, 2, 3), "2020-02-01 00:00:00",
     "2020-02-29 00:00:00"),
    ("ours", "this week", datetime.datetime(2020, 1, 1, 9), "2019-12-30 00:00:00",
     "2020-01-06 00:00:00"),
    ("ours", "1 minute ago", datetime.datetime(2020, 1, 1, 0, 0, 30), "2019-12-31 23:59:00",
     "2020-01-01 00:00:00"),
]


@pytest.mark.parametrize("line, spec, ref, start, end", PARSE_CASES)
def test_parse(line, spec, ref, start, end):
    assert timerange.parse(spec, ref) == (_dt(start), _dt(end))


# Parse errors name the token where parsing failed ("pos", as in Guild's parser); invalid
# values give datetime's own message (as Guild's do) plus the offending token.
PARSE_ERROR_CASES = [
    ("L35731", "last 2 weeks", "unexpected 'weeks' at pos 7"),
    ("L35735", "last month", "unexpected 'month' at pos 5"),
    ("L35739", "last 1 year", "unexpected 'year' at pos 7"),
    ("L35918", "before 2018-4-31", "day is out of range for month ('2018-4-31' at pos 7)"),
    ("L35922", "between 11:00 and 24:00", "hour must be in 0..23 ('24:00' at pos 18)"),
    # ours
    ("ours", "", "unexpected end of input at pos 0"),
    ("ours", "5 minutes", "unexpected end of input at pos 9"),
    ("ours", "this", "unexpected end of input at pos 4"),
    ("ours", "before", "unexpected end of input at pos 6"),
    ("ours", "today today", "unexpected 'today' at pos 6"),
    ("ours", "ago", "unexpected 'ago' at pos 0"),
    ("ours", "between today", "unexpected end of input at pos 13"),
    ("ours", "between today or", "unexpected 'or' at position 14"),
    ("ours", "between 1 and 3 hours ago", "unexpected 'and' at pos 10"),
    ("ours", "last weeks", "unexpected 'weeks' at pos 5"),
    ("ours", "last 2", "unexpected end of input at pos 6"),
    ("ours", "before last hour", "unexpected 'last' at pos 7"),
    ("ours", "this today", "unexpected 'today' at pos 5"),
    ("ours", "1-32", "day is out of range for month ('1-32' at pos 0)"),
    ("ours", "2018-13-01", "month must be in 1..12 ('2018-13-01' at pos 0)"),
    ("ours", "after 4-28 10:60", "minute must be in 0..59 ('10:60' at pos 11)"),
    ("ours", "24:00:00", "hour must be in 0..23 ('24:00:00' at pos 0)"),
    # ours: arithmetic past datetime's range is an invalid argument, not a crash
    ("ours", "5000 years ago", "time is out of range"),
    ("ours", "last 99999999999 days", "time is out of range"),
]


@pytest.mark.parametrize("line, spec, message", PARSE_ERROR_CASES)
def test_parse_errors(line, spec, message):
    with pytest.raises(InvalidArgument) as err:
        timerange.parse(spec, REF)
    assert str(err.value) == f"invalid time range {spec!r}: {message}"
    assert "\n" not in str(err.value)


# to_us

def test_to_us_matches_local_timestamp():
    for ts in (0, 1556721323, 1556721323.25, 86400 * 365 * 60):
        assert timerange.to_us(datetime.datetime.fromtimestamp(ts)) == round(ts * 1_000_000)


def test_to_us_keeps_microseconds_exact():
    dt = datetime.datetime(2019, 5, 1, 14, 35, 23, 999_999)
    assert timerange.to_us(dt) - timerange.to_us(dt.replace(microsecond=0)) == 999_999


def test_to_us_unbounded():
    assert timerange.to_us(None) is None
