-- The ceiling's schema (raw SQLite, bench_core.cpp --impl raw and cases.py --impl rawpy):
-- what the operations need and nothing more. The workspace's one component is kept inline,
-- so every single-workspace operation is one statement; names are unique per group over
-- live and soft-deleted rows (the reservation recyclebin enforces).
CREATE TABLE workspaces (
  id              TEXT PRIMARY KEY,
  subscription_id TEXT NOT NULL,
  resource_group  TEXT NOT NULL,
  name            TEXT NOT NULL,
  retention_days  INTEGER NOT NULL,
  created_at      INTEGER NOT NULL,
  deleted_at      INTEGER,
  purge_at        INTEGER,
  deleted_seq     INTEGER NOT NULL DEFAULT 0,
  component_kind  TEXT NOT NULL,
  component_ref   TEXT NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX workspaces_name ON workspaces(subscription_id, resource_group, name);
CREATE INDEX workspaces_deleted ON workspaces(subscription_id, deleted_at DESC, deleted_seq DESC)
  WHERE deleted_at IS NOT NULL;
CREATE INDEX workspaces_purge_at ON workspaces(purge_at) WHERE purge_at IS NOT NULL;
CREATE TABLE audit_log (
  seq             INTEGER PRIMARY KEY,
  at              INTEGER NOT NULL,
  action          TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  resource_group  TEXT NOT NULL,
  name            TEXT NOT NULL,
  outcome         TEXT NOT NULL,
  workspace_id    TEXT NOT NULL
);
CREATE TABLE cleanup_tasks (
  id           INTEGER PRIMARY KEY,
  kind         TEXT NOT NULL,
  ref          TEXT NOT NULL,
  workspace_id TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  completed_at INTEGER
);
