"""Turning a Guild-file operation (`guildctl run OP`) into a self-contained run spec: the
operation's command (`main` module or `exec` line), flags (declared, and imported from the
script as `flags-import` says), environment, label template, output-scalars, source code
rules, dependencies and steps. The daemon needs nothing else from the project."""

import dataclasses
import json
import os
import pathlib
import shlex
import sys

from guild_common import errors, flags as flaglib, guildfile, opconfig, pyscript, sourcecode
from guild_common.flagdef import FlagDef
from guild_common.pb import guild_pb2 as pb
from guildctl import opflags, scriptop


@dataclasses.dataclass(frozen=True)
class GuildOp:
    opdef: object  # guildfile.OpDef
    gf: object  # guildfile.Guildfile
    flags_dest: str
    flag_defs: dict  # name -> FlagDef: declared, plus imported ones
    script: pathlib.Path | None  # the main module's file, when there is one

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
    detected = pyscript.detect_flags(script) if script else None
    defs = _flag_defs(opdef, detected)
    for name in sorted(resource_flag_names(opdef) - set(defs)):
        # A flag that selects a dependency (`prepare=RUN_ID`) is never passed to the
        # command: Guild 0.9 gives it arg-skip too.
        defs[name] = FlagDef(name=name, arg_skip=True)
    dest = opdef.flags_dest or (detected.dest if detected else "args")
    return GuildOp(opdef, gf, dest, defs, script)


def _main_module(opdef):
    if not opdef.main:
        return None, []
    parts = shlex.split(opdef.main)
    return parts[0], parts[1:]


def _main_script(gf, opdef):
    """The Python file a `main` module names (`train`, `src/train`, `pkg.train`), if found."""
    module, _args = _main_module(opdef)
    if module is None:
        return None
    base = pathlib.Path(gf.dir) / os.path.dirname(module)
    name = os.path.basename(module)
    for candidate in (base / (name.replace(".", "/") + ".py"), base / name.replace(".", "/") / "__main__.py"):
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
            )
        out[name] = mine
    return out


def resource_flag_names(opdef):
    """Flags that name an upstream run or a file for a dependency (`prepare=RUN_ID`)."""
    names = set()
    for item in opdef.requires:
        if isinstance(item, dict):
            for key in ("name", "flag-name", "operation"):
                if isinstance(item.get(key), str):
                    names.add(item[key])
    return names


def flag_values(op, assigns, force_flags=False, cwd=None):
    return opflags.flag_values(op, assigns, force_flags, cwd, also_allowed=resource_flag_names(op.opdef))


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
    return ["${python_exe}", "-u", scriptop.OPMAIN, module, *fixed, *(["--"] if fixed else []), "__flag_args__"]


def source_config(op):
    return sourcecode.rules_for_config(op.opdef.sourcecode, op.opdef.model_sourcecode, project_dir=op.gf.dir)


def source_files(op):
    config = source_config(op)
    for warning in config.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if config.disabled:
        return [], config
    root = pathlib.Path(op.gf.dir) / (config.root or "")
    selection = sourcecode.select_files(root, config.rules)
    for warning in selection.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    files = [
        pb.SourceFile(path=rel, data=(root / rel).read_bytes(), mode=(root / rel).stat().st_mode & 0o777)
        for rel in selection.files
    ]
    return files, config


def run_spec(op, values, user_flags, label="", tags=(), stop_after=0.0, run_params=None, cwd=None, steps=()):
    opdef = op.opdef
    files, config = source_files(op)
    return pb.RunSpec(
        op_name=opdef.full_name,
        opref=opdef.opref,
        cmd_args=cmd_args(op),
        flags_dest=op.flags_dest,
        flags_json=json.dumps(values),
        user_flags_json=json.dumps(user_flags),
        flag_defs=[opconfig.flagdef_to_pb(d) for d in op.flag_defs.values()],
        env=dict(os.environ),
        op_env={"PROJECT_DIR": op.gf.dir, "MODEL_DIR": op.gf.dir, **{k: str(v) for k, v in opdef.env.items()}},
        sourcecode=files,
        cmd_dir=str(cwd or os.getcwd()),
        project_dir=op.gf.dir,
        guild_op=opdef.full_name,
        label=label or opdef.label or "",
        tags=list(tags),
        stop_after=stop_after,
        python_exe=sys.executable,
        run_params_json=json.dumps(run_params or {}),
        output_scalars_json=json.dumps(opdef.output_scalars) if opdef.output_scalars is not None else "",
        requires_json=json.dumps(opdef.requires) if opdef.requires else "",
        sourcecode_dest=(config.dest or "").strip("/"),
        steps=list(steps),
        delete_on_success=bool(opdef.delete_on_success),
        compare=list(opdef.compare or ()),
        env_secrets=list(opdef.env_secrets or ()),
        stoppable=bool(opdef.stoppable),
    )


def step_specs(op, values, cwd, stack=()):
    """A pipeline's steps as complete child specs, in order. Parent flag values fill `${flag}`
    in step lines; each step's own `flags` and `NAME=VAL` args set its flags."""
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
        parts = shlex.split(line)
        assigns = [p for p in parts[1:] if "=" in p and not p.startswith("-")]
        for k, v in (step.get("flags") or {}).items():
            text = flaglib.encode_flag_value(v) if not isinstance(v, str) else v
            assigns.append(f"{k}={opconfig.REF.sub(lambda m: _ref_text(values, m.group(1)), text)}")
        child_def = guildfile.resolve(op.gf, parts[0])
        if child_def.full_name in stack:
            raise errors.InvalidArgument(f"cycle in steps: {' -> '.join([*stack, child_def.full_name])}")
        child = for_opdef(op.gf, child_def)
        child_values, child_user = flag_values(child, assigns, cwd=cwd)
        name = step.get("name") or child_def.full_name.replace(":", "_")
        used[name] = used.get(name, 0) + 1
        if used[name] > 1:
            name = f"{name}_{used[name]}"
        spec = run_spec(child, child_values, child_user, cwd=cwd, steps=step_specs(child, child_values, cwd, stack))
        out.append(pb.StepSpec(name=name, spec=spec))
    return out


def _ref_text(values, name):
    value = values.get(name.strip())
    return "" if value is None else value if isinstance(value, str) else flaglib.encode_flag_value(value)
