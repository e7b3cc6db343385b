"""Runs' tags and comments, as Guild AI 0.9 keeps them: `.guild/attrs/tags` (a YAML list of
strings) and `.guild/attrs/comments` (a list of {body, host, time, user}, time in
microseconds). Part of run management (guildd.manage): plain functions called on the daemon's
I/O thread, each change made in the run dir with its owner's rights, then in the index.

A request is checked whole before anything is written: a tag to remove that one run lacks, a
comment index past one run's comments, or a run in the trash refuses the request, and no run
changes. Changing tags leaves the label alone unless `sync_labels` asks (Guild's
`tag --sync-labels`).
"""

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from guild_common import errors, rundir
from guild_common.paths import StrPath
from guildd import fsrights, manage
from guildd import store as storelib

ADD, DELETE, CLEAR = "add", "delete", "clear"  # comment actions


@dataclasses.dataclass(frozen=True)
class TagChange:
    """What `tag` does to each run: clear first, then remove, then add."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    clear: bool = False
    sync_labels: bool = False


@dataclasses.dataclass(frozen=True)
class CommentChange:
    """What `comment` does to each run; `index` is 1-based (as `comment --list` shows), and
    `user`, `host` and `time_us` stamp an added comment."""

    action: str
    body: str = ""
    index: int = 0
    user: str = ""
    host: str = ""
    time_us: int = 0


def check_tag_change(change: TagChange) -> None:
    """InvalidArgument for a request that asks nothing or names an empty tag."""
    if not (change.add or change.remove or change.clear):
        raise errors.InvalidArgument("nothing to do: give tags to add or remove, or clear them")
    for tag in (*change.add, *change.remove):
        if not tag.strip():
            raise errors.InvalidArgument("a tag cannot be empty")


def new_tags(run_id: str, old: Sequence[str], change: TagChange) -> list[str]:
    """A run's tags after `change`; FailedPrecondition naming the first tag to remove that
    the run doesn't have."""
    missing = [t for t in change.remove if t not in old]
    if missing:
        raise errors.FailedPrecondition(f"run {run_id[:8]} has no tag '{missing[0]}' (its tags: {_listed(old)})")
    tags = [] if change.clear else [t for t in old if t not in change.remove]
    for tag in change.add:
        if tag not in tags:
            tags.append(tag)
    return tags


def synced_label(label: str, old_tags: Sequence[str], change: TagChange) -> str:
    """The label after `tag --sync-labels`: the tags removed (or, clearing, all the old
    ones) taken out of it as whole words, the tags added and not there yet put in front."""
    for tag in list(old_tags) if change.clear else change.remove:
        label = manage.new_label(label, "remove", tag)
    words = label.split()
    added = [t for t in change.add if t not in words]
    return manage.new_label(label, "prepend", " ".join(added)) if added else label


def new_comments(run_id: str, old: Sequence[dict[str, Any]], change: CommentChange) -> list[dict[str, Any]]:
    """A run's comments after `change`; InvalidArgument for an empty comment, and
    FailedPrecondition for an index the run has no comment at."""
    if change.action == ADD:
        if not change.body.strip():
            raise errors.InvalidArgument("a comment cannot be empty")
        return [*old, {"body": change.body, "host": change.host, "time": change.time_us, "user": change.user}]
    if change.action == DELETE:
        if not 1 <= change.index <= len(old):
            have = f"it has {len(old)}" if old else "it has none"
            raise errors.FailedPrecondition(f"run {run_id[:8]} has no comment {change.index} ({have})")
        return [c for i, c in enumerate(old, 1) if i != change.index]
    if change.action == CLEAR:
        return []
    raise errors.InvalidArgument(f"unknown comment action '{change.action}'")


def comments_of(value: Any) -> list[dict[str, Any]]:
    """The `comments` attr as a list of comment dicts (anything else in it is left out: a
    damaged attr shows no comments rather than stopping a read)."""
    return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []


def tags_of(value: Any) -> list[str]:
    """The `tags` attr as a list of strings."""
    return [str(t) for t in value] if isinstance(value, list) else []


def tag_runs(store: storelib.Store, home: StrPath, recs: Sequence[storelib.RunRecord],
             change: TagChange) -> list[storelib.RunRecord]:
    """Changes the runs' tags (and, with sync_labels, labels), all or none."""
    check_tag_change(change)
    _refuse_deleted(recs, "tag")
    planned = []
    for rec in recs:
        old = tags_of(_read(home, rec, "tags"))
        label = synced_label(rec.label, old, change) if change.sync_labels else rec.label
        planned.append((rec, new_tags(rec.id, old, change), label))
    for rec, tags, label in planned:
        run_dir = manage.location(home, rec)
        with manage.in_run_dir(run_dir, rec):
            rundir.write_attr(run_dir, "tags", tags)
            if label != rec.label:
                if label:
                    rundir.write_attr(run_dir, "label", label)
                else:
                    rundir.delete_attr(run_dir, "label")
        store.update(rec.id, tags_json=json.dumps(tags), label=label)
    return store.get_many([r.id for r in recs])


def comment_runs(store: storelib.Store, home: StrPath, recs: Sequence[storelib.RunRecord],
                 change: CommentChange) -> list[storelib.RunRecord]:
    """Changes the runs' comments, all or none: in the run dir, then the index (which
    `--comment` filters by)."""
    _refuse_deleted(recs, "comment on")
    planned = [(rec, new_comments(rec.id, comments_of(_read(home, rec, "comments")), change)) for rec in recs]
    for rec, comments in planned:
        run_dir = manage.location(home, rec)
        with manage.in_run_dir(run_dir, rec):
            rundir.write_attr(run_dir, "comments", comments)
        store.update(rec.id, comments_json=json.dumps(comments, default=str))
    return store.get_many([r.id for r in recs])


def _read(home: StrPath, rec: storelib.RunRecord, name: str) -> Any:
    """One attr of a run, read with its owner's rights (a link she put there reads nothing
    of what she couldn't read herself)."""
    run_dir = manage.location(home, rec)
    return fsrights.call_as_owner_of(run_dir, rundir.read_attr, run_dir, name)


def _refuse_deleted(recs: Sequence[storelib.RunRecord], verb: str) -> None:
    for rec in recs:
        if rec.deleted:
            raise errors.FailedPrecondition(
                f"cannot {verb} run {rec.id[:8]}: it is deleted (restore it first: guildctl runs restore {rec.id[:8]})")


def _listed(tags: Sequence[str]) -> str:
    return ", ".join(f"'{t}'" for t in tags) if tags else "none"
