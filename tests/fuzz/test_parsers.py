"""Hostile input to the pure parsers a user reaches from the command line: flag assignments,
run selectors, filter expressions, time ranges, column specs, guild.yml documents and batch
files. Each gives a value or one of our own clear errors, never another exception."""

import datetime
import json
import os
import pathlib
import tempfile

import yaml
from hypothesis import example, given, strategies as st

from guild_common import flagfuncs, flags, guildfile, query, runfilter, timerange, trials
from guild_common.flagdef import FlagDef
from guildctl import guildop
from guildd import selection
from tests.fuzz import hostile
from tests.fuzz.figures import FIGURES
from tests.fuzz.outcome import clear_or_value

REF = datetime.datetime(2026, 12, 4, 22, 30)
IDS = [f"{i:032x}" for i in (0xABC, 0xABD, 0x1234, 0xFFFF)]
FLAG_TYPES = [None, "auto", "int", "float", "number", "string", "boolean", "path", "existing-path"]


@given(st.lists(st.one_of(hostile.text(), st.builds("{}={}".format, hostile.text(), hostile.text())), max_size=4))
def test_flag_assignments(args):
    FIGURES.tried("flag assignments")
    clear_or_value("flag assignments", flags.parse_flag_assigns, args)


@given(st.one_of(hostile.text(), hostile.nested("[", "]"), hostile.nested("{a: ", "}")), st.sampled_from(FLAG_TYPES),
       st.lists(hostile.text(), max_size=3),
       st.one_of(st.none(), st.integers(), st.floats(), hostile.text()), st.booleans())
def test_flag_values_against_their_definitions(text, type_, choices, bound, allow_other):
    FIGURES.tried("flag values")
    value = clear_or_value("flag values", flags.decode_flag_value, text)
    flagdef = FlagDef(name="x", type=type_, choices=tuple({"value": c} for c in choices), min=bound, max=bound,
                      allow_other=allow_other)
    clear_or_value("flag values", flags.coerce_flag_value, value, flagdef, tempfile.gettempdir())
    clear_or_value("flag values", flags.format_flag_assign, "x", value)
    clear_or_value("flag values", flags.flag_cmd_args, {"x": value}, {"x": flagdef})


FUNCTION_ARGS = st.one_of(st.sampled_from(["0", "1", "-1", "1e308", "-1e308", "1e-308", "nan", "inf", "-inf", "", "x", "1.5",
                                           "99999999999999999999", "0.0", "1e999", "[1]", "2:3"]), hostile.text())


@given(st.sampled_from(["range", "linspace", "logspace", "uniform", "loguniform", "choice", "", "x", "RANGE"]),
       st.lists(FUNCTION_ARGS, max_size=5))
def test_flag_functions(name, args):
    FIGURES.tried("flag functions")
    text = f"{name}[{':'.join(args)}]"
    value = clear_or_value("flag functions", flags.decode_flag_value, text)
    expanded = clear_or_value("flag functions", flagfuncs.expand, value, "x")
    clear_or_value("flag functions", trials.grid, {"x": expanded if expanded is not None else value})
    clear_or_value("flag functions", trials.search_dims, {"x": value})


@given(st.lists(st.one_of(hostile.text(), st.sampled_from(["1", "2", "-1", "1:3", "2:", ":2", "0", "abc", "ab", "0:"]),
                          st.integers(-10**30, 10**30).map(str)), max_size=4))
def test_run_selectors(specs):
    FIGURES.tried("run selectors")
    clear_or_value("run selectors", selection.apply_specs, IDS, specs)


@given(st.one_of(hostile.words(hostile.FILTER_WORDS), hostile.text(), hostile.nested("(", ")"),
                 hostile.nested("[", "]"), hostile.nested("not ", "")),
       st.dictionaries(hostile.text(), st.one_of(st.none(), st.integers(), st.floats(), hostile.text(),
                                                 st.lists(hostile.text(), max_size=2)), max_size=3))
def test_filter_expressions(text, values):
    FIGURES.tried("filter expressions")
    parsed = clear_or_value("filter expressions", runfilter.parse_filter, text)
    if parsed is not None:
        row = selection._Row(flags=values, scalars=values, attrs={**values, "tags": list(values)})
        clear_or_value("filter expressions", parsed.matches, row)


@given(st.one_of(hostile.words(hostile.TIME_WORDS), hostile.text()))
def test_time_ranges(spec):
    FIGURES.tried("time ranges")
    clear_or_value("time ranges", timerange.parse, spec, REF)


@given(st.one_of(hostile.words(hostile.COLUMN_WORDS), hostile.text()), st.sampled_from([None, "col spec"]))
def test_column_specs(text, what):
    FIGURES.tried("column specs")
    columns = clear_or_value("column specs", query.parse_columns, text, what)
    for col in columns or ():
        clear_or_value("column specs", lambda: (col.header, col.spec, str(col)))


# guild.yml: the keys Guild files use, with values of any YAML type in any place.
GF_KEYS = ["model", "operations", "flags", "config", "extends", "include", "$include", "main", "exec", "steps",
           "sourcecode", "requires", "default", "resources", "flags-import", "flags-dest", "output-scalars",
           "compare", "optimizers", "env", "description", "default", "dest", "select", "source", "operation",
           "type", "choices", "min", "max", "arg-name", "arg-switch", "arg-split", "label", "tags", "params",
           "delete-on-success", "stoppable", "pip", "run", "isolate-runs", "plugins", "op-default",
           "operation-defaults", "anonymous", "name", "x", "train"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(),
                    st.sampled_from(hostile.SPECIAL), st.text(max_size=10), st.sampled_from(["train.py", "train",
                    "{{x}}", "${x}", "x.y:z", "../../etc", "*.py", "train:x"]))
YAML_VALUE = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.sampled_from(GF_KEYS), st.text(max_size=6)), inner, max_size=4),
), max_leaves=25)


def _guildfile_text(data, raw):
    return raw if raw is not None else yaml.safe_dump(data, allow_unicode=True)


@given(YAML_VALUE, st.one_of(st.none(), hostile.text(), st.sampled_from(
    ["!!python/object/apply:os.system ['id']", "&a [*a, *a]", "a: &a {b: *a}", "- include: {canary}",
     "- include: guild.yml", "- config: c\n  $include: c", "x: [", "\t- x", "%YAML 9.9\n---\nx: 1",
     "x: !!binary AAAA", "x: 2001-12-14", "? [a]\n: b", "train:\n  flags:\n    $include: nothere"])))
@example(data=None, raw="- include: {canary}")
def test_guildfile_documents(data, raw):
    FIGURES.tried("guild.yml documents")
    with tempfile.TemporaryDirectory() as d:
        canary = pathlib.Path(d, "canary.txt")
        canary.write_text("CANARY-CONTENT-7f3a\n" * 50)
        text = _guildfile_text(data, raw).replace("{canary}", str(canary))
        (pathlib.Path(d) / "guild.yml").write_text(text, encoding="utf-8", errors="surrogatepass")
        (pathlib.Path(d) / "train.py").write_text("x = 1\nprint('loss: 1')\n")
        said = []
        gf = clear_or_value("guild.yml documents", guildfile.for_dir, d, messages=said)
        if gf is None:
            # `- include: FILE` of a file that isn't a Guild file: named, its content not echoed.
            assert all(m.count("CANARY-CONTENT") <= 2 for m in said), said  # a 40-character excerpt
            return
        for model, op in clear_or_value("guild.yml documents", guildfile.operations, gf) or ():
            opdef = clear_or_value("guild.yml documents", guildfile.resolve, gf, f"{model}:{op}" if model else op)
            if opdef is not None:
                gop = clear_or_value("guild.yml documents", guildop.for_opdef, gf, opdef)
                if gop is not None:
                    clear_or_value("guild.yml documents", guildop.cmd_args, gop)


BATCH_ROWS = st.lists(st.dictionaries(hostile.text(), st.one_of(SCALARS, st.lists(SCALARS, max_size=2)), max_size=3),
                      max_size=3)


def _csv_text(rows):
    """`rows` as CSV with a header of their keys (rows that aren't mappings: one cell each)."""
    rows = rows if isinstance(rows, list) else [rows]
    names = sorted({str(k) for r in rows if isinstance(r, dict) for k in r}) or ["x"]
    lines = [",".join(names)]
    for r in rows:
        lines.append(",".join(str(r.get(n, "")) for n in names) if isinstance(r, dict) else str(r))
    return "\n".join(lines)


@given(st.sampled_from([".csv", ".json", ".yml", ".yaml", ".txt", ""]), st.one_of(BATCH_ROWS, YAML_VALUE),
       st.one_of(st.none(), hostile.text(), st.binary(max_size=200)))
def test_batch_files(ext, rows, raw):
    FIGURES.tried("batch files")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "trials" + ext)
        if isinstance(raw, bytes):
            content = raw
        elif raw is not None:
            content = raw.encode("utf-8", "surrogatepass")
        elif ext == ".csv":
            content = _csv_text(rows).encode("utf-8", "surrogatepass")
        elif ext == ".json":
            content = json.dumps(rows, default=str).encode()
        else:
            content = yaml.safe_dump(rows, allow_unicode=True).encode("utf-8", "surrogatepass")
        with open(path, "wb") as f:
            f.write(content)
        found = clear_or_value("batch files", trials.read_batch_file, path, d)
        if found:
            clear_or_value("batch files", trials.write_csv, os.path.join(d, "out.csv"), found)
