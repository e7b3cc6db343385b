"""`guildctl view`'s HTTP server from outside, with no browser: who gets in (the token the CLI
printed, as a cookie, a bearer header or in the URL; nothing else), what a POST must carry
(the session's CSRF value, no foreign Origin), that a GET changes nothing, and how bad input
is answered (one-line {"error"}, never a traceback). On a shared box (root's daemon, two real
users), each token acts as its own user only, under the CLI's ownership rules, audited.

The shared-box half needs root and the user tools (tests/e2e/sharedbox.py); it skips, saying
why, without them.
"""

import json
import shutil
import types

import pytest

from tests.e2e import sharedbox, viewlib
from tests.e2e.conftest import serve_module
from tests.e2e.sharedbox import SharedDaemon, run_id
from tests.e2e.viewlib import Client

NOT_LOGGED_IN = "Open the URL that 'guildctl view' printed"


@pytest.fixture(scope="module")
def guild(tmp_path_factory):
    proj = viewlib.write_project(tmp_path_factory.mktemp("view-http-proj") / "proj")
    yield from serve_module(tmp_path_factory, "view-http", proj)


@pytest.fixture(scope="module")
def view(guild):
    return viewlib.start_view(lambda *args: guild.ctl(*args, check=False))


@pytest.fixture(scope="module")
def runs(guild):
    """A running run, a completed one with a label, and a staged one (queue processing is off,
    so it stays staged)."""
    running = guild.ctl("run", "tick", "n=100000", "--background", "-y").stdout.split(" as ")[1].split()[0]
    guild.ctl("run", "tick", "n=1", "delay=0", "--label", "keep-me", "-y")
    done = guild.runs()[0]["id"]
    staged = guild.ctl("run", "tick", "--stage", "-y").stdout.split(" staged as ")[1].split()[0]
    guild.wait_status(running, "running")
    return types.SimpleNamespace(running=running, done=done, staged=staged)


@pytest.fixture(scope="module")
def client(view):
    c = Client(view, bearer=view.token)
    c.login()
    return c


def _gets(runs):
    """Every GET the API serves, with a real run in it."""
    r = runs.done
    return ["/api/session", "/api/runs", f"/api/runs/{r}", f"/api/runs/{r}/scalars", f"/api/runs/{r}/files",
            f"/api/runs/{r}/file?path=tick.py", "/api/queue", "/api/gpus", f"/api/batches/{r}",
            f"/api/compare?runs={r}", "/api/events", f"/api/runs/{r}/output"]


POSTS = ["/api/stop", "/api/start", "/api/priority", "/api/cancel", "/api/label", "/api/tag", "/api/mark",
         "/api/delete", "/api/clone"]


@pytest.mark.parametrize("token", ["none", "wrong", "expired-looking"])
def test_without_a_valid_token_every_path_answers_401(view, runs, token):
    bearer = {"none": None, "wrong": "not-a-token", "expired-looking": viewlib.lookalike(view.token)}[token]
    anon = Client(view, bearer=bearer)
    for path in _gets(runs):
        answer = anon.get(path)
        assert answer.status == 401, (path, answer.status, answer.text)
        assert answer.error()
    for path in POSTS:
        answer = anon.post(path, {"runs": [runs.done]}, headers={"X-Guild-CSRF": "x"})
        assert answer.status == 401, (path, answer.status, answer.text)
        assert answer.error()
    page = anon.get("/") if bearer is None else Client(view).get(f"/?token={viewlib.quoted(bearer)}")
    assert page.status == 401 and page.headers["content-type"].startswith("text/html"), (page.status, page.headers)
    assert "401" in page.text and NOT_LOGGED_IN in page.text
    if bearer is not None:
        assert Client(view, extra={"Cookie": f"guild_view={bearer}"}).get("/api/runs").status == 401


def test_the_printed_url_sets_a_cookie_and_leaves_the_address_bar(view):
    answer = Client(view).get(view.url[len(view.base):])
    assert answer.status == 302 and answer.headers["location"] in ("/", f"{view.base}/"), (answer.status, answer.headers)
    cookie = [part.strip() for part in answer.headers["set-cookie"].split(";")]
    assert cookie[0] == f"guild_view={view.token}"
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(cookie), cookie
    by_cookie = Client(view, extra={"Cookie": cookie[0]})
    assert by_cookie.get("/api/runs").status == 200
    assert by_cookie.get("/").status == 200
    assert Client(view).get(f"/api/runs?token={viewlib.quoted(view.token)}").status == 200


def test_a_page_reached_by_another_name_is_refused(guild, client, runs):
    # DNS rebinding: a site whose name resolves to 127.0.0.1 makes the browser send its name.
    port = client.view.port
    for host in (f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}"):
        answer = client.get("/api/runs", headers={"Host": host})
        assert answer.status == 403, (host, answer.status, answer.text)
        assert answer.error()
        stop = client.post("/api/stop", {"runs": [runs.running]}, headers={"Host": host})
        assert stop.status == 403, (host, stop.status, stop.text)
    assert client.get("/api/runs", headers={"Host": f"localhost:{port}"}).status == 200
    assert guild.info(runs.running)["status"] == "running"


def _forged(client):
    """How a forged POST may come: no CSRF header, a wrong one, or the right one from another
    site's page (its Origin)."""
    return {
        "no csrf header": {"csrf": False},
        "a wrong csrf header": {"csrf": False, "headers": {"X-Guild-CSRF": "0" * len(client.csrf)}},
        "a foreign origin": {"headers": {"Origin": "http://evil.example"}},
    }


@pytest.mark.parametrize("case", ["no csrf header", "a wrong csrf header", "a foreign origin"])
def test_a_forged_post_is_refused_and_changes_nothing(guild, client, runs, case):
    how = _forged(client)[case]
    stop = client.post("/api/stop", {"runs": [runs.running]}, **how)
    label = client.post("/api/label", {"runs": [runs.done], "label": "forged"}, **how)
    for answer in (stop, label):
        assert answer.status == 403, (case, answer.status, answer.text)
        assert answer.error()
    assert guild.info(runs.running)["status"] == "running"
    assert guild.info(runs.done)["label"] == "keep-me"


def test_a_post_from_the_page_itself_is_done(guild, view, client, runs):
    answer = client.post("/api/label", {"runs": [runs.done], "label": "from the page"},
                         headers={"Origin": view.base})
    assert answer.status == 200, answer.text
    assert [r["label"] for r in answer.json()["runs"]] == ["from the page"]
    assert guild.info(runs.done)["label"] == "from the page"
    client.ok("POST", "/api/label", {"runs": [runs.done], "label": "keep-me"})


def test_a_get_changes_nothing(guild, client, runs):
    for path in (f"/api/stop?runs={runs.running}", f"/api/label?runs={runs.done}&label=by-get",
                 f"/api/delete?runs={runs.done}"):
        answer = client.get(path)
        assert answer.status == 405, (path, answer.status, answer.text)
    assert guild.info(runs.running)["status"] == "running"
    assert guild.info(runs.done)["label"] == "keep-me"
    assert runs.done in [r["id"] for r in guild.runs()]


BAD = {
    # name: (method, path, JSON value or raw bytes, statuses allowed, a word the error names)
    "unknown run": ("GET", "/api/runs/0123abcd", None, (404,), "0123abcd"),
    "a page past any offset": ("GET", "/api/runs?page=100000000", None, (400,), "page"),
    "unknown run to stop": ("POST", "/api/stop", {"runs": ["0123abcd"]}, (404,), "0123abcd"),
    "bad json": ("POST", "/api/label", b"{not json", (400,), ""),
    "runs not a list": ("POST", "/api/label", {"runs": "{done}", "label": 5}, (400,), ""),
    "not an int": ("POST", "/api/clone", {"run": "{done}", "flags": {"n": "abc"}}, (400,), "n"),
    "start a completed run": ("POST", "/api/start", {"run": "{done}"}, (409,), ""),
    "a file outside the run": ("GET", "/api/runs/{done}/file?path=../../../../etc/passwd", None, (400, 403, 404), ""),
    "a missing file": ("GET", "/api/runs/{done}/file?path=no-such-file.txt", None, (404,), "no-such-file.txt"),
}


def _fill(value, runs):
    if isinstance(value, str):
        return value.replace("{done}", runs.done)
    if isinstance(value, dict):
        return {k: _fill(v, runs) for k, v in value.items()}
    return value


@pytest.mark.parametrize("name", BAD)
def test_bad_input_gets_one_line_and_no_traceback(guild, client, runs, name):
    method, path, value, statuses, word = BAD[name]
    path, value = _fill(path, runs), _fill(value, runs)
    before = {r["id"] for r in guild.runs()}
    log_before = len(_log(guild))
    if method == "GET":
        answer = client.get(path)
    elif isinstance(value, bytes):
        answer = client.post(path, raw=value)
    else:
        answer = client.post(path, value)
    assert answer.status in statuses, (name, answer.status, answer.text)
    line = answer.error()
    assert word in line, line
    assert "root:" not in answer.text
    assert {r["id"] for r in guild.runs()} == before
    assert "Traceback" not in _log(guild)[log_before:]


def test_a_huge_page_is_clamped_or_refused(guild, client, runs):
    answer = client.get("/api/runs?per=100000")
    if answer.status == 200:
        value = answer.json()
        assert value["per"] <= 500 and len(value["runs"]) <= 500 and value["total"] >= 2
    else:
        assert answer.status == 400 and "per" in answer.error()
    assert "Traceback" not in _log(guild)


def _log(guild):
    path = guild.home / "guildd.log"
    return path.read_text(errors="replace") if path.exists() else ""


# The shared box: root's `guildd --shared`, alice's runs, bob trying to change them.


@pytest.fixture(scope="module")
def people(venv):
    made = []
    try:
        for _ in range(2):
            made.append(sharedbox.add_user(venv))
        yield types.SimpleNamespace(alice=made[0], bob=made[1], root=sharedbox.Root("root", venv))
    finally:
        for user in made:
            sharedbox.remove_user(user)


@pytest.fixture(scope="module")
def box(venv, people):
    base = sharedbox.public_dir("guild-view-box-")
    daemon = SharedDaemon(venv, base)
    yield daemon
    daemon.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def alices(box, people):
    """alice's runs: completed (labelled), running, staged; her project."""
    alice = people.alice
    proj = sharedbox.project(box.home.parent, alice, viewlib.FILES)
    box.ok(alice, "run", "tick", "n=1", "delay=0", "--label", "alices", "-y", cwd=proj)
    done = box.runs(alice)[0]["id"]
    running = run_id(box.ok(alice, "run", "tick", "n=100000", "--background", "-y", cwd=proj))
    staged = run_id(box.ok(alice, "run", "tick", "--stage", "-y", cwd=proj))
    box.wait_status(running, "running")
    return {"done": done, "running": running, "staged": staged}


@pytest.fixture(scope="module")
def web(box, people):
    """Each person's client of the box's view, logged in with the token `guildctl view`
    printed for them."""
    clients = {}
    for user in (people.alice, people.bob, people.root):
        view = viewlib.start_view(lambda *args, user=user: box.ctl(user, *args))
        clients[user.name] = Client(view, bearer=view.token)
        clients[user.name].login()
    return clients


def _state(box):
    """What a refused request must leave as it was: each run's status, label, mark and tags,
    the trash, and the queue's entries and priorities."""
    runs = {r["id"]: (r["status"], r["label"], r["marked"], r["tags"]) for r in box.runs()}
    trash = sorted(r["id"] for r in box.runs(None, "--deleted"))
    queue = json.loads(box.ok(box.root, "queue", "--json").stdout)
    return runs, trash, [(e["run"]["id"], e["options"]["priority"]) for e in queue["entries"]]


def _audit_lines(box, since):
    return [line for line in box.log()[since:].splitlines() if "[guildd.audit]" in line]


def test_each_token_is_its_own_users(box, people, web):
    for user in (people.alice, people.bob, people.root):
        session = web[user.name].get("/api/session").json()
        assert (session["user"], session["shared"], session["admin"]) == (user.name, True, user is people.root)
    assert len({c.bearer for c in web.values()}) == 3
    # bob's token with alice's name claimed beside it is still bob.
    claimed = Client(web[people.bob.name].view, bearer=web[people.bob.name].bearer,
                     extra={"X-Guild-User": people.alice.name, "X-Remote-User": people.alice.name})
    assert claimed.get("/api/session").json()["user"] == people.bob.name


def test_bob_can_read_alices_runs(box, people, web, alices):
    bob = web[people.bob.name]
    run = bob.ok("GET", f"/api/runs/{alices['done']}")["run"]
    assert (run["id"], run["user"], run["label"]) == (alices["done"], people.alice.name, "alices")
    assert alices["running"] in [r["id"] for r in bob.ok("GET", "/api/runs?per=500")["runs"]]
    events = bob.events(f"/api/runs/{alices['done']}/output?tail=0")
    assert "tick 0" in "".join(data["text"] for event, data in events if event == "output")
    assert events[-1][1]["run"]["status"] == "completed"


BOBS_TRIES = {
    "stop": ("/api/stop", {"runs": ["{running}"]}),
    "label": ("/api/label", {"runs": ["{done}"], "label": "bob was here"}),
    "tag": ("/api/tag", {"runs": ["{done}"], "add": ["bobs"], "remove": []}),
    "mark": ("/api/mark", {"runs": ["{done}"], "clear": False}),
    "delete": ("/api/delete", {"runs": ["{done}"], "permanent": False}),
    "cancel": ("/api/cancel", {"runs": ["{staged}"]}),
    "priority": ("/api/priority", {"runs": ["{staged}"], "priority": 10}),
}


def _with_ids(value, ids):
    if isinstance(value, str):
        return ids[value[1:-1]] if value.startswith("{") else value
    if isinstance(value, list):
        return [_with_ids(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _with_ids(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize("action", BOBS_TRIES)
def test_bob_cannot_change_alices_run_and_the_try_is_audited(box, people, web, alices, action):
    path, body = BOBS_TRIES[action]
    before, since = _state(box), len(box.log())
    answer = web[people.bob.name].post(path, _with_ids(body, alices))
    assert answer.status == 403, (action, answer.status, answer.text)
    assert people.alice.name in answer.error()
    assert _state(box) == before
    assert any(people.bob.name in line for line in _audit_lines(box, since)), box.log()[since:]
    assert "Traceback" not in box.log()[since:]


def test_alice_can_change_her_runs_and_each_change_is_audited(box, people, web, alices):
    alice = web[people.alice.name]
    since = len(box.log())
    alice.ok("POST", "/api/label", {"runs": [alices["done"]], "label": "by alice on the web"})
    alice.ok("POST", "/api/tag", {"runs": [alices["done"]], "add": ["web"], "remove": []})
    alice.ok("POST", "/api/priority", {"runs": [alices["staged"]], "priority": 7})
    info = box.info(alices["done"])
    assert (info["label"], info["tags"]) == ("by alice on the web", ["web"])
    queue = json.loads(box.ok(people.alice, "queue", "--json").stdout)
    assert [e["options"]["priority"] for e in queue["entries"] if e["run"]["id"] == alices["staged"]] == [7]
    lines = [line for line in _audit_lines(box, since) if people.alice.name in line]
    assert len(lines) >= 3, box.log()[since:]


def test_a_web_clone_runs_as_the_caller_never_as_root(box, people, web, alices):
    alice = people.alice
    new = web[alice.name].ok("POST", "/api/clone", {"run": alices["done"], "flags": {"n": "2"}, "label": "",
                                                    "start": True})["run"]
    assert new["user"] == alice.name and new["id"] != alices["done"]
    info = box.wait_status(new["id"], "completed", "error")
    assert (info["status"], info["flags"]["n"], info["user"]) == ("completed", 2, alice.name)
    assert {p: uid for p, uid in sharedbox.owners(box.run_dir(new["id"])).items() if uid != alice.uid} == {}
    # bob may make a run like alice's (reading it is allowed) or be refused; if made, it is his.
    answer = web[people.bob.name].post("/api/clone", {"run": alices["done"], "flags": {}, "label": "", "start": False})
    if answer.status == 403:
        assert alice.name in answer.error()
    else:
        assert answer.status == 200, answer.text
        made = answer.json()["run"]
        assert made["user"] == people.bob.name
        assert box.run_dir(made["id"]).stat().st_uid == people.bob.uid
