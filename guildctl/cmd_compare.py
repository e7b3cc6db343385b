"""guildctl compare and select."""

import csv
import io
import struct
import sys

import click

from guild_common import errors, flags as flaglib
from guildctl import output
from guildctl.filters import pop_filter, run_filters
from guildctl.selecting import selection


def _value(cell):
    kind = cell.WhichOneof("value")
    return None if kind is None else getattr(cell, kind)


def _table_text(value, kind):
    """A cell as Guild's table shows it: scalars with 6 decimals, flags as encoded."""
    if value is None:
        return ""
    if kind == "flag":
        return flaglib.encode_flag_value(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:f}"
    return str(value)


def _csv_text(value, kind=""):
    """A CSV cell as Guild 0.9 writes it. Scalars are the 32-bit floats event files hold,
    which Guild writes widened to a double (0.699999988079071 for 0.7), so scripts that read
    Guild's CSV read ours alike; --json and the table show the shortest decimal."""
    if value is None:
        return ""
    if kind == "scalar" and isinstance(value, float):
        return str(struct.unpack("f", struct.pack("f", value))[0])
    return str(value)


@click.command()
@click.argument("runs", nargs=-1, metavar="[RUN...]")
@click.option("-t", "--table", is_flag=True, help="Print the table once instead of the interactive view.")
@click.option("--csv", "csv_path", metavar="PATH", help="Write the rows as CSV to PATH ('-' for stdout).")
@click.option("--min", "min_col", metavar="COLUMN", help="Lowest values of COLUMN first.")
@click.option("--max", "max_col", metavar="COLUMN", help="Highest values of COLUMN first.")
@click.option("-n", "--limit", "--top", "top", type=click.IntRange(min=1, max=2**31 - 1), help="Only the first N rows.")
@click.option("-c", "--cols", "--columns", "columns", metavar="COLUMNS", help="Extra columns: 'min loss, =lr, .label as L'.")
@click.option("-cc", "--strict-cols", "strict_columns", metavar="COLUMNS", help="Only the run column and COLUMNS.")
@click.option("-p", "--skip-op-cols", "--skip-op", "skip_op", is_flag=True, help="Leave out the operation column.")
@click.option("-r", "--skip-core", is_flag=True, help="Leave out the core columns.")
@click.option("--include-batch", is_flag=True, help="Include batch runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON objects keyed by column header.")
@run_filters
@click.pass_obj
def compare(ctx, runs, table, csv_path, min_col, max_col, top, columns, strict_columns, skip_op, skip_core, include_batch, as_json, **kw):
    """Compare runs: flags, scalars and attributes as columns, one row per run.

    On a terminal this opens an interactive table (arrows move, 1/2 sort ascending/descending
    on the current column, ? help, q quits); --table prints it, --csv writes CSV, --json
    prints a list of objects, one per row.
    """
    if columns and strict_columns:
        raise errors.InvalidArgument("--cols and --strict-cols cannot both be used")
    if as_json and csv_path:
        raise errors.InvalidArgument("--json and --csv cannot both be used")
    run_filter = pop_filter(kw)
    run_filter.include_batch = include_batch
    resp = ctx.client.compare_runs(
        selection(runs, run_filter),
        columns=strict_columns or columns or "",
        strict=bool(strict_columns),
        skip_core=skip_core,
        skip_op=skip_op,
        min=min_col or "",
        max=max_col or "",
        top=top or 0,
    )
    header = [c.header for c in resp.columns]
    kinds = [c.kind for c in resp.columns]
    rows = [[_value(c) for c in row.cells] for row in resp.rows]
    if as_json:
        output.print_json(row_objects(header, [_plain_operation(header, kinds, row) for row in rows]))
    elif csv_path:
        _write_csv(csv_path, header, kinds, [_plain_operation(header, kinds, row) for row in rows])
    elif table or not (sys.stdout.isatty() and sys.stdin.isatty()):
        _print_table(header, kinds, rows)
    else:
        from guildctl import tui

        tui.show_table(header, rows, title=f"{len(rows)} run(s)")


MARKED = " [marked]"


def _plain_operation(header, kinds, row):
    """A row with the operation cell as Guild's CSV has it: the name only (its table and
    ours append ` [marked]` for marked runs)."""
    return [
        v[: -len(MARKED)] if h == "operation" and k == "core" and isinstance(v, str) and v.endswith(MARKED) else v
        for h, k, v in zip(header, kinds, row)
    ]


def row_objects(header, rows):
    """Rows as objects keyed by column header, values as JSON has them (null: no value). A
    header that repeats (`min loss` and `loss` are both `loss`) gets `#2`, `#3`... after its
    first column."""
    keys, seen = [], {}
    for h in header:
        seen[h] = seen.get(h, 0) + 1
        keys.append(h if seen[h] == 1 else f"{h}#{seen[h]}")
    return [dict(zip(keys, row)) for row in rows]


def _write_csv(path, header, kinds, rows):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_csv_text(v, k) for v, k in zip(row, kinds)] for row in rows])
    if path == "-":
        sys.stdout.write(buf.getvalue())
        return
    with open(path, "w", newline="") as f:
        f.write(buf.getvalue())
    click.echo(f"Wrote {len(rows)} row(s) to {path}", err=True)


def _print_table(header, kinds, rows):
    text = [header] + [[_table_text(v, kinds[i]) for i, v in enumerate(row)] for row in rows]
    for line in output.table(text):
        click.echo(line)


@click.command()
@click.argument("run", required=False, default="")
@click.option("-A", "--all", "select_all", is_flag=True, help="Print every matching run, not only the first.")
@click.option("-min", "--min", "min_col", metavar="COLUMN", help="The run with the lowest COLUMN (e.g. loss).")
@click.option("-max", "--max", "max_col", metavar="COLUMN", help="The run with the highest COLUMN.")
@click.option("-s", "--short-id", is_flag=True, help="Print the short id.")
@click.option("-a", "--attr", metavar="NAME", help="Print the run's attribute NAME instead of its id.")
@click.option("-p", "--path", "--dir", "path", is_flag=True, help="Print the run's directory instead of its id.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON (runs list --json's keys; a list with --all).")
@run_filters
@click.pass_obj
def select(ctx, run, select_all, min_col, max_col, short_id, attr, path, as_json, **kw):
    """Print a run's id (default: the latest run), for $(guildctl select ...)."""
    if min_col and max_col:
        raise errors.InvalidArgument("--min and --max cannot both be used")
    run_filter = pop_filter(kw)
    found, _ = ctx.client.list_runs(runs=[run] if run else [], run_filter=run_filter, min=min_col, max=max_col,
                                    limit=0 if select_all else 1, with_command=as_json)
    if not found:
        raise errors.NotFound("no matching runs")
    if as_json:
        runs = [output.run_json(r) for r in found]
        output.print_json(runs if select_all else runs[0])
        return
    for r in found:
        if attr:
            click.echo(_attr(ctx.client, r, attr))
        elif path:
            click.echo(r.run_dir)
        else:
            click.echo(r.id[:8] if short_id else r.id)


def _attr(client, run, name):
    import json

    full = client.get_run(run.id, run_filter=None)
    known = output.run_json(full)
    attrs = json.loads(full.attrs_json or "{}")
    value = attrs.get(name, known.get(name))
    if value is None:
        raise errors.NotFound(f"run {run.id[:8]} has no attribute '{name}'")
    return value if isinstance(value, str) else json.dumps(value)
