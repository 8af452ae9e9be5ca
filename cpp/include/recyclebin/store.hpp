#pragma once
// Storage behind the engine. The engine speaks only this interface, so a PostgreSQL store
// can be added without touching the rules.
//
// Contract, failures included:
// - Every engine operation runs in one StoreTransaction. A write transaction holds the
//   store's write lock from begin() (SQLite: BEGIN IMMEDIATE) until commit or destruction,
//   so the checks the engine makes inside it cannot be invalidated by another writer.
// - commit() makes every change durable at once; if commit() throws, nothing of the
//   transaction is visible and the transaction must not be used again.
// - Destroying an uncommitted transaction rolls it back and never throws.
// - Infrastructure failures (disk full, corrupt file, lock timeout) throw
//   Error(storage_error). A write that breaks name uniqueness throws
//   Error(workspace_exists): the unique indexes, not the engine's checks, are the last word.
// - A Store is thread-safe: each thread gets its own transaction (and connection).
//   A StoreTransaction is used by one thread at a time.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "recyclebin/types.hpp"

namespace recyclebin {

/// A workspace as stored, with the bookkeeping the engine needs.
struct WorkspaceRecord {
  Workspace workspace;                   // components are loaded separately
  std::optional<Timestamp> deleted_at;   // set while soft-deleted
  std::optional<Timestamp> purge_at;     // set while soft-deleted
  std::int64_t deleted_seq = 0;          // audit seq of the delete: orders equal deleted_at
  std::optional<Timestamp> orphaned_at;  // set from the revoke of the last member
  bool had_members = false;
  std::vector<std::string> retained_kinds;  // what the delete kept in the bin (for listings)
  // Name reservation keys, unique among all rows that carry them. Live rows and rows
  // reserved in their group carry group_key; rows reserved tenant-wide also carry tenant_key.
  std::optional<std::string> group_key;
  std::optional<std::string> tenant_key;
};

/// A component as stored: `destroyed` once a soft delete destroyed it (awaiting recover).
struct StoredComponent {
  Component component;
  bool destroyed = false;
  std::int64_t position = 0;  // its place in the workspace's list, stable for its lifetime
};

/// A keyset position in list_deleted's order (deleted_at DESC, deleted_seq DESC).
struct DeletedCursor {
  Timestamp deleted_at = 0;
  std::int64_t deleted_seq = 0;
};

/// A row of list_deleted: what the listing shows, and its keyset position.
struct DeletedListing {
  DeletedWorkspace workspace;
  DeletedCursor position;
};

struct DeletedQuery {
  std::string subscription_id;
  std::optional<std::string> resource_group;
  std::optional<Timestamp> purge_after;  // only rows with purge_at > this (expired rows hidden)
  std::optional<DeletedCursor> after;
  std::size_t limit = 100;
};

/// A keyset position in list_live's order (resource_group, name): live names are unique in
/// their group, so the pair names one row of a subscription.
struct LiveCursor {
  std::string resource_group;
  std::string name;
};

struct LiveQuery {
  std::string subscription_id;
  std::optional<std::string> resource_group;
  std::optional<LiveCursor> after;
  std::size_t limit = 100;
};

/// A keyset position in purge_at order, for sweeping expired rows in chunks.
struct ExpiryCursor {
  Timestamp purge_at = 0;
  std::string id;
};

std::string group_name_key(const std::string& subscription_id, const std::string& resource_group,
                           const std::string& name);
std::string tenant_name_key(const std::string& subscription_id, const std::string& name);

class StoreTransaction {
 public:
  virtual ~StoreTransaction() = default;
  virtual void commit() = 0;

  /// An undo point inside the transaction (one level): rollback_to_savepoint() undoes every
  /// change since, release_savepoint() keeps them. Lets several operations share a commit
  /// while a refused one leaves no trace.
  virtual void savepoint() = 0;
  virtual void rollback_to_savepoint() = 0;
  virtual void release_savepoint() = 0;

  virtual std::optional<WorkspaceRecord> find_by_id(const std::string& id) = 0;
  /// The live (running or stopped) workspace with this name in its group.
  virtual std::optional<WorkspaceRecord> find_live(const std::string& subscription_id,
                                                   const std::string& resource_group,
                                                   const std::string& name) = 0;
  /// Soft-deleted workspaces with this name in this group, newest deletion first.
  virtual std::vector<WorkspaceRecord> find_deleted(const std::string& subscription_id,
                                                    const std::string& resource_group,
                                                    const std::string& name) = 0;
  /// Rows carrying either key (live holders and reservations).
  virtual std::vector<WorkspaceRecord> find_name_holders(const std::string& group_key,
                                                         const std::string& tenant_key) = 0;
  virtual void insert_workspace(const WorkspaceRecord& record) = 0;
  // Targeted updates: each writes only its columns, so only the indexes over those change.
  virtual void set_state(const std::string& id, WorkspaceState state) = 0;
  virtual void set_membership(const std::string& id, std::optional<Timestamp> orphaned_at,
                              bool had_members) = 0;
  /// Writes the recycle-bin fields: deleted_at, purge_at, deleted_seq, retention_days,
  /// retained_kinds.
  virtual void set_bin(const WorkspaceRecord& record) = 0;
  /// Writes the name reservation keys (only when they change: each is a unique index).
  virtual void set_name_keys(const WorkspaceRecord& record) = 0;
  /// Removes the row with its components and members (the flags say whether there are any:
  /// a purge sweep skips the statements it does not need).
  virtual void remove_workspace(const std::string& id, bool has_components = true,
                                bool has_members = true) = 0;

  virtual std::vector<StoredComponent> components(const std::string& workspace_id) = 0;
  /// Adds components to a new workspace, at positions 0..n-1.
  virtual void insert_components(const std::string& workspace_id,
                                 const std::vector<Component>& components) = 0;
  virtual void set_component_destroyed(const std::string& workspace_id, std::int64_t position,
                                       bool destroyed) = 0;
  virtual void remove_component(const std::string& workspace_id, std::int64_t position) = 0;

  virtual std::optional<std::string> member_role(const std::string& workspace_id,
                                                 const std::string& principal_id) = 0;
  virtual void put_member(const std::string& workspace_id, const std::string& principal_id,
                          const std::string& role) = 0;
  /// False when the principal was not a member.
  virtual bool remove_member(const std::string& workspace_id, const std::string& principal_id) = 0;
  virtual std::int64_t count_members(const std::string& workspace_id) = 0;

  /// Appends and returns the record's seq.
  virtual std::int64_t append_audit(const AuditRecord& record) = 0;
  virtual std::vector<AuditRecord> audit_log(const std::optional<std::string>& subscription_id) = 0;

  /// Appends a pending task and returns it with its id.
  virtual CleanupTask add_cleanup(const CleanupTask& task) = 0;
  virtual std::vector<CleanupTask> pending_cleanup() = 0;
  /// nullopt: no such task; false: already completed; true: completed now.
  virtual std::optional<bool> complete_cleanup(std::int64_t task_id, Timestamp at) = 0;

  // ---- many rows at once (purge sweeps): a few set statements instead of some per row ----
  /// The components of each workspace, in the order of `workspace_ids`.
  virtual std::vector<std::vector<StoredComponent>> components_of(
      const std::vector<std::string>& workspace_ids) = 0;
  /// Appends `record` once per workspace, in the order given, with each workspace's own
  /// id, subscription, group and name (the rows must exist).
  virtual void append_audit_for(const std::vector<std::string>& workspace_ids, const AuditRecord& record) = 0;
  /// Removes the rows with their components and members.
  virtual void remove_workspaces(const std::vector<std::string>& workspace_ids) = 0;

  /// Soft-deleted rows, newest deletion first (read from the listing indexes alone).
  virtual std::vector<DeletedListing> list_deleted(const DeletedQuery& query) = 0;
  /// Live (running or stopped) rows, in (resource_group, name) order after `after`; one
  /// index range (components are read with components_of).
  virtual std::vector<WorkspaceRecord> list_live(const LiveQuery& query) = 0;
  /// Soft-deleted rows with purge_at <= now, in (purge_at, id) order after `after`.
  virtual std::vector<WorkspaceRecord> expired(Timestamp now, const std::optional<ExpiryCursor>& after,
                                               std::size_t limit) = 0;
  /// Rows orphaned at or before `orphaned_before` (any subscription when nullopt), oldest first.
  virtual std::vector<WorkspaceRecord> orphaned(const std::optional<std::string>& subscription_id,
                                                Timestamp orphaned_before, std::size_t limit) = 0;
  /// Soft-deleted rows of a subscription with purge_at <= now.
  virtual std::vector<WorkspaceRecord> expired_in(const std::string& subscription_id,
                                                  Timestamp now) = 0;
};

enum class TransactionMode { read, write };

/// What a store did in the background (for operators' metrics and tests).
struct StoreStats {
  std::int64_t background_checkpoints = 0;  // WAL checkpoints run off the commit path
  std::int64_t inline_checkpoints = 0;      // run by a committing connection (the backstop)
};

class Store {
 public:
  virtual ~Store() = default;
  virtual std::unique_ptr<StoreTransaction> begin(TransactionMode mode) = 0;
  virtual StoreStats stats() const { return {}; }
};

/// Opens (creating and migrating as needed) a SQLite store. `location` is a file path,
/// "sqlite:///relative.db", "sqlite:////abs/path.db" or ":memory:".
/// WAL, a busy timeout; each thread uses its own connection.
std::unique_ptr<Store> open_sqlite_store(const std::string& location);

/// The schema version open_sqlite_store migrates to (PRAGMA user_version).
int sqlite_schema_version();

}  // namespace recyclebin
