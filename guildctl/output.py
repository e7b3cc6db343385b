"""Rendering for guildctl: run rows, dates, JSON. The one place output formats live."""

import json
import os
import shlex
import sys

from guild_common import rundir


def fmt_time(us):
    return rundir.format_us(us) or ""


def op_display(run, cwd=None):
    """The operation as Guild lists it: `train.py`, with the dir it came from when that isn't
    the current dir (`train.py (../)`, `train.py (a)`, or absolute past one level up)."""
    kind, origin = rundir.opref_origin(run.opref)
    if kind == "package":
        origin = ""
    if kind == "guildfile":
        origin = os.path.dirname(origin)
    name = run.op_name
    if origin:
        rel = os.path.relpath(origin, cwd or os.getcwd())
        if rel.startswith(".." + os.sep + ".."):
            name += f" ({origin})"
        elif rel == "..":
            name += " (../)"
        elif rel != ".":
            name += f" ({rel})"
    return name + (" [marked]" if run.marked else "")


def run_rows(runs, start_index=1):
    """Guild's run list rows: `[1:1933bdcb]  train.py  2020-01-14 09:38:15  completed  x=1`."""
    rows = [
        (f"[{i}:{r.id[:8]}]", op_display(r), fmt_time(r.started_us), r.status, r.label)
        for i, r in enumerate(runs, start_index)
    ]
    widths = [max((len(row[c]) for row in rows), default=0) for c in range(4)]
    return ["  ".join(cell.ljust(widths[c]) if c < 4 else cell for c, cell in enumerate(row)).rstrip() for row in rows]


def run_json(run):
    """A run as Guild 0.9's `runs list --json` keys it (more keys are fine)."""
    return {
        "id": run.id,
        "run_dir": run.run_dir,
        "opref": run.opref,
        "operation": run.op_name,
        "exit_status": run.exit_status if run.has_exit_status else None,
        # The `cmd` attr as a list; ListRuns sends it as one line when asked (with_command).
        "cmd": shlex.split(run.command) if run.command else None,
        "marked": True if run.marked else None,
        "label": run.label,
        "started": run.started_us or None,
        "stopped": run.stopped_us or None,
        "status": run.status,
        "tags": list(run.tags) or None,
        "comments": [comment_json(c) for c in run.comments] or None,
        "user": run.user,
        "flags": json.loads(run.flags_json or "{}"),
        "scalars": {s.tag: [s.last, s.last_step] for s in run.scalars},
    }


def confirm():
    """Guild's `Continue? (Y/n)`: Enter or y goes on."""
    import click

    return click.confirm("Continue? (Y/n)", default=True, show_default=False)


def confirm_op(verb, op_name, values, yes):
    """Guild's "You are about to VERB OP" with the flag values, then `Continue? (Y/n)`;
    aborts when the user says no. Nothing with `yes`."""
    if yes:
        return
    import click

    from guild_common.flags import encode_flag_value

    lines = [f"You are about to {verb} {op_name}"]
    lines += [f"  {name}: {encode_flag_value(v)}" for name, v in sorted(values.items())]
    click.echo("\n".join(lines))
    if not confirm():
        raise click.exceptions.Abort()


def print_json(value):
    json.dump(value, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def shorten_path(path):
    home = os.path.expanduser("~")
    return "~" + path[len(home) :] if home != "/" and path.startswith(home + os.sep) else path


def write_output(data, stderr=False):
    """A run's output bytes, to our stdout, or to our stderr for what it wrote there."""
    stream = sys.stderr if stderr else sys.stdout
    stream.buffer.write(data)
    stream.buffer.flush()


def exit_code_for(run):
    """The shell's exit code for a run's end: its own code, or 128+N for signal N."""
    if not run.has_exit_status:
        return 1
    code = run.exit_status
    return 128 - code if code < 0 else code


def run_info(run):
    """A run as Guild 0.9's `runs info --json` keys it, in its `runs info` order, with whose
    run it is after its operation (Guild keeps the user but doesn't show it; on a shared box
    it is the first thing a reader asks)."""
    return {
        "id": run.id,
        "operation": run.op_name,
        "user": run.user,
        "from": getattr(run, "from"),
        "status": run.status,
        "started": fmt_time(run.started_us),
        "stopped": fmt_time(run.stopped_us),
        "marked": "yes" if run.marked else "no",
        "label": run.label,
        "sourcecode_digest": run.sourcecode_digest,
        "vcs_commit": run.vcs_commit,
        "run_dir": run.run_dir,
        "command": run.command,
        "exit_status": run.exit_status if run.has_exit_status else "",
        "pid": run.pid or "",
        "tags": list(run.tags),
        "flags": json.loads(run.flags_json or "{}"),
        "scalars": {s.tag: [s.last, s.last_step] for s in run.scalars},
        **_batch_attrs(run),
    }


def _batch_attrs(run):
    """`pruned` (pruner, step, value) for a trial a batch's pruner stopped (guildd.batches), and
    `preemptions` (time, by) for a run preempted and requeued (guildd.requeue), and a run on a
    Ray cluster's address, submission id and job state (guildd.rayjobs)."""
    attrs = json.loads(run.attrs_json or "{}")
    out = {}
    if isinstance(attrs.get("pruned"), dict):
        out["pruned"] = attrs["pruned"]
    preemptions = attrs.get("preemptions")
    if isinstance(preemptions, list) and preemptions:
        out["preemptions"] = [{"time": fmt_time(p.get("time") or 0), "by": p.get("by", "")}
                              for p in preemptions if isinstance(p, dict)]
    for name in ("ray_address", "ray_submission_id", "ray_status"):
        if isinstance(attrs.get(name), str):
            out[name] = attrs[name]
    if isinstance(attrs.get("ray_resources"), dict):
        out["ray_resources"] = ray_resources_text(attrs["ray_resources"])
    return out


def ray_resources_text(resources):
    """What a run's Ray job asked of the cluster (its entrypoint resources): `2 CPUs, 100M
    memory, 1 GPU`."""
    from guild_common.sizes import format_size

    cpus, memory, gpus = (resources.get(k) for k in ("entrypoint_num_cpus", "entrypoint_memory", "entrypoint_num_gpus"))
    parts = [f"{cpus:g} CPU" + ("" if cpus == 1 else "s")] if isinstance(cpus, (int, float)) else []
    if isinstance(memory, (int, float)) and memory:
        parts.append(f"{format_size(memory)} memory")
    if isinstance(gpus, (int, float)) and gpus:
        parts.append(f"{gpus:g} GPU" + ("" if gpus == 1 else "s"))
    return ", ".join(parts) or "-"


def comment_json(c):
    """A comment as Guild keeps it: body, host, time (microseconds), user."""
    return {"body": c.body, "host": c.host, "time": c.time_us, "user": c.user}


def comments_info(comments):
    """Comments as Guild 0.9's `runs info --comments` shows them (time formatted)."""
    return [{"user": c.user, "host": c.host, "time": fmt_time(c.time_us), "body": c.body} for c in comments]


def comment_lines(comments):
    """`comment --list`'s lines for a run's comments: `[1] alice@host 2026-12-04 20:34:41`,
    then the body indented between blank lines."""
    lines = []
    for i, c in enumerate(comments, 1):
        who = f"{c.user}@{c.host}" if c.host else c.user
        lines += [f"[{i}] {who} {fmt_time(c.time_us)}".rstrip(), ""]
        lines += [f"  {line}".rstrip() for line in c.body.splitlines()]
        lines.append("")
    return lines


def with_private_attrs(info, attrs, opref, op):
    """`runs info --private-attrs`: after `pid`, Guild's private attributes (`_` names),
    `opref` and the operation's whole configuration, `op`, as Guild 0.9 adds them."""
    extra = {name: attrs[name] for name in sorted(attrs) if name.startswith("_")}
    extra.update(opref=opref, op=op)
    out = {}
    for key, value in info.items():
        out[key] = value
        if key == "pid":
            out.update(extra)
    return out if "pid" in info else {**info, **extra}


def info_text(info):
    """`runs info` as Guild prints it: `key: value` lines, flags and scalars indented."""
    from guild_common import flags as flaglib

    lines = []
    for key, value in info.items():
        if key == "flags":
            lines.append("flags:")
            lines += [f"  {k}: {flaglib.encode_flag_value(v)}" for k, v in sorted(value.items())]
        elif key == "scalars":
            lines.append("scalars:")
            lines += [f"  {tag}: {last:f} (step {step})" for tag, (last, step) in sorted(value.items())]
        elif key == "tags":
            lines.append("tags:")
            lines += [f"  - {t}" for t in value]
        elif key == "comments":  # as Guild 0.9 prints them: a YAML-ish block per comment
            lines.append("comments:")
            for c in value:
                lines.append("  -")
                for name in ("body", "host", "time", "user"):
                    text = str(c[name]).replace("\n", "\n      ")
                    lines.append(f"    {name}: {text}")
        elif key == "environment":
            lines.append(f"{key}:")
            lines += [f"  {k}: {v}" for k, v in value.items()]
        elif key == "pruned":
            lines.append(f"pruned: at step {value.get('step')} ({value.get('value')}) by {value.get('pruner')}")
        elif key == "preemptions":
            lines.append(f"{key}:")
            lines += [f"  {p['time']} by {p['by']}" for p in value]
        elif key in ("dependencies", "op"):  # nested YAML, as Guild 0.9 prints it
            import yaml

            lines.append(f"{key}:")
            text = yaml.safe_dump(value, default_flow_style=False) if value else ""
            lines += [f"  {line}" for line in text.splitlines()]
        else:
            lines.append(f"{key}: {shorten_path(value) if key == 'run_dir' else value}")
    return "\n".join(lines)


def message_json(msg):
    """A proto message as JSON values under its own field names, every field present (an unset
    `optional` one as null), 64-bit integers as numbers (protobuf's json_format would make
    them strings)."""
    out = {}
    for field in msg.DESCRIPTOR.fields:
        value = getattr(msg, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            out[field.name] = dict(value)
        elif field.message_type is not None:
            out[field.name] = [message_json(v) for v in value] if _repeated(field) else message_json(value)
        elif _optional(field) and not msg.HasField(field.name):
            out[field.name] = None  # an `optional` field not set (an ETA not known): null, not 0
        elif field.enum_type is not None:
            names = field.enum_type.values_by_number
            out[field.name] = [names[v].name for v in value] if _repeated(field) else names[value].name
        else:
            out[field.name] = list(value) if _repeated(field) else value
    return out


def _optional(field):
    """A proto3 `optional` scalar (its own one-field oneof, named after it)."""
    oneof = field.containing_oneof
    return oneof is not None and oneof.name == f"_{field.name}" and len(oneof.fields) == 1


def _repeated(field):
    if hasattr(field, "is_repeated"):  # protobuf >= 6 (the label is going away)
        return field.is_repeated
    return field.label == field.LABEL_REPEATED


def gpu_rows(resources, holdings=()):
    """`guildctl gpus`: a header and one row per GPU (index, name, memory used / total,
    utilization, who holds it: processes on it, and the runs the queue placed on it)."""
    from guild_common.sizes import format_size

    rows = [("GPU", "NAME", "MEMORY", "UTIL", "HELD BY")]
    for gpu in resources.gpus:
        rows.append(
            (
                str(gpu.index),
                gpu.name,
                f"{format_size(gpu.memory_used)} / {format_size(gpu.memory_total)}",
                f"{gpu.utilization}%" if gpu.utilization >= 0 else "-",
                ", ".join(gpu_holders(gpu, holdings)) or "-",
            )
        )
    return table(rows)


def table(rows):
    """Rows of text cells as aligned lines: columns two spaces apart, no trailing blanks."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]) - 1)]
    return ["  ".join([*(cell.ljust(widths[c]) for c, cell in enumerate(row[:-1])), row[-1]]).rstrip() for row in rows]


def gpu_holders(gpu, holdings=()):
    """Who holds a GPU: `run 3f2a1b2c (alice)` for a run of ours (once, however many of its
    processes are on it, and whether or not it has a process there yet), `foreign pid 4242
    (bob)` for a process the daemon didn't start; our runs first."""
    out = [f"run {h.run_id[:8]} ({h.user})" for h in holdings if gpu.index in h.devices]
    for proc in sorted(gpu.processes, key=lambda p: not p.run_id):
        user = f" ({proc.user})" if proc.user else ""
        entry = f"run {proc.run_id[:8]}{user}" if proc.run_id else f"foreign pid {proc.pid}{user}"
        if entry not in out:
            out.append(entry)
    return out


def host_line(resources):
    from guild_common.sizes import format_size

    return (
        f"CPUs: {resources.cpu_count}  memory: {format_size(resources.memory_available)} available "
        f"of {format_size(resources.memory_total)}"
    )
