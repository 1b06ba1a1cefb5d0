"""Query the S3 export's objects on this machine with DuckDB: the same named queries Athena runs at scale.

    python -m tools.history_query DIR                        # every named query over a local copy
    python -m tools.history_query s3://bucket/prefix/ --endpoint-url http://127.0.0.1:PORT -q environments
    python -m tools.history_query DIR --sql 'SELECT count(*) FROM invocation_history'

The named queries are SQL files (invocation-history-cdk/src/invocation_history_cdk/queries/*.sql) written for
Athena's engine (Trino) over the table `invocation_history` (queries/table.json). They run here unchanged: DuckDB is
given a view of that name with the table's columns, the object's key as "$path" (Athena's pseudo-column), and two
macros named as the Trino functions DuckDB lacks (`from_iso8601_timestamp`, `approx_percentile`; see PRELUDE).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.history_objects import DEFAULT_MAX_OBJECTS, NoObjects, objects

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "invocation-history-cdk/src/invocation_history_cdk/queries"
TABLE_FILE = QUERIES / "table.json"

# The one translation from Athena (Trino) to DuckDB: the functions the queries use that DuckDB names otherwise.
# quantile_disc is exact (the nearest-rank value); Athena's approx_percentile estimates the same value.
PRELUDE = """
SET TimeZone = 'UTC';
CREATE MACRO from_iso8601_timestamp(text) AS CAST(text AS TIMESTAMPTZ);
CREATE MACRO approx_percentile(x, percentage) AS quantile_disc(x, percentage);
"""
HIVE_TO_DUCKDB = {"string": "VARCHAR", "bigint": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN"}


def table() -> dict:
    """The table's definition: columns and partition keys, types as Hive names them (queries/table.json)."""
    return json.loads(TABLE_FILE.read_text())


def duckdb_type(column_type: str | dict) -> str:
    if isinstance(column_type, str):
        return HIVE_TO_DUCKDB[column_type]
    fields = ", ".join(f'"{name}" {duckdb_type(t)}' for name, t in column_type["struct"].items())
    return f"STRUCT({fields})"


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sql(files: list[Path]) -> str:
    """`invocation_history` over `files`: the table's columns read from each line (absent ones NULL, other keys
    ignored), the partitions from the key, and the key itself as "$path"."""
    definition = table()
    columns = ", ".join(f"{sql_string(c['name'])}: {sql_string(duckdb_type(c['type']))}" for c in definition["columns"])
    names = ", ".join(f'"{c["name"]}"' for c in definition["columns"])
    partitions = ", ".join(
        f"regexp_extract(filename, '/{p['name']}=([^/]+)/', 1) AS \"{p['name']}\"" for p in definition["partitionKeys"]
    )
    file_list = "[" + ", ".join(sql_string(str(f)) for f in files) + "]"
    return (
        f"CREATE VIEW {definition['name']} AS SELECT {names}, {partitions}, filename AS \"$path\" "
        f"FROM read_json({file_list}, format = 'newline_delimited', compression = 'gzip', filename = true, "
        f"columns = {{{columns}}})"
    )


def named_queries() -> dict[str, str]:
    """Every named query, by name (its file's stem), in name order."""
    return {path.stem: path.read_text() for path in sorted(QUERIES.glob("*.sql"))}


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple]

    def as_dicts(self) -> list[dict]:
        return [dict(zip(self.columns, row)) for row in self.rows]


class History:
    """A DuckDB database in memory with `invocation_history` over the given objects."""

    def __init__(self, files: list[Path]) -> None:
        import duckdb

        if not files:
            raise NoObjects("no exported object to query")
        self.connection = duckdb.connect(":memory:")
        self.connection.execute(PRELUDE)
        self.connection.execute(view_sql(files))

    def query(self, sql: str) -> Result:
        cursor = self.connection.execute(sql)
        return Result([d[0] for d in cursor.description], cursor.fetchall())

    def named(self, name: str) -> Result:
        queries = named_queries()
        if name not in queries:
            raise KeyError(f"no named query {name!r}: one of {', '.join(queries)}")
        return self.query(queries[name])

    def close(self) -> None:
        self.connection.close()


def text_cell(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def print_table(result: Result, out) -> None:
    rows = [[text_cell(v) for v in row] for row in result.rows]
    widths = [max(len(c) for c in col) for col in zip(result.columns, *rows)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    print(line(result.columns), file=out)
    print(line(["-" * w for w in widths]), file=out)
    for row in rows:
        print(line(row), file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.history_query",
        description="Run the named queries over the S3 export's objects (a local directory or s3://bucket/prefix) "
        "with DuckDB: the same SQL as the Athena named queries.",
    )
    parser.add_argument("source", nargs="?", help="a directory holding exported objects (any depth), or s3://bucket/prefix")
    parser.add_argument("-q", "--query", action="append", metavar="NAME",
                        help="a named query to run (repeatable; default: all of them); --list names them")  # fmt: skip
    parser.add_argument("--sql", help="run this SQL instead (the table is invocation_history)")
    parser.add_argument("--list", action="store_true", help="list the named queries and exit")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format (default: table)")
    parser.add_argument("--endpoint-url", help="S3 endpoint for s3:// sources (e.g. a local S3 server)")
    parser.add_argument("--cache", type=Path,
                        help="directory to download s3:// objects into (default: a temporary one, removed after)")  # fmt: skip
    parser.add_argument("--max-objects", type=int, default=DEFAULT_MAX_OBJECTS,
                        help=f"refuse sources of more objects than this (default: {DEFAULT_MAX_OBJECTS})")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar while downloading")
    args = parser.parse_args(argv)
    queries = named_queries()
    if args.list:
        for name, sql in queries.items():
            first = next((line[3:] for line in sql.splitlines() if line.startswith("-- ")), "")
            print(f"{name}\t{first}")
        return 0
    if not args.source:
        parser.error("a source is needed (a directory or s3://bucket/prefix)")
    unknown = [name for name in args.query or [] if name not in queries]
    if unknown:
        parser.error(f"no named query {', '.join(unknown)}: one of {', '.join(queries)}")
    with tempfile.TemporaryDirectory(prefix="history-query-") as tmp:
        try:
            files = objects(args.source, args.cache or Path(tmp), args.endpoint_url, args.max_objects, not args.no_progress)
        except (NoObjects, ValueError) as e:
            print(f"history_query: {e}", file=sys.stderr)
            return 2
        history = History(files)
        runs = {"sql": args.sql} if args.sql else {name: queries[name] for name in (args.query or queries)}
        output: dict[str, list[dict]] = {}
        for name, sql in runs.items():
            result = history.query(sql)
            if args.format == "json":
                output[name] = [{k: text_cell(v) if hasattr(v, "isoformat") else v for k, v in d.items()}
                                for d in result.as_dicts()]  # fmt: skip
            elif args.format == "csv":
                writer = csv.writer(sys.stdout)
                if len(runs) > 1:
                    print(f"# {name}")
                writer.writerow(result.columns)
                writer.writerows([text_cell(v) for v in row] for row in result.rows)
            else:
                print(f"\n== {name} ({len(result.rows)} rows)")
                print_table(result, sys.stdout)
        if args.format == "json":
            json.dump(output, sys.stdout, indent=2)
            print()
        history.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
