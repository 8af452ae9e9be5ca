// The shared PostgreSQL store. A write is a READ COMMITTED transaction that locks the rows
// it acts on as it reads them (SELECT ... FOR UPDATE: a concurrent write of the same
// workspace waits, then sees its outcome), with the partial unique indexes as the last word
// on names (the same pair as on SQLite): a unique violation, a deadlock, a lock timeout or a
// serialization failure is a conflict, and the write runs again here. Purge sweeps and
// cleanup claims take their rows FOR UPDATE SKIP LOCKED, so several replicas work side by
// side instead of queueing on each other's rows. (SERIALIZABLE would give the same outcomes
// with far more conflicts: its predicate locks on index pages make unrelated workspaces
// collide.) A small pool of connections
// (one per concurrent transaction), each reconnected when it drops.
//
// Round trips are what a write costs, so a write run by Store::write waits only for the
// answers the engine reads: the statements that answer nothing are queued and sent with the
// next one that answers, or with COMMIT (pg::Connection::queue); a row locked by find_by_id
// or find_deleted comes with its components in the same round trip; and the seq of the first
// audit record is reserved in the opening round trip. An engine's soft delete or recover is
// two round trips: its lookups, then its changes with the COMMIT. A create is one: in a
// write's first run it does not look for its names' holders (names_checked_at_insert), its
// one statement inserts nothing when they are held, and the BEGIN, that statement and the
// COMMIT go together (pg::Connection::commit); held names send it round again, looking first.

#include "recyclebin/postgres_store.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "pg.hpp"
#include "recyclebin/error.hpp"
#include "connection_pool.hpp"
#include "store_rows.hpp"

namespace recyclebin {
namespace {

constexpr std::size_t kMaxConnections = 16;
constexpr int kMaxReconnects = 3;              // a write whose connection dropped runs again this often
constexpr const char* kStatementTimeout = "30s";  // unless the URI sets one
constexpr const char* kLockTimeout = "5s";        // then a conflict, retried

// Schema migrations, applied in order; each number is recorded in schema_migrations.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE workspaces (
  id              text PRIMARY KEY,
  subscription_id text NOT NULL,
  resource_group  text NOT NULL,
  name            text NOT NULL,
  state           smallint NOT NULL,           -- WorkspaceState
  retention_days  integer NOT NULL,
  cmk_encrypted   boolean NOT NULL,
  created_at      bigint NOT NULL,             -- microseconds since the epoch, UTC
  deleted_at      bigint,
  purge_at        bigint,
  deleted_seq     bigint NOT NULL DEFAULT 0,
  orphaned_at     bigint,
  had_members     boolean NOT NULL DEFAULT false,
  group_key       text,                        -- name held in the group (live or reserved)
  tenant_key      text,                        -- name held tenant-wide (reserved)
  retained_kinds  text NOT NULL DEFAULT ''     -- newline-separated, set by a soft delete
);
CREATE UNIQUE INDEX workspaces_group_key ON workspaces (group_key) WHERE group_key IS NOT NULL;
CREATE UNIQUE INDEX workspaces_tenant_key ON workspaces (tenant_key) WHERE tenant_key IS NOT NULL;
CREATE INDEX workspaces_deleted ON workspaces (subscription_id, deleted_at DESC, deleted_seq DESC)
  WHERE deleted_at IS NOT NULL;
CREATE INDEX workspaces_deleted_group
  ON workspaces (subscription_id, resource_group, deleted_at DESC, deleted_seq DESC)
  WHERE deleted_at IS NOT NULL;
CREATE INDEX workspaces_deleted_name
  ON workspaces (subscription_id, resource_group, name, deleted_at DESC, deleted_seq DESC)
  WHERE deleted_at IS NOT NULL;
CREATE INDEX workspaces_purge_at ON workspaces (purge_at, id) WHERE purge_at IS NOT NULL;
CREATE INDEX workspaces_orphaned ON workspaces (orphaned_at) WHERE orphaned_at IS NOT NULL;

CREATE TABLE components (
  workspace_id text NOT NULL,                  -- workspaces(id); removed with it by the store
  position     bigint NOT NULL,
  kind         text NOT NULL,
  ref          text NOT NULL,
  standalone   boolean NOT NULL,
  destroyed    boolean NOT NULL DEFAULT false,
  PRIMARY KEY (workspace_id, position)
);

CREATE TABLE members (
  workspace_id text NOT NULL,                  -- workspaces(id); removed with it by the store
  principal_id text NOT NULL,
  role         text NOT NULL,
  PRIMARY KEY (workspace_id, principal_id)
);

CREATE TABLE audit_log (
  seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at              bigint NOT NULL,
  action          text NOT NULL,
  subscription_id text NOT NULL,
  resource_group  text NOT NULL,
  name            text NOT NULL,
  outcome         text NOT NULL,
  workspace_id    text NOT NULL,
  principal_id    text NOT NULL
);
CREATE INDEX audit_log_subscription ON audit_log (subscription_id, seq);

CREATE TABLE cleanup_tasks (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind         text NOT NULL,
  ref          text NOT NULL,
  workspace_id text NOT NULL,                  -- no foreign key: the workspace is gone by design
  created_at   bigint NOT NULL,
  completed_at bigint,
  attempts     integer NOT NULL DEFAULT 0,
  last_error   text,
  leased_by    text,
  leased_until bigint,
  available_at bigint NOT NULL DEFAULT 0       -- claimable from (fail_cleanup's retry time)
);
CREATE INDEX cleanup_tasks_pending ON cleanup_tasks (id) WHERE completed_at IS NULL;
)sql",
    // 2: the live listing (list_live) walks one index range in (resource_group, name) order.
    // Byte order (COLLATE "C"), as SQLite's, whatever the database's collation.
    R"sql(
CREATE INDEX workspaces_live_listing
  ON workspaces (subscription_id, resource_group COLLATE "C", name COLLATE "C")
  WHERE deleted_at IS NULL;
)sql",
    // 3: a tenant-wide reservation: every soft-deleted workspace of a name in the
    // subscription holds it (find_deleted_in_tenant).
    R"sql(
CREATE INDEX workspaces_deleted_in_tenant ON workspaces (subscription_id, name) WHERE deleted_at IS NOT NULL;
)sql",
    // 4: protections. Legal holds and liens are rows of their own; the workspace row carries
    // whether it has any (held, has_liens), its purge protection and its auto-deletion time,
    // so deletes and sweeps read them with the row (and lock them with it).
    R"sql(
ALTER TABLE workspaces ADD COLUMN held boolean NOT NULL DEFAULT false;
ALTER TABLE workspaces ADD COLUMN has_liens boolean NOT NULL DEFAULT false;
ALTER TABLE workspaces ADD COLUMN purge_protection boolean NOT NULL DEFAULT false;
ALTER TABLE workspaces ADD COLUMN auto_delete_at bigint;
CREATE INDEX workspaces_auto_delete ON workspaces (auto_delete_at, id)
  WHERE auto_delete_at IS NOT NULL AND deleted_at IS NULL;

CREATE TABLE guards (                          -- legal holds and liens (GuardKind)
  id           text PRIMARY KEY,
  kind         smallint NOT NULL,
  workspace_id text NOT NULL,                  -- workspaces(id); never removed while it has guards
  origin       text NOT NULL,                  -- liens: who needs it
  reason       text NOT NULL,
  placed_by    text,                           -- holds: NULL for the platform
  placed_at    bigint NOT NULL
);
CREATE INDEX guards_workspace ON guards (workspace_id, kind, placed_at);
)sql",
    // 5: a write that starts from the row as this store last saw it (RowCache) checks, as its
    // first statements, that the row and its components are still that; rb_unchanged fails
    // the transaction when they are not (the store then runs the write again, reading afresh).
    R"sql(
CREATE FUNCTION rb_unchanged(matched bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  IF matched <> 1 THEN
    RAISE EXCEPTION 'the workspace changed since this store last read it' USING ERRCODE = 'RB409';
  END IF;
  RETURN matched;
END
$$;
)sql",
};

#define RB_WORKSPACE_COLUMNS                                                                      \
  "id, subscription_id, resource_group, name, state, retention_days, cmk_encrypted, created_at, " \
  "deleted_at, purge_at, deleted_seq, orphaned_at, had_members, group_key, tenant_key, retained_kinds, " \
  "held, has_liens, purge_protection, auto_delete_at "
/// The values of RB_WORKSPACE_COLUMNS as parameters $1..$20 (workspace_params), typed.
#define RB_WORKSPACE_VALUES                                                                             \
  "$1::text, $2::text, $3::text, $4::text, $5::smallint, $6::integer, $7::boolean, $8::bigint, "       \
  "$9::bigint, $10::bigint, $11::bigint, $12::bigint, $13::boolean, $14::text, $15::text, $16::text, " \
  "$17::boolean, $18::boolean, $19::boolean, $20::bigint "
#define RB_SELECT_WORKSPACES "SELECT " RB_WORKSPACE_COLUMNS "FROM workspaces "
/// A sweep's SQL twice, as due() takes it: as it is, and locking what it finds.
#define RB_READ_AND_LOCKED(sql) sql, sql " FOR UPDATE SKIP LOCKED"
#define RB_GUARD_COLUMNS "kind, id, workspace_id, origin, reason, placed_by, placed_at"
#define RB_INSERT_AUDIT                                                                              \
  "INSERT INTO audit_log (at, action, subscription_id, resource_group, name, outcome, workspace_id, " \
  "principal_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
#define RB_INSERT_AUDIT_WITH_SEQ                                                                     \
  "INSERT INTO audit_log (at, action, subscription_id, resource_group, name, outcome, workspace_id, " \
  "principal_id, seq) OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
#define RB_CLEANUP_COLUMNS \
  "id, kind, ref, workspace_id, created_at, attempts, last_error, leased_by, leased_until "

using rows::join_lines;

/// One row of a result, read the way store_rows.hpp reads rows.
struct RowView {
  const pg::Result& result;
  int row;
  std::string text(int c) const { return result.text(row, c); }
  std::int64_t int64(int c) const { return result.int64(row, c); }
  bool flag(int c) const { return result.boolean(row, c); }
  std::optional<std::string> opt_text(int c) const { return result.opt_text(row, c); }
  std::optional<std::int64_t> opt_int64(int c) const { return result.opt_int64(row, c); }
};

WorkspaceRecord read_workspace(const pg::Result& r, int row) { return rows::workspace(RowView{r, row}); }

std::vector<WorkspaceRecord> read_workspaces(const pg::Result& r) {
  std::vector<WorkspaceRecord> out;
  out.reserve(static_cast<std::size_t>(r.rows()));
  for (int row = 0; row < r.rows(); ++row) out.push_back(read_workspace(r, row));
  return out;
}

std::optional<WorkspaceRecord> read_one(const pg::Result& r) {
  if (r.rows() == 0) return std::nullopt;
  return read_workspace(r, 0);
}

CleanupTask read_cleanup(const pg::Result& r, int row) { return rows::cleanup_task(RowView{r, row}); }

std::vector<CleanupTask> read_cleanups(const pg::Result& r) {
  std::vector<CleanupTask> out;
  for (int row = 0; row < r.rows(); ++row) out.push_back(read_cleanup(r, row));
  return out;
}

std::int64_t limit_param(std::size_t limit) {
  return static_cast<std::int64_t>(std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max()));
}

/// The first schema of a search_path setting ("$user" counts only when that schema exists).
std::string first_schema(const std::string& search_path, const std::string& user, bool user_schema_exists) {
  std::size_t start = 0;
  while (start <= search_path.size()) {
    std::size_t end = search_path.find(',', start);
    if (end == std::string::npos) end = search_path.size();
    std::string item = search_path.substr(start, end - start);
    const auto first = item.find_first_not_of(' ');
    const auto last = item.find_last_not_of(' ');
    item = first == std::string::npos ? std::string() : item.substr(first, last - first + 1);
    if (item.size() >= 2 && item.front() == '"' && item.back() == '"') {
      std::string unquoted;
      for (std::size_t i = 1; i + 1 < item.size(); ++i) {
        unquoted += item[i];
        if (item[i] == '"' && item[i + 1] == '"') ++i;
      }
      item = unquoted;
    }
    if (item == "$user") {
      if (user_schema_exists) return user;
    } else if (!item.empty()) {
      return item;
    }
    start = end + 1;
  }
  return "public";
}

class PostgresStore;

/// A create that did not look for its names' holders found one as it inserted (nothing was
/// written): Store::write runs it again, looking first.
struct NamesHeld : std::exception {
  const char* what() const noexcept override { return "the new workspace's names are held"; }
};

/// The rows this store last saw committed (read, or written by its own transactions), with
/// their components. A write that looks a row up by id starts from its entry without reading
/// the row, and checks in its first statements that the row and its components are still
/// exactly that (PostgresTransaction::find_by_id): a stale entry costs the write one more run,
/// never a wrong decision. Shared by the store's transactions; bounded (when full it starts
/// over).
class RowCache {
 public:
  struct Entry {
    WorkspaceRecord record;  // as find_by_id returns it: no components in record.workspace
    std::vector<StoredComponent> components;
  };

  std::optional<Entry> get(const std::string& id) const {
    std::lock_guard lock(mutex_);
    const auto found = entries_.find(id);
    if (found == entries_.end()) return std::nullopt;
    return found->second;
  }
  /// The cached soft-deleted rows of this name in this group, in find_deleted's order.
  std::vector<Entry> deleted_named(const std::string& subscription_id, const std::string& resource_group,
                                   const std::string& name) const {
    std::vector<Entry> out;
    std::lock_guard lock(mutex_);
    const auto named = deleted_.find(Name{subscription_id, resource_group, name});
    if (named == deleted_.end()) return out;
    for (const auto& id : named->second) out.push_back(entries_.at(id));
    std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.record.deleted_at, a.record.deleted_seq) > std::tie(b.record.deleted_at, b.record.deleted_seq);
    });
    return out;
  }
  void put(WorkspaceRecord record, std::vector<StoredComponent> components) {
    record.workspace.components.clear();
    std::string id = record.workspace.id;
    std::lock_guard lock(mutex_);
    if (entries_.size() >= kMaxEntries) {
      entries_.clear();
      deleted_.clear();
    }
    drop(id);
    if (record.deleted_at) deleted_[name_of(record)].insert(id);
    entries_.emplace(std::move(id), Entry{std::move(record), std::move(components)});
  }
  void forget(const std::string& id) {
    std::lock_guard lock(mutex_);
    drop(id);
  }

 private:
  using Name = std::tuple<std::string, std::string, std::string>;  // subscription, group, name
  static Name name_of(const WorkspaceRecord& r) {
    return {r.workspace.subscription_id, r.workspace.resource_group, r.workspace.name};
  }
  void drop(const std::string& id) {
    const auto found = entries_.find(id);
    if (found == entries_.end()) return;
    if (found->second.record.deleted_at) {
      const auto named = deleted_.find(name_of(found->second.record));
      named->second.erase(id);
      if (named->second.empty()) deleted_.erase(named);
    }
    entries_.erase(found);
  }

  static constexpr std::size_t kMaxEntries = 4096;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::map<Name, std::unordered_set<std::string>> deleted_;  // ids of the soft-deleted entries, by name
};

const char* const kComponentsSql =
    "SELECT kind, ref, standalone, destroyed, position FROM components WHERE workspace_id = $1 ORDER BY position";

class PostgresTransaction final : public StoreTransaction {
 public:
  /// `queue_writes`: the transaction is run by Store::write, which handles a failure however
  /// late it surfaces, so the statements that answer nothing are queued (pg::Connection::queue).
  /// `names_at_insert`: insert_new_workspace checks the names itself (a write's first run).
  /// `alone`: a read of one statement, outside a transaction (Store::begin_one_read).
  /// `from_cache`: find_by_id starts from the store's RowCache (a write's first run).
  PostgresTransaction(PostgresStore& store, std::unique_ptr<pg::Connection> connection, TransactionMode mode,
                      bool queue_writes, bool names_at_insert = false, bool alone = false,
                      bool from_cache = false);
  ~PostgresTransaction() override;

  void commit() override {
    conn_->rethrow_failure();
    if (conn_->deferred() && !conn_->queued()) {
      conn_->drop_unsent();  // no statement ran: nothing to commit
      return;
    }
    // When no statement awaited an answer (a create whose names are checked as it inserts),
    // the opening, the queued statements and the COMMIT are one round trip.
    committing_ = true;
    try {
      conn_->commit();
    } catch (const pg::ConnectionLost&) {
      // The server said a statement in front of the COMMIT failed: the COMMIT cannot have applied.
      if (conn_->failed_before_last()) committing_ = false;
      throw;
    }
    publish();
  }
  /// Forgets the cached rows this write started from (they were found changed: pg::Stale).
  void forget_cached() {
    for (const auto& id : guarded_) cache_.forget(id);
  }
  /// Whether the connection was lost with the COMMIT sent, so that it may have applied.
  bool committing() const { return committing_; }
  /// Sends the queued statements and checks their answers (their failure is thrown).
  void flush() { conn_->flush(); }

  // A read brings the components of the workspaces it finds in the same statement (one round
  // trip); components() and components_of() then answer from them. `order` (empty, or ending
  // in ", ") keeps the rows' order.
#define RB_WITH_COMPONENTS(select, order)                                                    \
  "WITH w AS (" select ") SELECT w.*, c.kind, c.ref, c.standalone, c.destroyed, c.position " \
  "FROM w LEFT JOIN components AS c ON c.workspace_id = w.id ORDER BY " order "c.position"

  // In a write, the point lookups lock what they return (FOR UPDATE): the checks the engine
  // makes on a row hold until the transaction ends.
#define RB_LOOKUP(sql) (mode_ == TransactionMode::write ? sql " FOR UPDATE" : sql)

  std::optional<WorkspaceRecord> find_by_id(const std::string& id) override {
    if (mode_ == TransactionMode::read) {
      return cached(first_of(read_with_components(
          conn_->exec(RB_WITH_COMPONENTS(RB_SELECT_WORKSPACES "WHERE id = $1", ""), pg::Params().add(id)))));
    }
    if (from_cache_) {
      if (auto entry = cache_.get(id)) return from_cache(std::move(*entry));
    }
    // The row, locked, and then its components in the same round trip: the second statement
    // starts after the lock is held, so it sees the row's last writer's components.
    pg::Params key;
    key.add(id);
    const auto results = conn_->exec_each({{RB_SELECT_WORKSPACES "WHERE id = $1 FOR UPDATE", &key},
                                           {kComponentsSql, &key}});
    const pg::Result& components = results[1];
    auto record = read_one(results[0]);
    if (record) {
      auto& kept = loaded_[id];
      kept.clear();
      for (int row = 0; row < components.rows(); ++row) kept.push_back(rows::component(RowView{components, row}));
      remember(*record);
    }
    return record;
  }

  std::optional<WorkspaceRecord> find_live(const std::string& subscription_id, const std::string& resource_group,
                                           const std::string& name) override {
    pg::Params key;
    key.add(group_name_key(subscription_id, resource_group, name));
    if (mode_ == TransactionMode::read) {
      return cached(first_of(read_with_components(conn_->exec(
          RB_WITH_COMPONENTS(RB_SELECT_WORKSPACES "WHERE group_key = $1 AND deleted_at IS NULL", ""), key))));
    }
    if (no_live_.count(group_name_key(subscription_id, resource_group, name)) > 0) return std::nullopt;
    return read_one(conn_->exec(RB_LOOKUP(RB_SELECT_WORKSPACES "WHERE group_key = $1 AND deleted_at IS NULL"), key));
  }

  std::vector<WorkspaceRecord> find_deleted(const std::string& subscription_id, const std::string& resource_group,
                                            const std::string& name) override {
#define RB_FIND_DELETED                                                 \
  RB_SELECT_WORKSPACES "WHERE subscription_id = $1 AND resource_group = $2 AND name = $3 " \
                       "AND deleted_at IS NOT NULL ORDER BY deleted_at DESC, deleted_seq DESC"
    pg::Params key;
    key.add(subscription_id).add(resource_group).add(name);
    if (mode_ == TransactionMode::read) return read_workspaces(conn_->exec(RB_FIND_DELETED, key));
    if (from_cache_) {
      if (auto entries = cache_.deleted_named(subscription_id, resource_group, name); !entries.empty()) {
        return expect_deleted_unchanged(std::move(entries), std::move(key));
      }
    }
    // As find_by_id: the rows locked, then their components (the rows cannot change once
    // locked, so the second statement finds each of them by the same condition); and whether
    // a live workspace has the name (what recovering one asks next, find_live). An answer of
    // none locks nothing in either case: a live one made after it is stopped by the unique
    // index when this write gives the name back (set_bin), as it would be after find_live.
    const std::string live_key = group_name_key(subscription_id, resource_group, name);
    pg::Params live;
    live.add(live_key);
    const auto results = conn_->exec_each(
        {{RB_FIND_DELETED " FOR UPDATE", &key},
         {"SELECT c.workspace_id, c.kind, c.ref, c.standalone, c.destroyed, c.position FROM components AS c "
          "JOIN workspaces AS w ON w.id = c.workspace_id WHERE w.subscription_id = $1 AND w.resource_group = $2 "
          "AND w.name = $3 AND w.deleted_at IS NOT NULL ORDER BY c.workspace_id, c.position",
          &key},
         {"SELECT EXISTS (SELECT 1 FROM workspaces WHERE group_key = $1 AND deleted_at IS NULL)", &live}});
#undef RB_FIND_DELETED
    const pg::Result& components = results[1];
    if (!results[2].boolean(0, 0)) no_live_.insert(live_key);
    auto records = read_workspaces(results[0]);
    for (const auto& record : records) {
      loaded_[record.workspace.id].clear();
      remember(record);
    }
    for (int row = 0; row < components.rows(); ++row) {
      const auto kept = loaded_.find(components.text(row, 0));
      if (kept != loaded_.end()) kept->second.push_back(rows::component(RowView{components, row}, 1));
    }
    return records;
  }

  std::vector<WorkspaceRecord> find_deleted_in_tenant(const std::string& subscription_id,
                                                      const std::string& name) override {
    return read_workspaces(
        conn_->exec(RB_LOOKUP(RB_SELECT_WORKSPACES
                              "WHERE subscription_id = $1 AND name = $2 AND deleted_at IS NOT NULL "
                              "ORDER BY deleted_at DESC, deleted_seq DESC"),
                    pg::Params().add(subscription_id).add(name)));
  }

  std::vector<WorkspaceRecord> find_name_holders(const std::string& group_key, const std::string& tenant_key) override {
    // The group holder first, as on SQLite (one row may hold both keys).
    return read_workspaces(conn_->exec(RB_LOOKUP(RB_SELECT_WORKSPACES
                                                 "WHERE group_key = $1 OR tenant_key = $2 "
                                                 "ORDER BY (group_key IS NOT DISTINCT FROM $1) DESC, id"),
                                       pg::Params().add(group_key).add(tenant_key)));
  }
#undef RB_LOOKUP

  void insert_workspace(const WorkspaceRecord& r) override {
    no_live_.clear();
    forget(r.workspace.id);
    run_void("INSERT INTO workspaces (" RB_WORKSPACE_COLUMNS
             ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, "
             "$19, $20)",
             workspace_params(r));
  }

  /// A row's columns, in the order of RB_WORKSPACE_COLUMNS.
  static pg::Params workspace_params(const WorkspaceRecord& r) {
    const Workspace& w = r.workspace;
    pg::Params params;
    params.add(w.id)
        .add(w.subscription_id)
        .add(w.resource_group)
        .add(w.name)
        .add(static_cast<std::int64_t>(w.state))
        .add(w.retention_days)
        .add(w.cmk_encrypted)
        .add(w.created_at)
        .add(r.deleted_at)
        .add(r.purge_at)
        .add(r.deleted_seq)
        .add(r.orphaned_at)
        .add(r.had_members)
        .add(r.group_key)
        .add(r.tenant_key)
        .add(join_lines(r.retained_kinds))
        .add(r.held)
        .add(r.has_liens)
        .add(w.purge_protection)
        .add(w.auto_delete_at);
    return params;
  }

  bool names_checked_at_insert() const override { return names_at_insert_; }

  void insert_new_workspace(const WorkspaceRecord& r, const std::string& tenant_key, bool tenant_wide,
                            const std::optional<std::string>& owner, const AuditRecord& audit) override {
    // One statement: every part is written from the row the first one inserts, so held
    // names write nothing at all (and the COMMIT behind it commits nothing).
    const Workspace& w = r.workspace;
    std::vector<std::string> kinds, refs;
    std::vector<bool> standalone;
    for (const Component& c : w.components) {
      kinds.push_back(c.kind);
      refs.push_back(c.ref);
      standalone.push_back(c.standalone);
    }
    no_live_.clear();
    // What the row and its components are once this commits (it commits only if inserted).
    auto& made = loaded_[w.id];
    made.clear();
    for (std::size_t i = 0; i < w.components.size(); ++i) {
      made.push_back({w.components[i], false, static_cast<std::int64_t>(i)});
    }
    remember(r);
    const std::optional<std::int64_t> seq = take_reserved_seq();  // nullopt: the sequence's next
    run_void(
        "WITH w AS (INSERT INTO workspaces (" RB_WORKSPACE_COLUMNS ") "
        "SELECT " RB_WORKSPACE_VALUES
        "WHERE NOT EXISTS (SELECT 1 FROM workspaces WHERE group_key = $14::text) "
        "AND NOT EXISTS (SELECT 1 FROM workspaces WHERE tenant_key = $21::text) "
        "AND NOT ($22::boolean AND EXISTS (SELECT 1 FROM workspaces WHERE subscription_id = $2::text "
        "AND name = $4::text AND deleted_at IS NOT NULL)) "
        "RETURNING id), "
        "c AS (INSERT INTO components (workspace_id, position, kind, ref, standalone) "
        "SELECT w.id, c.ord - 1, c.kind, c.ref, c.standalone "
        "FROM w, unnest($23::text[], $24::text[], $25::boolean[]) WITH ORDINALITY AS c(kind, ref, standalone, ord)), "
        "m AS (INSERT INTO members (workspace_id, principal_id, role) "
        "SELECT w.id, $26::text, 'owner' FROM w WHERE $26::text IS NOT NULL), "
        "a AS (INSERT INTO audit_log (at, action, subscription_id, resource_group, name, outcome, workspace_id, "
        "principal_id, seq) OVERRIDING SYSTEM VALUE "
        "SELECT $27::bigint, $28::text, $29::text, $30::text, $31::text, $32::text, $33::text, $34::text, "
        "coalesce($35::bigint, nextval($36::oid::regclass)) FROM w) "
        "SELECT count(*) FROM w",
        workspace_params(r)
            .add(tenant_key)
            .add(tenant_wide)
            .add_array(kinds)
            .add_array(refs)
            .add_array(standalone)
            .add(owner)
            .add(audit.at)
            .add(audit.action)
            .add(audit.subscription_id)
            .add(audit.resource_group)
            .add(audit.name)
            .add(audit.outcome)
            .add(audit.workspace_id)
            .add(audit.principal_id)
            .add(seq)
            .add(audit_sequence_),
        [checked_first = names_at_insert_](const pg::Result& result) {
          if (result.int64(0, 0) != 0) return;
          // Not looked up first: the write runs again with the lookup, which says who holds
          // the names. Looked up first: a concurrent write took them since, a conflict.
          if (checked_first) throw NamesHeld();
          throw pg::Conflict(ErrorCode::workspace_exists,
                             "the name was taken by a concurrent write since this one looked");
        },
        pg::Queue::commit_may_follow);
  }

  void set_state(const std::string& id, WorkspaceState state) override {
    update_row("UPDATE workspaces SET state = $1 WHERE id = $2",
               pg::Params().add(static_cast<std::int64_t>(state)).add(id), id);
    patch(id, [&](WorkspaceRecord& seen) { seen.workspace.state = state; });
  }

  void set_membership(const std::string& id, std::optional<Timestamp> orphaned_at, bool had_members) override {
    update_row("UPDATE workspaces SET orphaned_at = $1, had_members = $2 WHERE id = $3",
               pg::Params().add(orphaned_at).add(had_members).add(id), id);
    patch(id, [&](WorkspaceRecord& seen) {
      seen.orphaned_at = orphaned_at;
      seen.had_members = had_members;
    });
  }

  void set_bin(const WorkspaceRecord& r) override {
    no_live_.clear();
    const std::string& id = r.workspace.id;
    pg::Params params;
    params.add(r.deleted_at)
        .add(r.purge_at)
        .add(r.workspace.retention_days)
        .add(join_lines(r.retained_kinds))
        .add(r.group_key)
        .add(r.tenant_key)
        .add(id);
    patch(id, [&](WorkspaceRecord& seen) {
      seen.deleted_at = r.deleted_at;
      seen.purge_at = r.purge_at;
      seen.deleted_seq = r.deleted_seq;
      seen.workspace.retention_days = r.workspace.retention_days;
      seen.retained_kinds = r.retained_kinds;
      seen.group_key = r.group_key;
      seen.tenant_key = r.tenant_key;
    });
#define RB_SET_BIN(seq)                                                                        \
  "UPDATE workspaces SET deleted_at = $1, purge_at = $2, deleted_seq = " seq ", retention_days = $3, " \
  "retained_kinds = $4, group_key = $5, tenant_key = $6 WHERE id = $7"
    if (r.deleted_seq != kSeqOfLastAudit) {
      update_row(RB_SET_BIN("$8"), std::move(params.add(r.deleted_seq)), id);
      return;
    }
    // The seq the audit record just inserted took (append_audit): the row, and what this
    // write publishes of it, carry that one.
    update_row(RB_SET_BIN("currval($8::oid::regclass)") " RETURNING deleted_seq",
               std::move(params.add(audit_sequence_)), id, [this, id](const pg::Result& result) {
                 if (const auto seen = seen_.find(id); seen != seen_.end() && result.rows() == 1) {
                   seen->second.deleted_seq = result.int64(0, 0);
                 }
               });
#undef RB_SET_BIN
  }

  void set_protection(const WorkspaceRecord& r) override {
    update_row("UPDATE workspaces SET held = $1, has_liens = $2, purge_protection = $3, "
               "auto_delete_at = $4 WHERE id = $5",
               pg::Params()
                   .add(r.held)
                   .add(r.has_liens)
                   .add(r.workspace.purge_protection)
                   .add(r.workspace.auto_delete_at)
                   .add(r.workspace.id),
               r.workspace.id);
    patch(r.workspace.id, [&](WorkspaceRecord& seen) {
      seen.held = r.held;
      seen.has_liens = r.has_liens;
      seen.workspace.purge_protection = r.workspace.purge_protection;
      seen.workspace.auto_delete_at = r.workspace.auto_delete_at;
    });
  }

  void remove_workspace(const std::string& id) override { remove_workspaces({id}); }

  void insert_guard(const GuardRow& g) override {
    run_void("INSERT INTO guards (" RB_GUARD_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6, $7)",
             pg::Params()
                 .add(static_cast<std::int64_t>(g.kind))
                 .add(g.id)
                 .add(g.workspace_id)
                 .add(g.origin)
                 .add(g.reason)
                 .add(g.placed_by)
                 .add(g.at));
  }

  std::optional<GuardRow> find_guard(GuardKind kind, const std::string& id) override {
    const auto r = conn_->exec("SELECT " RB_GUARD_COLUMNS " FROM guards WHERE id = $1 AND kind = $2",
                               pg::Params().add(id).add(static_cast<std::int64_t>(kind)));
    if (r.rows() == 0) return std::nullopt;
    return rows::guard(RowView{r, 0});
  }

  bool remove_guard(GuardKind kind, const std::string& id) override {
    return conn_->exec("DELETE FROM guards WHERE id = $1 AND kind = $2",
                       pg::Params().add(id).add(static_cast<std::int64_t>(kind)))
               .affected() > 0;
  }

  std::vector<GuardRow> guards(GuardKind kind, const std::string& workspace_id) override {
    const auto r = conn_->exec("SELECT " RB_GUARD_COLUMNS " FROM guards WHERE workspace_id = $1 AND kind = $2 "
                               "ORDER BY placed_at, id",
                               pg::Params().add(workspace_id).add(static_cast<std::int64_t>(kind)));
    std::vector<GuardRow> out;
    for (int row = 0; row < r.rows(); ++row) out.push_back(rows::guard(RowView{r, row}));
    return out;
  }

  std::vector<StoredComponent> components(const std::string& workspace_id) override {
    if (const auto known = loaded_.find(workspace_id); known != loaded_.end()) return known->second;
    const auto r = conn_->exec(kComponentsSql, pg::Params().add(workspace_id));
    std::vector<StoredComponent> out;
    for (int row = 0; row < r.rows(); ++row) out.push_back(rows::component(RowView{r, row}));
    return out;
  }

  void insert_components(const std::string& workspace_id, const std::vector<Component>& components) override {
    if (components.empty()) return;
    std::vector<std::string> kinds, refs;
    std::vector<bool> standalone;
    for (const Component& c : components) {
      kinds.push_back(c.kind);
      refs.push_back(c.ref);
      standalone.push_back(c.standalone);
    }
    loaded_.erase(workspace_id);
    forget(workspace_id);
    run_void(
        "INSERT INTO components (workspace_id, position, kind, ref, standalone) "
        "SELECT $1, c.ord - 1, c.kind, c.ref, c.standalone "
        "FROM unnest($2::text[], $3::text[], $4::boolean[]) WITH ORDINALITY AS c(kind, ref, standalone, ord)",
        pg::Params().add(workspace_id).add_array(kinds).add_array(refs).add_array(standalone));
  }

  void set_component_destroyed(const std::string& workspace_id, std::int64_t position, bool destroyed) override {
    run_void("UPDATE components SET destroyed = $1 WHERE workspace_id = $2 AND position = $3",
             pg::Params().add(destroyed).add(workspace_id).add(position));
    if (const auto kept = loaded_.find(workspace_id); kept != loaded_.end()) {
      for (auto& stored : kept->second) {
        if (stored.position == position) stored.destroyed = destroyed;
      }
    } else {
      forget(workspace_id);
    }
  }

  void remove_component(const std::string& workspace_id, std::int64_t position) override {
    run_void("DELETE FROM components WHERE workspace_id = $1 AND position = $2",
             pg::Params().add(workspace_id).add(position));
    if (const auto kept = loaded_.find(workspace_id); kept != loaded_.end()) {
      auto& list = kept->second;
      list.erase(std::remove_if(list.begin(), list.end(),
                                [&](const StoredComponent& stored) { return stored.position == position; }),
                 list.end());
    } else {
      forget(workspace_id);
    }
  }

  std::optional<std::string> member_role(const std::string& workspace_id, const std::string& principal_id) override {
    const auto r = conn_->exec("SELECT role FROM members WHERE workspace_id = $1 AND principal_id = $2",
                               pg::Params().add(workspace_id).add(principal_id));
    if (r.rows() == 0) return std::nullopt;
    return r.text(0, 0);
  }

  void put_member(const std::string& workspace_id, const std::string& principal_id, const std::string& role) override {
    run_void(
        "INSERT INTO members (workspace_id, principal_id, role) VALUES ($1, $2, $3) "
        "ON CONFLICT (workspace_id, principal_id) DO UPDATE SET role = excluded.role",
        pg::Params().add(workspace_id).add(principal_id).add(role));
  }

  bool remove_member(const std::string& workspace_id, const std::string& principal_id) override {
    return conn_->exec("DELETE FROM members WHERE workspace_id = $1 AND principal_id = $2",
                       pg::Params().add(workspace_id).add(principal_id))
               .affected() > 0;
  }

  std::int64_t count_members(const std::string& workspace_id) override {
    return conn_->exec("SELECT count(*) FROM members WHERE workspace_id = $1", pg::Params().add(workspace_id))
        .int64(0, 0);
  }

  std::int64_t append_audit(const AuditRecord& r) override {
    if (const auto seq = take_reserved_seq()) {
      run_void(RB_INSERT_AUDIT_WITH_SEQ, audit_params(r).add(*seq));
      return *seq;
    }
    if (from_cache_ && conn_->deferred()) {
      // Nothing was sent: the rows came from the cache. Waiting for a seq would cost a round
      // trip; the record takes its seq as it is inserted, and set_bin writes that one.
      conn_->drop_speculative();  // the reservation, now not wanted (it would leave a gap)
      run_void(RB_INSERT_AUDIT, audit_params(r));
      return kSeqOfLastAudit;
    }
    return conn_->exec(RB_INSERT_AUDIT " RETURNING seq", audit_params(r)).int64(0, 0);
  }

  void add_audit(const AuditRecord& r) override {
    if (const auto seq = take_reserved_seq()) return run_void(RB_INSERT_AUDIT_WITH_SEQ, audit_params(r).add(*seq));
    run_void(RB_INSERT_AUDIT, audit_params(r));
  }

  std::vector<AuditRecord> audit_log(const AuditQuery& q) override {
    // Keyset by seq: each page seeks in the primary key (or audit_log_subscription).
    pg::Params params;
    params.add(q.after_seq).add(q.limit ? limit_param(*q.limit) : std::numeric_limits<std::int64_t>::max());
    if (q.subscription_id) params.add(*q.subscription_id);
    const auto r =
        q.subscription_id
            ? conn_->exec("SELECT seq, at, action, subscription_id, resource_group, name, outcome, workspace_id, "
                          "principal_id FROM audit_log WHERE subscription_id = $3 AND seq > $1 "
                          "ORDER BY seq LIMIT $2",
                          params)
            : conn_->exec("SELECT seq, at, action, subscription_id, resource_group, name, outcome, workspace_id, "
                          "principal_id FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                          params);
    std::vector<AuditRecord> out;
    for (int row = 0; row < r.rows(); ++row) {
      out.push_back({r.int64(row, 0), r.int64(row, 1), r.text(row, 2), r.text(row, 3), r.text(row, 4),
                     r.text(row, 5), r.text(row, 6), r.text(row, 7), r.text(row, 8)});
    }
    return out;
  }

  CleanupTask add_cleanup(const CleanupTask& task) override {
    CleanupTask stored = task;
    stored.id = conn_
                    ->exec("INSERT INTO cleanup_tasks (kind, ref, workspace_id, created_at) "
                           "VALUES ($1, $2, $3, $4) RETURNING id",
                           pg::Params().add(task.kind).add(task.ref).add(task.workspace_id).add(task.created_at))
                    .int64(0, 0);
    return stored;
  }

  std::vector<CleanupTask> pending_cleanup() override {
    return read_cleanups(conn_->exec(
        "SELECT " RB_CLEANUP_COLUMNS "FROM cleanup_tasks WHERE completed_at IS NULL ORDER BY id", pg::Params()));
  }

  std::optional<bool> complete_cleanup(std::int64_t task_id, Timestamp at) override {
    const auto r = conn_->exec(
        "UPDATE cleanup_tasks SET completed_at = $1, leased_by = NULL, leased_until = NULL "
        "WHERE id = $2 AND completed_at IS NULL",
        pg::Params().add(at).add(task_id));
    if (r.affected() > 0) return true;
    return known_task(task_id) ? std::optional<bool>(false) : std::nullopt;
  }

  std::vector<CleanupTask> claim_cleanup(const std::string& worker, Timestamp now, Timestamp leased_until,
                                         std::size_t limit) override {
    auto tasks = read_cleanups(conn_->exec(
        "UPDATE cleanup_tasks AS t SET leased_by = $1, leased_until = $2 FROM ("
        "SELECT id FROM cleanup_tasks WHERE completed_at IS NULL "
        "AND (leased_until IS NULL OR leased_until <= $3) AND available_at <= $3 "
        "ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) AS c WHERE t.id = c.id "
        "RETURNING t.id, t.kind, t.ref, t.workspace_id, t.created_at, t.attempts, t.last_error, t.leased_by, "
        "t.leased_until",
        pg::Params().add(worker).add(leased_until).add(now).add(limit_param(limit))));
    std::sort(tasks.begin(), tasks.end(), [](const CleanupTask& a, const CleanupTask& b) { return a.id < b.id; });
    return tasks;
  }

  std::optional<bool> fail_cleanup(std::int64_t task_id, const std::string& error, Timestamp retry_at) override {
    const auto r = conn_->exec(
        "UPDATE cleanup_tasks SET attempts = attempts + 1, last_error = $1, leased_by = NULL, "
        "leased_until = NULL, available_at = $2 WHERE id = $3 AND completed_at IS NULL",
        pg::Params().add(error).add(retry_at).add(task_id));
    if (r.affected() > 0) return true;
    return known_task(task_id) ? std::optional<bool>(false) : std::nullopt;
  }

  std::vector<std::vector<StoredComponent>> components_of(const std::vector<std::string>& ids) override {
    std::vector<std::vector<StoredComponent>> out(ids.size());
    if (ids.empty()) return out;
    if (std::all_of(ids.begin(), ids.end(), [&](const std::string& id) { return loaded_.count(id) > 0; })) {
      for (std::size_t i = 0; i < ids.size(); ++i) out[i] = loaded_.at(ids[i]);
      return out;
    }
    const auto r = conn_->exec(
        "SELECT j.ord, c.kind, c.ref, c.standalone, c.destroyed, c.position "
        "FROM unnest($1::text[]) WITH ORDINALITY AS j(id, ord) JOIN components AS c ON c.workspace_id = j.id "
        "ORDER BY j.ord, c.position",
        pg::Params().add_array(ids));
    for (int row = 0; row < r.rows(); ++row) {
      out.at(static_cast<std::size_t>(r.int64(row, 0) - 1)).push_back(rows::component(RowView{r, row}, 1));
    }
    return out;
  }

  void append_audit_for(const std::vector<std::string>& ids, const AuditRecord& r) override {
    if (ids.empty()) return;
    audited_ = true;  // later records take later seqs, as these do
    run_void(
        "INSERT INTO audit_log (at, action, subscription_id, resource_group, name, outcome, workspace_id, "
        "principal_id) SELECT $1, $2, w.subscription_id, w.resource_group, w.name, $3, w.id, $4 "
        "FROM unnest($5::text[]) WITH ORDINALITY AS j(id, ord) JOIN workspaces AS w ON w.id = j.id ORDER BY j.ord",
        pg::Params().add(r.at).add(r.action).add(r.outcome).add(r.principal_id).add_array(ids));
  }

  void remove_workspaces(const std::vector<std::string>& ids) override {
    if (ids.empty()) return;
    pg::Params set;
    set.add_array(ids);
    // The children too: there are no foreign keys to cascade.
    run_void("DELETE FROM components WHERE workspace_id = ANY ($1::text[])", set);
    run_void("DELETE FROM members WHERE workspace_id = ANY ($1::text[])", set);
    run_void("DELETE FROM workspaces WHERE id = ANY ($1::text[])", std::move(set));
    for (const auto& id : ids) {
      loaded_.erase(id);
      forget(id);
    }
  }

  std::vector<DeletedListing> list_deleted(const DeletedQuery& q) override {
    // Keyset pagination: each page seeks in the index, so a page costs the same at any depth.
    const rows::DeletedBounds b = rows::deleted_bounds(q);
#define RB_SELECT_LISTING                                                                        \
  "SELECT id, name, subscription_id, resource_group, deleted_at, purge_at, retention_days, " \
  "retained_kinds, deleted_seq, held FROM workspaces "
    pg::Params params;
    params.add(q.subscription_id).add(b.after_at).add(b.after_seq).add(b.purge_after).add(limit_param(q.limit));
    params.add(b.purge_before);
    if (q.resource_group) params.add(*q.resource_group);
    const auto r =
        q.resource_group
            ? conn_->exec(RB_SELECT_LISTING
                          "WHERE subscription_id = $1 AND resource_group = $7 AND deleted_at IS NOT NULL "
                          "AND (deleted_at, deleted_seq) < ($2, $3) AND (purge_at > $4 OR held) AND purge_at < $6 "
                          "ORDER BY deleted_at DESC, deleted_seq DESC LIMIT $5",
                          params)
            : conn_->exec(RB_SELECT_LISTING
                          "WHERE subscription_id = $1 AND deleted_at IS NOT NULL "
                          "AND (deleted_at, deleted_seq) < ($2, $3) AND (purge_at > $4 OR held) AND purge_at < $6 "
                          "ORDER BY deleted_at DESC, deleted_seq DESC LIMIT $5",
                          params);
#undef RB_SELECT_LISTING
    std::vector<DeletedListing> page(static_cast<std::size_t>(r.rows()));
    for (int row = 0; row < r.rows(); ++row) rows::listing(RowView{r, row}, page[static_cast<std::size_t>(row)]);
    return page;
  }

  std::vector<WorkspaceRecord> list_live(const LiveQuery& q) override {
    // Keyset pagination over workspaces_live_listing. Identifiers are never empty, so
    // ("", "") sorts before every row when there is no cursor.
    pg::Params params;
    params.add(q.subscription_id)
        .add(q.after ? q.after->resource_group : std::string())
        .add(q.after ? q.after->name : std::string())
        .add(limit_param(q.limit));
    if (q.resource_group) params.add(*q.resource_group);
#define RB_LIVE_KEYSET                                                                           \
  "AND (resource_group COLLATE \"C\", name COLLATE \"C\") > ($2::text COLLATE \"C\", $3::text COLLATE \"C\") " \
  "ORDER BY resource_group COLLATE \"C\", name COLLATE \"C\" LIMIT $4"
#define RB_LIVE_ORDER "w.resource_group COLLATE \"C\", w.name COLLATE \"C\", "
    return read_with_components(
        q.resource_group
            ? conn_->exec(RB_WITH_COMPONENTS(RB_SELECT_WORKSPACES "WHERE subscription_id = $1 AND resource_group = $5 "
                                                                  "AND deleted_at IS NULL " RB_LIVE_KEYSET,
                                             RB_LIVE_ORDER),
                          params)
            : conn_->exec(RB_WITH_COMPONENTS(RB_SELECT_WORKSPACES "WHERE subscription_id = $1 AND deleted_at IS NULL "
                                                                  RB_LIVE_KEYSET,
                                             RB_LIVE_ORDER),
                          params));
#undef RB_LIVE_ORDER
#undef RB_LIVE_KEYSET
  }
#undef RB_WITH_COMPONENTS

  std::vector<WorkspaceRecord> expired(Timestamp now, const std::optional<ExpiryCursor>& after,
                                       std::size_t limit) override {
    return due(RB_READ_AND_LOCKED(RB_SELECT_WORKSPACES
                                  "WHERE purge_at IS NOT NULL AND purge_at <= $1 AND NOT held "
                                  "AND (purge_at, id) > ($2, $3) ORDER BY purge_at, id LIMIT $4"),
               now, after, limit);
  }

  std::vector<WorkspaceRecord> auto_delete_due(Timestamp now, const std::optional<ExpiryCursor>& after,
                                               std::size_t limit) override {
    return due(RB_READ_AND_LOCKED(RB_SELECT_WORKSPACES
                                  "WHERE auto_delete_at IS NOT NULL AND deleted_at IS NULL AND auto_delete_at <= $1 "
                                  "AND (auto_delete_at, id) > ($2, $3) ORDER BY auto_delete_at, id LIMIT $4"),
               now, after, limit);
  }

  std::vector<WorkspaceRecord> orphaned(const std::optional<std::string>& subscription_id, Timestamp orphaned_before,
                                        std::size_t limit) override {
    pg::Params params;
    params.add(orphaned_before).add(limit_param(limit));
    if (subscription_id) {
      params.add(*subscription_id);
      return read_workspaces(conn_->exec(RB_SELECT_WORKSPACES
                                         "WHERE orphaned_at IS NOT NULL AND orphaned_at <= $1 "
                                         "AND subscription_id = $3 ORDER BY orphaned_at, id LIMIT $2",
                                         params));
    }
    if (mode_ == TransactionMode::write) {
      return read_workspaces(conn_->exec(RB_SELECT_WORKSPACES
                                         "WHERE orphaned_at IS NOT NULL AND orphaned_at <= $1 "
                                         "ORDER BY orphaned_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
                                         params));
    }
    return read_workspaces(conn_->exec(RB_SELECT_WORKSPACES
                                       "WHERE orphaned_at IS NOT NULL AND orphaned_at <= $1 "
                                       "ORDER BY orphaned_at, id LIMIT $2",
                                       params));
  }

  std::vector<WorkspaceRecord> expired_in(const std::string& subscription_id, Timestamp now) override {
    return read_workspaces(conn_->exec(RB_SELECT_WORKSPACES
                                       "WHERE subscription_id = $1 AND deleted_at IS NOT NULL AND purge_at <= $2 "
                                       "AND NOT held ORDER BY purge_at, id",
                                       pg::Params().add(subscription_id).add(now)));
  }

 private:
  /// The rows a sweep query ($1 now, $2 and $3 the keyset position, $4 the limit) finds; in
  /// a write (`locked_sql`: the same, FOR UPDATE SKIP LOCKED), locked, skipping rows another
  /// write holds (it is removing them). Both are literals: statements are cached by address.
  std::vector<WorkspaceRecord> due(const char* read_sql, const char* locked_sql, Timestamp now,
                                   const std::optional<ExpiryCursor>& after, std::size_t limit) {
    pg::Params params;
    params.add(now)
        .add(after ? after->purge_at : std::numeric_limits<std::int64_t>::min())
        .add(after ? after->id : std::string())
        .add(limit_param(limit));
    return read_workspaces(conn_->exec(mode_ == TransactionMode::write ? locked_sql : read_sql, params));
  }

  bool known_task(std::int64_t task_id) {
    return conn_->exec("SELECT 1 FROM cleanup_tasks WHERE id = $1", pg::Params().add(task_id)).rows() > 0;
  }

  /// Workspace rows, each repeated once per component: the workspace's columns, then the
  /// component's (null when it has none). A read keeps the components for components() and
  /// components_of() (a write may change them after).
  std::vector<WorkspaceRecord> read_with_components(const pg::Result& r) {
    const int first = r.columns() - 5;  // kind, ref, standalone, destroyed, position
    std::vector<WorkspaceRecord> out;
    std::vector<StoredComponent>* components = nullptr;
    for (int row = 0; row < r.rows(); ++row) {
      if (out.empty() || r.text(row, 0) != out.back().workspace.id) {
        out.push_back(read_workspace(r, row));
        if (mode_ == TransactionMode::read) {
          components = &loaded_[out.back().workspace.id];
          components->clear();
        }
      }
      if (components && !r.is_null(row, first)) components->push_back(rows::component(RowView{r, row}, first));
    }
    return out;
  }

  static std::optional<WorkspaceRecord> first_of(std::vector<WorkspaceRecord> rows) {
    if (rows.empty()) return std::nullopt;
    return std::move(rows.front());
  }

  static pg::Params audit_params(const AuditRecord& r) {
    pg::Params params;
    params.add(r.at)
        .add(r.action)
        .add(r.subscription_id)
        .add(r.resource_group)
        .add(r.name)
        .add(r.outcome)
        .add(r.workspace_id)
        .add(r.principal_id);
    return params;
  }

  /// The seq reserved for the transaction's first audit record, when it is that one and the
  /// reservation has arrived (later records take theirs from the sequence, so later ones are
  /// larger); nullopt otherwise.
  std::optional<std::int64_t> take_reserved_seq() {
    if (audited_) return std::nullopt;
    audited_ = true;
    return reserved_seq_;
  }

  /// A row read outside a write (committed), kept in the cache with the components read with it.
  std::optional<WorkspaceRecord> cached(std::optional<WorkspaceRecord> record) {
    if (record) cache_.put(*record, loaded_[record->workspace.id]);
    return record;
  }

  /// A cached row as this write's lookup answers it: checked and locked (expect_unchanged),
  /// its components kept as a lookup keeps them, and followed until the commit.
  WorkspaceRecord from_cache(RowCache::Entry entry) {
    expect_unchanged(entry);
    loaded_[entry.record.workspace.id] = std::move(entry.components);
    remember(entry.record);
    return std::move(entry.record);
  }

  /// Queues the checks that a cached row is still as cached, which also lock it as
  /// find_by_id does (pg::Stale when not): the row, then in a statement of its own (a new
  /// snapshot, with the lock held, as find_by_id reads them) its components.
  void expect_unchanged(const RowCache::Entry& entry) {
    const std::string& id = entry.record.workspace.id;
    std::vector<std::string> kinds, refs;
    std::vector<bool> standalone, destroyed;
    std::vector<std::int64_t> positions;
    for (const StoredComponent& stored : entry.components) {
      kinds.push_back(stored.component.kind);
      refs.push_back(stored.component.ref);
      standalone.push_back(stored.component.standalone);
      destroyed.push_back(stored.destroyed);
      positions.push_back(stored.position);
    }
    run_void("SELECT rb_unchanged(count(*)) FROM (SELECT 1 FROM workspaces WHERE id = $1::text AND "
             "(" RB_WORKSPACE_COLUMNS ") IS NOT DISTINCT FROM (" RB_WORKSPACE_VALUES ") FOR UPDATE) AS t",
             workspace_params(entry.record));
    run_void("SELECT rb_unchanged(count(*)) FROM (SELECT 1 WHERE (SELECT ROW("
             "coalesce(array_agg(kind ORDER BY position), '{}'), coalesce(array_agg(ref ORDER BY position), '{}'), "
             "coalesce(array_agg(standalone ORDER BY position), '{}'), "
             "coalesce(array_agg(destroyed ORDER BY position), '{}'), coalesce(array_agg(position ORDER BY position), "
             "'{}')) FROM components WHERE workspace_id = $1::text) "
             "IS NOT DISTINCT FROM ROW($2::text[], $3::text[], $4::boolean[], $5::boolean[], $6::bigint[])) AS t",
             pg::Params().add(id).add_array(kinds).add_array(refs).add_array(standalone).add_array(destroyed).add_array(
                 positions));
    guarded_.insert(id);
  }

  /// find_deleted from the cache: each cached row checked and locked (expect_unchanged), then
  /// that they are all the soft-deleted rows of the name, and that no live row has it (what
  /// find_deleted also asks for find_live). `key`: subscription, group, name.
  std::vector<WorkspaceRecord> expect_deleted_unchanged(std::vector<RowCache::Entry> entries, pg::Params key) {
    std::vector<std::string> ids;
    std::vector<WorkspaceRecord> records;
    for (auto& entry : entries) {
      records.push_back(from_cache(std::move(entry)));
      ids.push_back(records.back().workspace.id);
    }
    std::sort(ids.begin(), ids.end());
    const std::string live_key = group_name_key(records.front().workspace.subscription_id,
                                                records.front().workspace.resource_group,
                                                records.front().workspace.name);
    run_void("SELECT rb_unchanged(count(*)) WHERE (SELECT coalesce(array_agg(id COLLATE \"C\" ORDER BY id COLLATE "
             "\"C\"), '{}') FROM workspaces WHERE subscription_id = $1 AND resource_group = $2 AND name = $3 AND "
             "deleted_at IS NOT NULL) = $4::text[] AND NOT EXISTS (SELECT 1 FROM workspaces WHERE group_key = $5 "
             "AND deleted_at IS NULL)",
             std::move(key.add_array(ids).add(live_key)));
    no_live_.insert(live_key);
    return records;
  }

  /// An update of one workspace row. A row this write found in the cache is locked and known
  /// to exist (expect_unchanged), so the update needs no check and may ride with the COMMIT;
  /// otherwise the update must be seen to touch its row before the COMMIT goes (one_row).
  void update_row(const char* sql, pg::Params params, const std::string& id, pg::Verify then = {}) {
    if (guarded_.count(id) > 0) return run_void(sql, std::move(params), std::move(then), pg::Queue::commit_may_follow);
    run_void(sql, std::move(params), [check = one_row(id), then = std::move(then)](const pg::Result& result) {
      check(result);
      if (then) then(result);
    });
  }

  /// Applies `change` to what this write publishes of the row at its commit; a row it has
  /// not read is forgotten there instead.
  template <typename Change>
  void patch(const std::string& id, Change&& change) {
    if (const auto seen = seen_.find(id); seen != seen_.end()) {
      change(seen->second);
    } else {
      forget(id);
    }
  }
  /// The row as this write read (or inserted) it: what it publishes at its commit, as its own
  /// changes leave it (patch).
  void remember(const WorkspaceRecord& record) {
    seen_[record.workspace.id] = record;
    unknown_.erase(record.workspace.id);
  }
  /// The row changes in a way this write does not follow: the cache forgets it at the commit.
  void forget(const std::string& id) {
    seen_.erase(id);
    unknown_.insert(id);
  }
  /// After the COMMIT: the rows this write read, as it left them, are what the cache holds.
  void publish() {
    for (const auto& id : unknown_) cache_.forget(id);
    for (const auto& [id, record] : seen_) {
      if (const auto components = loaded_.find(id); components != loaded_.end()) {
        cache_.put(record, components->second);
      } else {
        cache_.forget(id);
      }
    }
  }

  /// Checks that an update touched its one row.
  static pg::Verify one_row(const std::string& id) {
    return [id](const pg::Result& r) {
      if (r.affected() != 1) {
        throw Error(ErrorCode::storage_error, "workspace " + id + " vanished during the transaction");
      }
    };
  }

  /// A statement whose answer the caller does not read: queued in a write run by
  /// Store::write (sent with the next statement that answers, or with COMMIT), run at once
  /// in a raw one. `verify` checks its answer when it arrives.
  void run_void(const char* sql, pg::Params params, pg::Verify verify = {},
                pg::Queue how = pg::Queue::checked_before_commit) {
    if (queue_writes_) return conn_->queue(sql, std::move(params), std::move(verify), how);
    const auto r = conn_->exec(sql, params);
    if (verify) verify(r);
  }

  PostgresStore& store_;
  const std::string& audit_sequence_;  // PostgresStore::audit_sequence
  RowCache& cache_;                    // PostgresStore::cache
  std::unique_ptr<pg::Connection> conn_;
  TransactionMode mode_;
  // Components by workspace: in a read, those read_with_components read; in a write, those
  // of rows it locked (find_by_id, find_deleted), kept in step with its own changes (no other
  // write changes them while the row is locked).
  std::unordered_map<std::string, std::vector<StoredComponent>> loaded_;
  // Group keys that no live row carried when this write last looked (find_deleted), until it
  // writes a name key itself.
  std::unordered_set<std::string> no_live_;
  bool queue_writes_;
  bool names_at_insert_;
  bool from_cache_;
  // The rows this write read (or inserted), as its own changes leave them; those it changed
  // otherwise (unknown_); those it took from the cache (guarded_). See publish().
  std::unordered_map<std::string, WorkspaceRecord> seen_;
  std::unordered_set<std::string> unknown_;
  std::unordered_set<std::string> guarded_;
  std::optional<std::int64_t> reserved_seq_;  // from the opening round trip (see the constructor)
  bool audited_ = false;                      // an audit record was written
  bool committing_ = false;
};

class PostgresStore final : public Store {
 public:
  explicit PostgresStore(const std::string& url) : target_(pg::parse_target(url)) {
    auto connection = connect();
    migrate(*connection);
    // The audit log's sequence, found once: a write's nextval names it by OID (a lookup by
    // name, pg_get_serial_sequence, costs the server more than the nextval).
    audit_sequence_ = connection->exec("SELECT pg_get_serial_sequence('audit_log', 'seq')::regclass::oid::text",
                                       pg::Params())
                          .text(0, 0);
    pool_.adopt(std::move(connection));
  }

  /// The OID of the audit log's seq sequence, for nextval($n::oid::regclass).
  const std::string& audit_sequence() const { return audit_sequence_; }
  /// The rows last seen committed, for writes that start from them (RowCache).
  RowCache& cache() { return cache_; }

  std::unique_ptr<StoreTransaction> begin(TransactionMode mode) override { return open_transaction(mode, false); }
  std::unique_ptr<StoreTransaction> begin_one_read() override {
    return std::make_unique<PostgresTransaction>(*this, acquire(), TransactionMode::read, false, false, true);
  }

  void write(const Apply& apply, const OnRefusal& on_refusal) override {
    int reconnects = 0;
    bool names_at_insert = true;  // the first run's create does not look first (NamesHeld)
    bool from_cache = true;       // the first run's lookups by id start from cached rows (Stale)
    for (int attempt = 1;; ++attempt) {
      try {
        auto tx = open_transaction(TransactionMode::write, true, names_at_insert, from_cache);
        try {
          try {
            apply(*tx);
          } catch (...) {
            // The queued statements ran before whatever `apply` threw: when one of them
            // failed, that failure is the outcome (a conflict is retried, not audited).
            tx->flush();
            throw;
          }
          tx->commit();
          return;
        } catch (const pg::ConnectionLost& lost) {
          if (tx->committing()) {
            throw Error(ErrorCode::storage_error,
                        lost.cause() + "; lost while committing: check whether the change was applied");
          }
          throw;
        } catch (const pg::Stale&) {
          tx->forget_cached();
          throw;
        }
      } catch (const pg::Conflict& conflict) {
        if (attempt >= kMaxWriteAttempts) {
          throw Error(conflict.code(), target_.where + ": the write kept conflicting with concurrent ones (" +
                                           std::to_string(attempt) + " attempts): " + conflict.what());
        }
        backoff(attempt);
      } catch (const pg::ConnectionLost&) {
        if (++reconnects > kMaxReconnects) throw;
      } catch (const NamesHeld&) {
        names_at_insert = false;  // once: the next run looks, and a name taken since is a Conflict
      } catch (const pg::Stale&) {
        from_cache = false;  // once: the next run reads the rows it starts from
      } catch (const Error& error) {
        if (error.code() == ErrorCode::storage_error || !on_refusal) throw;
        audit_refusal(on_refusal, std::current_exception());
        throw;
      }
    }
  }

  /// A dropped connection is not kept: the next transaction connects anew.
  void release(std::unique_ptr<pg::Connection> connection) {
    const bool reusable = connection && connection->ok();
    pool_.release(std::move(connection), reusable);
  }

 private:
  /// An idle connection that dropped (a server restart, an idle timeout) connects anew at
  /// the transaction's first statement (pg::Connection::defer).
  std::unique_ptr<PostgresTransaction> open_transaction(TransactionMode mode, bool queue_writes,
                                                        bool names_at_insert = false, bool from_cache = false) {
    return std::make_unique<PostgresTransaction>(*this, acquire(), mode, queue_writes, names_at_insert, false,
                                                 from_cache);
  }

  /// The refusal's audit, in a write of its own; its failure is not reported.
  void audit_refusal(const OnRefusal& on_refusal, const std::exception_ptr& refusal) noexcept {
    for (int attempt = 1; attempt <= kMaxWriteAttempts; ++attempt) {
      try {
        auto tx = open_transaction(TransactionMode::write, true);
        on_refusal(*tx, refusal);
        tx->commit();
        return;
      } catch (const pg::Conflict&) {
        backoff(attempt);
      } catch (...) {
        return;
      }
    }
  }

  static void backoff(int attempt) {
    thread_local std::minstd_rand jitter(std::random_device{}());
    const auto ceiling = 200u << std::min(attempt, 8);  // microseconds: 0.4 ms .. 51 ms
    std::this_thread::sleep_for(std::chrono::microseconds(jitter() % ceiling));
  }

  std::unique_ptr<pg::Connection> connect() {
    return std::make_unique<pg::Connection>(target_, [this](pg::Connection& connection) { set_up(connection); });
  }

  /// A new session's settings (also after a connection reconnected on its own).
  void set_up(pg::Connection& connection) {
    if (schema_.empty()) {  // the first session, made by the constructor
      const auto r = connection.exec(
          "SELECT current_setting('search_path'), current_user, "
          "EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = current_user)",
          pg::Params());
      schema_ = first_schema(r.text(0, 0), r.text(0, 1), r.boolean(0, 2));
    }
    // Every connection works in the one schema (then pg_catalog), with bounded waits.
    connection.exec(
        "SELECT set_config('search_path', quote_ident($1), false), "
        "set_config('statement_timeout', CASE current_setting('statement_timeout') WHEN '0' THEN $2 "
        "ELSE current_setting('statement_timeout') END, false), "
        "set_config('lock_timeout', CASE current_setting('lock_timeout') WHEN '0' THEN $3 "
        "ELSE current_setting('lock_timeout') END, false)",
        pg::Params().add(schema_).add(kStatementTimeout).add(kLockTimeout));
  }

  std::unique_ptr<pg::Connection> acquire() {
    return pool_.acquire([&] { return connect(); });
  }

  void migrate(pg::Connection& connection) {
    const std::string schema_name = "schema '" + schema_ + "'";
    try {
      connection.exec("BEGIN");
      // One migrating engine at a time per schema; the others wait and find it done.
      connection.exec("SELECT pg_advisory_xact_lock(1919251317, hashtext($1))", pg::Params().add(schema_));
      const auto exists = connection.exec("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                                          pg::Params().add(schema_));
      if (!exists.boolean(0, 0)) {
        const auto create = connection.exec("SELECT format('CREATE SCHEMA %I', $1::text)", pg::Params().add(schema_));
        connection.exec_once(create.text(0, 0), pg::Params());
      }
      const auto rights = connection.exec(
          "SELECT has_schema_privilege($1, 'USAGE'), has_schema_privilege($1, 'CREATE'), current_user, "
          "to_regclass(format('%I.schema_migrations', $1::text)) IS NOT NULL",
          pg::Params().add(schema_));
      const bool usage = rights.boolean(0, 0), create = rights.boolean(0, 1), migrated_before = rights.boolean(0, 3);
      if (!usage || (!create && !migrated_before)) {
        throw Error(ErrorCode::storage_error,
                    target_.where + ", " + schema_name + ": permission denied: user '" + rights.text(0, 2) +
                        "' lacks " + (usage ? "CREATE" : create ? "USAGE" : "USAGE and CREATE") +
                        " on the schema; grant it (GRANT USAGE, CREATE ON SCHEMA ... TO ...) or choose "
                        "another schema with options=-csearch_path=NAME");
      }
      connection.exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations ("
          "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
      const auto current = connection.exec("SELECT coalesce(max(version), 0) FROM schema_migrations", pg::Params())
                               .int64(0, 0);
      const auto target = static_cast<std::int64_t>(std::size(kMigrations));
      if (current > target) {
        throw Error(ErrorCode::storage_error,
                    target_.where + ", " + schema_name + ": the tables have schema version " +
                        std::to_string(current) + ", newer than this recyclebin understands (" +
                        std::to_string(target) + "); upgrade recyclebin");
      }
      for (std::int64_t version = current + 1; version <= target; ++version) {
        connection.exec(kMigrations[version - 1]);
        connection.exec("INSERT INTO schema_migrations (version) VALUES ($1)", pg::Params().add(version));
      }
      connection.exec("COMMIT");
    } catch (const Error& error) {
      if (connection.ok()) PQclear(PQexec(connection.handle(), "ROLLBACK"));
      const std::string message = error.what();
      if (message.find(schema_name) != std::string::npos) throw;
      throw Error(ErrorCode::storage_error, "cannot set up the tables in " + schema_name + ": " + message);
    }
  }

  pg::Target target_;
  std::string schema_;
  std::string audit_sequence_;
  RowCache cache_;
  ConnectionPool<pg::Connection> pool_{kMaxConnections};
};

PostgresTransaction::PostgresTransaction(PostgresStore& store, std::unique_ptr<pg::Connection> connection,
                                         TransactionMode mode, bool queue_writes, bool names_at_insert, bool alone,
                                         bool from_cache)
    : store_(store),
      audit_sequence_(store.audit_sequence()),
      cache_(store.cache()),
      conn_(std::move(connection)),
      mode_(mode),
      queue_writes_(queue_writes),
      names_at_insert_(names_at_insert),
      from_cache_(from_cache) {
  if (alone) {
    conn_->start_alone();  // no transaction: the statement on its own snapshot
    return;
  }
  // Sent with the first statement, in its round trip. A read's snapshot is taken by that
  // statement, as it would be after a BEGIN of its own.
  conn_->defer(mode == TransactionMode::write ? "BEGIN ISOLATION LEVEL READ COMMITTED"
                                              : "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
  // A write run by Store::write reserves the seq of its first audit record in its opening
  // round trip, so that appending that record (whose seq the engine may write elsewhere,
  // append_audit) need not wait for an answer. It rides along with the first statement only.
  if (queue_writes_) {
    conn_->queue("SELECT nextval($1::oid::regclass)", pg::Params().add(audit_sequence_),
                 [this](const pg::Result& r) { reserved_seq_ = r.int64(0, 0); }, pg::Queue::speculative);
  }
}

PostgresTransaction::~PostgresTransaction() {
  const bool sent = !conn_->deferred();
  conn_->drop_unsent();  // what was never sent needs no undoing
  // A COMMIT that ran ended the transaction; one aborted behind a failed statement did not.
  if (sent && conn_->ok() && conn_->in_transaction()) {
    conn_->send_unawaited("ROLLBACK");  // never throws; the server ends the transaction on receipt
  }
  store_.release(std::move(conn_));
}

}  // namespace

int postgres_schema_version() { return static_cast<int>(std::size(kMigrations)); }

std::unique_ptr<Store> open_postgres_store(const std::string& url) { return std::make_unique<PostgresStore>(url); }

}  // namespace recyclebin
