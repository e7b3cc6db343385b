"""Dependency resolution (guildd.deps): file, url, operation, config and module sources."""

import functools
import hashlib
import http.server
import io
import json
import os
import pathlib
import tarfile
import textwrap
import threading
import zipfile

import pytest

from guild_common import errors, guildfile, requires as reqlib
from guildd import deps


@pytest.fixture
def project(tmp_path):
    p = tmp_path / "project"
    for rel, text in {
        "data/input.txt": "hello\n",
        "data/sub/s.txt": "s\n",
        "files/a.bin": "a\n",
        "files/e.txt": "e\n",
        "config.yml": "a: 1\nb: 2\nc:\n  d: 3\n",
        "config.json": '{"lr": 0.01, "dropout": 0.2, "batch-size": 100}',
        "config.txt": "x",
    }.items():
        (p / rel).parent.mkdir(parents=True, exist_ok=True)
        (p / rel).write_text(text)
    return p


@pytest.fixture
def upstream(tmp_path):
    """A completed `prepare` run: two output files, its source code, and its own dep."""
    d = tmp_path / "runs" / "aaaa1111"
    for rel in ("data1.txt", "subdir/data2.txt", "prep.py", "dep.txt", ".guild/attrs/id"):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(rel)
    (d / ".guild/manifest").write_text("s prep.py 0 prep.py\nd dep.txt 0 file:dep.txt\n")
    return d


@pytest.fixture
def make_ctx(tmp_path, project, upstream):
    calls = []

    def find_run(op, spec):
        calls.append((op, spec))
        if op == "prepare" and (spec is None or upstream.name.startswith(spec)):
            return upstream.name, str(upstream)
        return None

    def make(flags=None, name="run1"):
        run_dir = tmp_path / "runs" / name
        (run_dir / ".guild").mkdir(parents=True, exist_ok=True)
        ctx = deps.ResolveContext(
            run_dir=str(run_dir), project_dir=str(project), flags=flags or {},
            cache_dir=str(tmp_path / "cache" / "resources"), find_run=find_run,
            log=lambda line: None)
        return ctx, run_dir

    make.calls = calls
    return make


def files(run_dir):
    return sorted(str(p.relative_to(run_dir)) for p in pathlib.Path(run_dir).rglob("*")
                  if ".guild" not in p.parts and (p.is_file() or p.is_symlink()))


def error_for(requires, ctx):
    with pytest.raises(deps.DependencyError) as e:
        deps.resolve(requires, ctx)
    return str(e.value)


# file sources


def test_file_copied_and_recorded(make_ctx):
    ctx, run = make_ctx()
    resolved = deps.resolve([{"file": "data/input.txt"}], ctx)
    assert files(run) == ["input.txt"]
    assert not os.path.islink(run / "input.txt") and (run / "input.txt").read_text() == "hello\n"
    assert resolved.deps_attr() == {"file:data/input.txt": {"file:data/input.txt": {
        "paths": ["../../project/data/input.txt"], "uri": "file:data/input.txt"}}}
    assert resolved.resolved_deps() == {
        "file:data/input.txt": {"file:data/input.txt": ["../../project/data/input.txt"]}}
    sha1 = hashlib.sha1(b"hello\n").hexdigest()
    assert (run / ".guild/manifest").read_text() == f"d input.txt {sha1} file:data/input.txt\n"


def test_dir_copied_whole(make_ctx):
    ctx, run = make_ctx()
    deps.resolve([{"file": "data"}], ctx)
    assert files(run) == ["data/input.txt", "data/sub/s.txt"]


def test_dir_select_rename_target_path(make_ctx):
    ctx, run = make_ctx()
    deps.resolve([{"file": "files", "select": r".+\.bin", "rename": ".bin ''",
                   "target-path": "bin"}], ctx)
    assert files(run) == ["bin/a"]


def test_select_flattens_and_resource_path_joins(make_ctx):
    ctx, run = make_ctx()
    deps.resolve({"name": "d", "path": "r", "sources": [
        {"file": "data", "select": r".+\.txt", "path": "s", "rename": r"(.+)\.txt \1.cfg"}]}, ctx)
    assert files(run) == ["r/s/input.cfg", "r/s/s.cfg"]


def test_link(make_ctx, project):
    ctx, run = make_ctx()
    deps.resolve([{"file": "data/input.txt", "target-type": "link"}, {"file": "files",
                   "target-type": "link"}], ctx)
    assert os.readlink(run / "input.txt") == "../../project/data/input.txt"
    assert (run / "input.txt").read_text() == "hello\n"
    assert os.path.realpath(run / "files") == str(project / "files")


def test_missing_file_names_resource_and_installs_nothing(make_ctx):
    ctx, run = make_ctx()
    msg = error_for([{"file": "data/input.txt"}, {"file": "nope.txt"}], ctx)
    assert msg == "could not resolve 'file:nope.txt' in file:nope.txt resource: " \
                  "cannot find source file nope.txt"
    assert files(run) == []
    msg = error_for([{"file": "nope.txt", "name": "xx"}], ctx)
    assert msg.startswith("could not resolve 'file:nope.txt' in xx resource:")
    assert issubclass(deps.DependencyError, errors.FailedPrecondition)


def test_flag_name_picks_file(make_ctx):
    ctx, run = make_ctx({"infile": "data/sub/s.txt"})
    r = deps.resolve([{"file": "data/input.txt", "flag-name": "infile"}], ctx)
    assert files(run) == ["s.txt"]
    assert r.deps_attr()["infile"]["infile"] == {
        "config": "data/sub/s.txt", "paths": ["../../project/data/sub/s.txt"], "uri": "file:data/input.txt"}
    ctx, run = make_ctx({"infile": ""}, name="run2")  # '' asks for the default
    deps.resolve([{"file": "data/input.txt", "flag-name": "infile"}], ctx)
    assert files(run) == ["input.txt"]


def test_flag_refs_in_source(make_ctx):
    # `file: ${file}` (Guild's hello example): the run's flag value names the file; a ref
    # to no flag stays as written.
    ctx, run = make_ctx({"file": "files/e.txt", "n": 2})
    r = deps.resolve([{"file": "${file}", "name": "file"}], ctx)
    assert files(run) == ["e.txt"]
    assert r.deps_attr()["file"]["file"]["uri"] == "file:files/e.txt"
    ctx, run = make_ctx({"file": "nope.txt"}, name="run2")
    assert error_for([{"file": "${file}", "name": "file"}], ctx).endswith("cannot find source file nope.txt")
    ctx, run = make_ctx({}, name="run3")
    assert error_for([{"file": "${file}"}], ctx).endswith("cannot find source file ${file}")


def test_only_flag_name_makes_a_file_flag(make_ctx):
    # As Guild 0.9: a file source's `name`, or its resource's, is no flag.
    ctx, run = make_ctx({"two": "files/e.txt", "one": "files/e.txt"})
    deps.resolve([{"name": "two", "sources": [{"file": "data/input.txt"}, {"file": "files/a.bin"}]},
                  {"file": "data/sub/s.txt", "name": "one"}], ctx)
    assert files(run) == ["a.bin", "input.txt", "s.txt"]


def test_file_sha256(make_ctx):
    ctx, run = make_ctx()
    good = hashlib.sha256(b"hello\n").hexdigest()
    deps.resolve([{"file": "data/input.txt", "sha256": good}], ctx)
    msg = error_for([{"file": "data/input.txt", "sha256": "xxx"}], ctx)
    assert f"has an unexpected sha256 (expected xxx but got {good})" in msg


def test_dependency_replaces_source_code_copy(make_ctx):
    ctx, run = make_ctx()
    (run / "config.yml").write_text("old")
    deps.resolve([{"file": "files/e.txt", "rename": "e.txt config.yml"}], ctx)
    assert (run / "config.yml").read_text() == "e\n"


def test_duplicate_target_skipped(make_ctx):
    ctx, run = make_ctx()
    r = deps.resolve([{"file": "data/input.txt"}, {"file": "files/e.txt",
                       "rename": "e input"}], ctx)
    assert (run / "input.txt").read_text() == "hello\n"
    assert [s.files for s in r.sources] == [("input.txt",), ()]


def test_install_failure_rolls_back(make_ctx, monkeypatch):
    ctx, run = make_ctx()
    real = deps._install_item

    def failing(item, run_dir):
        if item.target == "e.txt":
            raise OSError("disk full")
        real(item, run_dir)

    monkeypatch.setattr(deps, "_install_item", failing)
    assert "disk full" in error_for([{"file": "data/input.txt"}, {"file": "files/e.txt"}], ctx)
    assert files(run) == []


# url sources


@pytest.fixture
def server(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "u.txt").write_text("urlfile\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in (("y.txt", b"y"), ("inner/x.txt", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    (www / "a.tar.gz").write_bytes(buf.getvalue())
    with zipfile.ZipFile(www / "a.zip", "w") as z:
        z.writestr("y.txt", "y")
        z.writestr("inner/x.txt", "x")
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.hits = hits
    yield httpd
    httpd.shutdown()
    thread.join()
    httpd.server_close()


def test_url_downloaded_cached_and_reused(make_ctx, server, tmp_path):
    url = server.base + "/u.txt"
    ctx, run = make_ctx()
    r = deps.resolve([{"url": url}], ctx)
    assert (run / "u.txt").read_text() == "urlfile\n" and not os.path.islink(run / "u.txt")
    key = hashlib.sha224(url.encode()).hexdigest()
    assert (tmp_path / "cache/resources" / key / "u.txt").exists()
    assert r.resolved_deps() == {url: {url: [f"../../cache/resources/{key}/u.txt"]}}
    sha = hashlib.sha256(b"urlfile\n").hexdigest()
    ctx2, run2 = make_ctx(name="run2")
    deps.resolve([{"url": url, "sha256": sha}], ctx2)
    assert server.hits == ["/u.txt"]  # the second resolve used the cache
    assert (run2 / "u.txt").read_text() == "urlfile\n"


def test_url_bad_sha256_not_cached(make_ctx, server):
    url = server.base + "/u.txt"
    ctx, run = make_ctx()
    msg = error_for([{"url": url, "sha256": "1111"}], ctx)
    actual = hashlib.sha256(b"urlfile\n").hexdigest()
    assert msg == (f"could not resolve '{url}' in {url} resource: '{url}' has an unexpected "
                   f"sha256 (expected 1111 but got {actual})")
    assert files(run) == []
    deps.resolve([{"url": url}], ctx)
    assert server.hits == ["/u.txt", "/u.txt"]


def test_url_whose_path_ends_in_dotdot_is_saved_as_download(make_ctx, server, tmp_path):
    # Its base name is '..': saved under it, the download would replace its cache dir.
    url = server.base + "/sub/.."
    ctx, run = make_ctx()
    deps.resolve([{"url": url}], ctx)
    key = hashlib.sha224(url.encode()).hexdigest()
    assert (tmp_path / "cache/resources" / key / "download").is_file()
    assert files(run) == ["download"]


def test_url_archives(make_ctx, server):
    ctx, run = make_ctx()
    deps.resolve([{"url": server.base + "/a.tar.gz", "target-path": "t"}], ctx)
    deps.resolve([{"url": server.base + "/a.zip", "select": "inner/x.txt"}], ctx)
    deps.resolve([{"url": server.base + "/a.zip", "unpack": False, "target-path": "z"}], ctx)
    assert files(run) == ["t/inner/x.txt", "t/y.txt", "x.txt", "z/a.zip"]
    ctx2, run2 = make_ctx(name="run2")
    deps.resolve([{"url": server.base + "/a.tar.gz"}], ctx2)
    assert files(run2) == ["inner/x.txt", "y.txt"]
    assert server.hits == ["/a.tar.gz", "/a.zip"]


def test_url_not_found(make_ctx, server):
    ctx, _ = make_ctx()
    msg = error_for([{"url": server.base + "/missing.txt", "name": "remote"}], ctx)
    assert msg.startswith(f"could not resolve '{server.base}/missing.txt' in remote resource: "
                          "error downloading")


# operation sources


def test_operation_latest_run(make_ctx, upstream):
    ctx, run = make_ctx()
    r = deps.resolve([{"operation": "prepare", "target-path": "data"}], ctx)
    assert files(run) == ["data/data1.txt", "data/subdir/data2.txt"]  # no source code or deps
    assert make_ctx.calls == [("prepare", None)]
    # Guild 0.9 names an unnamed source, its resource and its flag by its uri.
    assert r.upstream_runs() == {"operation:prepare": "aaaa1111"}
    assert r.flag_values() == {"operation:prepare": "aaaa1111"}
    assert r.deps_attr() == {"operation:prepare": {"operation:prepare": {
        "paths": ["../aaaa1111/data1.txt", "../aaaa1111/subdir"],
        "uri": "operation:prepare", "config": "aaaa1111"}}}


def test_operation_select_rename_and_flag(make_ctx):
    ctx, run = make_ctx({"prepared-data": "aaaa", "lr": 0.1})
    r = deps.resolve([{"operation": "prepare", "name": "prepared-data",
                       "select": "subdir/data2.txt", "rename": "data2 data"}], ctx)
    assert files(run) == ["data.txt"]
    assert make_ctx.calls == [("prepare", "aaaa")]
    assert r.resolved_deps() == {"prepared-data": {"operation:prepare": [
        "../aaaa1111/subdir/data2.txt"]}}
    assert r.flag_values() == {"prepared-data": "aaaa1111"}


def test_operation_select_picks_upstream_deps_and_source_code(make_ctx):
    # As Guild 0.9 (its dependencies example's file-op): `select` may name a file the
    # upstream run required, or its source code; without `select` they are left out.
    ctx, run = make_ctx()
    deps.resolve([{"operation": "prepare", "select": ["dep.txt", "prep.py"]}], ctx)
    assert files(run) == ["dep.txt", "prep.py"]


def test_operation_warn_if_empty(make_ctx):
    # Guild's `warn-if-empty: no` (its dependencies example's dir-op) silences the warning.
    lines = []
    for name, extra in (("run1", {}), ("run2", {"warn-if-empty": False}), ("run3", {"warn-if-empty": "no"})):
        ctx, _ = make_ctx(name=name)
        ctx = deps.ResolveContext(**{**ctx.__dict__, "log": lines.append})
        deps.resolve([{"operation": "prepare", "select": "nothing-here", **extra}], ctx)
    assert [line for line in lines if line.startswith("WARNING")] == [
        "WARNING: nothing resolved for operation:prepare"]


def test_operation_select_matches_dirs_and_guild_files(make_ctx):
    # As in Guild 0.9, `select` matches directories (copied whole) and paths under the
    # upstream run's .guild (`select: .guild/attrs/id`, as Guild's examples take its flags).
    ctx, run = make_ctx()
    r = deps.resolve([{"operation": "prepare", "select": ["subdir", ".guild/attrs/id"],
                       "rename": "id upstream-id.txt"}], ctx)
    assert files(run) == ["subdir/data2.txt", "upstream-id.txt"]
    assert (run / "upstream-id.txt").read_text() == ".guild/attrs/id"
    assert r.resolved_deps() == {"operation:prepare": {"operation:prepare": [
        "../aaaa1111/.guild/attrs/id", "../aaaa1111/subdir"]}}
    ctx, run = make_ctx(name="run2")
    deps.resolve([{"file": "data", "select": "sub", "target-path": "in"}], ctx)
    assert files(run) == ["in/sub/s.txt"]


def test_operation_flag_name_rename_list_and_link(make_ctx):
    ctx, run = make_ctx({"up": "aaaa1"})
    deps.resolve([{"operation": "prepare", "flag-name": "up", "target-type": "link",
                   "rename": ["subdir sd", "data1 d1"]}], ctx)
    assert files(run) == ["d1.txt", "sd"]
    assert os.readlink(run / "sd") == "../aaaa1111/subdir"
    assert (run / "sd/data2.txt").read_text() == "subdir/data2.txt"


def test_operation_none_found(make_ctx):
    ctx, run = make_ctx()
    assert error_for([{"file": "data/input.txt"}, {"operation": "prepare-data"}], ctx) == (
        "could not resolve 'operation:prepare-data' in operation:prepare-data resource: "
        "no suitable run for prepare-data")
    ctx, run = make_ctx({"prepared-data": "zzz"})
    msg = error_for([{"operation": "prepare", "name": "prepared-data"}], ctx)
    assert msg.endswith("in prepared-data resource: no suitable run for prepare")
    assert files(run) == []


def test_skip_resolved_and_stage(make_ctx):
    ctx, run = make_ctx()
    requires = [{"operation": "prepare"}, {"file": "data/input.txt", "name": "inp"}]
    r = deps.resolve(requires, ctx, operations=False)
    assert files(run) == ["input.txt"] and make_ctx.calls == []
    r = deps.resolve(requires, ctx, skip={"inp"})
    assert [s.resource for s in r.sources] == ["operation:prepare"]


# config and module sources


def test_config_params_then_flags(make_ctx):
    ctx, run = make_ctx({"a": 11, "c.d": 33, "operation:prepare": "aaaa"})
    r = deps.resolve([{"config": "config.yml", "params": {"b": 222, "a": 1, "q.r": 1}},
                      {"operation": "prepare", "select": "data1.txt"}], ctx)
    assert (run / "config.yml").read_text() == "a: 11\nb: 222\nc:\n  d: 33\nq:\n  r: 1\n"
    assert r.deps_attr()["config:config.yml"]["config:config.yml"]["paths"] == ["config.yml"]


def test_config_json_compact_renamed(make_ctx):
    ctx, run = make_ctx({"lr": 0.5})
    deps.resolve([{"config": "config.json", "rename": "config c2", "target-path": "cfg"}], ctx)
    assert (run / "cfg/c2.json").read_text() == \
        '{"batch-size": 100, "dropout": 0.2, "lr": 0.5}'
    assert json.loads((run / "cfg/c2.json").read_text())["lr"] == 0.5


def test_config_null_flags_keep_the_files_values(make_ctx):
    # Flags declared `lr: null` (default-flag-arg-skip) are unset: as in Guild 0.9 the file
    # keeps its own values instead of being overwritten with nulls.
    ctx, run = make_ctx({"lr": None, "batch-size": None, "dropout": 0.5, "new": None})
    deps.resolve([{"config": "config.json", "params": {"batch-size": 64}}], ctx)
    assert json.loads((run / "config.json").read_text()) == {"batch-size": 64, "dropout": 0.5, "lr": 0.01}


def test_config_ini_and_always_resolve(make_ctx, project):
    # flags-dest config:flags.ini is such a dependency: written again at each start (a
    # restart with new flags), although the run already resolved it.
    (project / "flags.ini").write_text("[sec]\ni = 1\nl = 1 2\n")
    requires = [{"name": "config:flags.ini", "sources": [{"config": "flags.ini", "always-resolve": True}]}]
    ctx, run = make_ctx({"sec.i": 5, "b": False})
    deps.resolve(requires, ctx)
    assert (run / "flags.ini").read_text() == "[DEFAULT]\nb = False\n\n[sec]\ni = 5\nl = 1 2\n\n"
    ctx, run = make_ctx({"sec.i": 6})
    deps.resolve(requires, ctx, skip=("config:flags.ini",))
    assert "i = 6" in (run / "flags.ini").read_text()


def test_config_arg_split_flags_written_as_lists(make_ctx, project):
    # Guild's flags example (config-3: `l` with arg-split, flags-dest config:flags.ini):
    # the flag's string is written as the list it stands for, in Python's str() as Guild.
    (project / "flags.ini").write_text("[DEFAULT]\ni = 1\nl = 1 1.2 blue yes\n")
    requires = [{"name": "config:flags.ini", "sources": [
        {"config": "flags.ini", "always-resolve": True, "arg-split": {"l": True}}]}]
    ctx, run = make_ctx({"i": 1, "l": "1 2 foo"})
    deps.resolve(requires, ctx)
    assert (run / "flags.ini").read_text() == "[DEFAULT]\ni = 1\nl = [1, 2, 'foo']\n\n"


def test_config_errors(make_ctx):
    ctx, _ = make_ctx({"a.b": 1})
    assert "cannot set a.b in config file 'config.yml'" in error_for([{"config": "config.yml"}], ctx)
    ctx, _ = make_ctx(name="run2")
    assert "unsupported config format 'config.txt'" in error_for([{"config": "config.txt"}], ctx)
    assert "cannot find config file nope.yml" in error_for([{"config": "nope.yml"}], ctx)


def test_module_sources(make_ctx):
    ctx, _ = make_ctx()
    deps.resolve([{"module": "json"}], ctx)
    assert error_for([{"module": "no_such_module_xyz"}], ctx) == (
        "could not resolve 'module:no_such_module_xyz' in module:no_such_module_xyz "
        "resource: no module named no_such_module_xyz")


# parsing


def test_resources_for():
    res = deps.resources_for([{"operation": "prepare"}, {"url": "http://x/y.gz"},
                              {"sources": [{"file": "a.txt"}, "b.txt"], "path": "p"},
                              {"operation": "prepare", "name": "d", "flag-name": "up"}])
    assert [(r.name, r.path) for r in res] == [
        ("operation:prepare", ""), ("http://x/y.gz", ""), ("file:a.txt,file:b.txt", "p"), ("d", "")]
    assert [r.flag_names() for r in res] == [["operation:prepare"], [], [], ["up"]]
    with pytest.raises(errors.InvalidArgument, match="missing required attribute"):
        deps.resources_for([{"foo": "bar.txt"}])
    with pytest.raises(errors.InvalidArgument, match=r"conflicting attributes \(file, url\)"):
        deps.resources_for([{"file": "a", "url": "b"}])
    with pytest.raises(errors.InvalidArgument, match="cannot find resource 'data'"):
        deps.resources_for("data")


def test_model_resource_references(make_ctx):
    model = {"data": {"path": "d", "sources": [{"file": "data/input.txt"}]},
             "cfg": {"sources": [{"config": "config.json"}]}}
    ctx, run = make_ctx()
    r = deps.resolve(["data", {"resource": "cfg", "description": "x"}], ctx, resources=model)
    assert files(run) == ["config.json", "d/input.txt"]
    assert [s.resource for s in r.sources] == ["data", "cfg"]


def test_rename_specs():
    assert deps._rename_specs(r"(.+)\.txt \1.cfg", {}) == [(r"(.+)\.txt", r"\1.cfg")]
    assert deps._rename_specs(["'a b' c", ".bin ''"], {}) == [("a b", "c"), (".bin", "")]
    assert deps._rename_specs("x ${v}", {"v": 2}) == [("x", "2")]
    assert deps._rename_specs({"pattern": "a", "repl": "b"}, {}) == [("a", "b")]


# guild_common.requires: references and selecting flags


def test_requires_inline_flags_aliases_and_project_paths():
    gf = guildfile.for_string(textwrap.dedent("""
        - model: m
          resources:
            data:
              path: d
              sources: [data/input.txt]
          operations:
            op:
              exec: 'true'
              requires:
                - data
                - resource: data
                - operation: prep
                - operation: prep
                  name: up
                - operation: other
                  flag-name: no
                - file: files/e.txt
                  flag-name: src
                - config: config.yml
        - model: n
          operations:
            op2:
              exec: 'true'
              requires: [m:data, nope]
    """))
    items = reqlib.inline(gf, gf.models["m"].operations["op"])
    assert items[:2] == [{"name": "data", "path": "d", "sources": [{"file": "data/input.txt"}]}] * 2
    defs = reqlib.flag_defs(items)
    assert sorted(defs) == ["operation:prep", "src", "up"]
    assert (defs["src"].default, defs["src"].arg_skip, defs["operation:prep"].default) == ("files/e.txt", True, None)
    assert reqlib.flag_aliases(items) == {"prep": "operation:prep"}
    assert reqlib.project_paths(items) == ["data/input.txt", "data/input.txt", "files/e.txt", "config.yml"]
    with pytest.raises(errors.InvalidArgument, match="^resource 'nope' required by operation 'n:op2' is not defined$"):
        reqlib.inline(gf, gf.models["n"].operations["op2"])
