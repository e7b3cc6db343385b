"""An operation's dependencies (`requires`) as a run spec carries them, and the flags that
select their sources, as Guild 0.9 defines them.

References to a model's resources (`data`, `model:data`, `{resource: data}`) are replaced by
the resource itself, so that the daemon needs nothing from the project. Each source is known
by its `name`, else its `flag-name`, else its uri (`operation:prepare`, `file:data.csv`).

Flags (Guild 0.9's resource flags, never passed to the command):
- an operation source has one unless `flag-name: no`: its `flag-name`, else its `name`, else
  its uri (`operation:prepare`), which the op's name (`prepare`) also sets; its value is the
  upstream run's id, recorded once the run is chosen;
- a file or config source has one only with `flag-name`: its value, the path used, defaults
  to the source's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guild_common import errors
from guild_common.flagdef import FlagDef

if TYPE_CHECKING:
    from guild_common.guildfile import Guildfile, OpDef

SOURCE_TYPES = ("config", "file", "module", "operation", "url")


def inline(gf: Guildfile | None, opdef: OpDef) -> list:
    """`opdef.requires` with references to model resources replaced by the resources (named
    as referenced); unknown references are an error naming the resource and the op."""
    out = []
    for item in opdef.requires:
        ref = item.get("resource") if isinstance(item, dict) else item
        if isinstance(ref, str):
            item = {**_model_resource(gf, opdef, ref), "name": ref.rsplit(":", 1)[-1]}
        out.append(item)
    return out


def _model_resource(gf: Guildfile | None, opdef: OpDef, ref: str) -> dict[str, Any]:
    model, _, name = ref.rpartition(":")
    if not model:
        resources = opdef.model_resources
    else:
        found = gf.models.get(model) if gf is not None else None
        resources = found.resources if found is not None else {}
    if name not in resources:
        raise errors.InvalidArgument(
            f"resource '{ref}' required by operation '{opdef.full_name}' is not defined")
    return resources[name]


def sources(item: Any) -> list[dict]:
    """The source mappings of one `requires` item: an inline resource's `sources` (a string
    is a file), or the item itself (an inline source)."""
    if not isinstance(item, dict) or "sources" not in item:
        return [item] if isinstance(item, dict) else []
    srcs = item["sources"] if isinstance(item["sources"], list) else [item["sources"]]
    return [s if isinstance(s, dict) else {"file": s} for s in srcs]


def source_type(src: dict) -> str | None:
    """The source's kind when it names exactly one, else None."""
    present = [t for t in SOURCE_TYPES if t in src]
    return present[0] if len(present) == 1 else None


def uri(src: dict) -> str:
    kind = source_type(src)
    return str(src[kind]) if kind == "url" else f"{kind}:{src[kind]}"


def source_name(src: dict) -> str:
    """How the `deps` attr and messages know a source."""
    return str(src.get("name") or src.get("flag-name") or uri(src))


def source_flag(src: dict) -> str | None:
    """The flag that selects `src`, or None (see the module's doc)."""
    flag = src.get("flag-name")
    if flag is False:
        return None
    if flag not in (None, True, ""):
        return str(flag)
    if source_type(src) == "operation":
        return str(src.get("name") or uri(src))
    return None


def source_flag_alias(src: dict) -> str | None:
    """The short name that also sets an unnamed operation source's flag (`prepare`)."""
    if source_type(src) == "operation" and source_flag(src) == uri(src):
        return str(src["operation"])
    return None


def flag_defs(requires: list) -> dict[str, FlagDef]:
    """name -> FlagDef for the flags that select sources in `requires` (inline items)."""
    out: dict[str, FlagDef] = {}
    for item in requires:
        for src in sources(item):
            name = source_flag(src)
            if name is None or name in out:
                continue
            kind = source_type(src)
            default = str(src[kind]) if kind in ("file", "config") else None
            out[name] = FlagDef(name=name, default=default, type="string", arg_skip=True)
    return out


def flag_aliases(requires: list) -> dict[str, str | None]:
    """alias -> flag name for unnamed operation sources (`prepare` -> `operation:prepare`)."""
    out: dict[str, str | None] = {}
    for item in requires:
        for src in sources(item):
            alias = source_flag_alias(src)
            if alias is not None:
                out.setdefault(alias, source_flag(src))
    return out


def project_paths(requires: list) -> list[str]:
    """The project files and dirs that `file:`/`config:` sources name by default: Guild 0.9
    leaves them out of the source code copy (a dependency, not source code)."""
    out = []
    for item in requires:
        for src in sources(item):
            if source_type(src) in ("file", "config"):
                out.append(str(src[source_type(src)]))
    return out
