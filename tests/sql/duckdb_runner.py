"""Runs SQL with DuckDB for the Rust tests (tests/src/sql.rs).

Reads one JSON request on stdin, writes one JSON response on stdout. Requests:

  {"op": "convert", "columns": {name: duckdb_type}, "compression": "snappy" | "gzip" | ...,
   "files": [[ndjson_path, parquet_path], ...]}
      Converts newline-delimited JSON objects to Parquet the way Firehose's record format
      conversion does: the Glue table's columns and types, keys not in the table dropped.

  {"op": "query", "setup": [sql, ...], "queries": [{"id": str, "sql": str}, ...]}
      Runs the setup statements (views, macros), then each query; a failing query reports its
      error and the others still run.

Response: {"ok": true, ...} or {"ok": false, "error": str}. Query results are
{"id", "columns": [str], "rows": [[value]]} or {"id", "error": str}.
"""

import datetime
import decimal
import json
import sys

import duckdb


def plain(value):
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def struct_literal(columns):
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items()) + "}"


def convert(con, request):
    columns = struct_literal(request["columns"])
    compression = request["compression"]
    for src, dst in request["files"]:
        con.execute(
            f"COPY (SELECT * FROM read_json(?, format = 'newline_delimited', columns = {columns})) "
            f"TO '{dst}' (FORMAT parquet, COMPRESSION '{compression}')",
            [src],
        )
    return {"converted": len(request["files"])}


def query(con, request):
    for statement in request.get("setup", []):
        con.execute(statement)
    results = []
    for q in request["queries"]:
        try:
            cur = con.execute(q["sql"])
            columns = [d[0] for d in cur.description]
            rows = [plain(list(r)) for r in cur.fetchall()]
            results.append({"id": q["id"], "columns": columns, "rows": rows})
        except duckdb.Error as e:
            results.append({"id": q["id"], "error": str(e)})
    return {"results": results}


def main():
    request = json.load(sys.stdin)
    con = duckdb.connect()
    try:
        handler = {"convert": convert, "query": query}[request["op"]]
        out = handler(con, request)
        out["ok"] = True
    except (duckdb.Error, KeyError, OSError) as e:
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
