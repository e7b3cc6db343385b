"""Guild file `sourcecode` config as rules, and the `--test-sourcecode` preview.

Cases follow Guild's "Copying source code" doctests (the copy-sourcecode sample project),
"Copy source code warnings", the project-sourcecode example and the file select rules.
"""

import textwrap

import pytest

from guild_common import errors, sourcecode
from guild_common.sourcecode import DEFAULT_RULES, Rule, SourceConfig, rules_for_config

PYC = b"\xa7\r\r\n\x00\x00\x00\x00\xe3\x00\x00\x00\x00\x00"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def _write(root, relpath, content=b""):
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


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


def _preview(project, op_config=None, model_config=None):
    config = rules_for_config(op_config, model_config, project_dir=project)
    return sourcecode.test_sourcecode_text(project, config)


def _copied(project, op_config=None, model_config=None):
    config = rules_for_config(op_config, model_config, project_dir=project)
    root = project / config.root if config.root else project
    return list(sourcecode.select_files(root, config.rules).files)


DEFAULT_RULE_LINES = """\
  exclude dir '__pycache__'
  exclude dir '.*'
  exclude dir '*' with '.guild-nocopy'
  exclude dir '*' with 'bin/activate'
  exclude dir '*' with 'Scripts/activate'
  exclude dir 'build'
  exclude dir 'dist'
  exclude dir '*.egg-info'
  include text '*' size < 1048577, max match 100"""


def _expected(text):
    return textwrap.dedent(text).strip("\n").replace("<DEFAULTS>", DEFAULT_RULE_LINES)


# (op sourcecode, model sourcecode, preview), as in the doctests (~L9213-L10130).
PREVIEWS = [
    pytest.param(
        None,
        None,
        """
        Copying from the current directory
        Rules:
        <DEFAULTS>
        Selected for copy:
          ./.gitattributes
          ./a.txt
          ./empty
          ./guild.yml
          ./hello.py
          ./subdir/b.txt
        Skipped:
          ./hello.pyc
          ./subdir/logo.png
        """,
        id="default",
    ),
    pytest.param(
        {"root": "subdir"},
        None,
        """
        Copying from 'subdir'
        Rules:
        <DEFAULTS>
        Selected for copy:
          subdir/b.txt
        Skipped:
          subdir/logo.png
        """,
        id="alt-root",
    ),
    pytest.param(
        [{"include": "*.png"}],
        None,
        """
        Copying from the current directory
        Rules:
        <DEFAULTS>
          include '*.png'
        Selected for copy:
          ./.gitattributes
          ./a.txt
          ./empty
          ./guild.yml
          ./hello.py
          ./subdir/b.txt
          ./subdir/logo.png
        Skipped:
          ./hello.pyc
        """,
        id="include-png",
    ),
    pytest.param(
        "*.png",
        None,
        """
        Copying from the current directory
        Rules:
        <DEFAULTS>
          exclude '*'
          include '*.png'
        Selected for copy:
          ./subdir/logo.png
        Skipped:
          ./.gitattributes
          ./a.txt
          ./empty
          ./guild.yml
          ./hello.py
          ./hello.pyc
          ./subdir/b.txt
        """,
        id="only-png",
    ),
    pytest.param(
        [{"exclude": "*.py"}],
        None,
        """
        Copying from the current directory
        Rules:
        <DEFAULTS>
          exclude '*.py'
        Selected for copy:
          ./.gitattributes
          ./a.txt
          ./empty
          ./guild.yml
          ./subdir/b.txt
        Skipped:
          ./hello.py
          ./hello.pyc
          ./subdir/logo.png
        """,
        id="exclude-py",
    ),
    pytest.param(
        [{"exclude": {"dir": "subdir"}}],
        None,
        """
        Copying from the current directory
        Rules:
        <DEFAULTS>
          exclude dir 'subdir'
        Selected for copy:
          ./.gitattributes
          ./a.txt
          ./empty
          ./guild.yml
          ./hello.py
        Skipped:
          ./hello.pyc
        """,
        id="no-subdir",
    ),
    pytest.param(
        "subdir/*",
        None,
        """
        Copying from the current directory
        Rules:
        <DEFAULTS>
          exclude '*'
          include 'subdir/*'
        Selected for copy:
          ./subdir/b.txt
          ./subdir/logo.png
        Skipped:
          ./.gitattributes
          ./a.txt
          ./empty
          ./guild.yml
          ./hello.py
          ./hello.pyc
        """,
        id="only-subdir",
    ),
    pytest.param(
        "subdir",
        None,
        """
        Copying from the current directory
        Rules:
        <DEFAULTS>
          exclude '*'
          include 'subdir/*'
        Selected for copy:
          ./subdir/b.txt
          ./subdir/logo.png
        Skipped:
          ./.gitattributes
          ./a.txt
          ./empty
          ./guild.yml
          ./hello.py
          ./hello.pyc
        """,
        id="only-subdir2",
    ),
    pytest.param(
        [{"include": {"dir": ".dotdir"}}],
        None,
        """
        Copying from the current directory
        Rules:
        <DEFAULTS>
          include dir '.dotdir'
        Selected for copy:
          ./.gitattributes
          ./a.txt
          ./empty
          ./guild.yml
          ./hello.py
          ./.dotdir/a.txt
          ./subdir/b.txt
        Skipped:
          ./hello.pyc
          ./subdir/logo.png
        """,
        id="include-dotdir",
    ),
    pytest.param(
        False,
        None,
        """
        Copying from the current directory
        Rules:
          exclude '*'
        Source code copy disabled
        """,
        id="disabled",
    ),
    pytest.param(
        [],
        None,
        """
        Copying from the current directory
        Rules:
          exclude '*'
        Source code copy disabled
        """,
        id="disabled2",
    ),
    pytest.param(
        [{"exclude": "*"}],
        None,
        """
        Copying from the current directory
        Rules:
        <DEFAULTS>
          exclude '*'
        Source code copy disabled
        """,
        id="disabled3",
    ),
    pytest.param(
        [{"exclude": ["*.py", "a.*"]}],
        [{"include": "subdir/logo.png"}],
        """
        Copying from the current directory
        Rules:
        <DEFAULTS>
          include 'subdir/logo.png'
          exclude '*.py', 'a.*'
        Selected for copy:
          ./.gitattributes
          ./empty
          ./guild.yml
          ./subdir/b.txt
          ./subdir/logo.png
        Skipped:
          ./a.txt
          ./hello.py
          ./hello.pyc
        """,
        id="m1:op",
    ),
    pytest.param(
        None,
        False,
        """
        Copying from the current directory
        Rules:
          exclude '*'
        Source code copy disabled
        """,
        id="m2:op1",
    ),
    pytest.param(
        ["*.py", "*.yml"],
        False,
        """
        Copying from the current directory
        Rules:
        <DEFAULTS>
          exclude '*'
          include '*.py'
          include '*.yml'
        Selected for copy:
          ./guild.yml
          ./hello.py
        Skipped:
          ./.gitattributes
          ./a.txt
          ./empty
          ./hello.pyc
          ./subdir/b.txt
          ./subdir/logo.png
        """,
        id="m2:op2",
    ),
    pytest.param(
        None,
        "*",
        """
        Copying from the current directory
        Rules:
        <DEFAULTS>
          exclude '*'
          include '*'
        Selected for copy:
          ./.gitattributes
          ./a.txt
          ./empty
          ./guild.yml
          ./hello.py
          ./hello.pyc
          ./subdir/b.txt
          ./subdir/logo.png
        Skipped:
        """,
        id="m3:op1",
    ),
    pytest.param(
        False,
        "*",
        """
        Copying from the current directory
        Rules:
          exclude '*'
        Source code copy disabled
        """,
        id="m3:op2",
    ),
]


@pytest.mark.parametrize("op_config,model_config,expected", PREVIEWS)
def test_preview(project, op_config, model_config, expected):
    assert _preview(project, op_config, model_config) == _expected(expected)


# (op sourcecode, model sourcecode, files copied), the doctests' `run(...)` listings.
COPIES = [
    (None, None, [".gitattributes", "a.txt", "empty", "guild.yml", "hello.py", "subdir/b.txt"]),
    ({"root": "subdir"}, None, ["b.txt"]),
    (["*.py"], None, ["hello.py"]),
    (["*.png", "*.py"], None, ["hello.py", "subdir/logo.png"]),
    ([{"exclude": "*"}, {"include": "*.py"}], None, ["hello.py"]),
    (
        [{"exclude": {"dir": "subdir"}}],
        None,
        [".gitattributes", "a.txt", "empty", "guild.yml", "hello.py"],
    ),
    (
        [{"include": {"dir": ".dotdir"}}],
        None,
        [
            ".dotdir/a.txt",
            ".gitattributes",
            "a.txt",
            "empty",
            "guild.yml",
            "hello.py",
            "subdir/b.txt",
        ],
    ),
    (False, None, []),
    ([], None, []),
    ([{"exclude": "*"}], None, []),
    (None, False, []),
    (["*.py", "*.yml"], False, ["guild.yml", "hello.py"]),
    (False, "*", []),
]


@pytest.mark.parametrize("op_config,model_config,expected", COPIES)
def test_copied_files(project, op_config, model_config, expected):
    assert _copied(project, op_config, model_config) == expected


def test_disabled_configs():
    for op_config, model_config in [
        (False, None),
        ([], None),
        (None, False),
        (False, "*"),
        ({"select": False}, None),
    ]:
        config = rules_for_config(op_config, model_config)
        assert config.disabled
        assert config.rules == (Rule(False, ("*",)),)
    # An explicit exclude of everything copies nothing, though the rules stay as written.
    config = rules_for_config([{"exclude": "*"}])
    assert config.disabled and config.rules[:-1] == DEFAULT_RULES
    # ...unless an include follows it.
    assert not rules_for_config([{"exclude": "*"}, {"include": "*.py"}]).disabled
    assert not rules_for_config(None).disabled


def test_no_config_is_the_defaults():
    assert rules_for_config(None) == SourceConfig()
    assert rules_for_config(None, None).rules == DEFAULT_RULES
    assert rules_for_config({}).rules == DEFAULT_RULES


def test_rule_forms():
    def rules(op_config):
        return rules_for_config(op_config).rules[len(DEFAULT_RULES) :]

    assert rules([{"include": "*.png"}]) == (Rule(True, ("*.png",)),)
    assert rules([{"exclude": "README.md"}, {"exclude": "*.csv"}]) == (
        Rule(False, ("README.md",)),
        Rule(False, ("*.csv",)),
    )
    assert rules([{"exclude": ["*.py", "a.*"]}]) == (Rule(False, ("*.py", "a.*")),)
    assert rules([{"exclude": "[a, b]"}]) == (Rule(False, ("a", "b")),)  # as Guild reads it
    assert rules([{"exclude": {"dir": "subdir"}}]) == (Rule(False, ("subdir",), "dir"),)
    assert rules([{"include": {"text": ["*.dat"]}}]) == (Rule(True, ("*.dat",), "text"),)
    assert rules([{"exclude": {"binary": "*"}}]) == (Rule(False, ("*",), "binary"),)
    # Plain strings select: an exclude of everything goes first.
    assert rules("*.txt") == (Rule(False, ("*",)), Rule(True, ("*.txt",)))
    assert rules(["guild.yml", "*.py"]) == (
        Rule(False, ("*",)),
        Rule(True, ("guild.yml",)),
        Rule(True, ("*.py",)),
    )
    # As in Guild, a list mixing strings and specs adds to the defaults instead.
    assert rules(["*.py", {"exclude": "a.py"}]) == (Rule(True, ("*.py",)), Rule(False, ("a.py",)))
    assert rules({"select": "*", "dest": "."}) == (Rule(False, ("*",)), Rule(True, ("*",)))


def test_model_rules_come_first():
    config = rules_for_config([{"exclude": "a.py"}], [{"include": "*.png"}])
    assert config.rules[len(DEFAULT_RULES) :] == (Rule(True, ("*.png",)), Rule(False, ("a.py",)))


def test_dir_patterns_become_globs(project):
    config = rules_for_config(
        [
            {"exclude": "subdir"},
            {"exclude": "/subdir"},
            {"exclude": {"dir": "subdir"}},
            {"exclude": "nothere"},
        ],
        project_dir=project,
    )
    assert config.rules[len(DEFAULT_RULES) :] == (
        Rule(False, ("subdir/*",)),
        Rule(False, ("/subdir/*",)),
        Rule(False, ("subdir",), "dir"),  # typed patterns are taken as written
        Rule(False, ("nothere",)),
    )
    # Without a project dir, nothing is looked up.
    assert rules_for_config("subdir").rules[-1] == Rule(True, ("subdir",))


def test_dir_globs_are_relative_to_the_root(tmp_path):
    _write(tmp_path, "guild.yml", "")
    _write(tmp_path, "sub/guild.yml", "")
    _write(tmp_path, "sub/inner/x.py", "")
    _write(tmp_path, "a.py", "")
    config = rules_for_config(
        {"root": "..", "select": [{"exclude": "sub"}]}, project_dir=tmp_path / "sub"
    )
    assert config.root == ".."
    assert config.rules[-1] == Rule(False, ("sub/*",))
    assert sourcecode.test_sourcecode_text(tmp_path / "sub", config) == _expected("""
        Copying from '..'
        Rules:
        <DEFAULTS>
          exclude 'sub/*'
        Selected for copy:
          ../a.py
          ../guild.yml
        Skipped:
          ../sub/guild.yml
          ../sub/inner/x.py
        """)


def test_root_and_dest():
    assert rules_for_config({"root": "subdir"}).root == "subdir"
    assert rules_for_config({"dest": "src"}).dest == "src"
    assert rules_for_config({"dest": "src/"}).dest == "src"
    assert rules_for_config({"dest": "."}).dest is None
    assert rules_for_config({"dest": "./"}).dest is None
    assert rules_for_config({"dest": "./src"}).dest == "src"
    assert rules_for_config(None).dest is None
    # The operation's root and dest win over the model's.
    config = rules_for_config({"dest": "op"}, {"dest": "model", "root": "m"})
    assert (config.root, config.dest) == ("m", "op")
    # dest alone keeps the default rules.
    assert rules_for_config({"dest": "src"}).rules == DEFAULT_RULES


def test_model_no_with_op_mapping_without_rules_stays_disabled():
    assert rules_for_config({"dest": "src"}, False).disabled
    assert not rules_for_config({"select": ["*.py"]}, False).disabled


def test_digest():
    assert rules_for_config(None).digest
    assert not rules_for_config({"digest": False}).digest
    assert not rules_for_config(None, {"digest": False}).digest
    assert rules_for_config({"digest": True}, {"digest": False}).digest


def test_unknown_mapping_keys_warn():
    config = rules_for_config({"roots": "x", "selec": []})
    assert config.warnings == ("unexpected operation sourcecode attribute(s): roots, selec",)
    assert config.rules == DEFAULT_RULES


@pytest.mark.parametrize(
    "op_config,message",
    [
        (True, "invalid operation sourcecode True"),
        (123, "invalid operation sourcecode 123"),
        ([123], "invalid operation sourcecode spec 123: expected a string or a mapping"),
        ([{"include": "a", "exclude": "b"}], "cannot both include and exclude"),
        ([{"select": "a"}], "expected 'include' or 'exclude'"),
        ([{"include": 1}], "invalid operation sourcecode include 1"),
        ([{"include": []}], "invalid operation sourcecode include []"),
        ([{"include": {"file": "a"}}], "expected one of dir, text, or binary"),
        ({"root": 1}, "invalid operation sourcecode root 1"),
    ],
)
def test_bad_config(op_config, message):
    with pytest.raises(errors.InvalidArgument) as e:
        rules_for_config(op_config)
    assert message in str(e.value)


def test_bad_model_config_names_the_model():
    with pytest.raises(errors.InvalidArgument, match="invalid model sourcecode"):
        rules_for_config(None, 1.5)


# Copy source code warnings (~L8868): explicit rules override the limits


def test_select_pattern_copies_past_the_count_limit(tmp_path):
    for i in range(110):
        _write(tmp_path, "%03i.txt" % (i + 1))
    _write(tmp_path, "no_op.py")
    selection = sourcecode.select_files(tmp_path, rules_for_config("*.txt").rules)
    assert len(selection.files) == 110
    assert "no_op.py" not in selection.files
    assert selection.warnings == ()


def test_include_copies_a_big_file(tmp_path):
    _write(tmp_path, "too-big.txt", "0" * (sourcecode.MAX_FILE_SIZE + 1))
    _write(tmp_path, "max.txt", "0" * sourcecode.MAX_FILE_SIZE)
    _write(tmp_path, "empty.txt")
    _write(tmp_path, "no_op.py")
    _write(tmp_path, "guild.yml", "no_op.py:\n  sourcecode:\n    - include: '*.txt'\n")
    selection = sourcecode.select_files(tmp_path, rules_for_config([{"include": "*.txt"}]).rules)
    assert selection.files == ("empty.txt", "guild.yml", "max.txt", "no_op.py", "too-big.txt")
    assert selection.warnings == ()


def test_limits_still_apply_to_files_no_later_rule_matches(tmp_path):
    # As in Guild: config does not remove the default rule's limits, it adds rules after it.
    _write(tmp_path, "too-big.txt", "0" * (sourcecode.MAX_FILE_SIZE + 1))
    _write(tmp_path, "a.py")
    selection = sourcecode.select_files(tmp_path, rules_for_config([{"exclude": "*.csv"}]).rules)
    assert selection.files == ("a.py",)
    assert dict(selection.skipped) == {"too-big.txt": "too big"}
    assert len(selection.warnings) == 1


# file select rules (~L12594)


@pytest.fixture
def tree(tmp_path):
    for relpath in ["a.txt", "d1/a.txt", "d1/d1_1/b.txt", "d1/d1_2/c.txt", "d2/d.txt", "d2/d.yml"]:
        _write(tmp_path, relpath)
    return tmp_path


@pytest.mark.parametrize(
    "rules,expected",
    [
        ([], []),
        (
            [Rule(True, ("*",))],
            ["a.txt", "d1/a.txt", "d1/d1_1/b.txt", "d1/d1_2/c.txt", "d2/d.txt", "d2/d.yml"],
        ),
        ([Rule(True, ("*",)), Rule(False, ("*",))], []),
        (
            [Rule(True, ("*",)), Rule(False, ("*",)), Rule(True, ("*",))],
            ["a.txt", "d1/a.txt", "d1/d1_1/b.txt", "d1/d1_2/c.txt", "d2/d.txt", "d2/d.yml"],
        ),
        ([Rule(True, ("*.yml",))], ["d2/d.yml"]),
        ([Rule(True, ("d1/*",))], ["d1/a.txt", "d1/d1_1/b.txt", "d1/d1_2/c.txt"]),
        ([Rule(True, ("d1/a.txt", "d1/d1_1/*"))], ["d1/a.txt", "d1/d1_1/b.txt"]),
        ([Rule(True, ("d1/*",)), Rule(False, ("d1/d1*",))], ["d1/a.txt"]),
        ([Rule(True, ("d1/[^/]+$",), regex=True)], ["d1/a.txt"]),
        ([Rule(True, ("*",)), Rule(False, ("d1",), "dir")], ["a.txt", "d2/d.txt", "d2/d.yml"]),
    ],
)
def test_file_select_rules(tree, rules, expected):
    assert list(sourcecode.select_files(tree, rules).files) == expected


def test_size_and_max_match_rules(tmp_path):
    _write(tmp_path, "small.txt")
    _write(tmp_path, "large.txt", "0" * 100)
    assert sourcecode.select_files(tmp_path, [Rule(True, ("*",), size_lt=99)]).files == (
        "small.txt",
    )
    assert sourcecode.select_files(tmp_path, [Rule(True, ("*",), size_gt=99)]).files == (
        "large.txt",
    )
    for i in range(10):
        _write(tmp_path, "%i.txt" % i)
    selected = sourcecode.select_files(tmp_path, [Rule(True, ("[0-9].txt",), max_matches=6)]).files
    assert selected == tuple("%i.txt" % i for i in range(6))


def test_reenable_excluded_dir(tmp_path):
    for relpath in [
        "skip_dir/.nocopy",
        "skip_dir/a.txt",
        "venv/bin/activate",
        "venv/c.txt",
        "keep_dir/d.txt",
        "e.txt",
    ]:
        _write(tmp_path, relpath)
    rules = [
        Rule(True, ("*",)),
        Rule(False, ("*",), "dir", sentinel=".nocopy"),
        Rule(False, ("*",), "dir", sentinel="bin/activate"),
    ]
    assert sourcecode.select_files(tmp_path, rules).files == ("e.txt", "keep_dir/d.txt")
    rules.append(Rule(True, ("venv",), "dir"))
    assert sourcecode.select_files(tmp_path, rules).files == (
        "e.txt",
        "keep_dir/d.txt",
        "venv/bin/activate",
        "venv/c.txt",
    )


def test_rule_types_are_checked():
    for type_ in (None, "text", "binary", "dir"):
        Rule(True, ("*",), type_)
    with pytest.raises(ValueError, match="invalid value for type 'invalid'"):
        Rule(True, ("*",), "invalid")


def test_format_extras():
    assert sourcecode.format_rule(Rule(True, ("d1/.*",), regex=True)) == "include 'd1/.*' regex"
    assert (
        sourcecode.format_rule(Rule(True, ("*",), size_gt=10, size_lt=20))
        == "include '*' size > 10, size < 20"
    )


def test_disabled_selection_walks_nothing(project):
    assert sourcecode.select_files(project, rules_for_config(False).rules) == sourcecode.Selection(
        (), (), ()
    )


def test_preview_from_another_dir(project):
    text = sourcecode.test_sourcecode_text(
        project, rules_for_config({"root": "subdir"}), cwd=project.parent
    )
    assert text.splitlines()[0] == f"Copying from '{project.name}/subdir'"
    assert text.splitlines()[-1] == f"  {project.name}/subdir/logo.png"


def test_preview_default_config(project):
    assert sourcecode.test_sourcecode_text(project) == _preview(project)


def test_preview_is_not_collected_as_a_test():
    assert sourcecode.test_sourcecode_text.__test__ is False
