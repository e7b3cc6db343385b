"""Finding the TF event files a run's process wrote in its run dir (tensorboardX, Keras'
TensorBoard callback, PyTorch's SummaryWriter): guildd indexes their scalars
(guildd.runevents) and `guildctl tensorboard` links them into its mirror (guildctl.tbmirror).

`.guild/` is not searched: its events are guildd's own, made from the run's output. Links are
never followed, and a walk stops after MAX_WALK_ENTRIES entries, so a run dir holding a data
set costs a bounded walk.
"""

import os
from collections import deque

from guild_common.paths import StrPath

MAX_WALK_ENTRIES = 10_000  # entries of a run dir looked at per walk
GUILD_DIR = ".guild"  # guildd's own, in the run dir's root


def is_event_file(name: str) -> bool:
    """A TF event file's name, as TensorBoard and Guild tell one (`events.out.tfevents.*`,
    `*.tfevents.*`)."""
    return ".tfevents." in name


def find_event_files(run_dir: StrPath, limit: int = MAX_WALK_ENTRIES) -> tuple[list[tuple[str, int]], bool]:
    """(path relative to `run_dir`, size) of each regular event file in it, and whether the
    walk stopped at `limit` entries. Breadth first, names in order: a walk that stops covers
    the same shallow dirs each time. Links are not followed, `.guild` is skipped, and a dir
    that can't be read (or is gone) is passed over. Run with the rights of whoever reads."""
    found: list[tuple[str, int]] = []
    dirs: deque[str] = deque([""])
    seen = 0
    while dirs:
        rel = dirs.popleft()
        try:
            with os.scandir(os.path.join(run_dir, rel)) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > limit:
                return found, True
            path = os.path.join(rel, entry.name)
            try:
                if entry.is_dir(follow_symlinks=False):
                    if path != GUILD_DIR:
                        dirs.append(path)
                elif is_event_file(entry.name) and entry.is_file(follow_symlinks=False):
                    found.append((path, entry.stat(follow_symlinks=False).st_size))
            except OSError:
                continue  # gone since the listing
    return found, False
