import textwrap

import pytest

from guild_common.errors import InvalidArgument
from guild_common.flagdef import FlagDef
from guild_common.pyscript import ScriptFlags, detect_flags


def _script(tmp_path, source, name="train.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def _defaults(flags):
    return {name: f.default for name, f in flags.flags.items()}


# globals


def test_get_started_script(tmp_path):
    path = _script(
        tmp_path,
        """
        import numpy as np

        x = 0.1
        noise = 0.1

        loss = (np.sin(5 * x) * (1 - np.tanh(x ** 2)) + np.random.randn() * noise)

        print("x: %f" % x)
        print("noise: %f" % noise)
        print("loss: %f" % loss)
        """,
    )
    assert detect_flags(path) == ScriptFlags(
        "globals",
        {
            "x": FlagDef("x", default=0.1, type="number"),
            "noise": FlagDef("noise", default=0.1, type="number"),
        },
    )


def test_globals_scalar_types(tmp_path):
    path = _script(
        tmp_path,
        """
        i = 1
        f = -1.5
        g = +2
        s = "hello"
        b = True
        """,
    )
    flags = detect_flags(path).flags
    assert _defaults(detect_flags(path)) == {"i": 1, "f": -1.5, "g": 2, "s": "hello", "b": True}
    assert {n: f.type for n, f in flags.items()} == {
        "i": "number",
        "f": "number",
        "g": "number",
        "s": "string",
        "b": "boolean",
    }


def test_globals_first_constant_assignment_wins(tmp_path):
    # As Guild 0.9: the first constant is the flag's default; later ones redefine it at run
    # time (opmain replaces only the first assignment).
    path = _script(
        tmp_path,
        """
        x = 1
        x = 3
        y = compute()
        y = 4
        z = 5
        z = compute(z)
        """,
    )
    assert _defaults(detect_flags(path)) == {"x": 1, "y": 4, "z": 5}


def test_globals_ignored_forms(tmp_path):
    path = _script(
        tmp_path,
        """
        import os
        _private = 1
        __dunder__ = 2
        a, b = 1, 2
        c: float = 0.1
        d = None
        e = [1, len("x")]
        f = {"k": 1}
        g = os.getenv("G")
        h = 1 + 2
        j = -True
        k = 1j
        l = b"bytes"
        m = n = 5
        m += 1

        def main():
            inner = 1

        if __name__ == "__main__":
            guarded = 1
        """,
    )
    assert _defaults(detect_flags(path)) == {"m": 5, "n": 5}


def test_globals_list_of_scalars_is_a_split_string(tmp_path):
    # As Guild 0.9: `l = [1, 2, 'foo']` is the flag `l` with the string `1 2 foo`, split
    # again when the run starts (a list value would make a batch).
    path = _script(tmp_path, "l = [1, 2, 'foo', 'a b']\nempty = []\n")
    assert detect_flags(path).flags == {
        "l": FlagDef("l", default="1 2 foo 'a b'", arg_split=True),
        "empty": FlagDef("empty", default="", arg_split=True),
    }


def test_globals_source_after_globals_does_not_run(tmp_path):
    path = _script(
        tmp_path,
        """
        x = 1
        raise SystemExit("must never run")
        """,
    )
    assert _defaults(detect_flags(path)) == {"x": 1}


def test_coding_declaration_is_honoured(tmp_path):
    path = tmp_path / "latin.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\nname = '\xe9t\xe9'\n")
    assert _defaults(detect_flags(path)) == {"name": "été"}


def test_syntax_error(tmp_path):
    path = _script(tmp_path, "x = 1\ny = (\n")
    with pytest.raises(InvalidArgument) as e:
        detect_flags(path)
    assert str(e.value).startswith(f"cannot read flags from {path}: ")
    assert str(e.value).endswith("(line 2)")


# argparse


def test_argparse_flags(tmp_path):
    path = _script(
        tmp_path,
        """
        import argparse

        p = argparse.ArgumentParser()
        p.add_argument("data")
        p.add_argument("-h2", help="short only")
        p.add_argument("-l", "--learning-rate", dest="lr", type=float, default=1e-3, help="LR")
        p.add_argument("--epochs", type=int, default=-1, required=True)
        p.add_argument("--name", type=str, choices=["a", "b"], default="a")
        p.add_argument("--debug", action="store_true", help="Debug")
        p.add_argument("--no-cuda", action="store_false")
        p.add_argument("--out", default=None)
        args = p.parse_args()
        """,
    )
    flags = detect_flags(path)
    assert flags.dest == "args"
    assert flags.flags == {
        "learning-rate": FlagDef("learning-rate", default=0.001, type="float", description="LR"),
        "epochs": FlagDef("epochs", default=-1, type="int", required=True),
        "name": FlagDef("name", default="a", type="string", choices=("a", "b")),
        "debug": FlagDef(
            "debug", default=False, type="boolean", description="Debug", arg_switch=True
        ),
        "no-cuda": FlagDef("no-cuda", default=True, type="boolean", arg_switch=False),
        "out": FlagDef("out"),
    }


def test_argparse_non_literal_values(tmp_path):
    path = _script(
        tmp_path,
        """
        import os
        from argparse import ArgumentParser

        CHOICES = ["x", "y"]
        parser = ArgumentParser()
        parser.add_argument("--dir", default=os.getcwd(), help=f"dir {CHOICES}")
        parser.add_argument("--mode", choices=CHOICES, default=CHOICES[0])
        parser.add_argument("--rate", type=float, default="0.5")
        parser.parse_args()
        """,
    )
    flags = detect_flags(path)
    assert flags.dest == "args"
    assert flags.flags == {
        "dir": FlagDef("dir"),
        "mode": FlagDef("mode"),
        "rate": FlagDef("rate", default=0.5, type="float"),
    }


def test_argparse_skips_non_store_actions(tmp_path):
    path = _script(
        tmp_path,
        """
        import argparse

        class Custom(argparse.Action):
            pass

        p = argparse.ArgumentParser()
        p.add_argument("--verbose", "-v", action="count")
        p.add_argument("--tag", action="append")
        p.add_argument("--const", action="store_const", const=1)
        p.add_argument("--version", action="version", version="1")
        p.add_argument("--custom", action=Custom)
        p.add_argument("--kept", action="store", default=1)
        p.parse_args()
        """,
    )
    assert _defaults(detect_flags(path)) == {"kept": 1}


def test_argparse_groups_and_parents(tmp_path):
    path = _script(
        tmp_path,
        """
        import argparse as ap

        base = ap.ArgumentParser(add_help=False)
        base.add_argument("--a", default="A")

        def main():
            parser = ap.ArgumentParser(parents=[base])
            group = parser.add_argument_group("model")
            group.add_argument("--b", default="B")
            excl = group.add_mutually_exclusive_group()
            excl.add_argument("--c", default="C")
            parser.add_argument_group("other").add_argument("--d", default="D")
            return parser.parse_args()

        main()
        """,
    )
    assert _defaults(detect_flags(path)) == {"a": "A", "b": "B", "c": "C", "d": "D"}


def test_argparse_only_parsed_parser_counts(tmp_path):
    path = _script(
        tmp_path,
        """
        import argparse

        unused = argparse.ArgumentParser()
        unused.add_argument("--bar", default=1)

        p = argparse.ArgumentParser()
        p.add_argument("--foo", default=123)
        subs = p.add_subparsers()
        sub = subs.add_parser("cmd")
        sub.add_argument("--sub-opt", default=2)
        args = p.parse_args()
        """,
    )
    assert _defaults(detect_flags(path)) == {"foo": 123}


def test_argparse_parser_from_a_function(tmp_path):
    # The parsed parser cannot be traced; every top-level parser and helper counts.
    path = _script(
        tmp_path,
        """
        import argparse

        def add_common(p):
            p.add_argument("--seed", type=int, default=0)

        def build():
            parser = argparse.ArgumentParser()
            parser.add_argument("--lr", type=float, default=0.1)
            add_common(parser)
            return parser

        args = build().parse_args()
        """,
    )
    assert _defaults(detect_flags(path)) == {"lr": 0.1, "seed": 0}


def test_argparse_self_attribute_parser(tmp_path):
    path = _script(
        tmp_path,
        """
        import argparse

        class App:
            def __init__(self):
                self.parser = argparse.ArgumentParser()
                self.parser.add_argument("--x", default=1.5)

            def run(self):
                return self.parser.parse_known_args()
        """,
    )
    assert _defaults(detect_flags(path)) == {"x": 1.5}


def test_argparse_import_inside_function_and_no_parser(tmp_path):
    path = _script(
        tmp_path,
        """
        x = 1

        def main():
            import argparse
        """,
    )
    assert detect_flags(path) == ScriptFlags("args", {})


# click

CLICK_SCRIPT = """
import click

prefix = "Flags:"


def helper():
    raise SystemExit("must never run")


@click.command()
@click.option("--i", type=int, default=1, help="sample int")
@click.option("--f", type=float, default=1.1)
@click.option("--b", is_flag=True, help="sample flag")
@click.option("--s", default="hello")
@click.option("--c", "color", "-c", default="red", type=click.Choice(["red", "blue"]))
@click.option("-v", "verbose", count=True)
@click.option("--shout/--no-shout", default=True)
@click.option("--n", type=click.IntRange(0, 9), required=True)
@click.option("--tags", multiple=True)
@click.option("--name")
@click.argument("data")
def main(i, f, b, s, color, verbose, shout, n, tags, name, data):
    helper()


if __name__ == "__main__":
    main()
"""


def test_click_options_are_args_flags(tmp_path):
    # Read from the syntax tree, as for argparse: the command's body never runs, and the
    # script's globals (`prefix`) are not flags of a click script.
    flags = detect_flags(_script(tmp_path, CLICK_SCRIPT))
    assert flags.dest == "args"
    assert flags.flags == {
        "i": FlagDef("i", default=1, type="int", description="sample int"),
        "f": FlagDef("f", default=1.1, type="float"),
        "b": FlagDef("b", default=False, type="boolean", description="sample flag", arg_switch=True),
        "s": FlagDef("s", default="hello", type="string"),
        # As Guild 0.9: a Choice is not given a type (the choices are what's checked).
        "c": FlagDef("c", default="red", choices=("red", "blue")),
        "shout": FlagDef("shout", default=True, type="boolean", arg_switch=False),
        "n": FlagDef("n", type="int", required=True),
        "tags": FlagDef("tags", type="string"),
        "name": FlagDef("name", type="string"),
    }


def test_click_only_the_invoked_command_counts(tmp_path):
    path = _script(
        tmp_path,
        """
        from click import command, option

        @command()
        @option("--unused", default=1)
        def other(unused):
            pass

        @command()
        @option("--lr", default=0.1)
        def train(lr):
            pass

        train()
        """,
    )
    assert _defaults(detect_flags(path)) == {"lr": 0.1}


def test_click_script_syntax_error_is_one_line(tmp_path):
    path = _script(tmp_path, "import click\n@click.command(\ndef main(): pass\n")
    with pytest.raises(InvalidArgument) as e:
        detect_flags(path)
    assert str(e.value).startswith(f"cannot read flags from {path}: ")
    assert "\n" not in str(e.value)


# global:NAME and namespace:NAME


def test_global_dict_and_namespace_items_are_flags(tmp_path):
    path = _script(
        tmp_path,
        """
        from types import SimpleNamespace
        params = {"i": 1, "s": "x", "l": [1, "a"], "n": {"a": 1.5, "f": open}, 3: "k"}
        params = {"i": 2}
        ns = SimpleNamespace(i=1, sub=SimpleNamespace(b=True))
        """,
    )
    flags = detect_flags(path, "global:params")
    assert flags.dest == "global:params"
    assert flags.flags == {
        "i": FlagDef("i", default=1, type="number"),
        "s": FlagDef("s", default="x", type="string"),
        "l": FlagDef("l", default="1 a", arg_split=True),
        "n.a": FlagDef("n.a", default=1.5, type="number"),
    }
    assert _defaults(detect_flags(path, "namespace:ns")) == {"i": 1, "sub.b": True}
    assert detect_flags(path, "global:missing").flags == {}
