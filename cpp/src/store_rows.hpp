#pragma once
// How both stores turn a result row into the engine's values, written once. A Row reads
// column i as text(i), int64(i), flag(i) (a boolean), opt_text(i), opt_int64(i); the column
// orders are the stores' shared SELECT lists (workspaces: RB_WORKSPACE_COLUMNS order).

#include <cstdint>
#include <string>
#include <vector>

#include "recyclebin/store.hpp"

namespace recyclebin::rows {

/// A list_deleted query's bounds as both stores bind them: the keyset position (the top
/// when there is no cursor) and the purge_at window (open ends at the int64 extremes).
struct DeletedBounds {
  std::int64_t after_at;
  std::int64_t after_seq;
  std::int64_t purge_after;
  std::int64_t purge_before;
};
DeletedBounds deleted_bounds(const DeletedQuery& q);

/// Kinds kept in one column, newline-separated.
std::vector<std::string> split_lines(const std::string& text);
std::string join_lines(const std::vector<std::string>& items);

/// id, subscription_id, resource_group, name, state, retention_days, cmk_encrypted,
/// created_at, deleted_at, purge_at, deleted_seq, orphaned_at, had_members, group_key,
/// tenant_key, retained_kinds, held, has_liens, purge_protection, auto_delete_at
template <class Row>
WorkspaceRecord workspace(const Row& r) {
  WorkspaceRecord w;
  w.workspace.id = r.text(0);
  w.workspace.subscription_id = r.text(1);
  w.workspace.resource_group = r.text(2);
  w.workspace.name = r.text(3);
  w.workspace.state = static_cast<WorkspaceState>(r.int64(4));
  w.workspace.retention_days = static_cast<int>(r.int64(5));
  w.workspace.cmk_encrypted = r.flag(6);
  w.workspace.created_at = r.int64(7);
  w.deleted_at = r.opt_int64(8);
  w.purge_at = r.opt_int64(9);
  w.deleted_seq = r.int64(10);
  w.orphaned_at = r.opt_int64(11);
  w.had_members = r.flag(12);
  w.group_key = r.opt_text(13);
  w.tenant_key = r.opt_text(14);
  w.retained_kinds = split_lines(r.text(15));
  w.held = r.flag(16);
  w.has_liens = r.flag(17);
  w.workspace.purge_protection = r.flag(18);
  w.workspace.auto_delete_at = r.opt_int64(19);
  return w;
}

/// id, name, subscription_id, resource_group, deleted_at, purge_at, retention_days,
/// retained_kinds, deleted_seq, held
template <class Row>
void listing(const Row& r, DeletedListing& row) {
  DeletedWorkspace& w = row.workspace;
  w.id = r.text(0);
  w.name = r.text(1);
  w.subscription_id = r.text(2);
  w.resource_group = r.text(3);
  w.deleted_at = r.int64(4);
  w.purge_at = r.int64(5);
  w.retention_days = static_cast<int>(r.int64(6));
  w.retained = split_lines(r.text(7));
  row.position = {w.deleted_at, r.int64(8)};
  w.held = r.flag(9);
}

/// id, kind, ref, workspace_id, created_at, attempts, last_error, leased_by, leased_until
template <class Row>
CleanupTask cleanup_task(const Row& r) {
  CleanupTask t;
  t.id = r.int64(0);
  t.kind = r.text(1);
  t.ref = r.text(2);
  t.workspace_id = r.text(3);
  t.created_at = r.int64(4);
  t.attempts = static_cast<int>(r.int64(5));
  t.last_error = r.opt_text(6);
  t.leased_by = r.opt_text(7);
  t.leased_until = r.opt_int64(8);
  return t;
}

/// kind, id, workspace_id, origin, reason, placed_by, at (RB_GUARD_COLUMNS)
template <class Row>
GuardRow guard(const Row& r) {
  return {static_cast<GuardKind>(r.int64(0)), r.text(1), r.text(2), r.text(3), r.text(4), r.opt_text(5), r.int64(6)};
}

/// kind, ref, standalone, destroyed, position (from column `first` on)
template <class Row>
StoredComponent component(const Row& r, int first = 0) {
  return {Component{r.text(first), r.text(first + 1), r.flag(first + 2)}, r.flag(first + 3), r.int64(first + 4)};
}

}  // namespace recyclebin::rows
