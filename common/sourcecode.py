"""Which project files a run snapshots as its source code, and the snapshot's digest.

Selection is rule based, as in Guild: each file is tested against every rule and the last rule
that matches decides (include or exclude); a file no rule matches is skipped. Directory rules
(`type="dir"`) prune the walk, so nothing under an excluded directory (a virtualenv, `.git`)
is ever looked at. The default rules copy text files under 1 MiB, at most 100 of them, and
warn when a limit leaves a file out.
"""

import codecs
import dataclasses
import fnmatch
import functools
import glob
import hashlib
import os

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


DEFAULT_RULES = (
    Rule(False, ("__pycache__",), "dir"),
    Rule(False, (".*",), "dir"),
    Rule(False, ("*",), "dir", sentinel=".guild-nocopy"),
    Rule(False, ("*",), "dir", sentinel="bin/activate"),
    Rule(False, ("build",), "dir"),
    Rule(False, ("*.egg-info",), "dir"),
    Rule(True, ("*",), "text", size_lt=MAX_FILE_SIZE + 1, max_matches=MAX_FILE_COUNT),
)


@dataclasses.dataclass(frozen=True)
class Selection:
    files: tuple[str, ...]  # relative posix paths, sorted
    skipped: tuple[tuple[str, str], ...]  # (relative path, reason), in walk order
    warnings: tuple[str, ...]  # messages for the user, without a "WARNING: " prefix


def select_files(root, rules=DEFAULT_RULES) -> Selection:
    """The files under `root` that `rules` select; symlinked dirs are not followed."""
    root = os.fspath(root)
    dir_rules = tuple(r for r in rules if r.type == "dir")
    file_rules = tuple(r for r in rules if r.type != "dir")
    matches = [0] * len(file_rules)  # per rule, for max_matches
    files, skipped, warnings = [], [], []
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
                skipped.append((file.relpath, reason))
            if warning and warning not in warnings:
                warnings.append(warning)
    return Selection(tuple(sorted(files)), tuple(skipped), tuple(warnings))


def format_rules(rules) -> list[str]:
    """Rules as `guild run --test-sourcecode` lists them."""
    return [format_rule(rule) for rule in rules]


def format_rule(rule) -> str:
    parts = ["include" if rule.include else "exclude"]
    if rule.type:
        parts.append(rule.type)
    parts.append(", ".join(_quote(p) for p in rule.patterns))
    if rule.sentinel:
        parts.append(f"with {_quote(rule.sentinel)}")
    limits = []
    if rule.size_lt is not None:
        limits.append(f"size < {rule.size_lt}")
    if rule.max_matches is not None:
        limits.append(f"max match {rule.max_matches}")
    if limits:
        parts.append(", ".join(limits))
    return " ".join(parts)


def digest(root, files) -> str | None:
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


# ---------------------------------------------------------------------------------------------
# Rule evaluation


@dataclasses.dataclass(frozen=True)
class _File:
    path: str
    relpath: str  # posix, relative to the selection root

    # Computed at most once per file, and only when a rule gets as far as asking.
    @functools.cached_property
    def is_text(self):
        return is_text_file(self.path)

    @functools.cached_property
    def size(self):
        try:
            return os.stat(self.path).st_size
        except OSError:
            return None


def _select(rules, file, matches):
    """(selected, reason skipped, warning) for one file; counts the matches of `rules`."""
    decided = None
    failures = []
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


def _failed_test(rule, file, matches):
    """The first test `file` fails for `rule`, or None when the rule matches it.

    The count limit is tested after pattern and type, so only real candidates (not a binary
    file that happens to come after the 100th text file) trigger its warning; and before the
    size limit, so a big file past the count limit is reported once, with the count warning.
    """
    if not any(_fnmatch(file.relpath, p) for p in rule.patterns):
        return "pattern"
    if rule.type == "text" and not file.is_text:
        return "type"
    if rule.type == "binary" and file.is_text:
        return "type"
    if rule.max_matches is not None and matches >= rule.max_matches:
        return "max matches"
    if rule.size_lt is not None and file.size is not None and file.size >= rule.size_lt:
        return "size"
    return None


_REASONS = {
    "type": lambda rule: "binary" if rule.type == "text" else "text",
    "max matches": lambda rule: f"more than {rule.max_matches} files",
    "size": lambda rule: "too big",
}


def _limit_warning(rule, failed, file):
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


def _dir_kept(rules, path, relpath):
    """False when the last dir rule to match `relpath` excludes it."""
    kept = True
    for rule in rules:
        if any(_fnmatch(relpath, p) for p in rule.patterns) and _has_sentinel(rule, path):
            kept = rule.include
    return kept


def _has_sentinel(rule, path):
    return not rule.sentinel or bool(glob.glob(os.path.join(glob.escape(path), rule.sentinel)))


def _fnmatch(relpath, pattern):
    # A pattern without '/' names a file or dir anywhere ('build', '*.pyc'); a leading '/'
    # anchors it at the root ('/guild.yml'). As in fnmatch, '*' also matches across '/'.
    if "/" not in pattern:
        relpath = relpath.rsplit("/", 1)[-1]
    return fnmatch.fnmatchcase(relpath, pattern.lstrip("/"))


def _quote(pattern):
    return f"'{pattern}'"


def _posix_relpath(path, root):
    rel = os.path.relpath(path, root)
    return "" if rel == "." else rel.replace(os.sep, "/")


def _join(reldir, name):
    return f"{reldir}/{name}" if reldir else name


# ---------------------------------------------------------------------------------------------
# Text detection

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


def is_text_file(path) -> bool:
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


def _is_utf8(sample):
    # Incremental, so a multi-byte character cut off by the sample's end is not an error.
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True
