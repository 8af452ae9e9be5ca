"""The ceiling in Python: the standard library's sqlite3 doing the minimum statements.

Same schema as bench_core.cpp --impl raw (bench/ceiling_schema.sql): every single-workspace
operation is one autocommitted statement; purge is three set statements in one transaction
(cleanup tasks, audit records, delete); delete_many is one transaction of 1,000 updates.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from common import (
    BATCH,
    DAY_US,
    JAN1_US,
    PAGE_SIZE,
    RETENTION_DAYS,
    SUBSCRIPTION,
    CaseResult,
    db_bytes,
    fresh_path,
    group_of,
    name_of,
    ref_of,
    remove_db,
)

SCHEMA = Path(__file__).with_name("ceiling_schema.sql")
INT64_MAX = 2**63 - 1

INSERT = (
    "INSERT INTO workspaces (id, subscription_id, resource_group, name, retention_days, created_at, "
    "component_kind, component_ref) VALUES (?, ?, ?, ?, ?, ?, 'run_history', ?)"
)
SOFT_DELETE = (
    "UPDATE workspaces SET deleted_at = ?, purge_at = ?, deleted_seq = ? "
    "WHERE id = ? AND deleted_at IS NULL"
)
PAGE = (
    "SELECT id, subscription_id, resource_group, name, deleted_at, purge_at, deleted_seq, "
    "retention_days FROM workspaces WHERE subscription_id = ? AND deleted_at IS NOT NULL "
    "AND (deleted_at, deleted_seq) < (?, ?) AND purge_at > ? "
    "ORDER BY deleted_at DESC, deleted_seq DESC LIMIT ?"
)
RECOVER = (
    "UPDATE workspaces SET deleted_at = NULL, purge_at = NULL, deleted_seq = 0 "
    "WHERE subscription_id = ? AND resource_group = ? AND name = ? AND deleted_at IS NOT NULL"
)
PURGE_CLEANUP = (
    "INSERT INTO cleanup_tasks (kind, ref, workspace_id, created_at) "
    "SELECT component_kind, component_ref, id, :now FROM workspaces WHERE purge_at <= :now"
)
PURGE_AUDIT = (
    "INSERT INTO audit_log (at, action, subscription_id, resource_group, name, outcome, workspace_id) "
    "SELECT :now, 'expire', subscription_id, resource_group, name, 'ok', id "
    "FROM workspaces WHERE purge_at <= :now"
)
PURGE_ROWS = "DELETE FROM workspaces WHERE purge_at <= :now"


def connect(mode: str, directory: str) -> tuple[sqlite3.Connection, str | None]:
    if mode == "memory":
        conn = sqlite3.connect("file::memory:", uri=True, isolation_level=None)
        return conn, None
    path = fresh_path(directory, f"rawpy-{mode}")
    conn = sqlite3.connect(path, isolation_level=None)  # autocommit: each statement commits
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL" if mode == "full" else "PRAGMA synchronous = NORMAL")
    return conn, path


def run(mode: str, n: int, pages: int, ops: set[str], directory: str) -> CaseResult:
    result = CaseResult("rawpy", mode, n)
    conn, path = connect(mode, directory)
    conn.executescript(SCHEMA.read_text())
    execute = conn.execute
    now = JAN1_US
    seq = 0
    ids = [uuid.uuid4().hex for _ in range(n)] if "create" not in ops else []

    if "create" in ops:
        with result.timed("create", n):
            for i in range(n):
                workspace_id = uuid.uuid4().hex
                execute(INSERT, (workspace_id, SUBSCRIPTION, group_of(i), name_of(i),
                                 RETENTION_DAYS, now, ref_of(i)))
                ids.append(workspace_id)

    if "delete" in ops:
        purge_at = now + RETENTION_DAYS * DAY_US
        with result.timed("delete", n):
            for workspace_id in ids:
                seq += 1
                execute(SOFT_DELETE, (now, purge_at, seq, workspace_id))

    if "list" in ops:
        with result.timed("list", pages) as record:
            cursor: tuple[int, int] | None = None
            rows = 0
            for _ in range(pages):
                at, at_seq = cursor if cursor else (INT64_MAX, INT64_MAX)
                items = execute(PAGE, (SUBSCRIPTION, at, at_seq, now, PAGE_SIZE + 1)).fetchall()
                if len(items) > PAGE_SIZE:
                    del items[PAGE_SIZE:]
                    cursor = (items[-1][4], items[-1][6])
                else:
                    cursor = None  # the last page: start over
                rows += len(items)
            record["rows"] = rows

    if "recover" in ops:
        with result.timed("recover", (n + 1) // 2):
            for i in range(0, n, 2):
                if execute(RECOVER, (SUBSCRIPTION, group_of(i), name_of(i))).rowcount != 1:
                    raise RuntimeError(f"recover of {name_of(i)} changed nothing")

    if "purge" in ops:
        now += (RETENTION_DAYS + 1) * DAY_US
        with result.timed("purge") as record:
            execute("BEGIN IMMEDIATE")
            execute(PURGE_CLEANUP, {"now": now})
            execute(PURGE_AUDIT, {"now": now})
            record["count"] = execute(PURGE_ROWS, {"now": now}).rowcount
            execute("COMMIT")

    if "delete_many" in ops:
        live = ids[0::2]
        purge_at = now + RETENTION_DAYS * DAY_US
        with result.timed("delete_many", len(live)):
            for start in range(0, len(live), BATCH):
                batch = live[start:start + BATCH]
                execute("BEGIN IMMEDIATE")
                rows = []
                for workspace_id in batch:
                    seq += 1
                    rows.append((now, purge_at, seq, workspace_id))
                conn.executemany(SOFT_DELETE, rows)
                execute("COMMIT")

    if path is None:
        page_count = execute("PRAGMA page_count").fetchone()[0]
        page_size = execute("PRAGMA page_size").fetchone()[0]
        result.extra["db_bytes"] = page_count * page_size
        conn.close()
    else:
        conn.close()  # checkpoints the WAL into the database file
        result.extra["db_bytes"] = db_bytes(path)
        remove_db(path)
    return result
