"""Resolving an operation's dependencies (`requires`) into a run directory.

Called by the daemon on a worker thread just before a run's process starts, in two phases so
that a failure leaves nothing half-installed: every source is first *located* (files found,
URLs downloaded into the cache and checked, upstream runs chosen, configs rendered), which is
where every error a user can cause happens; then *installed*. If installing fails (disk full),
the paths created are removed; files replaced (a same-named source-code copy) stay replaced.

The layout follows Guild 0.9 (checked by running it): files are copied (`target-type: link`
makes relative symlinks); a file or directory lands under its base name; `select` matches full
relative paths and places each match under its base name; `rename` is `re.sub` on that name;
the resource's and the source's `target-path`/`path` go in front. From an upstream run we take
its top-level entries, leaving out `.guild` and what its manifest lists as source code or
dependencies. Unlike 0.9, a dependency replaces a same-named source-code copy instead of being
skipped, and a cached download with the wrong sha256 is fetched again instead of failing.
"""

import dataclasses
import hashlib
import http.client
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

from guild_common import configflags, errors, paths as pathslib, requires as reqlib, rundir
from guild_common.flags import encode_flag_value, split_flag_value

log = logging.getLogger("guildd.deps")

SOURCE_TYPES = ("config", "file", "module", "operation", "url")
ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class DependencyError(errors.FailedPrecondition):
    """A dependency could not be met; the run fails before its process starts."""

    def __init__(self, message: str, resource: str | None = None) -> None:
        super().__init__(message)
        self.resource = resource


@dataclasses.dataclass(frozen=True)
class ResolveContext:
    run_dir: str
    project_dir: str  # where relative `file:`/`config:` sources are (the guild file's dir)
    flags: Mapping[str, Any]  # the run's flag values; a flag named like a resource selects its source
    cache_dir: str  # GUILD_HOME/cache/resources
    # find_run(op_name, run_spec or None) -> (run_id, run_dir) | None: the latest completed
    # (or marked) run of the op, or the run that `run_spec` (an id prefix) names.
    find_run: Callable[[str, str | None], "tuple[str, str] | None"]
    log: Callable[[str], Any] = log.info  # progress lines ("Resolving x dependency"), e.g. into the output
    python_exe: str = sys.executable  # the run's interpreter, for `module:` sources
    url_timeout: float = 60.0


@dataclasses.dataclass(frozen=True)
class Resource:
    """One entry of `requires`, normalised."""

    name: str
    path: str  # the resource's target path ('' = the run dir's root)
    sources: tuple  # source dicts as written in guild.yml

    def flag_for(self, src: dict[str, Any]) -> str | None:
        """The flag selecting `src`, as Guild 0.9 has it (guild_common.requires)."""
        return reqlib.source_flag(src)

    def flag_names(self) -> list[str]:
        """Flags that select this resource's sources: the op must accept them."""
        return [f for f in map(self.flag_for, self.sources) if f]


@dataclasses.dataclass(frozen=True)
class ResolvedSource:
    resource: str
    name: str  # the source's key in the `deps` attr: its `name`, else its uri
    uri: str  # file:data/x.txt, operation:prepare, config:c.yml, http://..., module:pandas
    paths: tuple  # the sources used, relative to the run dir (0.9's `paths`)
    files: tuple  # what was written into the run dir, relative to it
    config: str | None = None  # the flag value that chose the source (0.9's `config`)
    run_id: str | None = None  # the upstream run of an operation source
    flag: str | None = None  # the flag that selects this source


@dataclasses.dataclass(frozen=True)
class Resolved:
    sources: tuple = ()  # ResolvedSource, in `requires` order

    def deps_attr(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Guild 0.9's `deps` attr: {resource: {source: {paths, uri[, config]}}}."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for s in self.sources:
            entry: dict[str, Any] = {"paths": list(s.paths), "uri": s.uri}
            if s.config is not None:
                entry["config"] = s.config
            out.setdefault(s.resource, {})[s.name] = entry
        return out

    def resolved_deps(self) -> dict[str, dict[str, list[str]]]:
        """The older `resolved_deps` shape: {resource: {uri: [paths]}}."""
        out: dict[str, dict[str, list[str]]] = {}
        for s in self.sources:
            out.setdefault(s.resource, {}).setdefault(s.uri, []).extend(s.paths)
        return out

    def upstream_runs(self) -> dict[str, str]:
        """{resource: upstream run id} for operation sources."""
        return {s.resource: s.run_id for s in self.sources if s.run_id}

    def flag_values(self) -> dict[str, str]:
        """{flag: full upstream run id}: 0.9 stores these as the run's flags."""
        return {s.flag: s.run_id for s in self.sources if s.run_id and s.flag}


@dataclasses.dataclass(frozen=True)
class _Item:
    target: str  # relative to the run dir
    src: str | None  # absolute path to copy or link
    data: bytes | None = None  # generated content (config sources)
    link: bool = False


class _Failed(Exception):
    """Why one source could not be located; resolve() wraps it into DependencyError."""


_Located = tuple[ResolvedSource, tuple[_Item, ...]]  # a source located, and the items to install for it


def resources_for(requires: Any, model_resources: Mapping[str, Any] | None = None) -> list[Resource]:
    """`requires` (a list, or one item) as Resources. Items are dicts: an inline source
    (`{file: x, ...}`) or a resource (`{name, path, sources: [...]}`); or references to a
    resource in `model_resources` (name -> resource dict): `data` or `{resource: data}`."""
    out = []
    for item in requires if isinstance(requires, list) else [] if requires is None else [requires]:
        ref = item.get("resource") if isinstance(item, dict) else item
        if isinstance(ref, str):
            known = model_resources or {}
            if ref not in known:
                raise errors.InvalidArgument(f"cannot find resource '{ref}'")
            item = {**known[ref], "name": ref.rsplit(":", 1)[-1]}
        if not isinstance(item, dict):
            raise errors.InvalidArgument(f"invalid dependency {item!r}: expected a mapping")
        if "sources" in item:
            listed = item["sources"] if isinstance(item["sources"], list) else [item["sources"]]
            srcs = tuple(s if isinstance(s, dict) else {"file": s} for s in listed)
            name = item.get("name") or ",".join(_uri(s, "?") for s in srcs)
            path = item.get("target-path") or item.get("path") or ""
            out.append(Resource(str(name), str(path), srcs))
        else:  # an inline source, named as its source is (checked first)
            _uri(item, "?")
            out.append(Resource(reqlib.source_name(item), "", (dict(item),)))
    for res in out:
        for src in res.sources:
            _uri(src, res.name)
    return out


def _source_type(src: dict[str, Any], res_name: str) -> str:
    present = [t for t in SOURCE_TYPES if t in src]
    if len(present) != 1:
        why = (f"conflicting attributes ({', '.join(present)})" if present else
               f"missing required attribute (one of {', '.join(SOURCE_TYPES)})")
        raise errors.InvalidArgument(f"invalid source {src!r} in resource '{res_name}': {why}")
    return present[0]


def _uri(src: dict[str, Any], res_name: str) -> str:
    kind = _source_type(src, res_name)
    return str(src[kind]) if kind == "url" else f"{kind}:{src[kind]}"


def resolve(requires: Any, ctx: ResolveContext, *, resources: Mapping[str, Any] | None = None,
            skip: Collection[str] = (), operations: bool = True) -> Resolved:
    """Locates and installs every dependency in `requires` into ctx.run_dir.

    `resources`: the model's resources, for references (see resources_for). `skip`: names of
    resources already resolved (a restart). `operations=False` leaves operation sources out
    (staging). Raises DependencyError naming the resource, with nothing installed, and
    InvalidArgument for a malformed `requires`."""
    resolving = resources_for(requires, resources)
    selectors = {f for r in resolving for f in r.flag_names()}
    located = []
    for res in resolving:
        # `always-resolve` (a flags-dest config file): written again with each start's flags.
        if res.name in skip and not any(src.get("always-resolve") for src in res.sources):
            ctx.log(f"Skipping {res.name} because it's already resolved")
            continue
        ctx.log(f"Resolving {res.name} dependency")
        for src in res.sources:
            src = _with_flag_refs(src, ctx.flags)
            kind = _source_type(src, res.name)
            if kind == "operation" and not operations:
                ctx.log(f"Skipping operation dependency {_uri(src, res.name)} for stage")
                continue
            try:
                located.append(_LOCATE[kind](res, src, ctx, selectors))
            except (_Failed, re.error) as e:
                raise DependencyError(f"could not resolve '{_uri(src, res.name)}' in "
                                      f"{res.name} resource: {e}", res.name) from None
    installed = _install(located, ctx)
    _append_manifest(ctx.run_dir, installed)
    return Resolved(tuple(resolved for resolved, _ in installed))


def _with_flag_refs(src: dict[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    """The source with `${flag}` refs in its values replaced by the run's flag values, as
    Guild 0.9 resolves them (`file: ${file}`); a ref to no flag stays as written."""
    def sub(value: Any) -> Any:
        if isinstance(value, str):
            return _FLAG_REF.sub(lambda m: _flag_ref_text(flags, m), value)
        if isinstance(value, list):
            return [sub(v) for v in value]
        return value

    return {k: sub(v) for k, v in src.items()}


_FLAG_REF = re.compile(r"\$\{([^}|]+)\}")


def _flag_ref_text(flags: Mapping[str, Any], m: "re.Match[str]") -> str:
    name = m.group(1).strip()
    if name not in flags or flags[name] is None:
        return m.group(0)
    value = flags[name]
    return value if isinstance(value, str) else encode_flag_value(value)


def _project_path(res: Resource, src: dict[str, Any], ctx: ResolveContext,
                  kind: str) -> tuple[str, str, str | None, str | None]:
    """A `file:`/`config:` source's path, which a flag named like the resource may replace
    (an empty value asks for the default)."""
    flag = res.flag_for(src)
    chosen = ctx.flags.get(flag) if flag is not None else None
    chosen = None if chosen in (None, "") else str(chosen)
    rel = chosen or str(src[kind])
    path = os.path.join(ctx.project_dir, os.path.expanduser(rel))
    if not os.path.exists(path):
        raise _Failed(f"cannot find {'source' if kind == 'file' else 'config'} file {rel}")
    if chosen:
        ctx.log(f"Using {rel} for {res.name} resource")
    return path, rel, flag, chosen


def _locate_file_or_url(res: Resource, src: dict[str, Any], ctx: ResolveContext,
                        _selectors: Collection[str]) -> _Located:
    """A file, directory or archive: archives unpacked (unless `unpack: no`) and their
    top-level entries or `select` matches used; directories whole or their matches."""
    if "url" in src:
        path, kw = _fetch(str(src["url"]), src.get("sha256"), ctx), {"flag": res.flag_for(src)}
    else:
        path, _, flag, chosen = _project_path(res, src, ctx, "file")
        if os.path.isfile(path):
            _check_sha256(path, src.get("sha256"))
        kw = {"flag": flag, "config": chosen}
    if path.lower().endswith(ARCHIVES) and src.get("unpack", True) not in (False, "no"):
        cands = _select(_unpack(path, ctx), src.get("select"))
    elif os.path.isdir(path) and src.get("select"):
        cands = _select(path, src.get("select"))
    else:
        cands = [(path, os.path.basename(path.rstrip(os.sep)))]
    return _located(res, src, ctx, cands, **kw)


def _locate_operation(res: Resource, src: dict[str, Any], ctx: ResolveContext,
                      _selectors: Collection[str]) -> _Located:
    op, flag = str(src["operation"]), res.flag_for(src)
    spec = ctx.flags.get(flag) if flag is not None else None
    try:
        found = ctx.find_run(op, None if spec in (None, "") else str(spec))
    except errors.GuildError as e:  # `up=RUN` naming no run, or more than one
        raise _Failed(str(e).splitlines()[0]) from None
    if not found:
        raise _Failed(f"no suitable run for {op}")
    run_id, run_dir = found
    ctx.log(f"Using output from run {run_id} for {res.name} resource")
    # As Guild 0.9: without `select`, only the files the upstream run made; a `select` may
    # also pick its source code and its own dependencies (`select: file.txt` of a run that
    # required file.txt).
    cands = _select(run_dir, src.get("select"), skip=set() if src.get("select") else _manifest_paths(run_dir))
    if not cands and src.get("warn-if-empty", True) not in (False, "no"):
        ctx.log(f"WARNING: nothing resolved for {res.name}")
    return _located(res, src, ctx, cands, flag=flag, config=run_id, run_id=run_id)


def _locate_config(res: Resource, src: dict[str, Any], ctx: ResolveContext,
                   selectors: Collection[str]) -> _Located:
    """The config file with `params`, then the run's flags (dotted names, as 0.9: all of
    them except those that select resources, and those that are null: a flag declared
    `lr: null` leaves the file's value) written in; format kept, JSON compact."""
    _, rel, flag, chosen = _project_path(res, src, ctx, "config")
    values = dict(src.get("params") or {})
    values.update((k, v) for k, v in ctx.flags.items() if k not in selectors and v is not None)
    for name, arg_split in (src.get("arg-split") or {}).items():  # flags-dest: see guildop
        if isinstance(values.get(name), str):
            values[name] = split_flag_value(values[name], arg_split)
    try:
        text = configflags.render(configflags.load(ctx.project_dir, rel), values, rel)
    except errors.InvalidArgument as e:
        raise _Failed(str(e)) from None
    item = _Item(_target(res, src, _rename(os.path.basename(rel), src, ctx)), None, text.encode())
    return _resolved(res, src, (item.target,), (item,), flag=flag, config=chosen), (item,)


def _locate_module(res: Resource, src: dict[str, Any], ctx: ResolveContext,
                   _selectors: Collection[str]) -> _Located:
    """Checked in the run's interpreter, which need not be the daemon's."""
    name = str(src["module"])
    code = f"import importlib.util as u, sys; sys.exit(u.find_spec({name!r}) is None)"
    if subprocess.run([ctx.python_exe, "-c", code], capture_output=True).returncode != 0:
        raise _Failed(f"no module named {name}")
    return _resolved(res, src, (), ()), ()


_LOCATE: dict[str, Callable[[Resource, dict[str, Any], ResolveContext, Collection[str]], _Located]] = {
    "config": _locate_config, "file": _locate_file_or_url, "module": _locate_module,
    "operation": _locate_operation, "url": _locate_file_or_url}


def _located(res: Resource, src: dict[str, Any], ctx: ResolveContext, cands: Iterable[tuple[str, str]],
             **kw: Any) -> _Located:
    """(path, name) candidates, renamed and placed under their target path."""
    link = str(src.get("target-type") or "copy")
    if link not in ("copy", "link"):
        raise _Failed(f"invalid target-type {link!r} (expected copy or link)")
    items = tuple(_Item(_target(res, src, _rename(name, src, ctx)), path, link=link == "link")
                  for path, name in cands)
    used = tuple(os.path.relpath(path, ctx.run_dir) for path, _ in cands)
    return _resolved(res, src, used, items, **kw), items


def _resolved(res: Resource, src: dict[str, Any], paths: tuple[str, ...], items: Iterable[_Item],
              **kw: Any) -> ResolvedSource:
    return ResolvedSource(res.name, reqlib.source_name(src), _uri(src, res.name), paths,
                          tuple(i.target for i in items), **kw)


def _target(res: Resource, src: dict[str, Any], name: str) -> str:
    sub = str(src.get("target-path") or src.get("path") or "")
    try:
        target = pathslib.relative(os.path.join(res.path, sub, name), "target path")
    except errors.InvalidArgument as e:
        raise _Failed(str(e)) from None
    if target == ".":
        raise _Failed("target path is the run directory itself")
    return target


def _rename(name: str, src: dict[str, Any], ctx: ResolveContext) -> str:
    for pattern, repl in _rename_specs(src.get("rename"), ctx.flags):
        name = re.sub(pattern, repl, name)
    return name


def _rename_specs(value: Any, flags: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`'PATTERN REPL'` strings (quotes allowed, backslashes kept), a list of them, or
    `{pattern, repl}` dicts; `${flag}` refs are replaced by flag values."""
    specs = []
    for item in [value] if isinstance(value, (str, dict)) else list(value or []):
        if isinstance(item, dict):
            specs.append((str(item.get("pattern", "")), str(item.get("repl", ""))))
            continue
        text = re.sub(r"\$\{([^}]+)\}", lambda m: str(flags.get(m.group(1), m.group(0))), item)
        lexer = shlex.shlex(text, posix=True)
        lexer.whitespace_split, lexer.escape = True, ""
        parts = list(lexer)
        if len(parts) not in (1, 2):
            raise _Failed(f"invalid rename spec {item!r}: expected 'PATTERN REPL'")
        specs.append((parts[0], parts[1] if len(parts) == 2 else ""))
    return specs


def _select(root: str, patterns: Any, skip: Collection[str] = frozenset()) -> list[tuple[str, str]]:
    """(path, target name) pairs from `root`, leaving out the `skip` paths: as in Guild 0.9,
    files and directories (a directory whole) whose relative path fully matches a pattern,
    under their base names, `.guild` included (`select: .guild/attrs/flags`); without
    patterns, the top-level entries but `.guild` that hold any file, directories whole."""
    pats = [patterns] if isinstance(patterns, str) else list(patterns or [])
    parents = lambda r: ("/".join(r.split("/")[: i + 1]) for i in range(r.count("/") + 1))
    rels = [r for r in _walk(root, selecting=bool(pats)) if not any(p in skip for p in parents(r))]
    if not pats:
        return [(os.path.join(root, t), t) for t in sorted({r.split("/")[0] for r in rels})]
    return [(os.path.join(root, r), os.path.basename(r))
            for r in sorted(rels) if any(re.fullmatch(str(p), r) for p in pats)]


def _walk(root: str, selecting: bool = False) -> Iterator[str]:
    """Relative paths of the files under `root`, but `.guild`'s; `selecting`: of the
    directories too, and `.guild`'s."""
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        if rel_dir == "." and not selecting:
            dirnames[:] = [d for d in dirnames if d != ".guild"]
        dirnames.sort()
        for f in sorted(dirnames + filenames) if selecting else sorted(filenames):
            yield f if rel_dir == "." else f"{rel_dir}/{f}"


def _fetch(url: str, sha256: Any, ctx: ResolveContext) -> str:
    """The cached download of `url` (one dir per URL, named by its sha224 as in 0.9),
    downloading it first if needed. A download is checked before it enters the cache."""
    cache = os.path.join(ctx.cache_dir, hashlib.sha224(url.encode()).hexdigest())
    name = os.path.basename(urllib.parse.urlparse(url).path)
    path = os.path.join(cache, "download" if name in ("", ".", "..") else name)  # 'http://h/..'
    if os.path.isfile(path) and (not sha256 or _sha256(path) == str(sha256)):
        ctx.log(f"Using cached file {path}")
        return path
    os.makedirs(cache, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".download-")
    try:
        ctx.log(f"Downloading {url}")
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=ctx.url_timeout) as r:
            shutil.copyfileobj(r, out)
        _check_sha256(tmp, sha256, shown=url)
        os.replace(tmp, path)  # atomic: concurrent runs never see half a download
    except (OSError, ValueError, http.client.HTTPException) as e:  # URLError is an OSError
        raise _Failed(f"error downloading {url}: {getattr(e, 'reason', e)}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _check_sha256(path: str, expected: Any, shown: str | None = None) -> None:
    if expected and (actual := _sha256(path)) != str(expected):
        raise _Failed(f"'{shown or path}' has an unexpected sha256 "
                      f"(expected {expected} but got {actual})")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _unpack(archive: str, ctx: ResolveContext) -> str:
    """Unpacks `archive` once, into `unpacked/` beside its download (URLs) or in a cache dir
    keyed by path, size and mtime (project files); into a temp dir first, then renamed."""
    if os.path.abspath(archive).startswith(os.path.abspath(ctx.cache_dir) + os.sep):
        key_dir = os.path.dirname(archive)
    else:
        st = os.stat(archive)
        key = f"file:{os.path.abspath(archive)}:{st.st_size}:{st.st_mtime_ns}"
        key_dir = os.path.join(ctx.cache_dir, hashlib.sha224(key.encode()).hexdigest())
    dest = os.path.join(key_dir, "unpacked")
    if os.path.isdir(dest):
        return dest
    ctx.log(f"Unpacking {archive}")
    os.makedirs(key_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=key_dir, prefix=".unpacking-")
    try:
        if archive.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                safe: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                t.extractall(tmp, **safe)
        os.rename(tmp, dest)
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as e:
        if not os.path.isdir(dest):  # losing a race to another run's unpack is fine
            raise _Failed(f"cannot unpack {archive}: {e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _install(located: Sequence[_Located], ctx: ResolveContext) -> list[_Located]:
    """Installs every item; returns `located` less the items skipped because an earlier
    source already wrote their target (0.9 warns and skips them too)."""
    created: dict[str, bool] = {}
    out: list[_Located] = []
    try:
        for resolved, items in located:
            kept = []
            for item in items:
                if item.target in created:
                    ctx.log(f"WARNING: {item.target} already resolved, skipping {resolved.uri}")
                    continue
                _install_item(item, ctx.run_dir)
                created[item.target] = True
                kept.append(item)
            files = tuple(i.target for i in kept)
            out.append((dataclasses.replace(resolved, files=files), tuple(kept)))
    except (OSError, errors.InvalidArgument) as e:
        for target in reversed(created):
            _remove(os.path.join(ctx.run_dir, target))
        raise DependencyError(f"could not install dependencies into {ctx.run_dir}: {e}") from None
    return out


def _install_item(item: _Item, run_dir: str) -> None:
    # Checked here, not only in _target: an earlier item may have put a link on the way
    # (an upstream run's output, say). The target itself is replaced, never followed.
    dest = str(rundir.run_file(run_dir, item.target, "dependency target", follow=False))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    _remove(dest)  # a dependency replaces a same-named source-code copy
    if item.data is not None:
        with open(dest, "wb") as f:
            f.write(item.data)
        return
    assert item.src is not None  # an item without data has a source
    if item.link:
        os.symlink(os.path.relpath(item.src, os.path.dirname(dest)), dest)
    elif os.path.isdir(item.src):
        shutil.copytree(item.src, dest, symlinks=True)
    else:
        shutil.copy2(item.src, dest)


def _remove(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.remove(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def _manifest_paths(run_dir: str) -> set[str]:
    """Paths an upstream run's manifest lists: its source code and its own dependencies."""
    try:
        with open(os.path.join(run_dir, ".guild", "manifest")) as f:
            lines = f.read().splitlines()
    except OSError:
        return set()
    out = set()
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind in ("s", "d") and rest:
            end = rest.find("'", 1)
            out.add(rest[1:end] if rest.startswith("'") and end > 0 else rest.split(" ")[0])
    return out


def _append_manifest(run_dir: str, installed: Iterable[_Located]) -> None:
    """`d TARGET SHA1|- URI` lines, as 0.9 writes them, so that a downstream run leaves
    these files out. Call after the source code's manifest is written (it rewrites it)."""
    lines = []
    for resolved, items in installed:
        for item in items:
            dest, digest = os.path.join(run_dir, item.target), "-"
            if os.path.isfile(dest) and not os.path.islink(dest):
                with open(dest, "rb") as f:
                    digest = hashlib.sha1(f.read()).hexdigest()
            lines.append(f"d {_quote(item.target)} {digest} {_quote(resolved.uri)}\n")
    if lines:
        os.makedirs(os.path.join(run_dir, ".guild"), exist_ok=True)
        with open(os.path.join(run_dir, ".guild", "manifest"), "a") as f:
            f.write("".join(lines))


def _quote(s: str) -> str:
    return f"'{s}'" if " " in s else s
