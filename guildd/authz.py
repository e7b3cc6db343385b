"""Who may change what, as pure functions: the ownership rules of a shared daemon.

A run belongs to the uid that owns its run directory (guildd.catalog.owners reads it): the
kernel's record, which the `user` attr a run carries (an editable file) cannot forge.
Everyone may read every run (list, inspect, compare, watch, cat, export). Only a run's owner
or an administrator (root, or a member of the daemon's --admin-group) may change it, and only
an administrator may change the queue's settings or stop the daemon. A per-user daemon has
one user, who owns its GUILD_HOME and everything in it: there everything is allowed.

A request is checked whole before any of it is done: if one of its runs is refused, none is
changed. A refusal is one line naming the run and its owner.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from guild_common import errors
from guildd.callers import Caller


class Action(enum.Enum):
    """What a request does to a run (or to the daemon), as a refusal words it:
    "cannot <value> run 57c8600b: ..."."""

    STOP = "stop"
    DELETE = "delete"
    RESTORE = "restore"
    PURGE = "purge"
    LABEL = "label"  # every LabelRuns action: set, prepend (--tag), append, remove (--untag), clear
    MARK = "mark"
    TAG = "tag"  # every TagRuns change: add, remove, clear (and the label, syncing it)
    COMMENT = "comment on"  # every CommentRuns action: add, delete, clear
    UNMARK = "unmark"
    RESTART = "restart"
    START = "start"  # a staged run, now (`run --start`)
    MOVE = "move"  # export --move: the run leaves GUILD_HOME
    PRIORITY = "set the priority of"
    CANCEL = "cancel"
    SEE_ENV = "see the environment of"  # a run's recorded environment may hold its owner's secrets
    QUEUE_SETTINGS = "change queue settings"  # daemon-wide: administrators only
    SHUTDOWN = "stop guildd"  # daemon-wide: administrators only
    SERVE_VIEW = "serve the web view beyond this machine"  # daemon-wide: a host other than loopback

    @property
    def daemon_wide(self) -> bool:
        """An action on the daemon, not on runs of one owner: only administrators may."""
        return self in (Action.QUEUE_SETTINGS, Action.SHUTDOWN, Action.SERVE_VIEW)


@dataclasses.dataclass(frozen=True)
class Policy:
    """How the daemon serves: shared by every local user (the rules apply) or by one user."""

    shared: bool
    admin_group: str | None = None

    def administrators(self) -> str:
        """Who administers the daemon, for a refusal: "root or a member of gpuadmins"."""
        return f"root or a member of {self.admin_group}" if self.admin_group else "root"


@dataclasses.dataclass(frozen=True)
class Owner:
    """Whose a run is: the uid that owns its run dir, and that uid's name."""

    uid: int
    name: str

    def describe(self) -> str:
        """"alice (uid 1001)"; "uid 1001" alone for a uid with no name."""
        bare = f"uid {self.uid}"
        return bare if self.name in ("", bare) else f"{self.name} ({bare})"


def refusal(policy: Policy, caller: Caller, action: Action, run_id: str, owner: Owner) -> str | None:
    """Why `caller` may not do `action` to run `run_id` of `owner` (one line); None when they
    may: they own it, they administer the daemon, or the daemon is theirs alone."""
    if not policy.shared or caller.admin or caller.uid == owner.uid:
        return None
    return f"cannot {action.value} run {run_id[:8]}: it belongs to {owner.describe()}"


def daemon_refusal(policy: Policy, caller: Caller, action: Action) -> str | None:
    """Why `caller` may not do a daemon-wide `action` (change queue settings, stop guildd);
    None when they may: they administer it, or the daemon is theirs alone."""
    if not policy.shared or caller.admin:
        return None
    return f"cannot {action.value}: that needs an administrator ({policy.administrators()})"


def runs_refusal(policy: Policy, caller: Caller, action: Action, owners: Mapping[str, Owner]) -> str | None:
    """Why `caller` may not do `action` to the runs `owners` names (run id -> owner, in the
    request's order): the first run refused, and, when the request named more, that none of
    them is changed (all or nothing). None when every run is allowed."""
    refused = [r for run_id, owner in owners.items() if (r := refusal(policy, caller, action, run_id, owner))]
    if not refused:
        return None
    if len(owners) == 1:
        return refused[0]
    others = f" (and {len(refused) - 1} more not yours)" if len(refused) > 1 else ""
    return f"{refused[0]}{others}; none of the {len(owners)} runs selected was changed"


def check_runs(policy: Policy, caller: Caller, action: Action, owners: Mapping[str, Owner]) -> None:
    """PermissionDenied with runs_refusal's line, unless every run is allowed."""
    reason = runs_refusal(policy, caller, action, owners)
    if reason:
        raise errors.PermissionDenied(reason)


def check_daemon(policy: Policy, caller: Caller, action: Action) -> None:
    """PermissionDenied with daemon_refusal's line, unless the caller may."""
    reason = daemon_refusal(policy, caller, action)
    if reason:
        raise errors.PermissionDenied(reason)
