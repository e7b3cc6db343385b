"""The world a fuzzed daemon lives in: a temp tree holding GUILD_HOME, a project, a canary
file outside GUILD_HOME (its content a token that must never come back in a response), an
export archive whose run holds links pointing out, and checks that nothing outside was read
or written and that every run dir is whole."""

import dataclasses
import hashlib
import os
import pathlib
import re
import shutil
import uuid

from guild_common import rundir
from tests.e2e.conftest import Guild
from tests.fuzz import messages

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
TRAIN = "print('loss: 0.5')\n"


def _digest_tree(path):
    """{relative path: (kind, sha256 or link target)} of everything under `path`."""
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, path)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isfile(p):
                out[rel] = ("file", hashlib.sha256(pathlib.Path(p).read_bytes()).hexdigest())
            else:
                out[rel] = ("dir", "")
    return out


@dataclasses.dataclass
class Box:
    base: pathlib.Path
    guild: Guild
    canary_token: bytes
    other_token: bytes
    escape_target: pathlib.Path
    outside_before: dict
    proj_before: dict
    top_before: set

    @property
    def home(self):
        return self.guild.home

    def escapes(self):
        """What a request changed outside GUILD_HOME, its run dirs and the export dirs."""
        found = []
        if _digest_tree(self.base / "outside") != self.outside_before:
            found.append("the canary dir outside GUILD_HOME changed")
        if _digest_tree(self.guild.project) != self.proj_before:
            found.append("the project dir changed")
        if set(os.listdir(self.base)) != self.top_before:
            found.append(f"new entries beside GUILD_HOME: {sorted(set(os.listdir(self.base)) - self.top_before)}")
        if os.listdir(self.base / "daemon-cwd"):
            found.append(f"files in the daemon's cwd: {os.listdir(self.base / 'daemon-cwd')}")
        if self.escape_target.exists() or self.escape_target.is_symlink():
            found.append(f"{self.escape_target} was written (a path climbing out of the run)")
        return found

    def leaked(self, data: bytes):
        """The tokens of files outside the run that `data` (a response) holds."""
        return [name for name, token in (("canary", self.canary_token),) if token in data]

    def half_written(self):
        """Run dirs that aren't whole: no opref, or no id/op/initialized attrs."""
        bad = []
        for parent in (self.home / "runs", self.home / "trash" / "runs"):
            if not parent.is_dir():
                continue
            for d in parent.iterdir():
                if not RUN_ID.match(d.name):
                    bad.append(f"{d}: not a run id")
                    continue
                attrs = rundir.read_attrs(d) if rundir.attrs_dir(d).is_dir() else {}
                if attrs.get("id") != d.name or not attrs.get("op") or not attrs.get("initialized"):
                    bad.append(f"{d.name}: attrs {sorted(attrs)}")
                elif not (rundir.guild_dir(d) / "opref").is_file():
                    bad.append(f"{d.name}: no opref")
        return bad


def make_box(base: pathlib.Path) -> Box:
    """Starts a daemon in a fresh tree under `base`, with the runs and links the fuzz cases
    aim at, and fills messages.PLACES."""
    proj = base / "proj"
    proj.mkdir()
    (proj / "train.py").write_text(TRAIN)
    outside = base / "outside"
    outside.mkdir()
    canary_token = f"CANARY-{uuid.uuid4().hex}".encode()
    (outside / "canary.txt").write_bytes(canary_token + b"\n")
    (base / "exports").mkdir()
    (base / "daemon-cwd").mkdir()
    guild = Guild(base / "guild-home", proj)
    old = os.getcwd()
    os.chdir(base / "daemon-cwd")  # a relative path the daemon wrongly took would land here
    try:
        guild.start_daemon()
    finally:
        os.chdir(old)
    guild.ctl("run", "train.py", "-y")
    guild.ctl("run", "train.py", "-y")
    guild.ctl("run", "train.py", "-y", "--stage")
    runs = guild.runs()
    staged, other, run = runs[0]["id"], runs[1]["id"], runs[2]["id"]
    guild.ctl("runs", "rm", staged, "-y")
    run_dir = guild.home / "runs" / run
    os.symlink(outside / "canary.txt", run_dir / "link-out")
    os.symlink(outside, run_dir / "dir-out")
    other_token = f"OTHER-{uuid.uuid4().hex}".encode()
    (guild.home / "runs" / other / "other-secret.txt").write_bytes(other_token)
    link_run = _plant_archive(guild, base, run)
    escape_target = pathlib.Path("/tmp") / f"guildfuzz-escape-{uuid.uuid4().hex}"
    messages.PLACES.clear()
    messages.PLACES.update(
        run=run, run_prefix=run[:6], run_other=other, run_link=link_run, deleted=staged,
        home=str(guild.home), outside=str(outside), canary=str(outside / "canary.txt"), exports=str(base / "exports"),
        archive=str(base / "archive"), climb="../" * 40 + str(escape_target).lstrip("/"),
        climb_canary="../" * 40 + str(outside / "canary.txt").lstrip("/"),
    )
    return Box(base, guild, canary_token, other_token, escape_target, _digest_tree(outside), _digest_tree(proj),
               set(os.listdir(base)))


def _plant_archive(guild, base, run):
    """An export dir holding a copy of `run` whose files are links out of it (to the canary,
    to its dir, and a dir link), as a hostile archive would. Returns the copy's id."""
    archive = base / "archive"
    archive.mkdir()
    link_run = uuid.uuid4().hex
    dest = archive / link_run
    shutil.copytree(guild.home / "runs" / run, dest, symlinks=True)
    rundir.write_attr(dest, "id", link_run)
    for name in ("link-out", "dir-out"):
        (dest / name).unlink()
    os.symlink(base / "outside" / "canary.txt", dest / "link-out")
    os.symlink(base / "outside", dest / "dir-out")
    (dest / "train.py").unlink()
    os.symlink(base / "outside" / "canary.txt", dest / "train.py")
    os.symlink("../../outside/canary.txt", dest / ".guild" / "rel-out")
    return link_run
