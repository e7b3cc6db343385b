"""Helpers for the web view's end-to-end tests (test_view_http.py, test_view_browser.py): the
URL `guildctl view` prints, plain HTTP against it (no redirects followed, so a test sees what
the server answered), the ops the tests run, and a headless Chromium for the page.

The view is what a user opens in a browser, so the tests talk to it the way a browser or a
script would: real sockets, the real daemon behind it, the token from the real CLI.
"""

import http.client
import json
import os
import pathlib
import shutil
import subprocess
import textwrap
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT_MS = 20_000  # generous: the page and the daemon share two slow cores with other work

# A guild.yml project: `tick` prints a line every `delay` seconds, `scal` prints output
# scalars (step / loss), each flag typed or limited so the daemon can refuse a bad value.
GUILD_YML = """\
tick:
  main: tick
  flags:
    n: {default: 5, type: int}
    delay: {default: 0.2, type: float}
    mode: {default: a, choices: [a, b]}
scal:
  main: scal
  flags:
    n: {default: 6, type: int}
    lr: {default: 0.1, type: float}
"""
TICK = """\
import time
n = 5
delay = 0.2
mode = "a"
for i in range(n):
    print("tick %d" % i, flush=True)
    time.sleep(delay)
"""
SCAL = """\
n = 6
lr = 0.1
for step in range(n):
    print("step: %d" % step)
    print("loss: %f" % (1.0 / (1 + lr * 10 * step)), flush=True)
"""
FILES = {"guild.yml": GUILD_YML, "tick.py": TICK, "scal.py": SCAL}


def write_project(proj: pathlib.Path) -> pathlib.Path:
    """Writes the tests' project (FILES) into `proj` and returns it."""
    proj.mkdir(parents=True, exist_ok=True)
    for name, text in FILES.items():
        (proj / name).write_text(textwrap.dedent(text))
    return proj


@dataclass
class View:
    """What `guildctl view --no-open --json` printed: where the view serves, and the token."""

    url: str
    host: str
    port: int
    token: str

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"


def start_view(ctl: Callable[..., subprocess.CompletedProcess]) -> View:
    """Runs `guildctl view --no-open --json` through `ctl` (a function running guildctl as
    some user) and returns what it printed; fails, showing why, when it exits non-zero."""
    r = ctl("view", "--no-open", "--json")
    assert r.returncode == 0, f"guildctl view exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    value = json.loads(r.stdout)
    return View(url=value["url"], host=value["host"], port=int(value["port"]), token=value["token"])


def lookalike(token: str) -> str:
    """A token of the same length and alphabet as `token` that the daemon never issued (what
    an expired token looks like to the server)."""
    return "".join("A" if c != "A" else "B" for c in token)


@dataclass
class Answer:
    """One HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def error(self) -> str:
        """The one-line {"error": ...} of a refusal; fails when the answer is anything else."""
        assert self.headers.get("content-type", "").startswith("application/json"), (self.status, self.headers, self.text)
        value = self.json()
        assert set(value) == {"error"}, value
        line = value["error"]
        assert isinstance(line, str) and line and "\n" not in line.strip() and "Traceback" not in line, line
        return line


@dataclass
class Client:
    """HTTP against a view as one token holder (or none): `bearer` as the Authorization
    header, and the CSRF value POSTs carry once `login()` fetched it."""

    view: View
    bearer: str | None = None
    csrf: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30) -> Answer:
        conn = http.client.HTTPConnection(self.view.host, self.view.port, timeout=timeout)
        try:
            sent = {**self.extra, **(headers or {})}
            if self.bearer is not None:
                sent.setdefault("Authorization", f"Bearer {self.bearer}")
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            if resp.getheader("content-type", "").startswith("text/event-stream"):
                data = b""  # a live stream: its status and headers are the answer
            else:
                data = resp.read()
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Answer:
        return self.request("GET", path, **kw)

    def post(self, path: str, value: Any = None, raw: bytes | None = None, csrf: bool = True,
             headers: dict[str, str] | None = None) -> Answer:
        """POST `value` as JSON (or `raw` bytes) with this client's CSRF header unless `csrf` is
        False; `headers` add to or override it."""
        sent = {"Content-Type": "application/json"}
        if csrf and self.csrf is not None:
            sent["X-Guild-CSRF"] = self.csrf
        sent.update(headers or {})
        body = raw if raw is not None else json.dumps(value).encode()
        return self.request("POST", path, body=body, headers=sent)

    def login(self) -> dict[str, Any]:
        """GET /api/session: who the server takes this token for, and the CSRF value."""
        answer = self.get("/api/session")
        assert answer.status == 200, (answer.status, answer.text)
        session = answer.json()
        self.csrf = session["csrf"]
        return session

    def events(self, path: str, last: str = "ended", timeout: float = 30) -> list[tuple[str, Any]]:
        """The server-sent events of `path` as (event, data) pairs, up to and including the
        first `last` event (the stream stays open after it; the socket is then closed)."""
        conn = http.client.HTTPConnection(self.view.host, self.view.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={**self.extra, "Authorization": f"Bearer {self.bearer}"})
            resp = conn.getresponse()
            assert resp.status == 200, (path, resp.status, resp.read())
            assert resp.getheader("content-type", "").startswith("text/event-stream"), resp.getheaders()
            got: list[tuple[str, Any]] = []
            event, data = "message", []
            while True:
                line = resp.readline().decode("utf-8")
                assert line, f"{path}: the stream ended before a {last!r} event: {got}"
                line = line.rstrip("\r\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    got.append((event, json.loads("\n".join(data))))
                    if event == last:
                        return got
                    event, data = "message", []
        finally:
            conn.close()

    def ok(self, method: str, path: str, value: Any = None) -> Any:
        """A request that must succeed (2xx): its JSON."""
        answer = self.post(path, value) if method == "POST" else self.get(path)
        assert 200 <= answer.status < 300, (method, path, answer.status, answer.text)
        return answer.json()


def quoted(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def browser_skip_reason() -> str | None:
    """Why the browser tests can't run here (None when they can): Debian's chromium and the
    Python Playwright package (never its downloaded browsers)."""
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")):
        return f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs the Python package playwright (pip install playwright; its browsers are not used)"
    return None


def launch_options() -> dict[str, Any]:
    """Playwright's launch options for Debian's headless chromium."""
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


def save_png(page: Any, path: pathlib.Path) -> pathlib.Path:
    """A screenshot of `page` at `path`, reduced to 256 colours when Pillow is there (the
    README's images stay small)."""
    page.screenshot(path=str(path))
    try:
        from PIL import Image
    except ImportError:
        return path
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    return path
