"""Which project files a run snapshots as its source code, and the snapshot's digest.

Selection is rule based, as in Guild: each file is tested against every rule and the last rule
that matches decides (include or exclude); a file no rule matches is skipped. Directory rules
(`type="dir"`) prune the walk, so nothing under an excluded directory (a virtualenv, `.git`)
is ever looked at. The default rules copy text files under 1 MiB, at most 100 of them, and
warn when a limit leaves a file out.

A Guild file's `sourcecode` attribute (at model and operation level) becomes rules appended
after the defaults (`rules_for_config`); `test_sourcecode_text` is the `--test-sourcecode`
preview of what a set of rules copies.
"""

import codecs
import dataclasses
import fnmatch
import functools
import glob
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import yaml

from guild_common import errors, paths
from guild_common.paths import StrPath

MAX_FILE_SIZE = 1048576
MAX_FILE_COUNT = 100

_ADVICE = (
    "To control which files are copied, define 'sourcecode' for the operation in a Guild file."
)


@dataclasses.dataclass(frozen=True)
class Rule:
    include: bool  # what a match means: select the file (or keep the dir), or leave it out
    patterns: tuple[str, ...]  # fnmatch; without '/', matched against the base name only
    type: str | None = None  # "text", "binary", "dir", or None for any file
    sentinel: str | None = None  # dir rules: match only dirs containing this (glob) path
    size_lt: int | None = None  # files: match only files smaller than this many bytes
    max_matches: int | None = None  # files: stop matching after this many matches
    size_gt: int | None = None  # files: match only files larger than this many bytes
    regex: bool = False  # patterns are regular expressions matched at the start of the path

    def __post_init__(self) -> None:
        if self.type not in RULE_TYPES:
            raise ValueError(
                f"invalid value for type {self.type!r}: expected one of text, binary, dir"
            )


RULE_TYPES = (None, "text", "binary", "dir")
DISABLED_RULES = (Rule(False, ("*",)),)


DEFAULT_RULES = (
    Rule(False, ("__pycache__",), "dir"),
    Rule(False, (".*",), "dir"),
    Rule(False, ("*",), "dir", sentinel=".guild-nocopy"),
    Rule(False, ("*",), "dir", sentinel="bin/activate"),
    Rule(False, ("*",), "dir", sentinel="Scripts/activate"),  # a Windows virtualenv
    Rule(False, ("build",), "dir"),
    Rule(False, ("dist",), "dir"),
    Rule(False, ("*.egg-info",), "dir"),
    Rule(True, ("*",), "text", size_lt=MAX_FILE_SIZE + 1, max_matches=MAX_FILE_COUNT),
)


@dataclasses.dataclass(frozen=True)
class Selection:
    files: tuple[str, ...]  # relative posix paths, sorted
    skipped: tuple[tuple[str, str], ...]  # (relative path, reason), in walk order
    warnings: tuple[str, ...]  # messages for the user, without a "WARNING: " prefix


def select_files(root: StrPath, rules: Sequence[Rule] = DEFAULT_RULES) -> Selection:
    """The files under `root` that `rules` select; symlinked dirs are not followed."""
    root = os.fspath(root)
    if copies_nothing(rules):
        # Not even walked, as Guild: a disabled copy lists nothing, selected or skipped.
        return Selection((), (), ())
    dir_rules = tuple(r for r in rules if r.type == "dir")
    file_rules = tuple(r for r in rules if r.type != "dir")
    matches = [0] * len(file_rules)  # per rule, for max_matches
    files: list[str] = []
    skipped: list[tuple[str, str]] = []
    warnings: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        reldir = _posix_relpath(dirpath, root)
        # Sorted, so which files fall under a max_matches limit does not depend on the disk.
        dirnames[:] = [
            name
            for name in sorted(dirnames)
            if _dir_kept(dir_rules, os.path.join(dirpath, name), _join(reldir, name))
        ]
        for name in sorted(filenames):
            file = _File(os.path.join(dirpath, name), _join(reldir, name))
            selected, reason, warning = _select(file_rules, file, matches)
            if selected:
                files.append(file.relpath)
            else:
                skipped.append((file.relpath, reason))  # type: ignore[arg-type]  # not selected: a reason
            if warning and warning not in warnings:
                warnings.append(warning)
    return Selection(tuple(sorted(files)), tuple(skipped), tuple(warnings))


def format_rules(rules: Iterable[Rule]) -> list[str]:
    """Rules as `guild run --test-sourcecode` lists them."""
    return [format_rule(rule) for rule in rules]


def format_rule(rule: Rule) -> str:
    parts = ["include" if rule.include else "exclude"]
    if rule.type:
        parts.append(rule.type)
    parts.append(", ".join(_quote(p) for p in rule.patterns))
    extras = []
    if rule.regex:
        extras.append("regex")
    if rule.sentinel:
        extras.append(f"with {_quote(rule.sentinel)}")
    if rule.size_gt is not None:
        extras.append(f"size > {rule.size_gt}")
    if rule.size_lt is not None:
        extras.append(f"size < {rule.size_lt}")
    if rule.max_matches is not None:
        extras.append(f"max match {rule.max_matches}")
    if extras:
        parts.append(", ".join(extras))
    return " ".join(parts)


def copies_nothing(rules: Iterable[Rule]) -> bool:
    """Whether `rules` can select no file at all: an untyped exclude of '*' that no later
    include (of any kind) follows. `--test-sourcecode` then says `Source code copy disabled`."""
    disabled = False
    for rule in rules:
        if rule.include:
            disabled = False
        elif rule.type is None and "*" in rule.patterns and not rule.regex:
            disabled = True
    return disabled


def digest(root: StrPath, files: Iterable[str]) -> str | None:
    """32-hex md5 of the files' relative paths and contents, as Guild's sourcecode_digest.

    Each file contributes `path NUL content NUL`, in path order, so a rename, an edit, or an
    added or removed file changes it. None when there are no files: Guild records no digest.
    """
    if not files:
        return None
    md5 = hashlib.md5()
    for relpath in sorted(files):
        md5.update(relpath.encode("utf-8") + b"\0")
        with open(os.path.join(root, relpath), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                md5.update(chunk)
        md5.update(b"\0")
    return md5.hexdigest()


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    """What an operation's `sourcecode` (with its model's) says to copy, and where."""

    root: str | None = None  # dir to copy from, relative to the Guild file's dir; None: that dir
    dest: str | None = None  # run-dir subdir to copy to; None: the run dir itself (Guild 0.9)
    rules: tuple[Rule, ...] = DEFAULT_RULES
    disabled: bool = False  # the rules copy nothing (`no`, `[]`, or a final `exclude: '*'`)
    digest: bool = True  # record a sourcecode_digest (`digest: no` turns it off)
    warnings: tuple[str, ...] = ()  # config problems worth telling the user, no "WARNING: "


def rules_for_config(
    op_config: Any = None, model_config: Any = None, *, project_dir: StrPath | None = None
) -> SourceConfig:
    """The snapshot an operation takes, from the raw `sourcecode` values of its Guild file.

    `op_config` and `model_config` are the YAML values of the operation's and the model's
    `sourcecode` attributes (None when absent). Each may be:
      - `no` or `[]`: copy nothing;
      - a string: select only files matching it (an `exclude '*'` goes in first);
      - a list of `{include|exclude: PATTERNS}` specs, PATTERNS being a pattern, a list of them,
        or `{dir|text|binary: PATTERNS}`; a list of plain strings alone selects only those;
      - a mapping with `root`, `dest`, `digest` and `select` (any of the forms above).
    Rules are the defaults, then the model's, then the operation's; the last that matches a
    file decides. A model's `no` holds unless the operation lists rules of its own; an
    operation's `no` always holds.

    With `project_dir` (the Guild file's dir), an untyped pattern naming a dir under the copy
    root ('subdir') becomes 'subdir/*', as in Guild; without it patterns are taken as written.
    Malformed config raises InvalidArgument; unknown mapping keys become `warnings`.
    """
    op = _parse_level(op_config, "operation")
    model = _parse_level(model_config, "model")
    root = op.root or model.root
    dest = op.dest or model.dest
    digest = op.digest if op.digest is not None else model.digest is not False
    warnings = model.warnings + op.warnings
    rules: tuple[Rule, ...]
    if op.disabled or (model.disabled and not op.specs):
        rules = DISABLED_RULES
    else:
        scan_root = os.path.join(project_dir, root or "") if project_dir is not None else None
        rules = DEFAULT_RULES + tuple(
            _rule_for_spec(spec, scan_root) for spec in model.specs + op.specs
        )
    return SourceConfig(
        root=root,
        dest=dest,
        rules=rules,
        disabled=copies_nothing(rules),
        digest=digest,
        warnings=warnings,
    )


def test_sourcecode_text(root: StrPath, config: SourceConfig | None = None, *, cwd: StrPath | None = None) -> str:
    """What `guild run OP --test-sourcecode` prints (no trailing newline).

    `root` is the Guild file's dir (the script's dir for a script); `config` a SourceConfig
    (None: the defaults). Paths are shown relative to `cwd` (default: `root`), so the copy
    root reads "the current directory", or 'subdir' or '..' when `config.root` moves it.
    Files under excluded dirs are neither selected nor skipped: they are never looked at.
    """
    config = config or SourceConfig()
    src = os.path.normpath(os.path.join(os.fspath(root), config.root or ""))
    shown = os.path.relpath(src, os.fspath(cwd) if cwd is not None else os.fspath(root))
    shown = shown.replace(os.sep, "/")
    where = "the current directory" if shown == "." else _quote(shown)
    lines = [f"Copying from {where}", "Rules:"]
    lines.extend(f"  {line}" for line in format_rules(config.rules))
    if copies_nothing(config.rules):
        lines.append("Source code copy disabled")
        return "\n".join(lines)
    selection = select_files(src, config.rules)
    lines.append("Selected for copy:")
    lines.extend(f"  {shown}/{path}" for path in sorted(selection.files, key=_walk_order))
    lines.append("Skipped:")
    lines.extend(f"  {shown}/{path}" for path, _reason in selection.skipped)
    return "\n".join(lines)


test_sourcecode_text.__test__ = False  # type: ignore[attr-defined]  # a `test_` name: keep pytest from collecting it


def _walk_order(relpath: str) -> list[tuple[int, str]]:
    # A dir's files come before its subdirs, each sorted by name: os.walk's order, top down.
    *dirs, name = relpath.split("/")
    return [(1, d) for d in dirs] + [(0, name)]


@dataclasses.dataclass(frozen=True)
class _Spec:
    include: bool
    patterns: tuple[str, ...]
    type: str | None  # None, "dir", "text" or "binary"


@dataclasses.dataclass(frozen=True)
class _Level:
    """One level's (model's or operation's) `sourcecode`, parsed but not yet made rules."""

    specs: tuple[_Spec, ...] = ()
    disabled: bool = False
    root: str | None = None
    dest: str | None = None
    digest: bool | None = None
    warnings: tuple[str, ...] = ()


_MAPPING_KEYS = ("select", "root", "dest", "digest")


def _parse_level(data: Any, level: str) -> _Level:
    if isinstance(data, dict):
        unknown = sorted(str(k) for k in data if k not in _MAPPING_KEYS)
        warnings = (
            (f"unexpected {level} sourcecode attribute(s): {', '.join(unknown)}",)
            if unknown
            else ()
        )
        specs, disabled = _parse_select(data.get("select"), level)
        return _Level(
            specs=specs,
            disabled=disabled,
            root=_path_attr(data.get("root"), "root", level),
            dest=_dest(data.get("dest"), level),
            digest=None if data.get("digest") is None else bool(data.get("digest")),
            warnings=warnings,
        )
    specs, disabled = _parse_select(data, level)
    return _Level(specs=specs, disabled=disabled)


def _parse_select(data: Any, level: str) -> tuple[tuple[_Spec, ...], bool]:
    """(specs, disabled) for a select value: None, no, [], a string, or a list of specs."""
    if data is None:
        return (), False
    if data is False or data == []:
        return (), True
    if isinstance(data, str):
        return (_Spec(False, ("*",), None), _Spec(True, (data,), None)), False
    if isinstance(data, list):
        specs = tuple(_parse_spec(item, level) for item in data)
        if all(isinstance(item, str) for item in data):
            # Only patterns listed: they say what to copy, not what to add to the defaults.
            specs = (_Spec(False, ("*",), None),) + specs
        return specs, False
    raise errors.InvalidArgument(
        f"invalid {level} sourcecode {data!r}: expected no, a string, a list, or a mapping"
    )


def _parse_spec(item: Any, level: str) -> _Spec:
    if isinstance(item, str):
        return _Spec(True, (item,), None)
    if not isinstance(item, dict):
        raise errors.InvalidArgument(
            f"invalid {level} sourcecode spec {item!r}: expected a string or a mapping"
        )
    if "include" in item and "exclude" in item:
        raise errors.InvalidArgument(
            f"invalid {level} sourcecode spec {item!r}: cannot both include and exclude - "
            "use one spec for each, in the order they should apply"
        )
    for key in ("include", "exclude"):
        if key in item:
            patterns, type_ = _spec_patterns(item[key], key, level)
            return _Spec(key == "include", patterns, type_)
    raise errors.InvalidArgument(
        f"invalid {level} sourcecode spec {item!r}: expected 'include' or 'exclude'"
    )


def _spec_patterns(value: Any, key: str, level: str) -> tuple[tuple[str, ...], str | None]:
    """(patterns, type) for an include/exclude value: PATTERNS or {dir|text|binary: PATTERNS}."""
    if isinstance(value, dict):
        types = [t for t in ("dir", "text", "binary") if t in value]
        if len(types) != 1 or len(value) != 1:
            raise errors.InvalidArgument(
                f"invalid {level} sourcecode {key} {value!r}: expected one of dir, text, "
                "or binary with patterns"
            )
        return _pattern_list(value[types[0]], key, level), types[0]
    return _pattern_list(value, key, level), None


def _pattern_list(value: Any, key: str, level: str) -> tuple[str, ...]:
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        value = yaml.safe_load(value)  # '[a, b]' written as a string, as Guild reads it
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p for p in value):
        raise errors.InvalidArgument(
            f"invalid {level} sourcecode {key} {value!r}: expected a pattern or a list of them"
        )
    return tuple(value)


def _path_attr(value: Any, name: str, level: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.InvalidArgument(
            f"invalid {level} sourcecode {name} {value!r}: expected a path"
        )
    return value.rstrip("/") or "/"


def _dest(value: Any, level: str) -> str | None:
    # '.' (or nothing) is the run dir itself; anything else a subdir of it.
    dest = _path_attr(value, "dest", level)
    if dest is None:
        return None
    while dest.startswith("./"):
        dest = dest[2:]
    paths.relative(dest, "sourcecode dest")  # an absolute or climbing dest leaves the run dir
    return None if dest in ("", ".") else dest


def _rule_for_spec(spec: _Spec, scan_root: str | None) -> Rule:
    patterns = spec.patterns
    if spec.type is None and scan_root is not None:
        # 'subdir' naming an existing dir means the files under it.
        patterns = tuple(
            f"{p.rstrip('/')}/*" if os.path.isdir(os.path.join(scan_root, p.lstrip("/"))) else p
            for p in patterns
        )
    return Rule(spec.include, patterns, spec.type)


@dataclasses.dataclass(frozen=True)
class _File:
    path: str
    relpath: str  # posix, relative to the selection root

    # Computed at most once per file, and only when a rule gets as far as asking.
    @functools.cached_property
    def is_text(self) -> bool:
        return is_text_file(self.path)

    @functools.cached_property
    def size(self) -> int | None:
        try:
            return os.stat(self.path).st_size
        except OSError:
            return None


def _select(rules: Sequence[Rule], file: _File, matches: list[int]) -> tuple[bool, str | None, str | None]:
    """(selected, reason skipped, warning) for one file; counts the matches of `rules`."""
    decided = None
    failures: list[tuple[Rule, str]] = []
    for i, rule in enumerate(rules):
        failed = _failed_test(rule, file, matches[i])
        if failed:
            failures.append((rule, failed))
        else:
            matches[i] += 1
            decided = rule
    if decided:
        return decided.include, None if decided.include else "excluded", None
    # Nothing matched: explain with the last include rule that got past its patterns.
    for rule, failed in reversed(failures):
        if rule.include and failed != "pattern":
            return False, _REASONS[failed](rule), _limit_warning(rule, failed, file)
    return False, "no matching rule", None


def _failed_test(rule: Rule, file: _File, matches: int) -> str | None:
    """The first test `file` fails for `rule`, or None when the rule matches it.

    The count limit is tested after pattern and type, so only real candidates (not a binary
    file that happens to come after the 100th text file) trigger its warning; and before the
    size limit, so a big file past the count limit is reported once, with the count warning.
    """
    if not _matches(rule, file.relpath):
        return "pattern"
    if rule.type == "text" and not file.is_text:
        return "type"
    if rule.type == "binary" and file.is_text:
        return "type"
    if rule.max_matches is not None and matches >= rule.max_matches:
        return "max matches"
    if rule.size_lt is not None and file.size is not None and file.size >= rule.size_lt:
        return "size"
    if rule.size_gt is not None and file.size is not None and file.size <= rule.size_gt:
        return "size_gt"
    return None


_REASONS: dict[str, Callable[[Rule], str]] = {
    "type": lambda rule: "binary" if rule.type == "text" else "text",
    "max matches": lambda rule: f"more than {rule.max_matches} files",
    "size": lambda rule: "too big",
    "size_gt": lambda rule: "too small",
}


def _limit_warning(rule: Rule, failed: str, file: _File) -> str | None:
    if failed == "max matches":
        return (
            f"Found more than {rule.max_matches} source code files but will only copy "
            f"{rule.max_matches} as a safety measure. {_ADVICE}"
        )
    if failed == "size":
        return (
            f"Skipping potential source code file ./{file.relpath} because it's too big. "
            f"{_ADVICE}"
        )
    return None


def _dir_kept(rules: Iterable[Rule], path: str, relpath: str) -> bool:
    """False when the last dir rule to match `relpath` excludes it."""
    kept = True
    for rule in rules:
        if _matches(rule, relpath) and _has_sentinel(rule, path):
            kept = rule.include
    return kept


def _has_sentinel(rule: Rule, path: str) -> bool:
    return not rule.sentinel or bool(glob.glob(os.path.join(glob.escape(path), rule.sentinel)))


def _matches(rule: Rule, relpath: str) -> bool:
    if rule.regex:
        return any(re.match(p, relpath) for p in rule.patterns)
    return any(_fnmatch(relpath, p) for p in rule.patterns)


def _fnmatch(relpath: str, pattern: str) -> bool:
    # A pattern without '/' names a file or dir anywhere ('build', '*.pyc'); a leading '/'
    # anchors it at the root ('/guild.yml'). As in fnmatch, '*' also matches across '/'.
    if "/" not in pattern:
        relpath = relpath.rsplit("/", 1)[-1]
    return fnmatch.fnmatchcase(relpath, pattern.lstrip("/"))


def _quote(pattern: str) -> str:
    return f"'{pattern}'"


def _posix_relpath(path: str, root: str) -> str:
    rel = os.path.relpath(path, root)
    return "" if rel == "." else rel.replace(os.sep, "/")


def _join(reldir: str, name: str) -> str:
    return f"{reldir}/{name}" if reldir else name


# Extensions decided without opening the file: common enough to matter, unambiguous enough
# to trust.
_TEXT_EXTENSIONS = frozenset(
    ".py .md .txt .csv .tsv .sh .yml .yaml .json .toml .cfg .ini .rst .r".split()
)
_BINARY_EXTENSIONS = frozenset(
    """
    .pyc .pyo .pyd .so .o .a .dll .dylib .exe .class .jar .whl .egg
    .png .jpg .jpeg .gif .bmp .ico .tif .tiff .webp .psd
    .mp3 .wav .ogg .flac .mid .midi .mp4 .mov .avi .mpeg .wmv .swf
    .zip .gz .tgz .bz2 .xz .7z .rar .tar .deb .rpm .pkg .z
    .pdf .doc .docx .xls .xlsx .ppt .pptx
    .bin .pkl .pickle .npy .npz .h5 .hdf5 .pt .pth .ckpt .onnx .pb .tflite
    .parquet .feather .arrow .db .sqlite
    """.split()
)
_SNIFF_SIZE = 4096
_TEXT_CONTROL = frozenset(b"\t\n\r\f\b\x1b")  # whitespace, backspace, ANSI escapes in logs
_UNICODE_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def is_text_file(path: StrPath) -> bool:
    """Whether `path` is a text file: by extension when it is telling, else by its first
    few KiB. Directories and unreadable files are not text."""
    if os.path.isdir(path):
        return False
    ext = os.path.splitext(path)[1].lower()
    if ext in _TEXT_EXTENSIONS:
        return True
    if ext in _BINARY_EXTENSIONS:
        return False
    try:
        with open(path, "rb") as f:
            sample = f.read(_SNIFF_SIZE)
    except OSError:
        return False
    return is_text_sample(sample)


def is_text_sample(sample: bytes) -> bool:
    if not sample or sample.startswith(_UNICODE_BOMS):
        return True
    if b"\0" in sample:
        return False
    control = sum(1 for b in sample if b < 32 and b not in _TEXT_CONTROL)
    if _is_utf8(sample):
        return control / len(sample) <= 0.3
    # Legacy 8-bit text (latin-1 and kin) has no stray control bytes and is mostly ASCII;
    # compressed or random data is about half high bytes.
    high = sum(1 for b in sample if b >= 128)
    return control == 0 and high / len(sample) < 0.3


def _is_utf8(sample: bytes) -> bool:
    # Incremental, so a multi-byte character cut off by the sample's end is not an error.
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True
