"""Where things live: GUILD_HOME and the paths the daemon and client agree on."""

import hashlib
import os
import pathlib
from collections.abc import Mapping

from guild_common.paths import StrPath

# gRPC refuses to bind a Unix socket whose path is longer than the kernel's sun_path (108 bytes
# including the NUL); past this we bind a short path elsewhere and leave a link in GUILD_HOME.
MAX_SOCKET_PATH = 100


def guild_home(env: Mapping[str, str] | None = None) -> pathlib.Path:
    """GUILD_HOME as Guild resolves it: the env var; else the active virtualenv's (or conda
    env's) `.guild`; else `~/.guild`."""
    env = os.environ if env is None else env
    explicit = env.get("GUILD_HOME")
    if explicit:
        return pathlib.Path(explicit).expanduser().absolute()
    venv = env.get("VIRTUAL_ENV") or env.get("CONDA_PREFIX")
    if venv:
        return pathlib.Path(venv).absolute() / ".guild"
    return pathlib.Path("~/.guild").expanduser()


def runs_dir(home: StrPath) -> pathlib.Path:
    return pathlib.Path(home) / "runs"


def run_dir(home: StrPath, run_id: str) -> pathlib.Path:
    return runs_dir(home) / run_id


def socket_link(home: StrPath) -> pathlib.Path:
    """The socket's well-known name in GUILD_HOME (the socket itself, or a link to it)."""
    return pathlib.Path(home) / "guildd.sock"


def socket_bind_path(home: StrPath, shared: bool = False) -> pathlib.Path:
    """Where the daemon binds: GUILD_HOME/guildd.sock when the path is short enough, else a
    short path keyed by a hash of GUILD_HOME, in the user's runtime dir (a shared daemon's:
    SHARED_SOCKET_DIR, which every user can reach)."""
    link = socket_link(home)
    if len(str(link)) <= MAX_SOCKET_PATH:  # its auth socket is 5 longer: still within sun_path
        return link
    key = hashlib.sha1(str(pathlib.Path(home).absolute()).encode()).hexdigest()[:16]
    runtime = SHARED_SOCKET_DIR if shared else os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/guildd-{os.getuid()}"
    return pathlib.Path(runtime) / f"guildd-{key}.sock"


# A shared daemon's sockets for a GUILD_HOME too deep to hold them (root's, mode 0755).
SHARED_SOCKET_DIR = "/run/guildd"


def auth_socket_path(socket_path: StrPath) -> pathlib.Path:
    """The identity handshake's socket beside the gRPC socket at `socket_path` (guildd.tokens)."""
    path = pathlib.Path(socket_path)
    return path.with_name(f"{path.stem}-auth.sock")


def socket_connect_path(home: StrPath) -> pathlib.Path:
    """The path a client connects to: follows the link the daemon left for a long home."""
    link = socket_link(home)
    if link.is_symlink():
        return pathlib.Path(os.readlink(link))
    return link


def lock_path(home: StrPath) -> pathlib.Path:
    return pathlib.Path(home) / "guildd.lock"


def log_path(home: StrPath) -> pathlib.Path:
    return pathlib.Path(home) / "guildd.log"


def index_path(home: StrPath) -> pathlib.Path:
    # Not Guild's own `index_v1.db`: both tools can share one GUILD_HOME.
    return pathlib.Path(home) / "guildd-index.db"
