"""The entrypoint wrapper of a run on a Ray cluster: runs the run's command on the node Ray
picked, where the files it writes can reach the run dir.

Its source is the job's entrypoint (`python -c`, guildd.rayjobs.entrypoint), so it needs
nothing on the node but a Python: standard library only, no guildd. Where the run dir is
there and writable (the local head, a shared filesystem), the command runs in it and its
files land in place (`exec`: the job's process is the command's). Otherwise it runs in the
job's working dir (Ray's copy of the source snapshot), and when it ends what it wrote is
packed (tar.gz, base64) into marked lines of the job's log, which the follower
(guildd.rayfollow) takes out of the output and unpacks into the run dir: the job submission
API is the one channel every Ray cluster has. Over `cap` bytes packed, nothing is sent and
one line says so.

argv: RUN_DIR MODE CAP CMD... ; MODE `auto` (in the run dir when it can) or `copy` (always copy
back, as on a cluster with no shared filesystem).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Sequence

MARK = "::guildd-files::"  # starts every line of the packed files in the job's log
START = "::guildd-start::"  # the first line of the wrapper's: what Ray logged before it is not the run's
LINE_CHARS = 4096  # base64 characters per marked line


def main(argv: Sequence[str]) -> None:
    run_dir, mode, cap, cmd = argv[0], argv[1], int(argv[2]), list(argv[3:])
    sys.stdout.write(START + "\n")
    sys.stdout.flush()
    if mode == "auto" and os.path.isdir(run_dir) and os.access(run_dir, os.W_OK | os.X_OK):
        os.chdir(run_dir)
        os.execvp(cmd[0], cmd)
    os.environ["RUN_DIR"] = os.getcwd()
    before = snapshot(".")
    proc = subprocess.Popen(cmd)
    signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signum))
    code = proc.wait()
    sys.stdout.flush()
    sys.stdout.write(pack_lines(changed(".", before), cap))
    sys.stdout.flush()
    sys.exit(code if code >= 0 else 128 - code)


def snapshot(root: str) -> dict[str, tuple[int, int]]:
    """{path: (size, mtime_ns)} of the files under root."""
    out = {}
    for path in _files(root):
        st = os.lstat(os.path.join(root, path))
        out[path] = (st.st_size, st.st_mtime_ns)
    return out


def changed(root: str, before: dict[str, tuple[int, int]]) -> list[str]:
    """The files under root made or changed since `before` (a snapshot), metadata aside."""
    now = snapshot(root)
    return [path for path in sorted(now) if before.get(path) != now[path]]


def _files(root: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == ".":
            dirnames[:] = [d for d in dirnames if d != ".guild"]  # the run's metadata is the local run dir's
        for name in filenames:
            path = os.path.normpath(os.path.join(rel, name))
            if os.path.isfile(os.path.join(root, path)) and not os.path.islink(os.path.join(root, path)):
                yield path


def pack_lines(paths: Sequence[str], cap: int, root: str = ".") -> str:
    """The marked lines carrying `paths` (under root) as tar.gz, or one plain line saying why
    not when the pack is over `cap` bytes. No paths: nothing."""
    if not paths:
        return ""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in paths:
            tar.add(os.path.join(root, path), arcname=path, recursive=False)
    data = buf.getvalue()
    if len(data) > cap:
        return f"guildd: files not copied back: {len(paths)} files, {len(data)} bytes packed, over the cap of {cap} bytes\n"
    return "".join(frame(data))


def frame(data: bytes) -> Iterator[str]:
    """`data` as marked lines: begin (size and sha256), the base64 text, end."""
    text = base64.b64encode(data).decode()
    yield f"{MARK}begin {len(data)} {hashlib.sha256(data).hexdigest()}\n"
    for i in range(0, len(text), LINE_CHARS):
        yield f"{MARK}{text[i:i + LINE_CHARS]}\n"
    yield f"{MARK}end\n"


if __name__ == "__main__":
    main(sys.argv[1:])
