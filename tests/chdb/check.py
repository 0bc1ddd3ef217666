#!/usr/bin/env python3
"""Runs a corpus of the ClickHouse engine's SQL on a modern ClickHouse (chdb, in-process).

Usage: check.py CORPUS.json

The corpus (written by tests/chdb_modern.rs) is a JSON object:
  ddl      the engine's CREATE TABLE statements for database `tracestore`, in order;
  tables   table name -> path of a TabSeparated dump of every row version of that table,
           taken without FINAL from the ClickHouse the engine wrote to;
  queries  [{"sql": ..., "expected": ...}]: SQL with unqualified table names and inlined
           values, and the TabSeparated output that ClickHouse gave for it. `expected` holds
           the output's bytes one per code point (latin-1), since it can be binary;
  deletes  the statements the engine runs on a modern server to delete the dataset's
           deleted traces beyond what the dump holds (lightweight DELETEs of their children);
  after_deletes  more queries as `queries`, whose answers hold once `deletes` ran.

Each dump is loaded in CHUNKS inserts (several parts, with a key's versions spread over them,
so that FINAL has to merge them), with merges stopped. Each query runs in database
`tracestore` with ` FORMAT TabSeparated` appended and its bytes are compared with
`expected`, exactly. Then merges start, `deletes` run, and `queries` run again with
`after_deletes`. Prints `N of M queries identical` and `skip indexes dropped granules in N
pages` (by EXPLAIN indexes = 1 of each page query) on stdout and the first mismatches on
stderr; exits 1 on any mismatch or error.
"""

import json
import os
import sys
import tempfile

import chdb
import chdb.session

DATABASE = "tracestore"
# Inserts per table: parts for FINAL to merge.
CHUNKS = 3
# Mismatches shown in full.
SHOWN = 5
# The engine's skip indexes (FEATURES in src/engine/clickhouse/schema.rs).
SKIP_INDEXES = {"id_bloom", "user_bloom", "session_bloom", "tags_bloom", "meta_bloom", "name_ngrams"}


def show(data: bytes, limit: int = 2000) -> str:
    text = data.decode("utf-8", errors="backslashreplace")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def load(session, table: str, path: str, scratch: str) -> int:
    """Inserts the dump at `path` into `table` in CHUNKS inserts; returns its row count."""
    with open(path, "rb") as f:
        rows = f.read().splitlines(keepends=True)
    # Rows dealt round-robin to the inserts: a key's versions are spread over the parts.
    for i in range(CHUNKS):
        chunk = rows[i::CHUNKS]
        if not chunk:
            continue
        part = os.path.join(scratch, f"{table}.{i}.tsv")
        with open(part, "wb") as f:
            f.writelines(chunk)
        session.query(
            f"INSERT INTO {DATABASE}.{table} FROM INFILE '{part}' FORMAT TabSeparated"
        )
    got = session.query(f"SELECT count() FROM {DATABASE}.{table}", "TabSeparated")
    n = int(got.bytes())
    if n != len(rows):
        raise RuntimeError(f"{table}: loaded {n} of {len(rows)} rows")
    return n


def index_skips(session, sql: str) -> bool:
    """Whether one of the engine's skip indexes drops granules of this query's plan."""
    plan = session.query("EXPLAIN indexes = 1 " + sql, "TabSeparated").bytes().decode()
    index = None
    for line in plan.splitlines():
        # The plan is a tree drawn with box characters.
        line = line.strip(" \t│├└─")
        if line.startswith("Name: "):
            index = line[len("Name: "):]
        elif line.startswith("Granules: ") and index in SKIP_INDEXES:
            kept, _, of = line[len("Granules: "):].partition("/")
            if kept.isdigit() and of.isdigit() and int(kept) < int(of):
                return True
            index = None
    return False


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: check.py CORPUS.json", file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        corpus = json.load(f)
    queries = corpus["queries"]
    session = chdb.session.Session()
    version = session.query("SELECT version()", "TabSeparated").bytes().decode().strip()
    print(f"chdb {chdb.__version__}, ClickHouse {version}", file=sys.stderr)
    session.query(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    for statement in corpus["ddl"]:
        session.query(statement)
    # Every row version stays until FINAL reads it: no background merge, and no collapsing
    # of a ReplacingMergeTree's versions within an insert (`optimize_on_insert`, which 18.16
    # does not have).
    for table in corpus["tables"]:
        session.query(f"SYSTEM STOP MERGES {DATABASE}.{table}")
    session.query("SET optimize_on_insert = 0")
    with tempfile.TemporaryDirectory() as scratch:
        for table, path in corpus["tables"].items():
            n = load(session, table, path, scratch)
            print(f"loaded {table}: {n} rows", file=sys.stderr)
    session.query(f"USE {DATABASE}")

    identical = 0
    failures = []

    def run(batch):
        nonlocal identical
        for i, q in enumerate(batch):
            expected = q["expected"].encode("latin-1")
            try:
                got = session.query(q["sql"] + " FORMAT TabSeparated", "TabSeparated").bytes()
            except Exception as e:  # chdb raises ChdbError (a RuntimeError) on a failed query
                failures.append((i, q["sql"], expected, f"error: {e}".encode()))
                continue
            if got == expected:
                identical += 1
            else:
                failures.append((i, q["sql"], expected, got))

    run(queries)
    skipped = sum(1 for q in queries if q["sql"].startswith("SELECT start_ms") and index_skips(session, q["sql"]))
    for table in corpus["tables"]:
        session.query(f"SYSTEM START MERGES {DATABASE}.{table}")
    for statement in corpus.get("deletes", []):
        session.query(statement)
    run(queries)
    run(corpus.get("after_deletes", []))
    total = 2 * len(queries) + len(corpus.get("after_deletes", []))

    print(f"{identical} of {total} queries identical")
    print(f"skip indexes dropped granules in {skipped} pages")
    for i, sql, expected, got in failures[:SHOWN]:
        print(
            f"--- query {i} differs\nSQL: {sql}\nexpected:\n{show(expected)}\ngot:\n{show(got)}",
            file=sys.stderr,
        )
    if len(failures) > SHOWN:
        print(f"... and {len(failures) - SHOWN} more", file=sys.stderr)
    session.close()
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
