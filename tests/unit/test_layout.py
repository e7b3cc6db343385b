"""The house rules that keep the code base in shape (ARCHITECTURE.md, STYLE.md habits 1, 2, 10):
imports go one way, the generated gRPC code is fresh, and the CLI starts without grpc."""

import ast
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = {"common": "guild_common", "guildd": "guildd", "guildctl": "guildctl"}


def _sources(package_dir):
    return sorted(p for p in (ROOT / package_dir).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path):
    """Top-level names of the modules `path` imports (anywhere in the file, lazily too)."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _module_imports(path):
    """Full dotted names `path` imports, `from x import y` giving both `x` and `x.y`."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _violations(package_dir, forbidden, skip=lambda rel: False):
    found = []
    for path in _sources(package_dir):
        rel = path.relative_to(ROOT).as_posix()
        if skip(rel):
            continue
        bad = _imports(path) & set(forbidden)
        if bad:
            found.append((rel, sorted(bad)))
    return found


def test_sources_found():
    for package_dir in PACKAGES:
        assert len(_sources(package_dir)) >= 2, package_dir


# (a) import direction: guildctl -> common <- guildd


def test_common_imports_neither_daemon_nor_cli():
    assert _violations("common", {"guildd", "guildctl"}) == []


def test_guildd_does_not_import_guildctl():
    assert _violations("guildd", {"guildctl"}) == []


def test_guildctl_does_not_import_guildd():
    assert _violations("guildctl", {"guildd"}) == []


def test_common_has_no_grpc_outside_generated_package():
    in_pb = lambda rel: rel.startswith("common/pb/")  # noqa: E731
    assert _violations("common", {"grpc", "grpc_tools"}, skip=in_pb) == []
    # ...nor does it reach the stubs through the generated package.
    for path in _sources("common"):
        rel = path.relative_to(ROOT).as_posix()
        if not in_pb(rel):
            assert "guild_common.pb.guild_pb2_grpc" not in _module_imports(path), rel


def test_common_has_no_sockets_or_servers():
    forbidden = {"socket", "socketserver", "asyncio", "http", "selectors", "sqlite3"}
    assert _violations("common", forbidden, skip=lambda rel: rel.startswith("common/pb/")) == []


def test_no_bare_common_imports():
    # `common/` is installed as `guild_common`; a bare `import common` works only from the repo.
    for package_dir in PACKAGES:
        assert _violations(package_dir, {"common"}) == [], package_dir


def test_opmain_uses_only_the_standard_library():
    # The run's own Python (maybe another virtualenv) executes opmain.py as a script.
    imports = _imports(ROOT / "common" / "opmain.py")
    assert imports <= set(sys.stdlib_module_names), imports - set(sys.stdlib_module_names)
    tree = ast.parse((ROOT / "common" / "opmain.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]


# (b) the generated gRPC code is fresh


def _load_generate():
    pytest.importorskip("grpc_tools.protoc")
    spec = importlib.util.spec_from_file_location("_guild_proto_generate", ROOT / "proto" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files(directory):
    return sorted(
        p.relative_to(directory).as_posix()
        for p in pathlib.Path(directory).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )


def test_generated_grpc_code_is_fresh(tmp_path):
    generate = _load_generate()
    generated = generate.generate(tmp_path / "pb")
    checked_in = ROOT / "common" / "pb"
    assert "guild_pb2.py" in generated and "guild_pb2_grpc.py" in generated and "guild_pb2.pyi" in generated
    assert _files(tmp_path / "pb") == _files(checked_in), "common/pb has files the generator doesn't make"
    stale = [
        name
        for name in _files(tmp_path / "pb")
        if (tmp_path / "pb" / name).read_bytes() != (checked_in / name).read_bytes()
    ]
    assert stale == [], f"stale generated code: run `python proto/generate.py` ({', '.join(stale)})"


def test_generated_code_imports_guild_common_not_guild(tmp_path):
    # Guild AI's own package is `guild`: our generated modules must not need one.
    for name in ("guild_pb2.py", "guild_pb2_grpc.py"):
        imports = _module_imports(ROOT / "common" / "pb" / name)
        assert not any(i == "guild" or i.startswith("guild.") for i in imports), (name, imports)
    assert "guild_common.pb.guild_pb2" in _module_imports(ROOT / "common" / "pb" / "guild_pb2_grpc.py")


# (c) the command lines start, and without grpc


def _python(*args):
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=_env()
    )


def _env():
    env = dict(os.environ)
    env.pop("GUILD_HOME", None)
    return env


@pytest.mark.parametrize(
    "module, words",
    [("guildctl.main", ["Usage:", "run"]), ("guildd.main", ["Usage:", "--foreground"])],
)
def test_help_exits_0(module, words):
    p = _python("-c", f"import sys, {module} as m; sys.argv[0] = {module.split('.')[0]!r}; m.main()", "--help")
    assert p.returncode == 0, p.stderr
    for word in words:
        assert word in p.stdout


@pytest.mark.parametrize("command", ["guildctl", "guildd"])
def test_console_script_help(command):
    exe = pathlib.Path(sys.executable).parent / command
    if not exe.exists():
        pytest.skip(f"{command} console script not installed beside {sys.executable}")
    p = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60, env=_env())
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"Usage: {command}")


def test_guildctl_main_does_not_import_grpc():
    p = _python("-c", "import guildctl.main, sys; print('grpc' in sys.modules)")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "False"


def test_guildctl_help_does_not_import_grpc():
    code = (
        "import sys, guildctl.main as m\n"
        "try:\n    m.cli(['--help'], standalone_mode=False)\n"
        "finally:\n    print('grpc' in sys.modules, file=sys.stderr)\n"
    )
    p = _python("-c", code)
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().splitlines()[-1] == "False"
