"""Hostile text for the fuzz tests: what a user's typo, a cloned project or a hostile client
may send. Paths point into the test's own temp tree (never at the real /etc: the suite runs as
root on shared machines, and a bug must not be able to damage them); `{canary}` is a file
outside GUILD_HOME whose contents must never come back, `{outside}` its directory."""

from hypothesis import strategies as st

HUGE = 1 << 20  # the largest text or bytes a case sends (1 MB)

SPECIAL = [
    "", " ", "\t", "\n", "\r\n", "\x00", "a\x00b", "\x7f", "\u200b", "\ufeff", "é", "日本語", "🚀",
    "\u202e", "%s", "%n", "{}", "{0}", "${HOME}", "$(id)", "`id`", "'", '"', "\\", "*", "?", "[", "]",
    "(", ")", ",", ":", "=", "#", "-", "--", "-1", "0", "1", "1:3", ":", "1:", ":2", "3:1", "0:0",
    "99999999999999999999", "-99999999999999999999", "1e308", "1e999", "nan", "inf", "-inf", "NaN",
    "null", "~", "true", "yes", "[1, 2]", "{a: 1}", "&a [*a]", "!!python/object:os.system", "0x10",
    ".", "..", "../", "../../etc", "../../etc/passwd", "..\\..\\x", "./x", "a/../../x",
    ".guild", ".guild/attrs", ".guild/attrs/exit_status", "runs", "/", "//", "/dev/null", "/dev/zero",
    "/proc/self/environ", "{outside}", "{canary}", "{outside}/sub", "{climb}", "{climb_canary}",
    "0" * 32, "f" * 32, "g" * 32,
]

# Grammar words of the small languages users type; random sequences of them reach deep into
# the parsers where plain random text stops at the first character.
FILTER_WORDS = ["(", ")", "[", "]", ",", "=", "==", "!=", "<>", "<", "<=", ">", ">=", "is", "not", "in",
                "contains", "and", "or", "undefined", "true", "false", "attr:", "flag:", "scalar:", "x",
                "label", "status", "tags", "started", "loss", "train#loss", "'a b'", '"q"', "'", '"', "1",
                "-1.5", "1e400", "99999999999999999999", "yes", "@x", "6f0", "NOT", "AND"]
TIME_WORDS = ["last", "this", "ago", "before", "after", "between", "and", "today", "yesterday", "minute",
              "minutes", "hour", "hr", "day", "days", "week", "month", "months", "year", "years", "1", "0",
              "5000", "99999999999999999999", "2020-01-01", "9999-12-31", "0000-00-00", "19-4-29", "2-30",
              "13-45", "10:30", "25:61", "10:00:05", "99:99:99", "-", ":", "x"]
COLUMN_WORDS = ["first", "last", "min", "max", "avg", "total", "count", "step", "as", "=", ".", "scalar:",
                "flag:", "attr:", "loss", "train#loss", "losses/.+", "'a b'", "'", ",", "#", "x", "MIN", "(", "["]


def words(vocab):
    """Sentences of `vocab` words, sometimes run together, sometimes with junk among them."""
    word = st.one_of(st.sampled_from(vocab), st.sampled_from(SPECIAL), st.text(max_size=8))
    return st.builds(lambda ws, sep: sep.join(ws), st.lists(word, max_size=12), st.sampled_from([" ", "", "  ", "\t"]))


def nested(open_, close, max_depth=6000):
    """Text nested `n` levels deep: parsers that recurse must refuse it, not crash."""
    return st.integers(1, max_depth).map(lambda n: open_ * n + "x" + close * n)


def huge_text():
    return st.builds(lambda n, ch: ch * n, st.integers(1000, HUGE), st.sampled_from(["a", "9", "é", "(", "../", "\x00"]))


def text():
    """Any hostile string: special values, random unicode (no surrogates: protobuf strings are
    UTF-8), and now and then a huge one."""
    return st.one_of(
        st.sampled_from(SPECIAL),
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
        huge_text(),
    )
