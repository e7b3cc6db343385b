"""guildctl ls, cat and runs diff: a run's files, read through the daemon."""

import difflib
import json
import os
import shlex
import subprocess
import sys

import click

from guild_common import errors, userconfig
from guildctl import output
from guildctl.filters import pop_filter, run_filters
from guildctl.selecting import selection


@click.command()
@click.argument("run", required=False, default="")
@click.option("-p", "--path", default="", help="Only files under PATH, or matching it as a glob ('*.txt').")
@click.option("-s", "--sourcecode", is_flag=True, help="Only the source code snapshot.")
@click.option("-a", "--all", "all_files", is_flag=True, help="Include Guild's files under .guild.")
@click.option("-f", "--full-path", is_flag=True, help="Show absolute paths.")
@click.option("-L", "--follow-links", is_flag=True, help="Descend into linked directories.")
@click.option("-n", "--no-format", is_flag=True, help="Paths only: no header, no indent.")
@click.option("--json", "as_json", is_flag=True, help="Print the run and its files (path, type, size) as JSON.")
@run_filters
@click.pass_obj
def ls(ctx, run, path, sourcecode, all_files, full_path, follow_links, no_format, as_json, **kw):
    """List a run's files (default: the latest run)."""
    resp = ctx.client.list_files(
        selection([run] if run else [], pop_filter(kw)),
        path=path,
        all=all_files,
        sourcecode=sourcecode,
        follow_links=follow_links,
    )
    run_dir = resp.run.run_dir
    if as_json:
        output.print_json(files_json(resp.run, resp.files))
        return
    if not no_format and not full_path:
        click.echo(f"{output.shorten_path(run_dir)}:")
    for f in resp.files:
        name = os.path.join(run_dir, f.path) if full_path else f.path
        if f.is_dir:
            name += "/"
        click.echo(name if (no_format or full_path) else f"  {name}")


def files_json(run, files):
    """`ls --json`: the run, and each file with its path relative to the run dir, its
    absolute path, its type (file or dir, what a link points to), whether it is a symbolic
    link, and its size (0 for a directory)."""
    return {
        "id": run.id,
        "run_dir": run.run_dir,
        "files": [
            {
                "path": f.path,
                "full_path": os.path.join(run.run_dir, f.path),
                "type": "dir" if f.is_dir else "file",
                "link": f.is_link,
                "size": f.size,
            }
            for f in files
        ],
    }


@click.command()
@click.argument("run", required=False, default="")
@click.option("-p", "--path", default="", help="The file to show, relative to the run dir.")
@click.option("-s", "--sourcecode", is_flag=True, help="PATH is a source code file.")
@click.option("-O", "--output", "show_output", is_flag=True, help="Show the run's output.")
@run_filters
@click.pass_obj
def cat(ctx, run, path, sourcecode, show_output, **kw):
    """Show a run file or the run's output (default: the latest run)."""
    if not path and not show_output:
        raise errors.InvalidArgument("specify --path or --output")
    if path and show_output:
        raise errors.InvalidArgument("--path and --output cannot both be used")
    sel = selection([run] if run else [], pop_filter(kw))
    for data in ctx.client.read_file(sel, path=path, output=show_output, sourcecode=sourcecode):
        output.write_output(data)


@click.command()
@click.argument("runs", nargs=-1, metavar="[RUN1 [RUN2]]")
@click.option("-O", "--output", "show_output", is_flag=True, help="Diff the runs' output.")
@click.option("-f", "--flags", is_flag=True, help="Diff the runs' flags.")
@click.option("-a", "--attrs", is_flag=True, help="Diff all the runs' attributes.")
@click.option("-e", "--env", is_flag=True, help="Diff the runs' environments.")
@click.option("-p", "--path", "paths", multiple=True, help="Diff this run file (repeatable).")
@click.option("-c", "--cmd", help="Run CMD with the two run dirs (or files) instead, e.g. 'diff -ru'.")
@run_filters
@click.pass_obj
def diff(ctx, runs, show_output, flags, attrs, env, paths, cmd, **kw):
    """Diff two runs (default: the latest two): flags, attributes and output, or files.

    With --cmd, or a `diff: command:` in Guild's user config (guild-config.yml here,
    $GUILD_CONFIG or ~/.guild/config.yml), the command gets the two run directories, or
    the two files or directories of what the options name, e.g.
    `guildctl runs diff 1 2 --cmd 'diff -ru'`.
    """
    if len(runs) > 2:
        raise errors.InvalidArgument("runs diff takes at most two runs")
    run_filter = pop_filter(kw)
    # Guild: no runs diffs the latest two; one run diffs it against the latest.
    specs = ["2", "1"] if not runs else [runs[0], "1"] if len(runs) == 1 else list(runs)
    client = ctx.client
    a, b = (client.get_run(s, run_filter=run_filter) for s in specs)
    if a.id == b.id and len(runs) < 2:
        raise errors.InvalidArgument("there is only one run to diff")
    commands = {} if cmd else userconfig.diff_commands(userconfig.config_path())
    if cmd or commands:
        _diff_cmd(cmd, commands, _cmd_pairs(a, b, show_output, flags, attrs, env, paths))
        return
    parts = []
    everything = not (show_output or flags or attrs or env or paths)
    if flags or everything:
        parts.append(("flags", _yaml_lines(json.loads(a.flags_json)), _yaml_lines(json.loads(b.flags_json))))
    if attrs or everything:
        parts.append(("attrs", _attr_lines(a), _attr_lines(b)))
    if env:
        parts.append(("env", _yaml_lines(dict(a.env)), _yaml_lines(dict(b.env))))
    if show_output or everything:
        parts.append(("output", _file_lines(client, a, output=True), _file_lines(client, b, output=True)))
    for path in paths:
        parts.append((path, _file_lines(client, a, path=path), _file_lines(client, b, path=path)))
    for what, left, right in parts:
        sys.stdout.writelines(
            difflib.unified_diff(left, right, f"{a.id[:8]}/{what}", f"{b.id[:8]}/{what}")
        )


def _yaml_lines(d):
    return [f"{k}: {json.dumps(v) if not isinstance(v, str) else v}\n" for k, v in sorted(d.items())]


def _attr_lines(r):
    attrs = json.loads(r.attrs_json or "{}")
    attrs.update(label=r.label, status=r.status, command=r.command, exit_status=r.exit_status if r.has_exit_status else None)
    attrs.pop("id", None)
    return _yaml_lines(attrs)


def _file_lines(client, run, path="", output=False):
    sel = selection([run.id], None)
    try:
        data = b"".join(client.read_file(sel, path=path, output=output))
    except errors.NotFound:
        return []
    return data.decode("utf-8", "replace").splitlines(keepends=True)


def _cmd_pairs(a, b, show_output, flags, attrs, env, paths):
    """What a diff command compares, as Guild 0.9 passes it: the attrs dirs (or the env and
    flags attrs), the outputs, each --path's files; the run dirs when nothing is named."""
    def both(*parts):
        return os.path.join(a.run_dir, *parts), os.path.join(b.run_dir, *parts)

    pairs = [both(".guild", "attrs")] if attrs else []
    if not attrs:
        pairs += ([both(".guild", "attrs", "env")] if env else []) + ([both(".guild", "attrs", "flags")] if flags else [])
    if show_output:
        pairs.append(both(".guild", "output"))
    pairs += [both(p) for p in paths]
    return pairs or [(a.run_dir, b.run_dir)]


def _diff_cmd(cmd, commands, pairs):
    for left, right in pairs:
        # A map of commands with no match and no default: Guild's own default.
        command = cmd or userconfig.command_for(commands, left) or "diff -ru"
        try:
            argv = shlex.split(command) + [left, right]
        except ValueError as e:
            raise errors.InvalidArgument(f"invalid diff command '{command}': {e}") from None
        try:
            subprocess.run(argv)
        except OSError as e:
            raise errors.GuildError(f"error running '{' '.join(argv)}': {e.strerror}") from e
