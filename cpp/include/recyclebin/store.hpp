#pragma once
// Storage behind the engine. The engine speaks only this interface; two stores implement
// it: SQLite (embedded, one machine) and PostgreSQL (shared by many replicas). The engine
// cannot tell them apart, and a behaviour that holds on one store only is a bug in the other.
//
// Contract, failures included (both stores):
// - Isolation. The outcome of writes (Store::write) is as if every write of every engine
//   sharing the store ran one at a time: the checks the engine makes inside a write (is the
//   name free? is the workspace still in the bin?) hold when it commits. To that end, in a
//   write the rows that find_by_id, find_live, find_deleted and find_name_holders return are
//   locked against other writes until the transaction ends (a concurrent write of the same
//   workspace waits, then sees its outcome), and a name the engine found free is guarded by
//   the unique indexes. SQLite: its single writer (BEGIN IMMEDIATE) locks everything.
//   PostgreSQL: READ COMMITTED with SELECT ... FOR UPDATE. A read transaction (begin(read))
//   sees one consistent snapshot. A store may answer a write's find_by_id from its own last
//   view of the row without reading it first, if the write then fails and runs again
//   whenever the row or its components differ from that view once the row is locked
//   (PostgreSQL: RowCache, checked by the write's first statements).
// - Conflicts. A conflict is a write that cannot commit as it ran because of a concurrent
//   one: a lock wait past the store's lock timeout, a serialization failure, a deadlock, or
//   a unique index violated by a concurrent commit (the name the engine found free was taken
//   meanwhile; run again, the engine sees the holder and refuses properly). The store rolls the write back and runs
//   it again, with a short randomized backoff, up to kMaxWriteAttempts times; callers never
//   see a conflict. Only when the attempts run out does write() throw
//   Error(storage_error) (or Error(workspace_exists) for a unique violation that persists).
// - Atomicity. When write() returns, every change of its last run is durable; when it
//   throws, nothing of the write is applied, and it is safe to call again.
// - Refusals. When `apply` throws an Error whose code is not storage_error (a refusal
//   decided by the engine), its changes are rolled back, `on_refusal` runs in a write of
//   its own that is committed (the engine audits the refusal there; its failure is not
//   reported), and the refusal is rethrown. Other exceptions are rethrown as they are.
// - `apply` may run more than once (after a conflict): it must derive its answer from its
//   last run only, and have no effect outside the transaction.
// - Infrastructure failures (disk full, corrupt file, unreachable or dropped server, bad
//   credentials) throw Error(storage_error) with a message saying what failed and where
//   (file, or host, port and database), never a password. A write that breaks name
//   uniqueness throws Error(workspace_exists): the unique indexes, not the engine's
//   checks, are the last word.
// - Deferred answers. In a write run by write(), a store may send a statement whose
//   caller reads no answer (the void methods: inserts, set_*, put_member, the removals
//   without a result, add_audit) together with the next one that answers, or with the
//   commit: its failure then surfaces from that later call, or from write() when `apply`
//   returns or throws, and write() handles it exactly as if it had surfaced at once
//   (conflicts retried, nothing applied, a refusal thrown after it not audited). A raw
//   transaction runs every statement when it is called.
// - A raw transaction from begin(write) holds the same isolation but is not retried: a
//   conflict throws Error(storage_error). Destroying an uncommitted transaction rolls it
//   back and never throws; if commit() throws, nothing of the transaction is visible.
// - A Store is thread-safe, and several stores (threads, processes, or for PostgreSQL
//   machines) may share one database. A StoreTransaction is used by one thread at a time.
// How a store makes commits cheap (SQLite: group commit of concurrent writes under
// savepoints; PostgreSQL: a connection pool) is its own business.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/describe/enum.hpp>

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
  // Protections kept on the row, so the sweeps and every delete read them with it. The
  // engine keeps `held` and `has_liens` in step with the holds and liens rows (they are set
  // while at least one exists), and never removes a row that has either.
  bool held = false;
  bool has_liens = false;
};

/// What a guard row is: a legal hold (stops destruction) or a lien (stops any delete).
BOOST_DEFINE_ENUM_CLASS(GuardKind, hold, lien)

/// A hold or a lien as stored (one table holds both: they differ only in what they stop).
struct GuardRow {
  GuardKind kind = GuardKind::hold;
  std::string id;
  std::string workspace_id;
  std::string origin;                    // liens: who needs it; holds: empty
  std::string reason;
  std::optional<std::string> placed_by;  // holds: the principal (nullopt: the platform)
  Timestamp at = 0;                      // placed or created
};

/// What append_audit may answer for a record whose seq the store assigns as it writes it: set
/// as a row's deleted_seq and written by set_bin, it stands for that record's seq (the engine
/// puts append_audit's answer nowhere else).
inline constexpr std::int64_t kSeqOfLastAudit = -1;

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
  std::optional<Timestamp> purge_before;  // only rows with purge_at < this
  std::optional<DeletedCursor> after;
  std::size_t limit = 100;
};

/// A page of the audit log: records with seq > after_seq, seq ascending (keyset by seq).
struct AuditQuery {
  std::optional<std::string> subscription_id;  // nullopt: every subscription
  std::int64_t after_seq = 0;                  // seqs start at 1
  std::optional<std::size_t> limit;            // nullopt: every record after after_seq
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

/// The name reservation keys (defined in store.cpp, the same on every store).
std::string group_name_key(const std::string& subscription_id, const std::string& resource_group,
                           const std::string& name);
std::string tenant_name_key(const std::string& subscription_id, const std::string& name);

class StoreTransaction {
 public:
  virtual ~StoreTransaction() = default;
  virtual void commit() = 0;

  virtual std::optional<WorkspaceRecord> find_by_id(const std::string& id) = 0;
  /// The live (running or stopped) workspace with this name in its group.
  virtual std::optional<WorkspaceRecord> find_live(const std::string& subscription_id,
                                                   const std::string& resource_group,
                                                   const std::string& name) = 0;
  /// Soft-deleted workspaces with this name in this group, newest deletion first.
  virtual std::vector<WorkspaceRecord> find_deleted(const std::string& subscription_id,
                                                    const std::string& resource_group,
                                                    const std::string& name) = 0;
  /// Soft-deleted workspaces with this name in any group of the subscription (where a
  /// tenant-wide reservation holds a name, every one of them holds it), newest deletion first.
  virtual std::vector<WorkspaceRecord> find_deleted_in_tenant(const std::string& subscription_id,
                                                              const std::string& name) = 0;
  /// Rows carrying either key (live holders and reservations).
  virtual std::vector<WorkspaceRecord> find_name_holders(const std::string& group_key,
                                                         const std::string& tenant_key) = 0;
  virtual void insert_workspace(const WorkspaceRecord& record) = 0;
  /// A create's whole change, made only when no row holds the new workspace's names (when
  /// find_name_holders(record.group_key, tenant_key) and, if `tenant_wide`,
  /// find_deleted_in_tenant would find none): the row, its components (at positions 0..n-1),
  /// `owner` as its "owner" member when given, and `audit`. A row that holds the names is a
  /// conflict, and Store::write runs the write again: one another write made since the
  /// engine looked or, when names_checked_at_insert(), any. The default makes the four
  /// changes in turn, for a store whose write lock keeps the engine's lookup true until it
  /// commits (the unique indexes stay the last word).
  virtual void insert_new_workspace(const WorkspaceRecord& record, const std::string& tenant_key, bool tenant_wide,
                                    const std::optional<std::string>& owner, const AuditRecord& audit);
  /// Whether insert_new_workspace checks the names on its own, so that a create need not
  /// look for their holders first. PostgreSQL, in a write's first run: the create is then
  /// one round trip, and when a row turns out to hold a name the write runs again with this
  /// false (the engine then finds the holder and answers why).
  virtual bool names_checked_at_insert() const { return false; }
  // Targeted updates: each writes only its columns, so only the indexes over those change.
  virtual void set_state(const std::string& id, WorkspaceState state) = 0;
  virtual void set_membership(const std::string& id, std::optional<Timestamp> orphaned_at,
                              bool had_members) = 0;
  /// Writes the recycle-bin fields: deleted_at, purge_at, deleted_seq, retention_days,
  /// retained_kinds, and the name reservation keys group_key and tenant_key.
  virtual void set_bin(const WorkspaceRecord& record) = 0;
  /// Writes the protection fields: held, has_liens, workspace.purge_protection and
  /// workspace.auto_delete_at.
  virtual void set_protection(const WorkspaceRecord& record) = 0;
  /// Removes the row with its components and members.
  virtual void remove_workspace(const std::string& id) = 0;

  // ---- legal holds and liens: guard rows of their own, by kind ----
  virtual void insert_guard(const GuardRow& guard) = 0;
  /// The guard of this kind with this id.
  virtual std::optional<GuardRow> find_guard(GuardKind kind, const std::string& id) = 0;
  /// False when there was no such guard of this kind.
  virtual bool remove_guard(GuardKind kind, const std::string& id) = 0;
  /// The workspace's guards of this kind, oldest first.
  virtual std::vector<GuardRow> guards(GuardKind kind, const std::string& workspace_id) = 0;

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

  /// Appends and returns the record's seq, or kSeqOfLastAudit where the store gives the record
  /// its seq as it writes it (then the seq is not known yet).
  virtual std::int64_t append_audit(const AuditRecord& record) = 0;
  /// Appends a record whose seq the caller does not need (so a store need not wait for it).
  virtual void add_audit(const AuditRecord& record) { append_audit(record); }
  virtual std::vector<AuditRecord> audit_log(const AuditQuery& query) = 0;

  /// Appends a pending task and returns it with its id.
  virtual CleanupTask add_cleanup(const CleanupTask& task) = 0;
  /// Every pending (not completed) task, oldest first, leased or not.
  virtual std::vector<CleanupTask> pending_cleanup() = 0;
  /// nullopt: no such task; false: already completed; true: completed now.
  virtual std::optional<bool> complete_cleanup(std::int64_t task_id, Timestamp at) = 0;
  /// Leases up to `limit` pending tasks to `worker` until `leased_until`: those, oldest
  /// first, not leased or whose lease ended by `now`, and claimable again (fail_cleanup's
  /// retry time) by `now`. Tasks another transaction is claiming at the same moment are
  /// skipped, not waited for (PostgreSQL: FOR UPDATE SKIP LOCKED). Returns them, oldest first.
  virtual std::vector<CleanupTask> claim_cleanup(const std::string& worker, Timestamp now,
                                                 Timestamp leased_until, std::size_t limit) = 0;
  /// Ends the lease of a pending task, adds one to its attempts, records `error` and makes
  /// it claimable from `retry_at`. nullopt: no such task; false: already completed (left as
  /// it is); true: recorded.
  virtual std::optional<bool> fail_cleanup(std::int64_t task_id, const std::string& error,
                                           Timestamp retry_at) = 0;

  // ---- many rows at once (purge sweeps): a few set statements instead of some per row ----
  /// The components of each workspace, in the order of `workspace_ids`.
  virtual std::vector<std::vector<StoredComponent>> components_of(
      const std::vector<std::string>& workspace_ids) = 0;
  /// Appends `record` once per workspace, in the order given, with each workspace's own
  /// id, subscription, group and name (the rows must exist).
  virtual void append_audit_for(const std::vector<std::string>& workspace_ids, const AuditRecord& record) = 0;
  /// Removes the rows with their components and members.
  virtual void remove_workspaces(const std::vector<std::string>& workspace_ids) = 0;

  /// Soft-deleted rows, newest deletion first (read from the listing indexes alone). A held
  /// row is listed past purge_after too: a legal hold keeps it in the bin.
  virtual std::vector<DeletedListing> list_deleted(const DeletedQuery& query) = 0;
  /// Live (running or stopped) rows, in (resource_group, name) order after `after`; one
  /// index range (components are read with components_of).
  virtual std::vector<WorkspaceRecord> list_live(const LiveQuery& query) = 0;
  /// Soft-deleted rows with purge_at <= now and no hold, in (purge_at, id) order after
  /// `after`. In a write, rows another write is removing at the same moment are skipped, not
  /// waited for.
  virtual std::vector<WorkspaceRecord> expired(Timestamp now, const std::optional<ExpiryCursor>& after,
                                               std::size_t limit) = 0;
  /// Live rows with auto_delete_at <= now, in (auto_delete_at, id) order after `after` (its
  /// purge_at field holds the auto_delete_at). In a write, rows another write holds at the
  /// same moment are skipped, not waited for.
  virtual std::vector<WorkspaceRecord> auto_delete_due(Timestamp now, const std::optional<ExpiryCursor>& after,
                                                       std::size_t limit) = 0;
  /// Rows orphaned at or before `orphaned_before` (any subscription when nullopt), oldest
  /// first. In a write, rows another write is removing at the same moment are skipped.
  virtual std::vector<WorkspaceRecord> orphaned(const std::optional<std::string>& subscription_id,
                                                Timestamp orphaned_before, std::size_t limit) = 0;
  /// Soft-deleted rows of a subscription with purge_at <= now and no hold.
  virtual std::vector<WorkspaceRecord> expired_in(const std::string& subscription_id,
                                                  Timestamp now) = 0;
};

enum class TransactionMode { read, write };

/// How many times Store::write runs a write that keeps meeting conflicts.
inline constexpr int kMaxWriteAttempts = 64;

class Store {
 public:
  using Apply = std::function<void(StoreTransaction&)>;
  using OnRefusal = std::function<void(StoreTransaction&, const std::exception_ptr&)>;

  virtual ~Store() = default;
  /// A transaction used as it is: reads, or a write its caller commits (not retried).
  virtual std::unique_ptr<StoreTransaction> begin(TransactionMode mode) = 0;
  /// A read that makes one lookup (one store call, whose answer holds all it needs): a store
  /// may run it outside a transaction, on the statement's own snapshot (PostgreSQL: no BEGIN
  /// and no ROLLBACK, so no messages beyond the statement). A second call on it would read
  /// another snapshot. The default is begin(read).
  virtual std::unique_ptr<StoreTransaction> begin_one_read() { return begin(TransactionMode::read); }
  /// Runs `apply` in a write transaction and commits it, retrying conflicts (see above).
  /// `on_refusal` may be empty.
  virtual void write(const Apply& apply, const OnRefusal& on_refusal) = 0;
};

/// Opens (creating and migrating as needed) the store at `location`: a libpq connection URI
/// starting with "postgresql://" or "postgres://" opens the PostgreSQL store, anything else
/// (a file path, "sqlite:///relative.db", "sqlite:////abs/path.db", ":memory:") SQLite.
std::unique_ptr<Store> open_store(const std::string& location);

/// Whether `location` names a PostgreSQL database (the rule open_store picks by).
bool is_postgres_location(const std::string& location);

}  // namespace recyclebin
