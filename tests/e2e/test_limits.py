"""A run at the far end of what runs do (issue 16, item 6; bench/limits.py is the big version
with the figures): a large output, 100,000 scalars, 10,000 files, a 1 MB flag value, and text
over the limits on what the index stores (guild_common.limits). No crash, the daemon's memory
bounded, one clear line where a limit is reached."""

import json
import threading

import psutil
import pytest

from guild_common import errors, limits
from guild_common.pb import guild_pb2 as pb
from guildctl import api
from guildctl.client import Client
from tests.e2e.conftest import serve_module, write

OUTPUT_MB = 200
MAX_DAEMON_RSS = 250 * 2**20  # a daemon at rest holds ~80 MB; the output must not be read into it
SCALARS = 100_000
FILES = 10_000

BIG = """
size = 1
line = b"x" * 99 + b"\\n"
block = line * 655
out = __import__("sys").stdout.buffer
written = i = 0
while written < size:
    i += 1
    chunk = block + b"loss: %d\\n" % i
    out.write(chunk)
    written += len(chunk)
"""
SCALARS_PY = """
n = 1
for i in range(1, n + 1):
    print("step: %d\\nloss: %f" % (i, 1.0 / i))
"""
FILES_PY = """
n = 1
for i in range(n):
    with open("f%05d.txt" % i, "w") as f:
        f.write(str(i))
"""
LONG_LINE = """
import sys
sys.stdout.write("y" * (3 * 1024 * 1024))
print()
print("loss: 1.5")
"""


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    yield from serve_module(tmp_path_factory, "limits")


@pytest.fixture(scope="module")
def proj(g):
    p = g.project / "proj"
    write(p, {"big.py": BIG, "scalars.py": SCALARS_PY, "files.py": FILES_PY, "longline.py": LONG_LINE,
              "flag.py": "x = 'a'\nprint(len(x))\n"})
    return p


class Watch:
    """The daemon's peak RSS, and a `guildctl runs` every 0.2 s: (exit code, stderr) each."""

    def __init__(self, g):
        self.g, self.proc, self.stop = g, psutil.Process(g.daemon.pid), threading.Event()
        self.peak, self.probes = 0, []

    def __enter__(self):
        self.threads = [threading.Thread(target=self._rss), threading.Thread(target=self._probe)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()

    def _rss(self):
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def _probe(self):
        while not self.stop.wait(0.2):
            r = self.g.ctl("runs", check=False)
            self.probes.append((r.returncode, r.stderr.strip()))


def last_loss(g, run_id):
    """The last `loss` value and step in the index (runs info --json)."""
    return tuple(g.info(run_id)["scalars"]["loss"])


def test_a_large_output_keeps_the_daemon_small_and_serving(g, proj):
    size = OUTPUT_MB * 10**6
    with Watch(g) as w:
        g.ctl("run", "big.py", f"size={size}", "-y", cwd=proj, timeout=300)
        run_id = g.ctl("select").stdout.strip()
        tail = g.ctl("watch", run_id, "--tail", "2").stdout.splitlines()
    assert w.probes and all(code == 0 for code, _ in w.probes), w.probes
    assert w.peak < MAX_DAEMON_RSS, f"guildd's RSS reached {w.peak / 2**20:.0f} MB"
    output = g.home / "runs" / run_id / ".guild" / "output"
    assert output.stat().st_size >= size
    blocks = -(-size // (100 * 655 + 12))
    assert last_loss(g, run_id)[0] == blocks
    assert tail == ["x" * 99, f"loss: {blocks}"]


def test_a_hundred_thousand_scalars_in_one_run(g, proj):
    g.ctl("run", "scalars.py", f"n={SCALARS}", "-y", cwd=proj, timeout=300)
    run_id = g.ctl("select").stdout.strip()
    assert last_loss(g, run_id) == (pytest.approx(1.0 / SCALARS), SCALARS)
    rows = json.loads(g.ctl("compare", run_id, "--json").stdout)
    assert len(rows) == 1


def test_ten_thousand_files_in_a_run_dir(g, proj, tmp_path):
    g.ctl("run", "files.py", f"n={FILES}", "-y", cwd=proj, timeout=300)
    run_id = g.ctl("select").stdout.strip()
    listed = [line.strip() for line in g.ctl("ls", run_id).stdout.splitlines()]
    assert {f"f{i:05d}.txt" for i in range(FILES)} <= set(listed)
    assert g.info(run_id)["status"] == "completed"
    g.ctl("export", str(tmp_path / "exported"), run_id, "-y", timeout=300)
    assert len(list((tmp_path / "exported" / run_id).glob("f*.txt"))) == FILES
    g.ctl("runs", "rm", run_id, "-y")
    assert run_id not in {r["id"] for r in g.runs()}


def test_a_one_megabyte_flag_value_is_refused_with_one_line(g, proj):
    before = {r["id"] for r in g.runs()}
    s = api.connect(g.home, autostart=False)
    try:
        with pytest.raises(api.InvalidArgument) as e:
            s.run("flag.py", cwd=proj, x="a" * 2**20, quiet=True)
        run = s.run("flag.py", cwd=proj, x="b" * 60_000, quiet=True)
    finally:
        s.close()
    assert str(e.value) == "flag 'x' has a value too long: 1,048,578 bytes (the limit is 65,536)"
    assert run.status == "completed" and run.flags["x"] == "b" * 60_000
    assert {r["id"] for r in g.runs()} == before | {run.id}  # the refused one left no run behind


def test_a_long_flag_value_makes_no_long_runs_row(g, proj):
    g.ctl("run", "flag.py", "x=" + "c" * 20_000, "-y", cwd=proj)
    rows = g.ctl("runs").stdout.splitlines()
    assert max(len(row) for row in rows) < limits.MAX_LABEL + 100
    assert g.runs()[0]["flags"]["x"] == "c" * 20_000  # the value itself is whole


def test_the_scalars_after_a_line_of_megabytes_are_indexed(g, proj):
    g.ctl("run", "longline.py", "-y", cwd=proj)
    assert last_loss(g, g.ctl("select").stdout.strip())[0] == 1.5


@pytest.mark.parametrize("args, expected", [
    (["label", "--set", "l" * 5000, "-y"], "guildctl: the label is too long: 5,000 characters (the limit is 1,000)"),
    (["tag", "--add", "t" * 300, "-y"], "guildctl: a tag is too long: 300 characters (the limit is 200)"),
    (["comment", "-a", "c" * 20_000, "-y"], "guildctl: the comment is too long: 20,000 characters (the limit is 10,000)"),
])
def test_text_over_a_limit_is_refused_with_one_line(g, proj, args, expected):
    if not g.runs():
        g.ctl("run", "flag.py", "-y", cwd=proj)
    before = g.runs()[0]
    r = g.ctl(*args, check=False)
    assert r.returncode != 0 and r.stderr.strip() == expected
    after = g.runs()[0]
    assert (after["label"], after["tags"], after["comments"]) == (before["label"], before["tags"], before["comments"])


def test_an_op_name_over_the_limit_is_refused(g, proj):
    name = "o" * 300
    write(proj, {"guild.yml": f"{name}:\n  exec: echo hi\n"})
    try:
        r = g.ctl("run", name, "-y", cwd=proj, check=False)
    finally:
        (proj / "guild.yml").unlink()
    assert r.returncode != 0 and r.stderr.strip() == "guildctl: the op name is too long: 300 characters (the limit is 256)"


def test_every_client_gets_the_limits_not_just_guildctl(g, proj):
    c = Client(g.home, autostart=False)
    try:
        with pytest.raises(errors.InvalidArgument, match="the label is too long: 1,048,576 characters"):
            c.label_runs(pb.RunSelection(), pb.LABEL_SET, "x" * 2**20)
    finally:
        c.close()
