"""Run labels: Guild's "Run labels" (~L24172) and "Run Labels" (~L29614) doctests as tables."""

import logging
import os

import pytest

from guild_common import labels

RENDER_CASES = [
    # Missing template: the default label.
    ("", {}, ""),
    (None, {}, ""),
    (None, {"foo": "FOO"}, "foo=FOO"),
    ("", {"foo": "FOO", "bar": "BAR"}, "bar=BAR foo=FOO"),
    ("", {"f": 1.123456789}, "f=1.12345"),
    (
        None,
        {"f1": 1.0, "f2": 1.0 / 3.0, "b1": True, "b2": False, "i": 123},
        "b1=yes b2=no f1=1.0 f2=0.33333 i=123",
    ),
    (None, {"x": 0.2, "gpus": None}, "x=0.2"),
    # Templates.
    ("foo", {}, "foo"),
    ("foo", {"foo": "FOO"}, "foo"),
    ("${foo}", {}, ""),
    ("${foo}", {"foo": "FOO"}, "FOO"),
    ("foo: ${foo}", {"foo": "FOO"}, "foo: FOO"),
    (
        "${i} ${f} ${b} ${s} ${l}",
        {"i": 1234, "f": 9.87654321, "b": True, "s": "hello", "l": [1, 1.123, "hola"]},
        "1234 9.87654 yes hello [1, 1.123, hola]",
    ),
    ("a-${b}-c", {}, "a--c"),
    ("${b}-c", {}, "-c"),
    ("a-${b}", {}, "a-"),
    ("a-${b|default:b}-c", {}, "a-b-c"),
    ("${b|default:b}-c", {}, "b-c"),
    ("a-${b|default:b}", {}, "a-b"),
    ("a-${b}-c", {"b": "b"}, "a-b-c"),
    ("${b}-c", {"b": "b"}, "b-c"),
    ("a-${b}", {"b": "b"}, "a-b"),
    ("a-${b}-c", {"b": None}, "a--c"),
    # ${default_label}
    ("${default_label}", {}, ""),
    ("${default_label}", {"foo": "FOO", "bar": "BAR"}, "bar=BAR foo=FOO"),
    ("prefix ${default_label}", {"foo": "FOO", "bar": "BAR"}, "prefix bar=BAR foo=FOO"),
    ("${default_label} suffix", {"foo": "FOO", "bar": "BAR"}, "bar=BAR foo=FOO suffix"),
    (
        "prefix ${default_label} suffix",
        {"foo": "FOO", "bar": "BAR"},
        "prefix bar=BAR foo=FOO suffix",
    ),
    # Filters: basename, default, %-formatting, unquote.
    ("${file|basename}", {"file": os.path.join("foo", "bar.txt")}, "bar.txt"),
    ("${file|basename}", {"file": "foo/bar/"}, "bar"),
    ("${file|basename}", {}, ""),
    ("${foo|default:123}", {}, "123"),
    ("${foo|default:456}", {"foo": None}, "456"),
    ("${foo|default:456}", {"foo": "789"}, "789"),
    ("${foo|default:}", {}, ""),
    ("${f|%.2f} ${i|%05d}", {"f": 1.123456789, "i": 12}, "1.12 00012"),
    ("${s|%.2f}", {"s": "hello"}, "hello"),
    ("ver=${ver}", {"ver": "12345"}, "ver='12345'"),
    ("ver=${ver|unquote}", {"ver": "12345"}, "ver=12345"),
    ("ver=${ver|unquote}", {"ver": '"12345"'}, 'ver="12345"'),
    ("ver=${ver|unquote}", {"ver": ""}, "ver="),
    ("ver=${ver|unquote}", {"ver": "'"}, "ver='"),
    ("ver=${ver|unquote}", {"ver": "'1.0'"}, "ver=1.0"),
    ("ver=${ver|unquote}", {"ver": None}, "ver="),
    # Filters chain left to right; a non-string result is formatted like a plain value.
    ("${lr|default:0.1|%.3f}", {}, "0.1"),  # '%.3f' % '0.1' is a TypeError: passes through
    ("${lr|default:0.1|%.3f}", {"lr": 0.123456}, "0.123"),
    ("${b|default:no}", {"b": True}, "yes"),
    ("${f|default:0}", {"f": 0.123456789}, "0.12345"),
    # The labels sample project (~L29614).
    ("i equals ${i}", {"b": True, "f": 2.0, "i": 2, "s": "hello"}, "i equals 2"),
    ("${default_label}", {"b": True, "f": 2.0, "i": 1, "s": "hi"}, "b=yes f=2.0 i=1 s=hi"),
    (
        "prefix ${default_label} suffix",
        {"b": True, "f": 2.0, "i": 2, "s": "bye"},
        "prefix b=yes f=2.0 i=2 s=bye suffix",
    ),
    (
        "i:${i}, f:${f}, b:${b}, s:${s}",
        {"b": True, "f": 2.0, "i": 1, "s": "hello"},
        "i:1, f:2.0, b:yes, s:hello",
    ),
    (
        "i:${i}, f:${f}, b:${b}, s:${s}",
        {"b": False, "f": 2.0, "i": 2, "s": "yello"},
        "i:2, f:2.0, b:no, s:yello",
    ),
    ("${s}-${i}", {"b": True, "f": 2.0, "i": 6, "s": "whoop"}, "whoop-6"),
    ("i is ${i}", {"i": 2}, "i is 2"),
    ("custom label", {"i": 2}, "custom label"),
    # Spaces in values are quoted, as in the default label.
    ("msg=${msg}", {"msg": "hello there"}, "msg='hello there'"),
]


@pytest.mark.parametrize("template,flags,expected", RENDER_CASES)
def test_render(template, flags, expected):
    assert labels.render(template, flags) == expected
    assert labels.render_with_warnings(template, flags) == labels.Rendered(expected, ())


def test_given_default_label():
    assert labels.render("${default_label} x", {"a": 1}, "green a=1") == "green a=1 x"
    assert labels.render(None, {"a": 1}, "foo=123") == "foo=123"
    assert labels.render("", {"a": 1}, "") == ""


def test_bad_format_warns_and_keeps_the_value(caplog):
    rendered = labels.render_with_warnings("${s|%z}", {"s": "hello"})
    assert rendered == labels.Rendered(
        "hello",
        ("error formatting 'hello' with '%z': unsupported format character 'z' (0x7a) at index 1",),
    )
    with caplog.at_level(logging.WARNING, logger="guild_common.labels"):
        assert labels.render("${s|%z}", {"s": "hello"}) == "hello"
    assert [r.getMessage() for r in caplog.records] == list(rendered.warnings)


def test_type_mismatch_is_silent(caplog):
    with caplog.at_level(logging.WARNING, logger="guild_common.labels"):
        assert labels.render("${s|%.2f}", {"s": "hello"}) == "hello"
    assert caplog.records == []


def test_unknown_filter():
    assert labels.render_with_warnings("x=${x|upper}", {"x": "a"}) == labels.Rendered(
        "x=#error#", ("unsupported label filter 'upper'",)
    )


def test_long_existing_paths_are_shortened(tmp_path):
    long_path = tmp_path / "abc/def/ghi/jkl/mno/pqr/stu/vwx/yz"
    long_path.mkdir(parents=True)
    label = labels.render("", {"p": str(long_path)})
    assert label.startswith("p=/") and label.endswith("/\u2026/vwx/yz")
    assert len(label) <= len("p=") + labels.SHORT_PATH_LEN
    assert labels.render("${p}", {"p": str(long_path)}) == label[2:]
    # A path that does not exist is shown whole, as is a short one.
    missing = str(tmp_path / "abc/def/ghi/jkl/mno/pqr/stu/vwx/nope")
    assert labels.render("", {"p": missing}) == f"p={missing}"
    assert labels.render("", {"p": "a/b"}) == "p=a/b"


@pytest.mark.parametrize(
    "path,expected",
    [
        # Absolute: from the left first; relative: the first part, then from the right.
        ("/tmp/abcdef/abc/def/ghi/jkl/mno/pqr/stu/vwx/yz", "/tmp/abcdef/abc/\u2026/stu/vwx/yz"),
        ("rel/abc/def/ghi/jkl/mno/pqr/stu/vwx/yz", "rel/abc/def/\u2026/pqr/stu/vwx/yz"),
        ("/short/path", "/short/path"),
        ("/a-very-long-single-directory-name/x", "/\u2026/x"),
        # A part too long for one side leaves room for the other's.
        ("/" + "x" * 40 + "/y/z", "/\u2026/y/z"),
        (
            "/tmp/pytest-of-root/pytest-12/test_x0/abc/def/ghi/vwx/yz",
            "/tmp/pytest-of-root/\u2026/vwx/yz",
        ),
    ],
)
def test_shorten_path(path, expected):
    assert labels.shorten_path(path) == expected


def test_format_default_label_matches_flags_module():
    from guild_common import flags

    values = {"f1": 1.0, "f2": 1.0 / 3.0, "b": True, "s": "a b", "n": None, "l": [1, 2]}
    assert labels.format_default_label(values) == flags.default_label(values)


@pytest.mark.parametrize("template", [None, "${s}", "run ${default_label}"])
def test_a_label_from_long_flag_values_is_cut_to_the_limit(template):
    from guild_common import limits

    label = labels.render(template, {"s": "x" * 100_000})
    assert len(label) == limits.MAX_LABEL and label.endswith("\u2026")
