"""Guild files (`guild.yml`): loading them into model and operation definitions, and finding
the operation an opspec names. Pure: reads files, starts nothing.

Both formats Guild accepts are read: operations-only (a top-level mapping of operations, the
anonymous model '') and the full format (a list of `model`, `config`, `package` and `include`
items). `include`, `extends`, `$include`, `operation-defaults` and `{{param}}` are applied
here (see guild_common.guildfile_data), so an OpDef is the operation as it will run.

Attributes Guild does not know are not errors (Guild ignores them): they come back as
`Guildfile.warnings`, because a misspelt `flgas:` otherwise costs users hours.
"""

import copy
import dataclasses
import hashlib
import os
from collections.abc import Callable
from typing import Any

from guild_common import guildfile_data as gfdata, guildfile_ops as gfops
from guild_common.errors import InvalidArgument, NotFound
from guild_common.guildfile_ops import OptimizerDef, default_optimizer  # noqa: F401 (API)

NAMES = ("guild.yml", "guild.yaml")


@dataclasses.dataclass(frozen=True)
class OpDef:
    """One operation as declared in a Guild file, after inheritance and includes."""

    name: str
    model: str  # '' for the anonymous model
    guildfile_path: str  # absolute path of the Guild file ('<string>' for for_string)
    opref: str  # `guildfile:/abs/guild.yml <md5> <model|''> <op>`
    description: str = ""
    main: str | None = None  # `module [args]`, args may hold ${flag}
    exec: str | None = None  # a command line, may hold ${flag} and ${python_exe}
    steps: list | None = None  # as written (step flags' $include resolved)
    flags: dict = dataclasses.field(default_factory=dict)  # name -> FlagDef, sorted by name
    flags_dest: str | None = None  # args, globals, global:NAME; None: detect
    flags_import: bool | list | None = None  # True: all; list: those ([]: none); None: unset
    flags_import_skip: list | None = None
    env: dict = dataclasses.field(default_factory=dict)  # name -> str
    env_secrets: list | None = None
    label: str | None = None  # label template
    tags: list | None = None
    default_max_trials: int | None = None
    optimizers: tuple = ()  # OptimizerDef, sorted by name
    compare: list | None = None  # column specs
    objective: object = None  # as written: a column spec or {minimize|maximize: spec}
    output_scalars: object = None  # as written (None: unset, False: capture off)
    sourcecode: object = None  # the operation's `sourcecode` as written
    model_sourcecode: object = None  # the model's `sourcecode` as written (applied first)
    requires: list = dataclasses.field(default_factory=list)  # mappings, or strings as written
    model_resources: dict = dataclasses.field(default_factory=dict)  # see guildfile_ops.resources
    gpus: object = None  # what guildd's queue places the run on: a count or `0,3` (`gpus`)
    gpu_memory: object = None  # free memory it needs on each GPU (`gpu-memory`: 20G)
    cpus: object = None  # on Ray only (--executor ray): CPUs its job asks (`cpus`: 2, 0.5)
    memory: object = None  # on Ray only: memory its job asks (`memory`: 4G)
    stoppable: bool | None = None
    preemptible: bool | None = None  # a higher-priority run may stop and requeue its runs (guildd.preemption)
    delete_on_success: bool | None = None
    default: bool = False
    pip_freeze: bool | None = None
    python_requires: str | None = None
    python_path: object = None
    data: dict = dataclasses.field(default_factory=dict)  # the whole operation mapping

    @property
    def resources(self) -> dict[str, Any]:
        """The op's own request, for guildctl's --gpus / --gpu-memory (and, on Ray, --cpus / --memory) defaults."""
        return {"gpus": self.gpus, "gpu-memory": self.gpu_memory, "cpus": self.cpus, "memory": self.memory}

    @property
    def full_name(self) -> str:
        return f"{self.model}:{self.name}" if self.model else self.name

    @property
    def default_optimizer(self) -> OptimizerDef | None:
        return default_optimizer(self.optimizers)

    def flag_values(self) -> dict[str, Any]:
        return {name: f.default for name, f in self.flags.items()}


@dataclasses.dataclass(frozen=True)
class ModelDef:
    name: str  # '' for the anonymous model
    description: str = ""
    default: bool = False  # `default: yes`
    operations: dict = dataclasses.field(default_factory=dict)  # name -> OpDef, sorted by name
    resources: dict = dataclasses.field(default_factory=dict)
    references: list = dataclasses.field(default_factory=list)
    sourcecode: object = None
    params: dict = dataclasses.field(default_factory=dict)  # resolved
    extends: tuple = ()
    data: dict = dataclasses.field(default_factory=dict)  # merged and substituted

    @property
    def default_operation(self) -> OpDef | None:
        """The operation marked `default: yes`, else the only public one (Guild 0.9)."""
        for op in self.operations.values():
            if op.default:
                return op
        public = [op for op in self.operations.values() if not op.name.startswith("_")]
        return public[0] if len(public) == 1 else None


@dataclasses.dataclass(frozen=True)
class Guildfile:
    path: str  # absolute ('<string>' for for_string)
    dir: str  # the project directory
    digest: str  # md5 of the file's bytes (the opref "version")
    models: dict  # name -> ModelDef, in file order
    package: dict | None = None
    warnings: tuple = ()  # e.g. "guild.yml: unknown attribute 'flgas' in operation 'train'"
    data: list = dataclasses.field(default_factory=list)  # items after includes

    @property
    def default_model(self) -> ModelDef | None:
        """The model with `default: yes`, else the only model, else None."""
        for model in self.models.values():
            if model.default:
                return model
        if len(self.models) == 1:
            return next(iter(self.models.values()))
        return None


def for_dir(project_dir: str) -> Guildfile | None:
    """The Guild file of `project_dir` (guild.yml, else guild.yaml), or None if it has none."""
    for name in NAMES:
        path = os.path.join(project_dir, name)
        if os.path.isfile(path):
            return load(path)
    return None


def load(path: str) -> Guildfile:
    path = os.path.abspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise NotFound(f"cannot find Guild file {path}") from None
    except OSError as e:
        raise InvalidArgument(f"cannot read Guild file {path}: {e.strerror}") from None
    return _load(path, os.path.dirname(path), raw)


def for_string(text: str, path: str = "<string>", project_dir: str | None = None) -> Guildfile:
    """A Guildfile from YAML text; includes are relative to `project_dir` (default: cwd)."""
    project_dir = os.path.abspath(project_dir or os.getcwd())
    src = path if path == "<string>" else os.path.abspath(path)
    include_base = os.path.join(project_dir, "guild.yml")
    return _load(src, project_dir, text.encode("utf-8"), include_base)


def _load(src: str, project_dir: str, raw: bytes, include_base: str | None = None) -> Guildfile:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise gfdata.error(src, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    items = gfdata.coerce_items(gfdata.read_yaml(src, text), src)
    pairs = gfdata.expand_includes(include_base or src, items, project_dir)
    pairs = [(item, src if s == include_base else s) for item, s in pairs]
    warnings = gfops.unknown_attr_warnings(pairs, project_dir)
    named = gfdata.Items(src, pairs)
    digest = hashlib.md5(raw).hexdigest()
    models: dict[str, ModelDef | None] = {}
    packages: list[dict] = []
    for item, _src in pairs:
        if "package" in item:
            packages.append(item)
        elif "model" in item:
            name = gfdata.item_name(item, "model")
            if name in models:
                shown = f"model {name!r}" if name else "the anonymous model"
                where = gfdata.display(_src, project_dir)
                warnings.append(f"{where}: {shown} is defined more than once; the last one is used")
            models[name] = None
    if len(packages) > 1:
        raise gfdata.error(src, "a Guild file may define at most one package")
    for name in models:
        models[name] = _modeldef(name, named, src, digest)
    return Guildfile(
        path=src,
        dir=project_dir,
        digest=digest,
        models=models,
        package=packages[0] if packages else None,
        warnings=tuple(warnings),
        data=[item for item, _ in pairs],
    )


def _modeldef(name: str, named: gfdata.Items, src: str, digest: str) -> ModelDef:
    data = copy.deepcopy(named.merged(name))
    ops = gfdata.resolve_includes(data.get("operations") or {}, "operations", named, src)
    if not isinstance(ops, dict):
        raise gfdata.error(src, f"invalid operations value {gfdata.excerpt(ops)}: expected a mapping")
    defaults = data.get("operation-defaults") or {}
    if not isinstance(defaults, dict):
        raise gfdata.error(
            src, f"invalid operation-defaults value {gfdata.excerpt(defaults)}: expected a mapping"
        )

    def flags_of(flags: dict, values: bool = False) -> Any:
        return gfdata.resolve_includes(flags, "flags", named, src, values=values)

    data["operations"] = {
        str(op_name): _op_data(op_name, op, defaults, flags_of, src) for op_name, op in ops.items()
    }
    raw_resources = data.get("resources") or {}
    data["resources"] = gfdata.resolve_includes(raw_resources, "resources", named, src)
    params = gfdata.resolve_params(data.get("params") or {})
    data = {k: (v if k == "params" else gfdata.substitute(v, params)) for k, v in data.items()}
    resources = gfops.resources(data["resources"], name, src)
    model_sourcecode = gfops.sourcecode(data.get("sourcecode"), src)
    operations = {
        op_name: _opdef(
            op_name, data["operations"][op_name], name, src, digest, resources, model_sourcecode
        )
        for op_name in sorted(data["operations"])
    }
    extends = data.get("extends")
    return ModelDef(
        name=name,
        description=_str(data.get("description")).strip(),
        default=bool(data.get("default")),
        operations=operations,
        resources=resources,
        references=list(data.get("references") or []),
        sourcecode=model_sourcecode,
        params=params,
        extends=tuple(extends if isinstance(extends, list) else [extends] if extends else []),
        data=data,
    )


def _op_data(name: str, op: Any, defaults: dict, flags_of: Callable[..., Any], src: str) -> dict:
    # A string operation is its `main`; operation-defaults fill in attributes it lacks.
    if op is None:
        op = {}
    elif isinstance(op, str):
        op = {"main": op}
    elif not isinstance(op, dict):
        raise gfdata.error(
            src, f"invalid operation {name!r}: expected a mapping or a string, got {gfdata.excerpt(op)}"
        )
    for key, value in defaults.items():
        op.setdefault(key, copy.deepcopy(value))
    if isinstance(op.get("flags"), dict):
        op["flags"] = flags_of(op["flags"])
    if "steps" in op:
        op["steps"] = gfops.steps_with_includes(op["steps"], lambda f: flags_of(f, values=True))
    return op


def _opdef(
    name: str, data: dict, model: str, src: str, digest: str, resources: dict, model_sourcecode: Any
) -> OpDef:
    return OpDef(
        name=name,
        model=model,
        guildfile_path=src,
        opref=" ".join(_opref_part(p) for p in ("guildfile:" + src, digest, model, name)),
        description=_str(data.get("description")).strip(),
        main=gfops.main(name, data),
        exec=_opt_str(data.get("exec")),
        steps=data.get("steps"),
        flags=gfops.flagdefs(data.get("flags"), src, bool(data.get("default-flag-arg-skip"))),
        flags_dest=_opt_str(data.get("flags-dest")),
        flags_import=gfops.flags_import(data.get("flags-import"), src),
        flags_import_skip=gfops.name_list("flags-import-skip", data.get("flags-import-skip"), src),
        env=gfops.env(data.get("env"), src),
        env_secrets=gfops.name_list("env-secrets", data.get("env-secrets"), src),
        label=_opt_str(data.get("label")),
        tags=gfops.name_list("tags", data.get("tags"), src),
        default_max_trials=gfops.optional_int(
            "default-max-trials", data.get("default-max-trials"), src
        ),
        optimizers=gfops.optimizers(name, data, src),
        compare=gfops.name_list("compare", data.get("compare"), src),
        objective=data.get("objective"),
        output_scalars=gfops.output_scalars(data.get("output-scalars"), src),
        sourcecode=gfops.sourcecode(data.get("sourcecode"), src),
        model_sourcecode=model_sourcecode,
        requires=gfops.requires(data.get("requires"), src),
        model_resources=resources,
        gpus=data.get("gpus"),
        gpu_memory=data.get("gpu-memory"),
        cpus=data.get("cpus"),
        memory=data.get("memory"),
        stoppable=gfops.optional_bool(data.get("stoppable")),
        preemptible=gfops.optional_bool(data.get("preemptible")),
        delete_on_success=gfops.optional_bool(data.get("delete-on-success")),
        default=bool(data.get("default")),
        pip_freeze=gfops.optional_bool(data.get("pip-freeze")),
        python_requires=_opt_str(data.get("python-requires")),
        python_path=data.get("python-path"),
        data=data,
    )


def _opref_part(s: str) -> str:
    return f"'{s}'" if (not s or " " in s) else s


def _str(value: object) -> str:
    return "" if value is None else str(value)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def operations(gf: Guildfile) -> list[tuple[str, str]]:
    """(full name, description) of every operation, sorted by full name (`guildctl ops`)."""
    return sorted(
        (op.full_name, op.description)
        for model in gf.models.values()
        for op in model.operations.values()
    )


def default_operation(gf: Guildfile) -> OpDef | None:
    """The default model's `default: yes` operation; without a default model, the one
    operation in the file marked default (if exactly one is)."""
    model = gf.default_model
    if model is not None:
        return model.default_operation
    marked = [op for m in gf.models.values() for op in m.operations.values() if op.default]
    return marked[0] if len(marked) == 1 else None


def find_model(gf: Guildfile, ref: str) -> ModelDef:
    """The model named `ref`, else the one model whose name contains `ref`."""
    if ref in gf.models:
        return gf.models[ref]
    matches = [name for name in gf.models if name and ref in name]
    if len(matches) == 1:
        return gf.models[matches[0]]
    if matches:
        raise InvalidArgument(
            f"there are multiple models that match {ref!r}\nTry specifying one of the following:\n"
            + "\n".join(f"  {name}" for name in sorted(matches))
        )
    names = sorted(name for name in gf.models if name)
    listing = ("\nModels defined here:\n" + "\n".join(f"  {n}" for n in names)) if names else ""
    raise NotFound(f"cannot find a model matching {ref!r}{listing}")


def resolve(gf: Guildfile, opspec: str | None = None) -> OpDef:
    """The OpDef for `opspec` (`op`, `model:op`, `:op`; partial model names if unique), or
    for the default operation when `opspec` is empty. NotFound when nothing matches."""
    if not opspec:
        op = default_operation(gf)
        if op is None:
            raise NotFound("cannot find a default operation\nTry 'guildctl operations' for a list.")
        return op
    if opspec.count(":") > 1:
        raise InvalidArgument(f"invalid operation spec {opspec!r}")
    if ":" not in opspec:
        for model in _project_models(gf):
            if opspec in model.operations:
                return model.operations[opspec]
        raise NotFound(f"operation {opspec!r} is not defined for this project" + _ops_listing(gf))
    model_ref, op_name = opspec.split(":")
    model = gf.models.get("") if model_ref == "" else find_model(gf, model_ref)  # type: ignore[assignment]  # maybe None
    if model is None:
        raise NotFound(f"operation {opspec!r} is not defined for this project" + _ops_listing(gf))
    if op_name in model.operations:
        return model.operations[op_name]
    shown = f"model {model.name!r}" if model.name else "the anonymous model"
    names = sorted(model.operations)
    listing = "".join(f"\n  {n}" for n in names)
    listing = f"\nOperations of this model:{listing}" if names else ""
    raise NotFound(f"operation {op_name!r} is not defined for {shown}{listing}")


def _project_models(gf: Guildfile) -> list[ModelDef]:
    # A bare op name is looked up in the default model, then in the anonymous model.
    models = [gf.default_model, gf.models.get("")]
    if models[0] is models[1]:
        models = models[:1]
    return [m for m in models if m is not None]


def _ops_listing(gf: Guildfile) -> str:
    names = [name for name, _ in operations(gf)]
    if not names:
        return f"\n{os.path.basename(gf.path)} defines no operations"
    return "\nOperations defined here:\n" + "\n".join(f"  {n}" for n in names)
