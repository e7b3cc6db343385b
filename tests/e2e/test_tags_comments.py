"""`tag` and `comment` (and `runs tag`, `runs comment`) end to end: Guild 0.9's attrs in the
run dir, what `runs info` shows, the filters, and bad input refused in one line with nothing
written. When Guild 0.9 is installed at /tmp/guild-anchor, it reads what we wrote."""

import json
import os
import pathlib
import pwd
import subprocess

import pytest
import yaml

from tests.e2e.conftest import run, serve_module

GUILD = pathlib.Path("/tmp/guild-anchor/bin/guild")
ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture(scope="module")
def g(tmp_path_factory):
    yield from serve_module(tmp_path_factory, "tags")


@pytest.fixture
def runs(g, tmp_path):
    """Two new runs (ids, latest first), the latest labeled 'a b'."""
    (tmp_path / "t.py").write_text("print('hi')\n")
    for _ in range(2):
        run(g, tmp_path, "t.py")
    ids = [r["id"] for r in g.runs()[:2]]
    g.ctl("label", ids[0], "-s", "a b", "-y")
    return ids


def _attr(g, run_id, name, trash=False):
    path = g.home / ("trash/runs" if trash else "runs") / run_id / ".guild" / "attrs" / name
    return yaml.safe_load(path.read_text()) if path.exists() else None


def _refused(r):
    """One line on stderr, no traceback, a non-zero exit."""
    assert r.returncode != 0
    assert r.stdout == "" and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    return r.stderr.strip()


def test_tags_change_and_the_label_stays(g, runs):
    latest, _ = runs
    assert g.ctl("tag", latest, "-a", "x", "-a", "y", "-y").stdout == "Modified tags for 1 run(s)\n"
    assert _attr(g, latest, "tags") == ["x", "y"]
    g.ctl("runs", "tag", latest, "--remove", "x", "-a", "z", "-y")
    info = g.info(latest)
    assert info["tags"] == ["y", "z"] and info["label"] == "a b"
    assert "tags:\n  - y\n  - z\n" in g.ctl("runs", "info", latest).stdout
    assert json.loads(g.ctl("tag", latest, "--list-all", "--json").stdout) == ["y", "z"]
    assert [r["id"] for r in g.runs() if "z" in (r["tags"] or [])] == [latest]
    assert g.ctl("runs", "list", "-Ft", "z").stdout.count("\n") == 1
    g.ctl("tag", latest, "-c", "-y")
    assert _attr(g, latest, "tags") == [] and g.info(latest)["label"] == "a b"


def test_sync_labels_changes_the_label_too(g, runs):
    latest, _ = runs
    g.ctl("tag", latest, "-s", "-a", "best", "-y")
    assert g.info(latest)["label"] == "best a b"
    g.ctl("tag", latest, "-s", "-d", "best", "-y")
    assert g.info(latest)["label"] == "a b"


def test_removing_a_tag_a_run_lacks_is_refused_and_no_run_changes(g, runs):
    latest, older = runs
    g.ctl("tag", latest, "-a", "x", "-y")
    line = _refused(g.ctl("tag", latest, older, "-d", "x", "-y", check=False))
    assert line == f"guildctl: run {older[:8]} has no tag 'x' (its tags: none)"
    assert _attr(g, latest, "tags") == ["x"]


def test_tag_asks_before_changing(g, runs):
    latest, _ = runs
    r = g.ctl("tag", latest, "-a", "kept-out", input="n\n", check=False)
    assert r.returncode == 1 and "You are about to modify tags for the following runs:" in r.stdout
    assert "kept-out" not in (_attr(g, latest, "tags") or [])


def test_comments_add_list_delete_clear(g, runs):
    latest, _ = runs
    assert g.ctl("comment", latest, "-a", "looks good", "-y").stdout == "Added comment to 1 run(s)\n"
    g.ctl("runs", "comment", latest, "-a", "second\nline", "-y")
    [first, second] = _attr(g, latest, "comments")
    assert first["body"] == "looks good" and first["user"] == ME and first["host"] == os.uname().nodename
    assert isinstance(first["time"], int) and set(first) == {"body", "host", "time", "user"}
    listed = g.ctl("comment", latest, "--list").stdout.splitlines()
    assert listed[1].startswith(f"[1] {ME}@") and listed[3] == "  looks good" and listed[7:9] == ["  second", "  line"]
    as_json = json.loads(g.ctl("comment", latest, "--list", "--json").stdout)
    assert as_json == [{"id": latest, "comments": [first, second]}]
    info = json.loads(g.ctl("runs", "info", latest, "-c", "--json").stdout)
    assert [(c["user"], c["body"]) for c in info["comments"]] == [(ME, "looks good"), (ME, "second\nline")]
    text = g.ctl("runs", "info", latest, "--comments").stdout
    assert f"comments:\n  -\n    body: looks good\n    host: {first['host']}\n" in text
    assert g.ctl("comment", latest, "-d", "1", "-y").stdout == "Deleted comment for 1 run(s)\n"
    assert [c["body"] for c in _attr(g, latest, "comments")] == ["second\nline"]
    g.ctl("comment", latest, "-c", "-y")
    assert _attr(g, latest, "comments") == []
    assert g.ctl("comment", latest, "-l").stdout.splitlines()[1] == "  <no comments>"


def test_a_comment_from_the_editor(g, runs, tmp_path):
    latest, _ = runs
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\necho "typed in an editor" >> "$1"\n')
    editor.chmod(0o755)
    g.ctl("comment", latest, env={**g.env, "EDITOR": str(editor), "VISUAL": str(editor)})
    assert [c["body"] for c in _attr(g, latest, "comments")] == ["typed in an editor"]
    r = g.ctl("comment", latest, env={**g.env, "EDITOR": "true", "VISUAL": "true"}, check=False)
    assert r.returncode == 1 and "empty comment" in r.stderr
    assert len(_attr(g, latest, "comments")) == 1


BAD = {
    "a comment index a run lacks": (["comment", "-d", "3", "-y"], "has no comment 3 (it has none)"),
    "an empty comment": (["comment", "-a", " ", "-y"], "a comment cannot be empty"),
    "two actions": (["comment", "-a", "x", "-c", "-y"], "--add and --clear cannot be used together"),
    "tag without an action": (["tag"], "specify --add, --delete or --clear"),
    "an empty tag": (["tag", "-a", "", "-y"], "a tag cannot be empty"),
}


@pytest.mark.parametrize("args, message", BAD.values(), ids=BAD.keys())
def test_bad_input_is_refused_in_one_line(g, runs, args, message):
    latest, _ = runs
    assert message in _refused(g.ctl(*args[:1], latest, *args[1:], check=False))
    assert _attr(g, latest, "comments") is None and not _attr(g, latest, "tags")


def test_a_deleted_run_takes_no_comment(g, runs):
    _, older = runs
    g.ctl("runs", "rm", older, "-y")
    line = _refused(g.ctl("comment", older, "-a", "too late", "-y", check=False))
    assert line == f"guildctl: cannot comment on run {older[:8]}: it is deleted (restore it first: guildctl runs restore {older[:8]})"
    assert _attr(g, older, "comments", trash=True) is None


@pytest.mark.skipif(not GUILD.exists(), reason="Guild 0.9 is not installed at /tmp/guild-anchor")
def test_guild_reads_our_tags_and_comments(g, runs):
    latest, _ = runs
    g.ctl("tag", latest, "-a", "ours", "-y")
    g.ctl("comment", latest, "-a", "from guildctl", "-y")
    env = {**os.environ, "GUILD_HOME": str(g.home)}
    info = json.loads(subprocess.run([str(GUILD), "runs", "info", latest, "-c", "--json"], env=env, capture_output=True,
                                     text=True, timeout=120, check=True).stdout)
    assert info["tags"] == ["ours"] and [c["body"] for c in info["comments"]] == ["from guildctl"]
    assert info["comments"][0]["user"] == ME


def test_the_comment_filter(g, runs):
    latest, older = runs
    g.ctl("comment", older, "-a", "Promising lr", "-y")
    found = json.loads(g.ctl("runs", "list", "-Fc", "promising", "--json").stdout)
    assert [r["id"] for r in found] == [older]
    assert [c["body"] for c in found[0]["comments"]] == ["Promising lr"]
    assert g.ctl("runs", "list", "--comment", "no such comment").stdout == ""
    g.ctl("tag", "-Fc", "promising", "-a", "promising", "-y")  # a filter instead of RUN: the runs it keeps
    assert g.info(older)["tags"] == ["promising"] and not g.info(latest)["tags"]
