"""The run filters every run-selecting command takes, in both of Guild's spellings (0.7's
`-l -C -S ...` and 0.9's `-Fl -Sc -Fs ...`), turned into one RunFilter message."""

import datetime

import click

from guild_common import timerange
from guild_common.pb import guild_pb2 as pb

STATUSES = [
    # (status, old short option, 0.9 short option)
    ("running", "-R", "-Sr"),
    ("completed", "-C", "-Sc"),
    ("error", "-E", "-Se"),
    ("terminated", "-T", "-St"),
    ("pending", "-P", "-Sp"),
    ("staged", "-G", "-Ss"),
]

# Guild 0.9's `-S CHARS`: runs with any of these statuses.
STATUS_CHARS = {new[2]: status for status, _old, new in STATUSES}


def run_filters(fn=None, *, tag_option=True, label_option=True):
    """Adds the filter options to a command; its callback gets them as `filters` (a dict)."""

    def decorate(fn):
        options = [
            click.option("-F", "--filter", "f_expr", metavar="EXPR", help="Filter expression over flags, scalars and attributes: 'loss < 0.3 and x > 1'."),
            click.option("-o", "-Fo", "--operation", "f_ops", multiple=True, metavar="VAL", help="Operation contains VAL (repeatable)."),
        ]
        if label_option:
            options.append(click.option("-l", "-Fl", "--label", "f_labels", multiple=True, metavar="VAL", help="Label contains VAL (repeatable)."))
        options += [
            click.option("-U", "-Fu", "--unlabeled", "f_unlabeled", is_flag=True, help="Runs without a label."),
            click.option("-M", "-Fm", "--marked", "f_marked", is_flag=True, help="Marked runs."),
            click.option("-N", "-Fn", "--unmarked", "f_unmarked", is_flag=True, help="Unmarked runs."),
            click.option("-S", "-Fs", "--started", "f_started", metavar="RANGE", help="Started within RANGE: 'last hour', 'today', 'after 7 days ago', 'between 9:00 and 10:00'. Letters of rcetps only (-Sce) are Guild 0.9's status chars."),
            click.option("-D", "-Fd", "--digest", "f_digests", multiple=True, metavar="VAL", help="Source code digest starts with VAL."),
        ]
        options.append(click.option("-Fc", "--comment", "f_comments", multiple=True, metavar="VAL",
                                    help="Runs with a comment whose text, user or host contains VAL (any case; repeatable)."))
        if tag_option:
            options.append(click.option("-Ft", "--tag", "f_tags", multiple=True, metavar="TAG", help="Runs tagged TAG (repeatable)."))
        else:
            options.append(click.option("-Ft", "f_tags", multiple=True, metavar="TAG", help="Runs tagged TAG (repeatable)."))
        for status, old, new in STATUSES:
            options.append(
                click.option(old, new, f"--{status}/--not-{status}", f"f_{status}", default=None, help=f"Runs that are {status} (--not-{status}: that aren't).")
            )
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate(fn) if fn is not None else decorate


def pop_filter(kw, now=None):
    """Removes the filter options from a callback's kwargs and returns the RunFilter."""
    f = pb.RunFilter(
        expr=kw.pop("f_expr") or "",
        ops=kw.pop("f_ops"),
        labels=kw.pop("f_labels", ()),
        unlabeled=kw.pop("f_unlabeled"),
        marked=kw.pop("f_marked"),
        unmarked=kw.pop("f_unmarked"),
        digests=kw.pop("f_digests"),
        tags=kw.pop("f_tags"),
        comments=kw.pop("f_comments", ()),
    )
    for status, _old, _new in STATUSES:
        value = kw.pop(f"f_{status}")
        if value is True:
            f.statuses.append(status)
        elif value is False:
            f.not_statuses.append(status)
    started = kw.pop("f_started")
    if started and set(started) <= set(STATUS_CHARS):
        # Guild 0.9's -S takes status chars (`-Sce`: completed or error), 0.7's a time range;
        # no time range is made of these letters alone.
        f.statuses.extend(s for s in dict.fromkeys(STATUS_CHARS[c] for c in started) if s not in f.statuses)
        started = ""
    if started:
        start, end = timerange.parse(started, now or datetime.datetime.now())
        f.started_after_us = timerange.to_us(start) or 0
        f.started_before_us = timerange.to_us(end) or 0
    return f
