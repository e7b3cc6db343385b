"""The client's side of guildd's identity handshake (the daemon's side, and why a token
can't be forged, is in guildd.tokens): a token from the daemon's auth socket, sent with
every request as gRPC metadata under METADATA_KEY."""

import os
import socket

from guild_common import errors

METADATA_KEY = "guild-token"


def obtain(path: str | os.PathLike[str], timeout: float = 10.0) -> str:
    """The client's side: a token from the daemon's auth socket at `path`. PermissionDenied
    with the daemon's reason when it gives none; OSError when nothing answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
    line = data.decode().strip()
    if line.startswith("!") or not line:
        raise errors.PermissionDenied(line[1:] or f"guildd gave no identity token on {path}")
    return line
