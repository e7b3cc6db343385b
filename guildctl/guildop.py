"""Turning a Guild-file operation (`guildctl run OP`) into a self-contained run spec: the
operation's command (`main` module or `exec` line), flags (declared, and imported from the
script as `flags-import` says), environment, label template, output-scalars, source code
rules, dependencies and steps. The daemon needs nothing else from the project."""

import dataclasses
import os
import pathlib
import posixpath
import re
import shlex
import sys
from collections.abc import Iterable

from guild_common import configflags, errors, flags as flaglib, guildfile, opconfig, opmain, pyscript, requires as reqlib, sourcecode
from guild_common.pb import guild_pb2 as pb
from guildctl import opflags, queueopts, runspec, scriptop


@dataclasses.dataclass(frozen=True)
class GuildOp:
    opdef: object  # guildfile.OpDef
    gf: object  # guildfile.Guildfile
    flags_dest: str
    flag_defs: dict  # name -> FlagDef: declared, plus imported ones
    script: pathlib.Path | None  # the main module's file, when there is one
    requires: list = dataclasses.field(default_factory=list)  # model resource refs resolved

    @property
    def name(self):
        return self.opdef.full_name


def load(cwd):
    """The Guild file of the project in `cwd`, or None; its warnings go to stderr once."""
    gf = guildfile.for_dir(cwd)
    if gf is not None:
        for warning in gf.warnings:
            print(f"WARNING: {warning}", file=sys.stderr)
    return gf


def for_opdef(gf, opdef):
    script = _main_script(gf, opdef)
    detected = _detect_flags(gf, opdef, script)
    defs = _flag_defs(opdef, detected)
    requires = [*reqlib.inline(gf, opdef), *_dest_requires(opdef.flags_dest, defs)]
    for name, rdef in reqlib.flag_defs(requires).items():
        # A flag that selects a dependency (`prepare=RUN_ID`, `src=file.txt`) is never
        # passed to the command (arg-skip, as Guild 0.9); a declared one keeps what it says.
        mine = defs.get(name)
        if mine is not None and mine.default is None:
            mine = dataclasses.replace(mine, default=rdef.default)
        defs[name] = mine or rdef
    dest = opdef.flags_dest or (detected.dest if detected else _default_dest(opdef))
    return GuildOp(opdef, gf, dest, defs, script, requires)


# flags-dest kinds (`global:NAME`...); Guild's `dict:` is `global:`, `args:click` is `args`.
_DESTS = {"args": False, "globals": False, "none": False, "global": True, "dict": True, "namespace": True, "config": True}


def _detect_flags(gf, opdef, script):
    """The flags the operation's flags destination holds: a config file's values, or what
    the script declares (its dict or namespace for `global:`/`namespace:`)."""
    dest = opdef.flags_dest or ""
    kind, colon, arg = dest.partition(":")
    if dest and not (kind in _DESTS and bool(arg) == _DESTS[kind] or kind == "args" and colon):
        raise errors.InvalidArgument(
            f"unsupported flags-dest '{dest}' for operation '{opdef.full_name}' (expected args, "
            "globals, global:NAME, namespace:NAME or config:FILE)")
    if kind == "config":
        try:
            data = configflags.load(gf.dir, arg)
        except errors.InvalidArgument as e:
            raise errors.InvalidArgument(f"{e} (flags-dest of operation '{opdef.full_name}')") from None
        return pyscript.ScriptFlags(dest, configflags.flag_defs(data))
    return pyscript.detect_flags(script, dest or None) if script else None


def _dest_requires(dest, defs):
    """flags-dest `config:FILE` is, as in Guild 0.9, a dependency that writes FILE into the
    run with the run's flag values, again at each start; an `arg-split` flag's value is
    written as the list it stands for (`l = [1, 2, 'foo']` in an INI file, as Guild)."""
    if not (dest or "").startswith("config:"):
        return []
    src = {"config": dest[len("config:"):], "always-resolve": True, "replace-existing": True}
    split = {name: d.arg_split for name, d in defs.items() if d.arg_split not in (None, False)}
    if split:
        src["arg-split"] = split
    return [{"name": dest, "sources": [src]}]


def _default_dest(opdef):
    # Guild detects `globals` in its own guild/pass.py (no argparse), so flags aren't args.
    return "globals" if _main_module(opdef)[0] == opmain.PASS_MODULE else "args"


def _main_module(opdef):
    if not opdef.main:
        return None, []
    parts = shlex.split(opdef.main)
    return parts[0], parts[1:]


def _main_script(gf, opdef):
    """The Python file a `main` module names (`train`, `src/train`, `pkg.train`), if found
    where Guild looks for it: the op's `python-path` dirs, else its source code root (the
    files the run gets), else the project dir."""
    module, _args = _main_module(opdef)
    if module is None or module == opmain.PASS_MODULE:
        return None
    if opdef.python_path is not None:
        dirs = opdef.python_path if isinstance(opdef.python_path, list) else [opdef.python_path]
    else:
        dirs = [sourcecode.rules_for_config(opdef.sourcecode, opdef.model_sourcecode).root or ""]
    name = os.path.basename(module).replace(".", "/")
    for d in dirs:
        base = pathlib.Path(gf.dir) / str(d) / os.path.dirname(module)
        for candidate in (base / (name + ".py"), base / name / "__main__.py"):
            if candidate.is_file():
                return candidate
    return None


def _flag_defs(opdef, detected):
    """Declared flags, with what `flags-import` takes from the script: everything (yes/all),
    the listed names, or (unset) only attributes of the flags the Guild file declares."""
    declared = dict(opdef.flags)
    if detected is None:
        return declared
    imp = opdef.flags_import
    skip = set(opdef.flags_import_skip or ())
    if imp is True:
        names = set(detected.flags) - skip
    elif isinstance(imp, list):
        names = set(imp) - skip
    else:
        names = set()
    out = {}
    for name in sorted(set(declared) | names):
        found = detected.flags.get(name)
        mine = declared.get(name)
        if mine is None:
            if found is not None:
                out[name] = found
            continue
        if found is not None:
            # The Guild file wins; the script fills in what it leaves out.
            mine = dataclasses.replace(
                mine,
                default=mine.default if mine.default is not None else found.default,
                description=mine.description or found.description,
                choices=mine.choices or found.choices,
                arg_switch=mine.arg_switch if mine.arg_switch is not None else found.arg_switch,
                arg_split=mine.arg_split if mine.arg_split is not None else found.arg_split,
            )
        out[name] = mine
    return out


def flag_values(op, assigns, force_flags=False, cwd=None):
    # `prepare=RUN` sets an unnamed operation dependency's flag, `operation:prepare`.
    aliases = reqlib.flag_aliases(op.requires)
    assigns = [_unaliased(a, aliases) for a in assigns]
    return opflags.flag_values(op, assigns, force_flags, cwd)


def _unaliased(assign, aliases):
    name, sep, value = assign.partition("=")
    return f"{aliases[name]}={value}" if sep and name in aliases else assign


def cmd_args(op):
    opdef = op.opdef
    if opdef.exec:
        # As Guild 0.9: flags reach an exec command as `${flag}`, FLAG_* env, or the
        # `${flag_args}` token (every flag as --name value); nothing is appended.
        return [
            "__flag_args__" if arg == "${flag_args}" else arg.replace("${project_dir}", op.gf.dir)
            for arg in shlex.split(opdef.exec)
        ]
    module, fixed = _main_module(opdef)
    if module is None:
        return []
    dest = source_config(op).dest
    if dest and module != opmain.PASS_MODULE:
        # The snapshot is under `dest` in the run dir: Guild puts that dir on the module path.
        module = posixpath.normpath(posixpath.join(dest, module))
    return ["${python_exe}", "-u", scriptop.OPMAIN, module, *fixed, *(["--"] if fixed else []), "__flag_args__"]


def source_config(op):
    return sourcecode.rules_for_config(op.opdef.sourcecode, op.opdef.model_sourcecode, project_dir=op.gf.dir)


def source_files(op):
    config = source_config(op)
    for warning in config.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if config.disabled or op.opdef.steps:
        # Guild 0.9 copies no source code for a pipeline: its run dir holds the step links
        # (a project dir `data/` would take the place of step `data`'s link).
        return [], config
    root = pathlib.Path(op.gf.dir) / (config.root or "")
    selection = sourcecode.select_files(root, config.rules)
    for warning in selection.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    deps = _dependency_paths(op, root)
    files = [
        pb.SourceFile(path=rel, data=(root / rel).read_bytes(), mode=(root / rel).stat().st_mode & 0o777)
        for rel in selection.files
        if not any(rel == d or rel.startswith(d + "/") for d in deps)
    ]
    return files, config


def _dependency_paths(op, root):
    """The project files that file and config dependencies name, relative to `root`: Guild
    0.9 doesn't copy them as source code (with `src=other.txt` only the chosen file is in
    the run)."""
    out = []
    for path in reqlib.project_paths(op.requires):
        rel = os.path.relpath(os.path.join(op.gf.dir, path), root).replace(os.sep, "/")
        if not rel.startswith("../"):
            out.append(rel)
    return out


def run_spec(
    op: GuildOp,
    values: dict,
    user_flags: dict,
    label: str = "",
    tags: Iterable[str] = (),
    stop_after: float = 0.0,
    run_params: dict | None = None,
    cwd: str | os.PathLike | None = None,
    steps: Iterable[pb.StepSpec] = (),
) -> pb.RunSpec:
    opdef = op.opdef
    files, config = source_files(op)
    op_config = opconfig.OpConfig(
        cmd_args=tuple(cmd_args(op)),
        flags_dest=op.flags_dest,
        flag_defs=op.flag_defs,
        op_env={"PROJECT_DIR": op.gf.dir, "MODEL_DIR": op.gf.dir, **{k: str(v) for k, v in opdef.env.items()}},
        label_template=label or opdef.label or None,
        python_exe=sys.executable,
        guild_op=opdef.full_name,
        cmd_dir=str(cwd or os.getcwd()),
        project_dir=op.gf.dir,
        output_scalars=opdef.output_scalars,
        requires=tuple(op.requires),
        sourcecode_dest=(config.dest or "").strip("/"),
        delete_on_success=bool(opdef.delete_on_success),
        compare=tuple(opdef.compare or ()),
        env_secrets=tuple(opdef.env_secrets or ()),
        stoppable=bool(opdef.stoppable),
    )
    if opdef.preemptible:  # guild.yml `preemptible: yes`: the daemon reads it from the run params
        run_params = {**(run_params or {}), "preemptible": True}
    return runspec.build(
        op_config, opdef.full_name, opdef.opref, files, values, user_flags, tags, stop_after, run_params, steps=list(steps)
    )


def step_specs(op, values, cwd, stack=(), label="", tags=()):
    """A pipeline's steps as complete child specs, in order. Parent flag values fill `${flag}`
    in step lines; each step's own `flags` and `NAME=VAL` args set its flags. A step's label
    and tags (`-l`/`-t` in its line, or its `label`/`tags` keys) default to the pipeline's
    `label` and `tags`, as in Guild."""
    if not op.opdef.steps:
        return []
    stack = (*stack, op.name)
    out, used = [], {}
    for i, step in enumerate(op.opdef.steps, 1):
        if isinstance(step, str):
            step = {"run": step}
        if not isinstance(step, dict) or not str(step.get("run") or "").strip():
            raise errors.InvalidArgument(f"invalid step {step!r}: must define run")
        line = opconfig.REF.sub(lambda m: _ref_text(values, m.group(1)), str(step["run"]))
        params = _step_params(line)
        assigns = list(params["flags"])
        for k, v in (step.get("flags") or {}).items():
            text = flaglib.encode_flag_value(v) if not isinstance(v, str) else v
            assigns.append(f"{k}={opconfig.REF.sub(lambda m: _ref_text(values, m.group(1)), text)}")
        child_def = guildfile.resolve(op.gf, _step_opspec(params["opspec"], op.opdef.model))
        if child_def.full_name in stack:
            raise errors.InvalidArgument(f"cycle in steps: {' -> '.join([*stack, child_def.full_name])}")
        child = for_opdef(op.gf, child_def)
        child_values, child_user = flag_values(child, assigns, params["force_flags"], cwd)
        # Guild 0.9's step name and link: the step's `name`, else its op as written
        # (`hello:from-flag` -> hello-from-flag, `default` stays default).
        name = re.sub(r"[ :/\\]", "-", str(step.get("name") or params["opspec"]))
        used[name] = used.get(name, 0) + 1
        if used[name] > 1:
            name = f"{name}_{used[name]}"
        # The step's `label`/`tags` keys win over its line's options, as in Guild.
        step_label = _known_refs(str(step.get("label") or params["label"] or label), values)
        step_tags = [_known_refs(str(t), values) for t in (step.get("tags") or params["tags"] or tags)]
        steps = step_specs(child, child_values, cwd, stack, step_label, step_tags)
        spec = run_spec(child, child_values, child_user, step_label, step_tags, params["stop_after"], cwd=cwd, steps=steps)
        # A step is queued like any run: its GPU options, else its operation's `gpus`.
        spec.resources.CopyFrom(
            queueopts.resource_request(params["gpus"], params["no_gpus"], params["gpu_memory"], child_def.resources)
        )
        out.append(pb.StepSpec(name=name, spec=spec))
    return out


def _step_opspec(opspec, model):
    """A step's bare op name is an op of the pipeline's own model (Guild 0.9's steps: `all`
    in model `_check` running `default` runs `_check:default`, not the default model's)."""
    return f"{model}:{opspec}" if model and ":" not in opspec else opspec


# The `guildctl run` options a step line may use; Guild honours more (batches), and warns
# of the rest.
_STEP_OPTIONS = {"opspec", "flags", "label", "tags", "force_flags", "stop_after", "gpus", "no_gpus", "gpu_memory"}


def _step_params(line):
    """A step's `run` line parsed as `guildctl run` parses its command line (so `-l 'a=1'` is
    a label, not a flag); options a step can't use are warned of and ignored."""
    import click
    from click.core import ParameterSource

    from guildctl.cmd_run import parse_stop_after, run as run_command  # options mean what they mean there

    try:
        ctx = run_command.make_context("run", shlex.split(line), help_option_names=[])
    except (click.ClickException, ValueError) as e:
        message = e.format_message() if isinstance(e, click.ClickException) else str(e)
        raise errors.InvalidArgument(f"invalid step '{line}': {message}") from None
    if not ctx.params["opspec"]:
        raise errors.InvalidArgument(f"invalid step '{line}': must name an operation")
    for param in ctx.command.params:
        if param.name not in _STEP_OPTIONS and ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE:
            print(f"WARNING: run option {max(param.opts, key=len)} in step '{line}' is ignored", file=sys.stderr)
    return {**ctx.params, "stop_after": parse_stop_after(ctx.params["stop_after"])}


def _known_refs(text, values):
    """`${flag}` references to the pipeline's flags resolved; others (`${default_label}`, the
    step's own flags) are left for the step's label to resolve."""
    return opconfig.REF.sub(lambda m: _ref_text(values, m.group(1)) if m.group(1).strip() in values else m.group(0), text)


def _ref_text(values, name):
    value = values.get(name.strip())
    return "" if value is None else value if isinstance(value, str) else flaglib.encode_flag_value(value)
