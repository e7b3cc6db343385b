"""An operation's configuration as it is stored with a run (attrs/op), and rendering its
command and label from flag values. Pure: the client uses it for --print-cmd, the daemon to
start and restart runs."""

import dataclasses
import json
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from guild_common import errors, flags as flaglib, labels, limits, scalars
from guild_common.flagdef import FlagDef
from guild_common.pb import guild_pb2 as pb

REF = re.compile(r"\$\{([^}|]+)\}")


@dataclasses.dataclass(frozen=True)
class OpConfig:
    """The part of a run spec that stays with the run (attrs/op) for restarts."""

    cmd_args: tuple
    flags_dest: str
    flag_defs: dict  # name -> FlagDef
    op_env: dict
    label_template: str | None
    python_exe: str
    guild_op: str
    cmd_dir: str
    project_dir: str
    output_scalars: object = None  # guild.yml `output-scalars` (None: the default capture)
    requires: tuple = ()  # guild.yml `requires`, resolved before each start
    sourcecode_dest: str = ""  # where the snapshot goes in the run dir ('' = the root)
    delete_on_success: bool = False
    compare: tuple = ()  # column specs compare shows first
    env_secrets: tuple = ()  # env names not recorded in attrs/env
    stoppable: bool = False  # a stop ends the run completed
    executor: str = ""  # where it executes: '' here, `ray:ADDRESS` a Ray cluster (guildd.rayjobs)

    def to_attr(self) -> dict[str, Any]:
        attr = {
            "op-cmd": {
                "cmd-args": list(self.cmd_args),
                "cmd-env": dict(self.op_env),
                "cmd-flags": {name: _flagdef_attr(d) for name, d in sorted(self.flag_defs.items())},
                # Where Guild 0.9 reads it, so Guild can start a run staged here.
                "flags-dest": self.flags_dest,
            },
            "flags-dest": self.flags_dest,
            "label-template": self.label_template,
            "python-exe": self.python_exe,
            "guild-op": self.guild_op,
            "cmd-dir": self.cmd_dir,
            "project-dir": self.project_dir,
            "deps": list(self.requires),
            "flag-null-labels": {},
            "output-scalars": self.output_scalars,
            "sourcecode": {"dest": self.sourcecode_dest or "."},
            "delete-on-success": self.delete_on_success,
            "compare": list(self.compare),
            "env-secrets": list(self.env_secrets),
            "stoppable": self.stoppable,
        }
        if self.executor:  # only where set: a local run's attr stays as Guild 0.9 writes it
            attr["executor"] = self.executor
        return attr

    @classmethod
    def for_attr(cls, attr: Any) -> "OpConfig":
        if not isinstance(attr, dict) or "op-cmd" not in attr:
            raise errors.FailedPrecondition(
                "cannot restart run: missing op configuration\nThe run may not have been "
                "initialized correctly. Try starting the operation without --restart."
            )
        cmd = attr["op-cmd"]
        return cls(
            cmd_args=tuple(cmd.get("cmd-args") or ()),
            flags_dest=_flags_dest_for_attr(attr),
            flag_defs={n: _flagdef_for_attr(n, d or {}) for n, d in (cmd.get("cmd-flags") or {}).items()},
            op_env=dict(cmd.get("cmd-env") or {}),
            label_template=attr.get("label-template"),
            python_exe=attr.get("python-exe") or sys.executable,
            guild_op=attr.get("guild-op") or "",
            cmd_dir=attr.get("cmd-dir") or "",
            # Guild 0.9 records it only in the command's env.
            project_dir=attr.get("project-dir") or (cmd.get("cmd-env") or {}).get("PROJECT_DIR") or "",
            output_scalars=attr.get("output-scalars"),
            requires=tuple(attr.get("deps") or ()),
            sourcecode_dest=_dest_for_attr((attr.get("sourcecode") or {}).get("dest")),
            delete_on_success=bool(attr.get("delete-on-success")),
            compare=tuple(attr.get("compare") or ()),
            env_secrets=tuple(attr.get("env-secrets") or ()),
            stoppable=bool(attr.get("stoppable")),
            executor=str(attr.get("executor") or ""),
        )


_FLAGDEF_ATTRS = {
    "arg_name": "arg-name", "arg_skip": "arg-skip", "arg_switch": "arg-switch", "arg_split": "arg-split",
    "env_name": "env-name", "type": "type",
}


def check(config: OpConfig) -> None:
    """Refuses (InvalidArgument) a config no run may be made from: an `output-scalars` that
    doesn't compile is refused before a run exists, not found when the run's output is read."""
    scalars.compile_config(config.output_scalars)


def check_spec(spec: pb.RunSpec) -> None:
    """check() for a run spec, and for its pipeline steps at any depth (refused before the
    pipeline's own run exists)."""
    scalars.compile_config(_output_scalars(spec))
    for step in spec.steps:
        check_spec(step.spec)


def config_from_spec(spec: pb.RunSpec) -> OpConfig:
    """The configuration a run made from `spec` keeps; the spec's label is its template."""
    return OpConfig(
        cmd_args=tuple(spec.cmd_args),
        flags_dest=spec.flags_dest or "args",
        flag_defs={d.name: flagdef_from_pb(d) for d in spec.flag_defs},
        op_env=dict(spec.op_env),
        label_template=spec.label or None,
        python_exe=spec.python_exe,
        guild_op=spec.guild_op,
        cmd_dir=spec.cmd_dir,
        project_dir=spec.project_dir,
        output_scalars=_output_scalars(spec),
        requires=tuple(json.loads(spec.requires_json)) if spec.requires_json else (),
        sourcecode_dest=spec.sourcecode_dest,
        delete_on_success=spec.delete_on_success,
        compare=tuple(spec.compare),
        env_secrets=tuple(spec.env_secrets),
        stoppable=spec.stoppable,
        executor=spec.executor,
    )


def spec_from_config(config: OpConfig, **fields: Any) -> pb.RunSpec:
    """A run spec with `config`'s operation and `fields`, the RunSpec fields that belong to
    one run (op_name, flags_json, env, sourcecode, label, tags...). The label template is
    not taken from `config`: a new run's label is its caller's."""
    return pb.RunSpec(
        cmd_args=list(config.cmd_args),
        flags_dest=config.flags_dest,
        flag_defs=[flagdef_to_pb(d) for d in config.flag_defs.values()],
        op_env=dict(config.op_env),
        cmd_dir=config.cmd_dir,
        project_dir=config.project_dir,
        guild_op=config.guild_op,
        python_exe=config.python_exe,
        output_scalars_json=json.dumps(config.output_scalars) if config.output_scalars is not None else "",
        requires_json=json.dumps(list(config.requires)) if config.requires else "",
        sourcecode_dest=config.sourcecode_dest,
        delete_on_success=config.delete_on_success,
        compare=list(config.compare),
        env_secrets=list(config.env_secrets),
        stoppable=config.stoppable,
        executor=config.executor,
        **fields,
    )


def _output_scalars(spec: pb.RunSpec) -> object:
    try:
        return json.loads(spec.output_scalars_json) if spec.output_scalars_json else None
    except ValueError as e:
        raise errors.InvalidArgument(f"invalid output scalar config: {e}") from None


def _flagdef_attr(d: FlagDef) -> dict[str, Any]:
    out = {}
    for field, key in _FLAGDEF_ATTRS.items():
        value = getattr(d, field)
        # arg-switch False (or 0) is a switch, not an absent one: only None means "not a switch".
        if value is not None and (field == "arg_switch" or value not in (False, "")):
            out[key] = value
    return out


def _flags_dest_for_attr(attr: dict) -> str:
    # Guild 0.9 writes it under op-cmd (and as FLAGS_DEST in cmd-env); ours is top-level.
    cmd = attr["op-cmd"]
    return attr.get("flags-dest") or cmd.get("flags-dest") or (cmd.get("cmd-env") or {}).get("FLAGS_DEST") or "args"


def _dest_for_attr(dest: Any) -> str:
    # '.' is the run dir itself (''). Kept as written otherwise, '../x' included: the paths
    # the snapshot is written to are checked where they are written (rundir.run_file).
    dest = str(dest or ".").rstrip("/")
    while dest.startswith("./"):
        dest = dest[2:]
    return "" if dest in ("", ".") else dest


def _flagdef_for_attr(name: str, attr: dict) -> FlagDef:
    return FlagDef(name=name, **{field: attr[key] for field, key in _FLAGDEF_ATTRS.items() if key in attr})


def render_cmd(config: OpConfig, flag_values: Mapping[str, Any]) -> list[str]:
    """The process argv: the template with `${python_exe}`, `${flag}` references and
    `__flag_args__` expanded."""
    values = {**flag_values, "python_exe": config.python_exe}
    # As Guild 0.9, a flag whose option the command already spells out (`main: train
    # --mode ${mode}`) is not passed a second time.
    shadowed = {arg for arg in config.cmd_args if arg.startswith("--")}
    passed = {
        name: value for name, value in flag_values.items()
        if "--" + ((config.flag_defs.get(name) and config.flag_defs[name].arg_name) or name) not in shadowed
    }
    argv: list[str] = []
    for arg in config.cmd_args:
        if arg == "__flag_args__":
            argv.extend(flaglib.flag_cmd_args(passed, config.flag_defs, config.flags_dest))
        else:
            argv.append(REF.sub(lambda m: _ref_value(values, m.group(1)), arg))
    return argv


def _ref_value(values: Mapping[str, Any], name: str) -> str:
    value = values.get(name.strip())
    if value is None:
        return ""
    return value if isinstance(value, str) else flaglib.encode_flag_value(value)


def render_label(template: str | None, tags: Iterable[str], flag_values: Mapping[str, Any]) -> str:
    """The run's label: a template (`${flag}`, `${default_label}`, filters such as
    `${lr|default:0.1}`, see guild_common.labels), or the default label (every flag's
    NAME=VAL), with tags in front."""
    default = flaglib.default_label(flag_values)
    label = labels.render(template, flag_values, default_label=default) if template else default
    return limits.capped(" ".join([*tags, label]).strip(), limits.MAX_LABEL)  # long flag values: a label still short


def flagdef_to_pb(d: FlagDef) -> pb.FlagDef:
    return pb.FlagDef(
        name=d.name,
        arg_name=d.arg_name or "",
        arg_skip=d.arg_skip,
        arg_switch_json="" if d.arg_switch is None else json.dumps(d.arg_switch),
        env_name=d.env_name or "",
        type=d.type or "",
        default_json=json.dumps(d.default),
        description=d.description or "",
        choices_json=json.dumps(list(d.choices)) if d.choices else "",
        required=d.required,
        arg_split_json="" if d.arg_split is None else json.dumps(d.arg_split),
    )


def flagdef_from_pb(m: pb.FlagDef) -> FlagDef:
    return FlagDef(
        name=m.name,
        arg_name=m.arg_name or None,
        arg_skip=m.arg_skip,
        arg_switch=json.loads(m.arg_switch_json) if m.arg_switch_json else None,
        env_name=m.env_name or None,
        type=m.type or None,
        default=json.loads(m.default_json) if m.default_json else None,
        description=m.description,
        choices=tuple(json.loads(m.choices_json)) if m.choices_json else (),
        required=m.required,
        arg_split=json.loads(m.arg_split_json) if m.arg_split_json else None,
    )
