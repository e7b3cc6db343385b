"""How tags and comments read: the `comments` attr as Comment messages (guildd.convert), and
`comment --list` and `runs info --comments` as Guild 0.9 prints them (guildctl.output)."""

from guild_common.pb import guild_pb2 as pb
from guildctl import output
from guildd import convert

US = 1_796_416_481_435_962


def test_details_carry_the_comments_and_leave_them_out_of_the_other_attrs():
    msg = convert.add_details(pb.Run(), {"comments": [{"body": "hi", "host": "vm", "time": US, "user": "alice"}, "junk"],
                                         "label": "x"})
    assert [(c.body, c.user, c.host, c.time_us) for c in msg.comments] == [("hi", "alice", "vm", US)]
    assert "comments" not in msg.attrs_json


def test_a_comment_without_a_time_or_a_user():
    c = convert.comment_message({"body": "b", "time": "yesterday"})
    assert (c.body, c.user, c.host, c.time_us) == ("b", "", "", 0)


def test_comment_list_lines():
    comments = [pb.Comment(body="one\ntwo", user="alice", host="vm", time_us=US), pb.Comment(body="x", user="", host="vm")]
    lines = output.comment_lines(comments)
    assert lines[0].startswith("[1] alice@vm 20") and lines[1:5] == ["", "  one", "  two", ""]
    assert lines[5] == "[2] @vm" and lines[6:] == ["", "  x", ""]


def test_runs_info_comments_as_guild_prints_them():
    info = {"id": "abc", "comments": output.comments_info([pb.Comment(body="hi", user="alice", host="vm", time_us=US)])}
    text = output.info_text(info).splitlines()
    assert text[1:4] == ["comments:", "  -", "    body: hi"]
    assert text[4:] == ["    host: vm", f"    time: {output.fmt_time(US)}", "    user: alice"]
