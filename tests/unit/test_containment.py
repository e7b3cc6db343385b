"""Paths a request names stay where they belong (guild_common.paths), and the run-dir writers
that use it: the source snapshot (rundir), dependency targets (guildd.deps), a Guild file's
sourcecode dest, and the export and archive directories (guildd.manage)."""

import os
import pathlib

import pytest

from guild_common import errors, opconfig, paths, rundir, sourcecode
from guild_common.guildfile_ops import sourcecode as guildfile_sourcecode
from guildd import deps, manage

# paths.relative: lexical, touches nothing


@pytest.mark.parametrize(
    "rel, norm",
    [
        ("", "."),
        (".", "."),
        ("a", "a"),
        ("a/b", "a/b"),
        ("a/./b", "a/b"),
        ("a/b/../c", "a/c"),
        ("a/..", "."),
        ("a/", "a"),
        ("..data", "..data"),
        ("a/..b", "a/..b"),
        ("*.txt", "*.txt"),
    ],
)
def test_relative_accepts(rel, norm):
    assert paths.relative(rel) == norm


@pytest.mark.parametrize(
    "rel, why",
    [
        ("..", "is outside the run directory"),
        ("../x", "is outside the run directory"),
        ("a/../../x", "is outside the run directory"),
        ("a/b/../../..", "is outside the run directory"),
        ("/abs/x", "is outside the run directory (an absolute path)"),
        ("/", "(an absolute path)"),
        ("x\0y", "holds a NUL byte"),
    ],
)
def test_relative_refuses(rel, why):
    with pytest.raises(errors.InvalidArgument) as e:
        paths.relative(rel, "source file")
    assert why in str(e.value)
    assert str(e.value).startswith("source file ")
    assert "\n" not in str(e.value)


def test_relative_refuses_what_is_not_a_string():
    with pytest.raises(errors.InvalidArgument, match="is not a path"):
        paths.relative(None)


# paths.contained: resolved, links included


@pytest.fixture
def base(tmp_path):
    """A run dir with a link out of it, a link inside it, and a dir beside it."""
    run = tmp_path / "run"
    (run / "sub").mkdir(parents=True)
    (run / "file.txt").write_text("x")
    (tmp_path / "outside").mkdir()
    (run / "out").symlink_to(tmp_path / "outside")
    (run / "out-file").symlink_to(tmp_path / "outside" / "f")
    (run / "in").symlink_to("sub")
    (run / "loop").symlink_to("loop")
    return run


@pytest.mark.parametrize(
    "rel, expected",
    [
        ("", ""),
        ("file.txt", "file.txt"),
        ("sub/new/x", "sub/new/x"),
        ("in/x", "sub/x"),
        ("sub/../file.txt", "file.txt"),
    ],
)
def test_contained_accepts(base, rel, expected):
    assert paths.contained(base, rel) == (base.resolve() / expected if expected else base.resolve())


@pytest.mark.parametrize(
    "rel, why",
    [
        ("../outside/x", "is outside the run directory"),
        ("/etc/passwd", "(an absolute path)"),
        ("out/x", "leads outside the run directory through a symbolic link"),
        ("out", "leads outside the run directory through a symbolic link"),
        ("out-file", "leads outside the run directory through a symbolic link"),
        ("loop/x", "cannot resolve"),
    ],
)
def test_contained_refuses(base, rel, why):
    with pytest.raises(errors.InvalidArgument) as e:
        paths.contained(base, rel)
    assert why in str(e.value)


def test_contained_without_follow_gives_the_link_itself(base):
    # To unlink or list a link: where it points does not matter, where it is does.
    assert paths.contained(base, "out", follow=False) == base.resolve() / "out"
    assert paths.contained(base, "out-file", follow=False) == base.resolve() / "out-file"
    with pytest.raises(errors.InvalidArgument, match="symbolic link"):
        paths.contained(base, "out/x", follow=False)


def test_contained_in_a_dir_that_does_not_exist_yet(tmp_path):
    assert paths.contained(tmp_path / "new", "a/b") == tmp_path.resolve() / "new" / "a" / "b"
    with pytest.raises(errors.InvalidArgument):
        paths.contained(tmp_path / "new", "../x")


# paths.absolute_dir and paths.inside


@pytest.mark.parametrize(
    "path, why",
    [("", "export directory missing"), ("out", "is not an absolute path"), ("./out", "is not an absolute path"),
     ("/a\0b", "holds a NUL byte")],
)
def test_absolute_dir_refuses(path, why):
    with pytest.raises(errors.InvalidArgument, match=why):
        paths.absolute_dir(path, "export directory")


def test_absolute_dir_normalises():
    assert paths.absolute_dir("/a/./b/../c/", "archive") == pathlib.Path("/a/c")


def test_inside_follows_links(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "runs")
    assert paths.inside(tmp_path / "runs", tmp_path / "runs")
    assert paths.inside(tmp_path / "runs" / "a" / "b", tmp_path / "runs")
    assert paths.inside(tmp_path / "link" / "a", tmp_path / "runs")
    assert not paths.inside(tmp_path / "runs-2", tmp_path / "runs")
    assert not paths.inside(tmp_path, tmp_path / "runs")


# the source snapshot (rundir)


@pytest.mark.parametrize(
    "path, why",
    [
        ("../x", "outside the run directory"),
        ("/abs/x", "outside the run directory"),
        ("a/../../x", "outside the run directory"),
        (".guild/attrs/exit_status", "among the run's metadata"),
        (".guild/LOCK", "among the run's metadata"),
        (".guild", "among the run's metadata"),
        ("", "the run directory itself"),
    ],
)
def test_run_file_refuses(tmp_path, path, why):
    with pytest.raises(errors.InvalidArgument, match=why):
        rundir.run_file(tmp_path, path)


def test_run_file_allows_guilds_older_sourcecode_layout(tmp_path):
    assert rundir.run_file(tmp_path, ".guild/sourcecode/train.py") == tmp_path.resolve() / ".guild/sourcecode/train.py"


def test_write_sourcecode_checks_every_path_before_writing_any(tmp_path):
    run = tmp_path / "run"
    (run / ".guild").mkdir(parents=True)
    with pytest.raises(errors.InvalidArgument, match="'../x'"):
        rundir.write_sourcecode(run, [("ok.py", b"ok", 0o644), ("../x", b"x", 0o644)])
    assert sorted(os.listdir(run)) == [".guild"] and os.listdir(run / ".guild") == []
    assert not (tmp_path / "x").exists()


def test_write_sourcecode_refuses_a_file_under_another(tmp_path):
    (tmp_path / ".guild").mkdir()
    with pytest.raises(errors.InvalidArgument, match="'a/b' is under another source file"):
        rundir.write_sourcecode(tmp_path, [("a", b"1", 0), ("a/b", b"2", 0)])


def test_write_sourcecode_records_normalised_paths(tmp_path):
    (tmp_path / ".guild").mkdir()
    assert rundir.write_sourcecode(tmp_path, [("a/./b/../x.py", b"x", 0), ("y.py", b"y", 0)]) == ["a/x.py", "y.py"]
    assert rundir.sourcecode_files(tmp_path) == ["a/x.py", "y.py"]


@pytest.mark.parametrize("dest", ["../..", "/tmp/x", ".guild/attrs", ".guild"])
def test_check_sourcecode_refuses_a_dest_outside(tmp_path, dest):
    with pytest.raises(errors.InvalidArgument, match="sourcecode dest"):
        rundir.check_sourcecode(tmp_path / "not-made-yet", [], dest)
    assert not (tmp_path / "not-made-yet").exists()


@pytest.mark.parametrize("dest", ["", ".", "src", "a/b", ".guild/sourcecode"])
def test_check_sourcecode_accepts_a_dest_inside(tmp_path, dest):
    rundir.check_sourcecode(tmp_path, ["x.py"], dest)


def tampered(run, victim):
    (run / ".guild").mkdir(parents=True)
    rundir.write_sourcecode(run, [("train.py", b"old", 0o644)])
    manifest = run / ".guild" / "manifest"
    manifest.write_text(manifest.read_text() + f"s {victim} 0 {victim}\n")


@pytest.mark.parametrize("victim", ["{victim}", "../victim.txt", ".guild/attrs/exit_status"])
def test_replace_sourcecode_with_a_tampered_manifest_removes_nothing(tmp_path, victim):
    run = tmp_path / "run"
    (tmp_path / "victim.txt").write_text("keep")
    tampered(run, victim.format(victim=tmp_path / "victim.txt"))
    with pytest.raises(errors.InvalidArgument, match="manifest path"):
        rundir.replace_sourcecode(run, [("train.py", b"new", 0o644)])
    assert (tmp_path / "victim.txt").read_text() == "keep"
    assert (run / "train.py").read_bytes() == b"old"


def test_replace_sourcecode_removes_a_link_not_what_it_points_to(tmp_path):
    run = tmp_path / "run"
    (run / ".guild").mkdir(parents=True)
    rundir.write_sourcecode(run, [("train.py", b"old", 0o644)])
    (tmp_path / "victim.txt").write_text("keep")
    (run / "train.py").unlink()
    (run / "train.py").symlink_to(tmp_path / "victim.txt")  # the run's process did this
    assert rundir.replace_sourcecode(run, [("train.py", b"new", 0o644)], "") == ["train.py"]
    assert (run / "train.py").read_bytes() == b"new" and not (run / "train.py").is_symlink()
    assert (tmp_path / "victim.txt").read_text() == "keep"


def test_read_sourcecode_refuses_a_tampered_manifest_and_links_out(tmp_path):
    run = tmp_path / "run"
    (tmp_path / "secret").write_text("not yours")
    tampered(run, tmp_path / "secret")
    with pytest.raises(errors.InvalidArgument, match="manifest path"):
        rundir.read_sourcecode(run)
    run2 = tmp_path / "run2"
    (run2 / ".guild").mkdir(parents=True)
    rundir.write_sourcecode(run2, [("train.py", b"x", 0o644)])
    (run2 / "train.py").unlink()
    (run2 / "train.py").symlink_to(tmp_path / "secret")
    with pytest.raises(errors.InvalidArgument, match="symbolic link"):
        rundir.read_sourcecode(run2)


def test_read_sourcecode(tmp_path):
    (tmp_path / ".guild").mkdir()
    rundir.write_sourcecode(tmp_path, [("a/x.py", b"x", 0o640)])
    assert rundir.read_sourcecode(tmp_path) == [("a/x.py", b"x", 0o640)]


# a Guild file's sourcecode dest, and a run's recorded dest


@pytest.mark.parametrize("dest", ["../../../../tmp/x", "/tmp/x", "a/../../x", "/"])
def test_guildfile_sourcecode_dest_outside_is_refused_at_load(dest):
    with pytest.raises(errors.InvalidArgument) as e:
        guildfile_sourcecode({"dest": dest}, "/p/guild.yml")
    assert str(e.value).startswith("error in /p/guild.yml: sourcecode dest ")
    with pytest.raises(errors.InvalidArgument, match="sourcecode dest"):
        sourcecode.rules_for_config({"dest": dest})


@pytest.mark.parametrize("dest, expected", [(".", None), ("./src/", "src"), ("a/../b", "a/../b"), (".src", ".src")])
def test_guildfile_sourcecode_dest_inside(dest, expected):
    assert guildfile_sourcecode({"dest": dest}, "/p/guild.yml") == {"dest": dest}
    assert sourcecode.rules_for_config({"dest": dest}).dest == expected


@pytest.mark.parametrize(
    "dest, expected",
    [(None, ""), (".", ""), ("./", ""), ("src", "src"), ("./src/", "src"), (".src", ".src"), ("../..", "../.."), ("/x", "/x")],
)
def test_recorded_dest_is_read_as_written(dest, expected):
    # Not stripped of its dots: '../..' stays what it is, and is refused where it is used.
    assert opconfig._dest_for_attr(dest) == expected


# dependency targets (guildd.deps)


@pytest.fixture
def dep_ctx(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "data.txt").write_text("data\n")
    (project / "..data").write_text("dots\n")
    run = tmp_path / "runs" / "run1"
    (run / ".guild").mkdir(parents=True)
    ctx = deps.ResolveContext(
        run_dir=str(run), project_dir=str(project), flags={},
        cache_dir=str(tmp_path / "cache"), find_run=lambda op, spec: None, log=lambda line: None)
    return ctx, run


@pytest.mark.parametrize(
    "source",
    [
        {"file": "data.txt", "target-path": "../../x"},
        {"file": "data.txt", "target-path": "/abs"},
        {"file": "data.txt", "rename": "data.txt ../../x"},
    ],
)
def test_dependency_target_outside_is_refused(dep_ctx, tmp_path, source):
    ctx, run = dep_ctx
    with pytest.raises(deps.DependencyError, match="outside the run directory"):
        deps.resolve([source], ctx)
    assert not (tmp_path / "x").exists() and not (tmp_path / "abs").exists()


def test_dependency_target_through_a_link_out_is_refused_and_rolled_back(dep_ctx, tmp_path):
    ctx, run = dep_ctx
    (tmp_path / "outside").mkdir()
    (run / "out").symlink_to(tmp_path / "outside")  # left by the run's source, or an upstream copy
    with pytest.raises(deps.DependencyError, match="symbolic link"):
        deps.resolve([{"file": "..data"}, {"file": "data.txt", "target-path": "out"}], ctx)
    assert os.listdir(tmp_path / "outside") == []
    assert not (run / "..data").exists()  # the first source's file, rolled back


def test_dependency_target_in_the_runs_metadata_is_refused(dep_ctx):
    ctx, run = dep_ctx
    with pytest.raises(deps.DependencyError, match="metadata"):
        deps.resolve([{"file": "data.txt", "target-path": ".guild/attrs", "rename": "data.txt exit_status"}], ctx)
    assert not (run / ".guild" / "attrs" / "exit_status").exists()


def test_dependency_target_named_with_leading_dots_is_fine(dep_ctx):
    ctx, run = dep_ctx
    deps.resolve([{"file": "..data"}], ctx)
    assert (run / "..data").read_text() == "dots\n"


# export and archive directories (guildd.manage)


@pytest.mark.parametrize("dest", ["{home}/runs", "{home}/runs/abc/exported", "{home}/trash/runs/x", "{link}/x"])
def test_export_dir_refuses_where_runs_are_kept(tmp_path, dest):
    home = tmp_path / "home"
    (home / "runs").mkdir(parents=True)
    (tmp_path / "link").symlink_to(home / "runs")
    with pytest.raises(errors.InvalidArgument, match="where guildd keeps runs"):
        manage.export_dir(home, dest.format(home=home, link=tmp_path / "link"))


@pytest.mark.parametrize("dest", ["{home}", "{home}/exports", "{tmp}/elsewhere", "{home}/runs-old"])
def test_export_dir_accepts(tmp_path, dest):
    home = tmp_path / "home"
    (home / "runs").mkdir(parents=True)
    path = dest.format(home=home, tmp=tmp_path)
    assert manage.export_dir(home, path) == pathlib.Path(path)


@pytest.mark.parametrize("archive", ["", "relative", "./x"])
def test_archive_dir_must_be_absolute(archive):
    with pytest.raises(errors.InvalidArgument, match="archive directory"):
        manage.archive_run_dirs(archive)


@pytest.mark.parametrize("path", ["../x", "/etc", "a/../../b"])
def test_listing_files_outside_is_refused(tmp_path, path):
    with pytest.raises(errors.InvalidArgument, match="outside the run directory"):
        manage.list_files(tmp_path, path)


def test_file_path_refuses_dotdot_even_back_inside(tmp_path):
    run = tmp_path / "abc"
    run.mkdir()
    (run / "f").write_text("x")
    with pytest.raises(errors.InvalidArgument, match="outside the run directory"):
        manage.file_path(run, "../abc/f")
    assert manage.file_path(run, "f") == run.resolve() / "f"
