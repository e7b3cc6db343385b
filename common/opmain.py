"""Runs a Python script as an operation's process: `python -u opmain.py SCRIPT [ARG...]`.

This file is executed by the run's own Python (which may be another virtualenv than guildd's),
so it uses only the standard library and imports nothing from this package.

FLAGS_DEST=globals: the arguments are `--name value` flag assignments that replace the
script's module-level constants of those names before its code runs. Otherwise the
arguments are the script's own command line (argparse reads them).
"""

import ast
import json
import os
import runpy
import sys


def decode(text):
    """The Python value of a flag as guildd encodes it on the command line."""
    if text in ("yes", "true", "True"):
        return True
    if text in ("no", "false", "False"):
        return False
    if text == "null":
        return None
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text


def flag_assigns(args):
    values, i = {}, 0
    while i < len(args):
        name = args[i]
        if not name.startswith("--"):
            raise SystemExit(f"opmain: unexpected argument {name!r}")
        name = name[2:]
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            values[name] = decode(args[i + 1])
            i += 2
        else:
            values[name] = True
            i += 1
    return values


def _replace_globals(tree, values):
    """Replaces module-level `NAME = constant` assignments of flags with the flag values, so
    the script's own defaults don't overwrite them."""
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id in values:
                node.value = ast.copy_location(ast.Constant(values[target.id]), node.value)
    return tree


def run_globals(script, values):
    path = os.path.abspath(script)
    with open(path, "rb") as f:
        source = f.read()
    tree = _replace_globals(ast.parse(source, path), values)
    code = compile(tree, path, "exec")
    module = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__, **values}
    sys.argv = [path]
    exec(code, module)


def main():
    if len(sys.argv) < 2:
        raise SystemExit("usage: opmain.py SCRIPT [ARG...]")
    script, args = sys.argv[1], sys.argv[2:]
    # The run dir (holding the source snapshot) comes first on sys.path, not opmain's dir.
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    if os.environ.get("FLAGS_DEST") == "globals":
        run_globals(script, flag_assigns(args))
    else:
        sys.argv = [os.path.abspath(script), *args]
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
