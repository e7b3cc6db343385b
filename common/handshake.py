"""The identity handshake's wire format, which guildd and guildctl agree on (the daemon's
side, and why a token can't be forged, is in guildd.tokens; the client's socket code is in
guildctl.client).

The client connects to the daemon's auth socket and reads one line: a token, or `!` and the
reason it gets none. It sends the token with every request as gRPC metadata METADATA_KEY.
"""

from guild_common import errors

METADATA_KEY = "guild-token"


def answer(token: str) -> bytes:
    return f"{token}\n".encode()


def refusal(reason: str) -> bytes:
    return f"!{reason}\n".encode()


def parse(data: bytes, path: str) -> str:
    """The token in the daemon's answer; PermissionDenied with its reason when it gave none
    (or nothing: `path` names the socket that didn't answer)."""
    line = data.decode(errors="replace").strip()
    if line.startswith("!") or not line:
        raise errors.PermissionDenied(line[1:] or f"guildd gave no identity token on {path}")
    return line
