import os
import time

import pytest

from guild_common.sourcecode import (
    DEFAULT_RULES,
    MAX_FILE_SIZE,
    Rule,
    digest,
    format_rules,
    is_text_sample,
    select_files,
)

ADVICE = "To control which files are copied, define 'sourcecode' for the operation in a Guild file."
COUNT_WARNING = (
    "Found more than 100 source code files but will only copy 100 as a safety measure. " + ADVICE
)


def _write(root, relpath, content=b""):
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


PYC = b"\xa7\r\r\n\x00\x00\x00\x00\xe3\x00\x00\x00\x00\x00"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@pytest.fixture
def project(tmp_path):
    """The copy-sourcecode sample project from Guild's docs."""
    for relpath, content in [
        (".dotdir/a.txt", "a"),
        (".gitattributes", "* text=auto\n"),
        ("__pycache__/hello.pyc", PYC),
        ("a.txt", "a\n"),
        ("empty", ""),
        ("env/bin/activate", "# venv\n"),
        ("env/some-env-file", "x\n"),
        ("guild.yml", "- model: ''\n"),
        ("hello.py", "print('hello')\n"),
        ("hello.pyc", PYC),
        ("nocopy_dir/.guild-nocopy", ""),
        ("nocopy_dir/a.txt", "a\n"),
        ("subdir/b.txt", "b\n"),
        ("subdir/logo.png", PNG),
    ]:
        _write(tmp_path, relpath, content)
    return tmp_path


def test_default_rules_format():
    assert format_rules(DEFAULT_RULES) == [
        "exclude dir '__pycache__'",
        "exclude dir '.*'",
        "exclude dir '*' with '.guild-nocopy'",
        "exclude dir '*' with 'bin/activate'",
        "exclude dir '*' with 'Scripts/activate'",
        "exclude dir 'build'",
        "exclude dir 'dist'",
        "exclude dir '*.egg-info'",
        "include text '*' size < 1048577, max match 100",
    ]


def test_format_custom_rules():
    assert format_rules([Rule(False, ("*.py", "a.*")), Rule(True, ("*.png",))]) == [
        "exclude '*.py', 'a.*'",
        "include '*.png'",
    ]


def test_default_selection(project):
    selection = select_files(project)
    assert selection.files == (
        ".gitattributes",
        "a.txt",
        "empty",
        "guild.yml",
        "hello.py",
        "subdir/b.txt",
    )
    # Files under excluded dirs (venv, __pycache__, dot dirs, .guild-nocopy) are never seen.
    assert selection.skipped == (("hello.pyc", "binary"), ("subdir/logo.png", "binary"))
    assert selection.warnings == ()


def test_later_rules_extend_defaults(project):
    rules = DEFAULT_RULES + (
        Rule(True, ("*.png",)),
        Rule(False, ("*.py", "a.*")),
        Rule(True, (".dotdir",), "dir"),
    )
    selection = select_files(project, rules)
    assert selection.files == (
        ".gitattributes",
        "empty",
        "guild.yml",
        "subdir/b.txt",
        "subdir/logo.png",
    )
    # 'a.*' has no '/', so it matches base names anywhere, .dotdir/a.txt included.
    assert dict(selection.skipped) == {
        ".dotdir/a.txt": "excluded",
        "a.txt": "excluded",
        "hello.py": "excluded",
        "hello.pyc": "binary",
    }


def test_patterns_with_slash_match_the_path(project):
    rules = DEFAULT_RULES + (Rule(False, ("*",)), Rule(True, ("subdir/*",)))
    assert select_files(project, rules).files == ("subdir/b.txt", "subdir/logo.png")
    rules = DEFAULT_RULES + (Rule(False, ("*",)), Rule(True, ("/b.txt",)))
    assert select_files(project, rules).files == ()


def test_nested_excluded_dirs(tmp_path):
    _write(tmp_path, "pkg/mod.py", "x = 1\n")
    _write(tmp_path, "pkg/__pycache__/mod.cpython-311.pyc", PYC)
    _write(tmp_path, "pkg/.git/config", "[core]\n")
    _write(tmp_path, "pkg/build/lib/mod.py", "x = 1\n")
    _write(tmp_path, "pkg/thing.egg-info/PKG-INFO", "Name: thing\n")
    # As Guild 0.9's Python operations: dist and Windows virtualenvs too.
    _write(tmp_path, "dist/thing-0.1/setup.py", "x = 1\n")
    _write(tmp_path, "winenv/Scripts/activate", "# activate\n")
    _write(tmp_path, "winenv/Lib/site-packages/m.py", "x = 1\n")
    assert select_files(tmp_path).files == ("pkg/mod.py",)


def test_virtualenv_is_not_walked(tmp_path):
    _write(tmp_path, "train.py", "x = 1\n")
    _write(tmp_path, "venv/bin/activate", "# activate\n")
    for i in range(3000):
        _write(tmp_path, f"venv/lib/site-packages/pkg{i % 30}/m{i}.py", "x = 1\n")
    start = time.monotonic()
    selection = select_files(tmp_path)
    assert time.monotonic() - start < 0.5
    assert selection == select_files(tmp_path)
    assert selection.files == ("train.py",)
    assert selection.skipped == ()
    assert selection.warnings == ()


def test_symlinked_dirs_are_not_followed(tmp_path):
    _write(tmp_path, "outside/data.txt", "x\n")
    project = tmp_path / "project"
    _write(project, "train.py", "x = 1\n")
    os.symlink(tmp_path / "outside", project / "linked")
    assert select_files(project).files == ("train.py",)


def test_too_big_warning(tmp_path):
    _write(tmp_path, "too-big.txt", "0" * (MAX_FILE_SIZE + 1))
    _write(tmp_path, "max.txt", "0" * MAX_FILE_SIZE)
    _write(tmp_path, "empty.txt", "")
    _write(tmp_path, "no_op.py", "")
    _write(tmp_path, "big.bin", b"\x00" * (MAX_FILE_SIZE + 1))
    selection = select_files(tmp_path)
    assert selection.files == ("empty.txt", "max.txt", "no_op.py")
    assert dict(selection.skipped) == {"big.bin": "binary", "too-big.txt": "too big"}
    assert selection.warnings == (
        "Skipping potential source code file ./too-big.txt because it's too big. " + ADVICE,
    )


def test_count_limit(tmp_path):
    for i in range(110):
        _write(tmp_path, "%03i.txt" % (i + 1))
    _write(tmp_path, "no_op.py")
    selection = select_files(tmp_path)
    assert len(selection.files) == 100
    assert selection.files[0] == "001.txt" and selection.files[-1] == "100.txt"
    assert len(selection.skipped) == 11
    assert selection.skipped[0] == ("101.txt", "more than 100 files")
    assert selection.warnings == (COUNT_WARNING,)


def test_count_and_size_limits_together(tmp_path):
    # As in Guild's docs: the big file comes after the 100th, so only the count warns.
    for i in range(100):
        _write(tmp_path, "%03i.txt" % (i + 1))
    _write(tmp_path, "big.txt", "0" * (MAX_FILE_SIZE + 1))
    _write(tmp_path, "no_op.py")
    selection = select_files(tmp_path)
    assert len(selection.files) == 100
    assert selection.warnings == (COUNT_WARNING,)


def test_binary_files_past_the_limit_do_not_warn(tmp_path):
    for i in range(100):
        _write(tmp_path, "%03i.txt" % (i + 1))
    _write(tmp_path, "zz.png", PNG)
    selection = select_files(tmp_path)
    assert len(selection.files) == 100
    assert selection.warnings == ()


def test_text_detection_by_content(tmp_path):
    _write(tmp_path, "Makefile", "all:\n\techo hi\n")
    _write(tmp_path, "notes.unknown", "héllo wörld\n")
    _write(tmp_path, "latin1.dat", "caf\xe9 cr\xe8me\n".encode("latin-1"))
    _write(tmp_path, "blob.dat", bytes(range(256)) * 4)
    _write(tmp_path, "noise.dat", b"\x01\x02\x03\x04" * 100)
    _write(tmp_path, "random.dat", os.urandom(64).replace(b"\0", b"\1") + b"\xff\xfe\x80")
    selection = select_files(tmp_path)
    assert selection.files == ("Makefile", "latin1.dat", "notes.unknown")
    assert dict(selection.skipped) == {
        "blob.dat": "binary",
        "noise.dat": "binary",
        "random.dat": "binary",
    }


def test_text_sample():
    assert is_text_sample(b"")
    assert is_text_sample("x = 'é'\n".encode()[:-2])  # a character cut off by the sample end
    assert is_text_sample("text".encode("utf-16"))
    assert is_text_sample(b"\x1b[32mOK\x1b[0m\n")
    assert not is_text_sample(PYC)
    assert not is_text_sample(PNG)


def test_digest(project):
    files = select_files(project).files
    first = digest(project, files)
    assert len(first) == 32 and int(first, 16) >= 0
    assert digest(project, files) == first
    assert digest(project, list(reversed(files))) == first

    (project / "hello.py").write_text("print('hello!')\n")
    changed = digest(project, files)
    assert changed != first

    (project / "renamed.py").write_text("print('hello!')\n")
    renamed = [f if f != "hello.py" else "renamed.py" for f in files]
    assert digest(project, renamed) != changed


def test_digest_of_nothing(tmp_path):
    assert digest(tmp_path, ()) is None
