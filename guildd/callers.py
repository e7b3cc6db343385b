"""Who is asking: the caller of a request, as the kernel vouches for it.

A `Caller` is built from a uid only, and the uid only ever comes from the kernel: in a
per-user daemon from the 0600 socket (only the daemon's own user can connect), in a shared
daemon from the peer credentials (SO_PEERCRED) of the connection that obtained the request's
token (guildd.tokens). Nothing a client sends (a name, metadata, an environment variable)
goes into one. Any front end (gRPC today, a web page later) attaches a Caller to a request
the same way: it resolves a token the kernel-checked handshake issued.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd

from guild_common import errors


@dataclasses.dataclass(frozen=True)
class Caller:
    """A local user making requests: their account and whether they administer the daemon."""

    uid: int
    name: str
    gid: int
    groups: tuple[int, ...]
    home: str
    admin: bool  # root, or a member of the daemon's admin group

    def describe(self) -> str:
        return f"{self.name} (uid {self.uid})"


def lookup(uid: int, admin_group: str | None = None) -> Caller:
    """The Caller for a kernel-verified uid. PermissionDenied for a uid with no account (no
    passwd entry: no name, home or groups to run anything as)."""
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        raise errors.PermissionDenied(f"uid {uid} has no account on this machine (no passwd entry); guildd serves only local users") from None
    groups = tuple(sorted(set(os.getgrouplist(pw.pw_name, pw.pw_gid))))
    return Caller(uid, pw.pw_name, pw.pw_gid, groups, pw.pw_dir, uid == 0 or _in_group(admin_group, pw.pw_name, groups))


def _in_group(group: str | None, name: str, groups: tuple[int, ...]) -> bool:
    if not group:
        return False
    try:
        gr = grp.getgrnam(group)
    except KeyError:
        return False
    return gr.gr_gid in groups or name in gr.gr_mem


def daemon_user(admin_group: str | None = None) -> Caller:
    """The daemon's own user: every caller of a per-user daemon (its socket is 0600)."""
    uid = os.getuid()
    try:
        return lookup(uid, admin_group)
    except errors.PermissionDenied:
        # A per-user daemon in a container with no passwd entry still serves its one user.
        return Caller(uid, os.environ.get("USER") or f"uid{uid}", os.getgid(), tuple(os.getgroups()), os.environ.get("HOME", "/"), True)
