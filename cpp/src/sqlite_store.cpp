// The embedded SQLite store. One connection per concurrent transaction (a small pool),
// WAL so readers never wait for the writer, BEGIN IMMEDIATE for writers (the single writer
// lock is what makes writes serializable), a busy timeout so several processes can share
// one file, prepared statements cached per connection, and group commit: concurrent writes
// share one COMMIT (SQLite's main cost), each under a savepoint of its own.

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <random>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "recyclebin/error.hpp"
#include "recyclebin/policy.hpp"
#include "recyclebin/sqlite_store.hpp"
#include "connection_pool.hpp"
#include "store_rows.hpp"

namespace recyclebin {
namespace {

constexpr int kBusyTimeoutMs = 10'000;
constexpr std::size_t kMaxFileConnections = 8;

/// SQLITE_BUSY or SQLITE_LOCKED outside the busy handler's reach: changing the journal mode
/// of a file another process is creating, for one. Retried by with_busy_retry.
class SqliteBusy : public Error {
 public:
  using Error::Error;
};

bool is_busy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

/// Runs `step` until it does not meet SqliteBusy, sleeping a little between tries, for at
/// most the busy timeout; then the last SqliteBusy goes to the caller.
template <class Step>
void with_busy_retry(Step&& step) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
  thread_local std::minstd_rand jitter(std::random_device{}());
  for (;;) {
    try {
      step();
      return;
    } catch (const SqliteBusy&) {
      if (std::chrono::steady_clock::now() >= deadline) throw;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500 + jitter() % 5'000));
  }
}

[[noreturn]] void throw_sqlite(sqlite3* db, int rc, std::string_view what) {
  const int extended = db ? sqlite3_extended_errcode(db) : rc;
  if (extended == SQLITE_CONSTRAINT_UNIQUE || extended == SQLITE_CONSTRAINT_PRIMARYKEY) {
    throw Error(ErrorCode::workspace_exists,
                "the name is already held by another workspace (unique index): " +
                    std::string(db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
  }
  const std::string message = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  if (is_busy(rc)) throw SqliteBusy(ErrorCode::storage_error, message);
  throw Error(ErrorCode::storage_error, message);
}

/// A cached prepared statement; bind by name, step, read columns. Reset on each use.
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql) : db_(db) {
    const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
    if (rc != SQLITE_OK) throw_sqlite(db, rc, "prepare");
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  /// Ends its run (and so its read of the snapshot); the bindings stay until reset().
  void finish() { sqlite3_reset(stmt_); }

  Statement& bind(const char* name, std::int64_t value) {
    check(sqlite3_bind_int64(stmt_, index(name), value));
    return *this;
  }
  Statement& bind(const char* name, int value) { return bind(name, static_cast<std::int64_t>(value)); }
  Statement& bind(const char* name, bool value) { return bind(name, static_cast<std::int64_t>(value)); }
  Statement& bind(const char* name, const std::string& value) {
    check(sqlite3_bind_text(stmt_, index(name), value.data(), static_cast<int>(value.size()),
                            SQLITE_TRANSIENT));
    return *this;
  }
  template <class T>
  Statement& bind(const char* name, const std::optional<T>& value) {
    if (value) return bind(name, *value);
    check(sqlite3_bind_null(stmt_, index(name)));
    return *this;
  }

  /// True while there is a row.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw_sqlite(db_, rc, "step");
  }
  void run() {
    while (step()) {
    }
  }

  std::int64_t int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  bool is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::optional<std::int64_t> opt_int64(int column) const {
    if (is_null(column)) return std::nullopt;
    return int64(column);
  }
  std::string text(int column) const {
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return data ? std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)))
                : std::string();
  }
  std::optional<std::string> opt_text(int column) const {
    if (is_null(column)) return std::nullopt;
    return text(column);
  }
  bool flag(int column) const { return int64(column) != 0; }

 private:
  /// The parameter's index. Names are string literals, so the lookup (a scan of the
  /// statement's names) is cached by the literal's address.
  int index(const char* name) {
    for (const auto& [cached, i] : indexes_) {
      if (cached == name) return i;
    }
    const int i = sqlite3_bind_parameter_index(stmt_, name);
    if (i == 0) throw Error(ErrorCode::storage_error, std::string("no SQL parameter ") + name);
    indexes_.emplace_back(name, i);
    return i;
  }
  void check(int rc) const {
    if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::vector<std::pair<const char*, int>> indexes_;
};

/// Folds the WAL back into the database file on a thread of its own, so commits never wait
/// for a checkpoint (its page copies and the fsyncs of both files). Every connection of the
/// store reports its commits (the WAL hook, which replaces SQLite's own autocheckpoint); from
/// kCheckpointFrames frames on, the thread runs a PASSIVE checkpoint, which blocks neither
/// readers nor writers. If it falls behind (kBackstopFrames), the committing connection
/// checkpoints itself, so the WAL stays bounded.
class Checkpointer {
 public:
  static constexpr int kCheckpointFrames = 1'000;  // SQLite's own autocheckpoint default
  static constexpr int kBackstopFrames = 16 * kCheckpointFrames;

  explicit Checkpointer(const std::string& path) {
    const int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close_v2(db_);
      throw Error(ErrorCode::storage_error, "cannot open database '" + path + "' for checkpoints: " + message);
    }
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    // A connection learns that the file is in WAL mode only once it reads it; until then
    // a checkpoint is a silent no-op.
    try {
      with_busy_retry([&] {
        const int rc = sqlite3_exec(db_, "PRAGMA journal_mode = WAL", nullptr, nullptr, nullptr);
        if (rc == SQLITE_OK) return;
        const std::string message = "cannot open database '" + path + "' for checkpoints: " + sqlite3_errmsg(db_);
        if (is_busy(rc)) throw SqliteBusy(ErrorCode::storage_error, message);
        throw Error(ErrorCode::storage_error, message);
      });
    } catch (...) {
      sqlite3_close_v2(db_);
      throw;
    }
    thread_ = std::thread([this] { run(); });
  }
  ~Checkpointer() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
    sqlite3_close_v2(db_);
  }
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  /// Installs the WAL hook on a connection of the store.
  void watch(sqlite3* db) { sqlite3_wal_hook(db, &Checkpointer::on_commit, this); }

  SqliteStats stats() const { return {background_.load(), inline_.load()}; }  // checkpoints that copied pages

 private:
  static int on_commit(void* self, sqlite3* db, const char* schema, int frames) {
    auto& checkpointer = *static_cast<Checkpointer*>(self);
    if (frames >= kBackstopFrames) {
      // The thread has fallen behind: this connection checkpoints before it goes on.
      sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
      ++checkpointer.inline_;
    } else if (frames < checkpointer.requested_at_) {
      checkpointer.requested_at_ = 0;  // the WAL restarted from its beginning
    } else if (frames - checkpointer.requested_at_ >= kCheckpointFrames) {
      // Once per kCheckpointFrames new frames: the WAL only restarts once a checkpoint has
      // caught up, and asking on every commit past the mark would checkpoint back to back.
      checkpointer.requested_at_ = frames;
      {
        std::lock_guard lock(checkpointer.mutex_);
        checkpointer.pending_ = true;
      }
      checkpointer.wake_.notify_one();
    }
    return SQLITE_OK;
  }

  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return pending_ || stop_; });
      if (stop_) return;
      pending_ = false;
      lock.unlock();
      // BUSY (another checkpoint running) or a reader still on old frames: the next commit
      // past the mark asks again.
      int copied = 0;
      if (sqlite3_wal_checkpoint_v2(db_, "main", SQLITE_CHECKPOINT_PASSIVE, nullptr, &copied) == SQLITE_OK &&
          copied > 0) {
        ++background_;
      }
      lock.lock();
    }
  }

  sqlite3* db_ = nullptr;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool pending_ = false;
  bool stop_ = false;
  std::atomic<std::int64_t> background_{0};
  std::atomic<std::int64_t> inline_{0};
  std::atomic<int> requested_at_{0};  // WAL frames at the last request (commits are serialized)
  std::thread thread_;
};

/// One SQLite connection and its statement cache. Used by one transaction at a time.
class Connection {
 public:
  Connection(const std::string& path, bool memory, Checkpointer* checkpointer = nullptr) {
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                      (memory ? SQLITE_OPEN_MEMORY : 0);
    const int rc = sqlite3_open_v2(memory ? ":memory:" : path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close_v2(db_);
      throw Error(ErrorCode::storage_error, "cannot open database '" + path + "': " + message);
    }
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    if (!memory) {
      try {
        // Entering WAL needs a lock the busy handler does not wait for while another
        // process creates the file: wait here instead, within the busy timeout.
        with_busy_retry([&] { exec("PRAGMA journal_mode = WAL"); });
        exec("PRAGMA synchronous = NORMAL");
        exec("PRAGMA cache_size = -16384");  // 16 MiB per connection: hot index pages stay in memory
      } catch (...) {
        sqlite3_close_v2(db_);
        throw;
      }
      if (checkpointer) checkpointer->watch(db_);
    }
  }
  ~Connection() {
    cache_.clear();
    sqlite3_close_v2(db_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void exec(const char* sql) {
    char* message = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
    if (rc != SQLITE_OK) {
      const std::string text = message ? message : sqlite3_errstr(rc);
      sqlite3_free(message);
      if (sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_UNIQUE) throw_sqlite(db_, rc, sql);
      const std::string what = std::string(sql).substr(0, 60) + ": " + text;
      if (is_busy(rc)) throw SqliteBusy(ErrorCode::storage_error, what);
      throw Error(ErrorCode::storage_error, what);
    }
  }

  /// The cached statement for `sql` (a string literal), reset and unbound.
  Statement& prepare(std::string_view sql) {
    auto it = cache_.find(sql.data());
    if (it == cache_.end()) {
      it = cache_.emplace(sql.data(), Cached{std::make_unique<Statement>(db_, sql), false}).first;
    } else {
      it->second.statement->reset();
    }
    if (!it->second.used) {
      it->second.used = true;
      used_.push_back(&it->second);
    }
    return *it->second.statement;
  }

  sqlite3* handle() const { return db_; }

  /// Resets the statements used since the last call (the others are reset already), so
  /// none keeps a read snapshot past its transaction.
  void reset_statements() {
    for (Cached* cached : used_) {
      cached->statement->finish();
      cached->used = false;
    }
    used_.clear();
  }

 private:
  struct Cached {
    std::unique_ptr<Statement> statement;
    bool used;  // listed in used_
  };
  sqlite3* db_ = nullptr;
  std::unordered_map<const char*, Cached> cache_;  // nodes stay put: used_ points into them
  std::vector<Cached*> used_;
};

// Schema migrations, applied in order; PRAGMA user_version records how many ran.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE workspaces (
  id              TEXT PRIMARY KEY,
  subscription_id TEXT NOT NULL,
  resource_group  TEXT NOT NULL,
  name            TEXT NOT NULL,
  state           INTEGER NOT NULL,          -- WorkspaceState
  retention_days  INTEGER NOT NULL,
  cmk_encrypted   INTEGER NOT NULL,
  created_at      INTEGER NOT NULL,          -- microseconds since the epoch, UTC
  deleted_at      INTEGER,
  purge_at        INTEGER,
  deleted_seq     INTEGER NOT NULL DEFAULT 0,
  orphaned_at     INTEGER,
  had_members     INTEGER NOT NULL DEFAULT 0,
  group_key       TEXT,                      -- name held in the group (live or reserved)
  tenant_key      TEXT,                      -- name held tenant-wide (reserved)
  retained_kinds  TEXT NOT NULL DEFAULT ''   -- newline-separated, set by a soft delete
) WITHOUT ROWID;
CREATE UNIQUE INDEX workspaces_group_key ON workspaces(group_key) WHERE group_key IS NOT NULL;
CREATE UNIQUE INDEX workspaces_tenant_key ON workspaces(tenant_key) WHERE tenant_key IS NOT NULL;
CREATE INDEX workspaces_live ON workspaces(subscription_id, resource_group, name);
CREATE INDEX workspaces_deleted ON workspaces(subscription_id, deleted_at DESC, deleted_seq DESC)
  WHERE deleted_at IS NOT NULL;
CREATE INDEX workspaces_deleted_group
  ON workspaces(subscription_id, resource_group, deleted_at DESC, deleted_seq DESC)
  WHERE deleted_at IS NOT NULL;
CREATE INDEX workspaces_purge_at ON workspaces(purge_at, id) WHERE purge_at IS NOT NULL;
CREATE INDEX workspaces_orphaned ON workspaces(orphaned_at) WHERE orphaned_at IS NOT NULL;

CREATE TABLE components (
  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  position     INTEGER NOT NULL,
  kind         TEXT NOT NULL,
  ref          TEXT NOT NULL,
  standalone   INTEGER NOT NULL,
  destroyed    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (workspace_id, position)
) WITHOUT ROWID;

CREATE TABLE members (
  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  principal_id TEXT NOT NULL,
  role         TEXT NOT NULL,
  PRIMARY KEY (workspace_id, principal_id)
) WITHOUT ROWID;

CREATE TABLE audit_log (
  seq             INTEGER PRIMARY KEY,
  at              INTEGER NOT NULL,
  action          TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  resource_group  TEXT NOT NULL,
  name            TEXT NOT NULL,
  outcome         TEXT NOT NULL,
  workspace_id    TEXT NOT NULL,
  principal_id    TEXT NOT NULL
);
CREATE INDEX audit_log_subscription ON audit_log(subscription_id, seq);

CREATE TABLE cleanup_tasks (
  id           INTEGER PRIMARY KEY,
  kind         TEXT NOT NULL,
  ref          TEXT NOT NULL,
  workspace_id TEXT NOT NULL,              -- no foreign key: the workspace is gone by design
  created_at   INTEGER NOT NULL,
  completed_at INTEGER
);
CREATE INDEX cleanup_tasks_pending ON cleanup_tasks(id) WHERE completed_at IS NULL;
)sql",
    // 2: find a deleted workspace by name with a seek (recover, get_deleted and purge stay flat
    // however full the bin); live lookups already use the group_key index.
    R"sql(
DROP INDEX workspaces_live;
CREATE INDEX workspaces_deleted_name
  ON workspaces(subscription_id, resource_group, name, deleted_at DESC, deleted_seq DESC)
  WHERE deleted_at IS NOT NULL;
)sql",
    // 3: fewer B-trees written per operation, and listings read from their index alone.
    // - A deleted workspace that keeps its name reserved keeps its group_key, and the unique
    //   group_key index already finds it; only deletes that released the name (scope: none)
    //   need the by-name index. A soft delete or recover writes one index fewer.
    // - components and members lose their foreign keys: the store always removes a
    //   workspace's children itself, and the cascade ran a trigger program per removed row
    //   (a third of a purge sweep's time) and a parent lookup per inserted child.
    // - The listing indexes cover what list_deleted shows: a page is one index range, with
    //   no lookup into the table per row (the primary key, id, is in every index entry).
    R"sql(
DROP INDEX workspaces_deleted_name;
CREATE INDEX workspaces_deleted_name
  ON workspaces(subscription_id, resource_group, name, deleted_at DESC, deleted_seq DESC)
  WHERE deleted_at IS NOT NULL AND group_key IS NULL;

DROP INDEX workspaces_deleted;
CREATE INDEX workspaces_deleted
  ON workspaces(subscription_id, deleted_at DESC, deleted_seq DESC,
                purge_at, resource_group, name, retention_days, retained_kinds)
  WHERE deleted_at IS NOT NULL;
DROP INDEX workspaces_deleted_group;
CREATE INDEX workspaces_deleted_group
  ON workspaces(subscription_id, resource_group, deleted_at DESC, deleted_seq DESC,
                purge_at, name, retention_days, retained_kinds)
  WHERE deleted_at IS NOT NULL;

CREATE TABLE components_v3 (
  workspace_id TEXT NOT NULL,              -- workspaces(id); removed with it by the store
  position     INTEGER NOT NULL,
  kind         TEXT NOT NULL,
  ref          TEXT NOT NULL,
  standalone   INTEGER NOT NULL,
  destroyed    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (workspace_id, position)
) WITHOUT ROWID;
INSERT INTO components_v3 SELECT workspace_id, position, kind, ref, standalone, destroyed FROM components;
DROP TABLE components;
ALTER TABLE components_v3 RENAME TO components;

CREATE TABLE members_v3 (
  workspace_id TEXT NOT NULL,              -- workspaces(id); removed with it by the store
  principal_id TEXT NOT NULL,
  role         TEXT NOT NULL,
  PRIMARY KEY (workspace_id, principal_id)
) WITHOUT ROWID;
INSERT INTO members_v3 SELECT workspace_id, principal_id, role FROM members;
DROP TABLE members;
ALTER TABLE members_v3 RENAME TO members;
)sql",
    // 4: cleanup workers: leases, attempts, the last error, a retry time.
    R"sql(
ALTER TABLE cleanup_tasks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cleanup_tasks ADD COLUMN last_error TEXT;
ALTER TABLE cleanup_tasks ADD COLUMN leased_by TEXT;
ALTER TABLE cleanup_tasks ADD COLUMN leased_until INTEGER;
ALTER TABLE cleanup_tasks ADD COLUMN available_at INTEGER NOT NULL DEFAULT 0;
)sql",
    // 5: protections. Legal holds and liens are rows of their own; the workspace row carries
    // whether it has any (held, has_liens), its purge protection and its auto-deletion time,
    // so deletes and sweeps read them with the row. The bin's listing indexes cover `held`
    // (a held workspace is listed past its purge_at); due auto-deletions have their own.
    R"sql(
ALTER TABLE workspaces ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN has_liens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN purge_protection INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN auto_delete_at INTEGER;
CREATE INDEX workspaces_auto_delete ON workspaces(auto_delete_at, id)
  WHERE auto_delete_at IS NOT NULL AND deleted_at IS NULL;

DROP INDEX workspaces_deleted;
CREATE INDEX workspaces_deleted
  ON workspaces(subscription_id, deleted_at DESC, deleted_seq DESC,
                purge_at, resource_group, name, retention_days, retained_kinds, held)
  WHERE deleted_at IS NOT NULL;
DROP INDEX workspaces_deleted_group;
CREATE INDEX workspaces_deleted_group
  ON workspaces(subscription_id, resource_group, deleted_at DESC, deleted_seq DESC,
                purge_at, name, retention_days, retained_kinds, held)
  WHERE deleted_at IS NOT NULL;

CREATE TABLE guards (                      -- legal holds and liens (GuardKind)
  id           TEXT PRIMARY KEY,
  kind         INTEGER NOT NULL,
  workspace_id TEXT NOT NULL,              -- workspaces(id); never removed while it has guards
  origin       TEXT NOT NULL,              -- liens: who needs it
  reason       TEXT NOT NULL,
  placed_by    TEXT,                       -- holds: NULL for the platform
  placed_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX guards_workspace ON guards(workspace_id, kind, placed_at);
)sql",
};

#define RB_SELECT_GUARDS "SELECT kind, id, workspace_id, origin, reason, placed_by, placed_at FROM guards "

#define RB_SELECT_CLEANUP \
  "SELECT id, kind, ref, workspace_id, created_at, attempts, last_error, leased_by, leased_until FROM cleanup_tasks "

#define RB_SELECT_WORKSPACES                                                                      \
  "SELECT id, subscription_id, resource_group, name, state, retention_days, cmk_encrypted, "     \
  "created_at, deleted_at, purge_at, deleted_seq, orphaned_at, had_members, group_key, tenant_key, " \
  "retained_kinds, held, has_liens, purge_protection, auto_delete_at " \
  "FROM workspaces "

/// A JSON array of strings, for json_each(): one bound parameter carries a whole set.
std::string json_array(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const auto& item : items) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (const char ch : item) {
      const auto byte = static_cast<unsigned char>(ch);
      if (ch == '"' || ch == '\\') {
        out += '\\';
        out += ch;
      } else if (byte < 0x20) {
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\u%04x", byte);
        out += escaped;
      } else {
        out += ch;
      }
    }
    out += '"';
  }
  return out + "]";
}

using rows::join_lines;
using rows::split_lines;

WorkspaceRecord read_workspace(const Statement& s) { return rows::workspace(s); }

std::vector<WorkspaceRecord> read_workspaces(Statement& s) {
  std::vector<WorkspaceRecord> rows;
  while (s.step()) rows.push_back(read_workspace(s));
  return rows;
}

std::optional<WorkspaceRecord> read_one(Statement& s) {
  if (!s.step()) return std::nullopt;
  return read_workspace(s);
}

Statement& bind_workspace(Statement& s, const WorkspaceRecord& r) {
  const Workspace& w = r.workspace;
  return s.bind(":id", w.id)
      .bind(":subscription_id", w.subscription_id)
      .bind(":resource_group", w.resource_group)
      .bind(":name", w.name)
      .bind(":state", static_cast<std::int64_t>(w.state))
      .bind(":retention_days", w.retention_days)
      .bind(":cmk_encrypted", w.cmk_encrypted)
      .bind(":created_at", w.created_at)
      .bind(":deleted_at", r.deleted_at)
      .bind(":purge_at", r.purge_at)
      .bind(":deleted_seq", r.deleted_seq)
      .bind(":orphaned_at", r.orphaned_at)
      .bind(":had_members", r.had_members)
      .bind(":group_key", r.group_key)
      .bind(":tenant_key", r.tenant_key)
      .bind(":retained_kinds", join_lines(r.retained_kinds))
      .bind(":held", r.held)
      .bind(":has_liens", r.has_liens)
      .bind(":purge_protection", w.purge_protection)
      .bind(":auto_delete_at", w.auto_delete_at);
}

CleanupTask read_cleanup(const Statement& s) { return rows::cleanup_task(s); }

class SqliteStoreImpl;

class SqliteTransaction final : public StoreTransaction {
 public:
  SqliteTransaction(SqliteStoreImpl& store, std::unique_ptr<Connection> connection, TransactionMode mode);
  ~SqliteTransaction() override;

  void commit() override {
    conn_->reset_statements();
    conn_->prepare("COMMIT").run();
    open_ = false;
  }

  // An undo point inside the transaction (one level), for group commit: several writes
  // share a commit while a refused one leaves no trace.
  void savepoint() { conn_->prepare("SAVEPOINT operation").run(); }
  void rollback_to_savepoint() { conn_->prepare("ROLLBACK TO operation").run(); }
  void release_savepoint() { conn_->prepare("RELEASE operation").run(); }

  std::optional<WorkspaceRecord> find_by_id(const std::string& id) override {
    return remember(read_one(conn_->prepare(RB_SELECT_WORKSPACES "WHERE id = :id").bind(":id", id)));
  }

  std::optional<WorkspaceRecord> find_live(const std::string& subscription_id,
                                           const std::string& resource_group,
                                           const std::string& name) override {
    return remember(read_one(conn_->prepare(RB_SELECT_WORKSPACES
                                            "WHERE group_key = :key AND deleted_at IS NULL")
                                 .bind(":key", group_name_key(subscription_id, resource_group, name))));
  }

  std::vector<WorkspaceRecord> find_deleted(const std::string& subscription_id,
                                            const std::string& resource_group,
                                            const std::string& name) override {
    // A delete that keeps the name reserved keeps the row's group_key: one seek in the
    // unique index. Deletes that released the name have their own partial index.
    auto keyed = read_one(conn_->prepare(RB_SELECT_WORKSPACES "WHERE group_key = :key AND deleted_at IS NOT NULL")
                              .bind(":key", group_name_key(subscription_id, resource_group, name)));
    auto rows = read_workspaces(
        conn_->prepare(RB_SELECT_WORKSPACES
                       "WHERE subscription_id = :s AND resource_group = :g AND name = :n "
                       "AND deleted_at IS NOT NULL AND group_key IS NULL "
                       "ORDER BY deleted_at DESC, deleted_seq DESC")
            .bind(":s", subscription_id)
            .bind(":g", resource_group)
            .bind(":n", name));
    if (keyed) {
      const auto newer = [&](const WorkspaceRecord& r) {
        return std::make_pair(*r.deleted_at, r.deleted_seq) > std::make_pair(*keyed->deleted_at, keyed->deleted_seq);
      };
      rows.insert(std::find_if_not(rows.begin(), rows.end(), newer), std::move(*keyed));
    }
    for (const auto& row : rows) remember_keys(row);
    return rows;
  }

  std::vector<WorkspaceRecord> find_deleted_in_tenant(const std::string& subscription_id,
                                                      const std::string& name) override {
    // Only under a tenant-wide reservation, at create: one range of the subscription's bin in
    // the covering workspaces_deleted index (which carries the name), rows read only on a match.
    auto rows = read_workspaces(conn_->prepare(RB_SELECT_WORKSPACES
                                               "INDEXED BY workspaces_deleted "
                                               "WHERE subscription_id = :s AND deleted_at IS NOT NULL AND name = :n "
                                               "ORDER BY deleted_at DESC, deleted_seq DESC")
                                    .bind(":s", subscription_id)
                                    .bind(":n", name));
    for (const auto& row : rows) remember_keys(row);
    return rows;
  }

  std::vector<WorkspaceRecord> find_name_holders(const std::string& group_key,
                                                 const std::string& tenant_key) override {
    std::vector<WorkspaceRecord> holders;
    if (!group_key.empty()) {
      if (auto row = read_one(conn_->prepare(RB_SELECT_WORKSPACES "WHERE group_key = :g").bind(":g", group_key))) {
        holders.push_back(std::move(*row));
      }
    }
    if (!tenant_key.empty()) {
      if (auto row = read_one(conn_->prepare(RB_SELECT_WORKSPACES "WHERE tenant_key = :t").bind(":t", tenant_key))) {
        if (holders.empty() || holders.front().workspace.id != row->workspace.id) holders.push_back(std::move(*row));
      }
    }
    for (const auto& row : holders) remember_keys(row);
    return holders;
  }

  void insert_workspace(const WorkspaceRecord& record) override {
    bind_workspace(conn_->prepare(
                       "INSERT INTO workspaces (id, subscription_id, resource_group, name, state, "
                       "retention_days, cmk_encrypted, created_at, deleted_at, purge_at, deleted_seq, "
                       "orphaned_at, had_members, group_key, tenant_key, retained_kinds, held, has_liens, "
                       "purge_protection, auto_delete_at) VALUES (:id, "
                       ":subscription_id, :resource_group, :name, :state, :retention_days, "
                       ":cmk_encrypted, :created_at, :deleted_at, :purge_at, :deleted_seq, "
                       ":orphaned_at, :had_members, :group_key, :tenant_key, :retained_kinds, :held, "
                       ":has_liens, :purge_protection, :auto_delete_at)"),
                   record)
        .run();
  }

  void set_state(const std::string& id, WorkspaceState state) override {
    conn_->prepare("UPDATE workspaces SET state = :state WHERE id = :id")
        .bind(":state", static_cast<std::int64_t>(state))
        .bind(":id", id)
        .run();
    expect_one_change(id);
  }

  void set_membership(const std::string& id, std::optional<Timestamp> orphaned_at, bool had_members) override {
    conn_->prepare("UPDATE workspaces SET orphaned_at = :orphaned_at, had_members = :had_members WHERE id = :id")
        .bind(":orphaned_at", orphaned_at)
        .bind(":had_members", had_members)
        .bind(":id", id)
        .run();
    expect_one_change(id);
  }

  void set_bin(const WorkspaceRecord& r) override {
    conn_->prepare(
            "UPDATE workspaces SET deleted_at = :deleted_at, purge_at = :purge_at, deleted_seq = :deleted_seq, "
            "retention_days = :retention_days, retained_kinds = :retained_kinds WHERE id = :id")
        .bind(":deleted_at", r.deleted_at)
        .bind(":purge_at", r.purge_at)
        .bind(":deleted_seq", r.deleted_seq)
        .bind(":retention_days", r.workspace.retention_days)
        .bind(":retained_kinds", join_lines(r.retained_kinds))
        .bind(":id", r.workspace.id)
        .run();
    expect_one_change(r.workspace.id);
    // The keys only when they differ from what this transaction read: SQLite updates an
    // index whenever its column is assigned, and each key has a unique index.
    const NameKeys keys{r.group_key, r.tenant_key};
    const auto known = keys_read_.find(r.workspace.id);
    if (known != keys_read_.end() && known->second == keys) return;
    conn_->prepare("UPDATE workspaces SET group_key = :group_key, tenant_key = :tenant_key WHERE id = :id")
        .bind(":group_key", r.group_key)
        .bind(":tenant_key", r.tenant_key)
        .bind(":id", r.workspace.id)
        .run();
    expect_one_change(r.workspace.id);
    keys_read_[r.workspace.id] = keys;
  }

  void set_protection(const WorkspaceRecord& r) override {
    conn_->prepare(
            "UPDATE workspaces SET held = :held, has_liens = :has_liens, purge_protection = :purge_protection, "
            "auto_delete_at = :auto_delete_at WHERE id = :id")
        .bind(":held", r.held)
        .bind(":has_liens", r.has_liens)
        .bind(":purge_protection", r.workspace.purge_protection)
        .bind(":auto_delete_at", r.workspace.auto_delete_at)
        .bind(":id", r.workspace.id)
        .run();
    expect_one_change(r.workspace.id);
  }

  void insert_guard(const GuardRow& g) override {
    conn_->prepare(
            "INSERT INTO guards (id, kind, workspace_id, origin, reason, placed_by, placed_at) "
            "VALUES (:id, :kind, :w, :origin, :reason, :by, :at)")
        .bind(":id", g.id)
        .bind(":kind", static_cast<std::int64_t>(g.kind))
        .bind(":w", g.workspace_id)
        .bind(":origin", g.origin)
        .bind(":reason", g.reason)
        .bind(":by", g.placed_by)
        .bind(":at", g.at)
        .run();
  }

  std::optional<GuardRow> find_guard(GuardKind kind, const std::string& id) override {
    Statement& s = conn_->prepare(RB_SELECT_GUARDS "WHERE id = :id AND kind = :kind");
    s.bind(":id", id).bind(":kind", static_cast<std::int64_t>(kind));
    if (!s.step()) return std::nullopt;
    return rows::guard(s);
  }

  bool remove_guard(GuardKind kind, const std::string& id) override {
    conn_->prepare("DELETE FROM guards WHERE id = :id AND kind = :kind")
        .bind(":id", id)
        .bind(":kind", static_cast<std::int64_t>(kind))
        .run();
    return sqlite3_changes(conn_->handle()) > 0;
  }

  std::vector<GuardRow> guards(GuardKind kind, const std::string& workspace_id) override {
    Statement& s = conn_->prepare(RB_SELECT_GUARDS "WHERE workspace_id = :w AND kind = :kind ORDER BY placed_at, id");
    s.bind(":w", workspace_id).bind(":kind", static_cast<std::int64_t>(kind));
    std::vector<GuardRow> out;
    while (s.step()) out.push_back(rows::guard(s));
    return out;
  }

  void remove_workspace(const std::string& id) override {
    // The children by their primary key prefix (there are no foreign keys to cascade).
    conn_->prepare("DELETE FROM components WHERE workspace_id = :id").bind(":id", id).run();
    conn_->prepare("DELETE FROM members WHERE workspace_id = :id").bind(":id", id).run();
    conn_->prepare("DELETE FROM workspaces WHERE id = :id").bind(":id", id).run();
    keys_read_.erase(id);
  }

  std::vector<StoredComponent> components(const std::string& workspace_id) override {
    Statement& s = conn_->prepare(
        "SELECT kind, ref, standalone, destroyed, position FROM components WHERE workspace_id = :id "
        "ORDER BY position");
    s.bind(":id", workspace_id);
    std::vector<StoredComponent> out;
    while (s.step()) out.push_back(rows::component(s));
    return out;
  }

  void insert_components(const std::string& workspace_id, const std::vector<Component>& components) override {
    std::int64_t position = 0;
    for (const Component& c : components) {
      conn_->prepare(
              "INSERT INTO components (workspace_id, position, kind, ref, standalone) "
              "VALUES (:id, :position, :kind, :ref, :standalone)")
          .bind(":id", workspace_id)
          .bind(":position", position++)
          .bind(":kind", c.kind)
          .bind(":ref", c.ref)
          .bind(":standalone", c.standalone)
          .run();
    }
  }

  void set_component_destroyed(const std::string& workspace_id, std::int64_t position, bool destroyed) override {
    conn_->prepare("UPDATE components SET destroyed = :destroyed WHERE workspace_id = :id AND position = :position")
        .bind(":destroyed", destroyed)
        .bind(":id", workspace_id)
        .bind(":position", position)
        .run();
  }

  void remove_component(const std::string& workspace_id, std::int64_t position) override {
    conn_->prepare("DELETE FROM components WHERE workspace_id = :id AND position = :position")
        .bind(":id", workspace_id)
        .bind(":position", position)
        .run();
  }

  std::optional<std::string> member_role(const std::string& workspace_id,
                                         const std::string& principal_id) override {
    Statement& s = conn_->prepare(
        "SELECT role FROM members WHERE workspace_id = :w AND principal_id = :p");
    s.bind(":w", workspace_id).bind(":p", principal_id);
    if (!s.step()) return std::nullopt;
    return s.text(0);
  }

  void put_member(const std::string& workspace_id, const std::string& principal_id,
                  const std::string& role) override {
    conn_->prepare(
            "INSERT INTO members (workspace_id, principal_id, role) VALUES (:w, :p, :r) "
            "ON CONFLICT (workspace_id, principal_id) DO UPDATE SET role = excluded.role")
        .bind(":w", workspace_id)
        .bind(":p", principal_id)
        .bind(":r", role)
        .run();
  }

  bool remove_member(const std::string& workspace_id, const std::string& principal_id) override {
    conn_->prepare("DELETE FROM members WHERE workspace_id = :w AND principal_id = :p")
        .bind(":w", workspace_id)
        .bind(":p", principal_id)
        .run();
    return sqlite3_changes(conn_->handle()) > 0;
  }

  std::int64_t count_members(const std::string& workspace_id) override {
    Statement& s = conn_->prepare("SELECT count(*) FROM members WHERE workspace_id = :w");
    s.bind(":w", workspace_id).step();
    return s.int64(0);
  }

  std::int64_t append_audit(const AuditRecord& r) override {
    conn_->prepare(
            "INSERT INTO audit_log (at, action, subscription_id, resource_group, name, outcome, "
            "workspace_id, principal_id) VALUES (:at, :action, :s, :g, :n, :outcome, :w, :p)")
        .bind(":at", r.at)
        .bind(":action", r.action)
        .bind(":s", r.subscription_id)
        .bind(":g", r.resource_group)
        .bind(":n", r.name)
        .bind(":outcome", r.outcome)
        .bind(":w", r.workspace_id)
        .bind(":p", r.principal_id)
        .run();
    return sqlite3_last_insert_rowid(conn_->handle());
  }

  std::vector<AuditRecord> audit_log(const AuditQuery& q) override {
    // Keyset by seq: each page seeks in the primary key (or audit_log_subscription).
    Statement& s =
        q.subscription_id
            ? conn_->prepare("SELECT seq, at, action, subscription_id, resource_group, name, outcome, "
                             "workspace_id, principal_id FROM audit_log WHERE subscription_id = :s "
                             "AND seq > :after ORDER BY seq LIMIT :limit")
            : conn_->prepare("SELECT seq, at, action, subscription_id, resource_group, name, outcome, "
                             "workspace_id, principal_id FROM audit_log WHERE seq > :after "
                             "ORDER BY seq LIMIT :limit");
    if (q.subscription_id) s.bind(":s", *q.subscription_id);
    // LIMIT -1: no limit in SQLite.
    s.bind(":after", q.after_seq).bind(":limit", q.limit ? static_cast<std::int64_t>(*q.limit) : std::int64_t{-1});
    std::vector<AuditRecord> out;
    while (s.step()) {
      out.push_back({s.int64(0), s.int64(1), s.text(2), s.text(3), s.text(4), s.text(5), s.text(6),
                     s.text(7), s.text(8)});
    }
    return out;
  }

  CleanupTask add_cleanup(const CleanupTask& task) override {
    conn_->prepare(
            "INSERT INTO cleanup_tasks (kind, ref, workspace_id, created_at) "
            "VALUES (:kind, :ref, :w, :at)")
        .bind(":kind", task.kind)
        .bind(":ref", task.ref)
        .bind(":w", task.workspace_id)
        .bind(":at", task.created_at)
        .run();
    CleanupTask stored = task;
    stored.id = sqlite3_last_insert_rowid(conn_->handle());
    return stored;
  }

  std::vector<CleanupTask> pending_cleanup() override {
    Statement& s = conn_->prepare(RB_SELECT_CLEANUP "WHERE completed_at IS NULL ORDER BY id");
    std::vector<CleanupTask> out;
    while (s.step()) out.push_back(read_cleanup(s));
    return out;
  }

  std::vector<CleanupTask> claim_cleanup(const std::string& worker, Timestamp now, Timestamp leased_until,
                                         std::size_t limit) override {
    // The writer lock makes this one claim at a time: nothing to skip.
    Statement& s = conn_->prepare(
        "UPDATE cleanup_tasks SET leased_by = :worker, leased_until = :until WHERE id IN ("
        "SELECT id FROM cleanup_tasks WHERE completed_at IS NULL "
        "AND (leased_until IS NULL OR leased_until <= :now) AND available_at <= :now "
        "ORDER BY id LIMIT :limit) "
        "RETURNING id, kind, ref, workspace_id, created_at, attempts, last_error, leased_by, leased_until");
    s.bind(":worker", worker)
        .bind(":until", leased_until)
        .bind(":now", now)
        .bind(":limit", static_cast<std::int64_t>(std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max())));
    std::vector<CleanupTask> out;
    while (s.step()) out.push_back(read_cleanup(s));
    std::sort(out.begin(), out.end(), [](const CleanupTask& a, const CleanupTask& b) { return a.id < b.id; });
    return out;
  }

  std::optional<bool> fail_cleanup(std::int64_t task_id, const std::string& error, Timestamp retry_at) override {
    const auto pending = is_pending(task_id);
    if (!pending || !*pending) return pending;
    conn_->prepare(
            "UPDATE cleanup_tasks SET attempts = attempts + 1, last_error = :error, leased_by = NULL, "
            "leased_until = NULL, available_at = :retry_at WHERE id = :id")
        .bind(":error", error)
        .bind(":retry_at", retry_at)
        .bind(":id", task_id)
        .run();
    return true;
  }

  std::optional<bool> complete_cleanup(std::int64_t task_id, Timestamp at) override {
    const auto pending = is_pending(task_id);
    if (!pending || !*pending) return pending;
    conn_->prepare("UPDATE cleanup_tasks SET completed_at = :at, leased_by = NULL, leased_until = NULL WHERE id = :id")
        .bind(":at", at)
        .bind(":id", task_id)
        .run();
    return true;
  }

  std::vector<std::vector<StoredComponent>> components_of(const std::vector<std::string>& ids) override {
    std::vector<std::vector<StoredComponent>> out(ids.size());
    // CROSS JOIN keeps json_each the outer loop: one seek into components per workspace.
    Statement& s = conn_->prepare(
        "SELECT j.key, c.kind, c.ref, c.standalone, c.destroyed, c.position "
        "FROM json_each(:ids) AS j CROSS JOIN components AS c ON c.workspace_id = j.value "
        "ORDER BY j.key, c.position");
    s.bind(":ids", json_array(ids));
    while (s.step()) {
      out.at(static_cast<std::size_t>(s.int64(0))).push_back(rows::component(s, 1));
    }
    return out;
  }

  void append_audit_for(const std::vector<std::string>& ids, const AuditRecord& r) override {
    conn_->prepare(
            "INSERT INTO audit_log (at, action, subscription_id, resource_group, name, outcome, "
            "workspace_id, principal_id) "
            "SELECT :at, :action, w.subscription_id, w.resource_group, w.name, :outcome, w.id, :p "
            "FROM json_each(:ids) AS j CROSS JOIN workspaces AS w ON w.id = j.value ORDER BY j.key")
        .bind(":at", r.at)
        .bind(":action", r.action)
        .bind(":outcome", r.outcome)
        .bind(":p", r.principal_id)
        .bind(":ids", json_array(ids))
        .run();
  }

  void remove_workspaces(const std::vector<std::string>& ids) override {
    const std::string set = json_array(ids);
    // The children too: there are no foreign keys to cascade.
    conn_->prepare("DELETE FROM components WHERE workspace_id IN (SELECT value FROM json_each(:ids))")
        .bind(":ids", set)
        .run();
    conn_->prepare("DELETE FROM members WHERE workspace_id IN (SELECT value FROM json_each(:ids))")
        .bind(":ids", set)
        .run();
    conn_->prepare("DELETE FROM workspaces WHERE id IN (SELECT value FROM json_each(:ids))")
        .bind(":ids", set)
        .run();
  }

  std::vector<DeletedListing> list_deleted(const DeletedQuery& q) override {
    // Keyset pagination: each page seeks in the index, so a page costs the same at any depth.
    const rows::DeletedBounds b = rows::deleted_bounds(q);
#define RB_SELECT_LISTING                                                                \
  "SELECT id, name, subscription_id, resource_group, deleted_at, purge_at, retention_days, " \
  "retained_kinds, deleted_seq, held FROM workspaces "
    Statement& s =
        q.resource_group
            ? conn_->prepare(RB_SELECT_LISTING
                             "WHERE subscription_id = :s AND resource_group = :g AND deleted_at IS NOT NULL "
                             "AND (deleted_at, deleted_seq) < (:at, :seq) AND (purge_at > :purge_after OR held) "
                             "AND purge_at < :purge_before "
                             "ORDER BY deleted_at DESC, deleted_seq DESC LIMIT :limit")
            : conn_->prepare(RB_SELECT_LISTING
                             "WHERE subscription_id = :s AND deleted_at IS NOT NULL "
                             "AND (deleted_at, deleted_seq) < (:at, :seq) AND (purge_at > :purge_after OR held) "
                             "AND purge_at < :purge_before "
                             "ORDER BY deleted_at DESC, deleted_seq DESC LIMIT :limit");
#undef RB_SELECT_LISTING
    s.bind(":s", q.subscription_id)
        .bind(":at", b.after_at)
        .bind(":seq", b.after_seq)
        .bind(":purge_after", b.purge_after)
        .bind(":purge_before", b.purge_before)
        .bind(":limit", static_cast<std::int64_t>(q.limit));
    if (q.resource_group) s.bind(":g", *q.resource_group);
    std::vector<DeletedListing> page;
    page.reserve(std::min<std::size_t>(q.limit, 1'000));
    while (s.step()) rows::listing(s, page.emplace_back());
    return page;
  }

  std::vector<WorkspaceRecord> list_live(const LiveQuery& q) override {
    // Keyset pagination over the unique name-key index: group_key is subscription \x1f group
    // \x1f name, and identifiers hold no character below \x20, so its byte order is
    // (resource_group, name) order. A page seeks once and walks one range, costing the same
    // at any depth, without an index of its own (a soft delete that keeps its name reserved
    // keeps its key and is skipped: its row is read, not returned).
    const std::string prefix = q.subscription_id + '\x1f' + (q.resource_group ? *q.resource_group + '\x1f' : "");
    const std::string after = q.after ? group_name_key(q.subscription_id, q.after->resource_group, q.after->name)
                                      : prefix;
    std::string end = prefix;
    end.back() = '\x20';  // just past every key that starts with the prefix
    Statement& s = conn_->prepare(RB_SELECT_WORKSPACES
                                  "WHERE group_key > :after AND group_key < :end AND deleted_at IS NULL "
                                  "ORDER BY group_key LIMIT :limit");
    s.bind(":after", after).bind(":end", end).bind(":limit", static_cast<std::int64_t>(q.limit));
    return read_workspaces(s);
  }

  std::vector<WorkspaceRecord> expired(Timestamp now, const std::optional<ExpiryCursor>& after,
                                       std::size_t limit) override {
    return due(RB_SELECT_WORKSPACES
               "WHERE purge_at IS NOT NULL AND purge_at <= :now "
               "AND (purge_at, id) > (:after_at, :after_id) AND NOT held "
               "ORDER BY purge_at, id LIMIT :limit",
               now, after, limit);
  }

  std::vector<WorkspaceRecord> auto_delete_due(Timestamp now, const std::optional<ExpiryCursor>& after,
                                               std::size_t limit) override {
    // The writer lock makes this one sweep at a time: nothing to skip.
    return due(RB_SELECT_WORKSPACES
               "WHERE auto_delete_at IS NOT NULL AND deleted_at IS NULL "
               "AND auto_delete_at <= :now AND (auto_delete_at, id) > (:after_at, :after_id) "
               "ORDER BY auto_delete_at, id LIMIT :limit",
               now, after, limit);
  }

  std::vector<WorkspaceRecord> orphaned(const std::optional<std::string>& subscription_id,
                                        Timestamp orphaned_before, std::size_t limit) override {
    Statement& s = subscription_id
                       ? conn_->prepare(RB_SELECT_WORKSPACES
                                        "WHERE orphaned_at IS NOT NULL AND orphaned_at <= :before "
                                        "AND subscription_id = :s ORDER BY orphaned_at LIMIT :limit")
                       : conn_->prepare(RB_SELECT_WORKSPACES
                                        "WHERE orphaned_at IS NOT NULL AND orphaned_at <= :before "
                                        "ORDER BY orphaned_at LIMIT :limit");
    s.bind(":before", orphaned_before).bind(":limit", static_cast<std::int64_t>(limit));
    if (subscription_id) s.bind(":s", *subscription_id);
    return read_workspaces(s);
  }

  std::vector<WorkspaceRecord> expired_in(const std::string& subscription_id, Timestamp now) override {
    return read_workspaces(conn_->prepare(RB_SELECT_WORKSPACES
                                          "WHERE subscription_id = :s AND deleted_at IS NOT NULL "
                                          "AND purge_at <= :now AND NOT held ORDER BY purge_at")
                               .bind(":s", subscription_id)
                               .bind(":now", now));
  }

 private:
  /// The rows a sweep query (:now, :after_at, :after_id, :limit) finds: due by `now`, after
  /// the keyset position `after`.
  std::vector<WorkspaceRecord> due(const char* sql, Timestamp now, const std::optional<ExpiryCursor>& after,
                                   std::size_t limit) {
    Statement& s = conn_->prepare(sql);
    s.bind(":now", now)
        .bind(":after_at", after ? after->purge_at : std::numeric_limits<std::int64_t>::min())
        .bind(":after_id", after ? after->id : std::string())
        .bind(":limit", static_cast<std::int64_t>(limit));
    return read_workspaces(s);
  }

  /// nullopt: no such task; otherwise whether it is still pending.
  std::optional<bool> is_pending(std::int64_t task_id) {
    Statement& s = conn_->prepare("SELECT completed_at IS NULL FROM cleanup_tasks WHERE id = :id");
    s.bind(":id", task_id);
    if (!s.step()) return std::nullopt;
    return s.int64(0) != 0;
  }

  using NameKeys = std::pair<std::optional<std::string>, std::optional<std::string>>;

  std::optional<WorkspaceRecord> remember(std::optional<WorkspaceRecord> row) {
    if (row) remember_keys(*row);
    return row;
  }
  void remember_keys(const WorkspaceRecord& row) { keys_read_[row.workspace.id] = {row.group_key, row.tenant_key}; }

  void expect_one_change(const std::string& id) {
    if (sqlite3_changes(conn_->handle()) != 1) {
      throw Error(ErrorCode::storage_error, "workspace " + id + " vanished during the transaction");
    }
  }

  SqliteStoreImpl& store_;
  std::unique_ptr<Connection> conn_;
  bool open_ = true;
  std::unordered_map<std::string, NameKeys> keys_read_;  // name keys as read (or last written) here
};

class SqliteStoreImpl final : public SqliteStore {
 public:
  SqliteStoreImpl(std::string path, bool memory)
      : path_(std::move(path)), memory_(memory), pool_(memory ? 1 : kMaxFileConnections) {
    auto connection = std::make_unique<Connection>(path_, memory_);
    // Several processes may create and migrate a new file at once: the one that gets the
    // write lock migrates, the others wait (the busy timeout) and find it done.
    with_busy_retry([&] { migrate(*connection); });
    if (!memory_) {
      checkpointer_ = std::make_unique<Checkpointer>(path_);
      checkpointer_->watch(connection->handle());
    }
    pool_.adopt(std::move(connection));
  }

  ~SqliteStoreImpl() override {
    checkpointer_.reset();  // its thread stops first; the last connection to close folds the WAL in
    pool_.clear();
  }

  std::unique_ptr<StoreTransaction> begin(TransactionMode mode) override { return open_transaction(mode); }

  SqliteStats stats() const override { return checkpointer_ ? checkpointer_->stats() : SqliteStats{}; }

  // ---- group commit ----
  // Concurrent writes share commits: the first waiting thread becomes the leader, runs every
  // queued write in one transaction, each under its own savepoint, commits once and wakes
  // the others. A call returns only after the commit that holds its changes, so durability
  // is the same as one commit per call. If a shared commit fails, each write of the batch
  // runs again in a transaction of its own, so one failure does not fail its neighbours.
  void write(const Apply& apply, const OnRefusal& on_refusal) override {
    PendingWrite pending;
    pending.apply = &apply;
    pending.on_refusal = &on_refusal;
    std::unique_lock lock(queue_mutex_);
    queue_.push_back(&pending);
    while (!pending.done) {
      if (leader_active_) {
        queue_done_.wait(lock);
        continue;
      }
      leader_active_ = true;
      std::vector<PendingWrite*> batch;
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
      lock.unlock();
      run_batch(batch);
      lock.lock();
      for (PendingWrite* write : batch) write->done = true;
      leader_active_ = false;
      queue_done_.notify_all();
    }
    if (pending.error) std::rethrow_exception(pending.error);
  }

  void release(std::unique_ptr<Connection> connection) { pool_.release(std::move(connection)); }

 private:
  struct PendingWrite {
    const Apply* apply = nullptr;
    const OnRefusal* on_refusal = nullptr;
    std::exception_ptr error;
    bool done = false;
  };
  static constexpr std::size_t kMaxBatch = 64;

  std::unique_ptr<SqliteTransaction> open_transaction(TransactionMode mode) {
    return std::make_unique<SqliteTransaction>(*this, acquire(), mode);
  }

  static bool is_refusal(const std::exception_ptr& error) {
    try {
      std::rethrow_exception(error);
    } catch (const Error& e) {
      return e.code() != ErrorCode::storage_error;
    } catch (...) {
      return false;
    }
  }

  void run_batch(const std::vector<PendingWrite*>& batch) noexcept {
    if (batch.size() > 1) {
      try {
        auto tx = open_transaction(TransactionMode::write);
        for (PendingWrite* write : batch) run_shared(*tx, *write);
        tx->commit();
        return;
      } catch (...) {
        // Nothing of the batch is durable: each write runs again on its own.
      }
    }
    for (PendingWrite* write : batch) {
      write->error = nullptr;
      run_alone(*write);
    }
  }

  /// One write of a shared batch, under a savepoint.
  static void run_shared(SqliteTransaction& tx, PendingWrite& write) {
    tx.savepoint();
    try {
      (*write.apply)(tx);
      tx.release_savepoint();
      return;
    } catch (...) {
      write.error = std::current_exception();
    }
    tx.rollback_to_savepoint();
    if (*write.on_refusal && is_refusal(write.error)) {
      try {
        (*write.on_refusal)(tx, write.error);
      } catch (...) {
        tx.rollback_to_savepoint();  // the refusal stands, unaudited
      }
    }
    tx.release_savepoint();
  }

  /// One write in a transaction of its own; a refusal is audited in another.
  void run_alone(PendingWrite& write) noexcept {
    try {
      {
        auto tx = open_transaction(TransactionMode::write);
        try {
          (*write.apply)(*tx);
          tx->commit();
          return;
        } catch (...) {
          write.error = std::current_exception();
        }
      }  // rolled back
      if (*write.on_refusal && is_refusal(write.error)) {
        auto tx = open_transaction(TransactionMode::write);
        (*write.on_refusal)(*tx, write.error);
        tx->commit();
      }
    } catch (...) {
      if (!write.error) write.error = std::current_exception();
    }
  }

  std::unique_ptr<Connection> acquire() {
    return pool_.acquire([&] { return std::make_unique<Connection>(path_, memory_, checkpointer_.get()); });
  }

  static void migrate(Connection& connection) {
    connection.exec("BEGIN IMMEDIATE");
    try {
      Statement version(connection.handle(), "PRAGMA user_version");
      version.step();
      const auto current = static_cast<std::size_t>(version.int64(0));
      version.reset();  // a pending statement would lock the schema against DROP INDEX
      const std::size_t target = std::size(kMigrations);
      if (current > target) {
        throw Error(ErrorCode::storage_error,
                    "the database has schema version " + std::to_string(current) +
                        ", newer than this recyclebin understands (" + std::to_string(target) +
                        "); upgrade recyclebin");
      }
      for (std::size_t i = current; i < target; ++i) connection.exec(kMigrations[i]);
      if (current != target) {
        connection.exec(("PRAGMA user_version = " + std::to_string(target)).c_str());
      }
      connection.exec("COMMIT");
    } catch (...) {
      sqlite3_exec(connection.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  std::string path_;
  bool memory_;
  std::unique_ptr<Checkpointer> checkpointer_;
  ConnectionPool<Connection> pool_;  // after the checkpointer: connections close first

  std::mutex queue_mutex_;
  std::condition_variable queue_done_;
  std::deque<PendingWrite*> queue_;
  bool leader_active_ = false;
};

SqliteTransaction::SqliteTransaction(SqliteStoreImpl& store, std::unique_ptr<Connection> connection,
                                     TransactionMode mode)
    : store_(store), conn_(std::move(connection)) {
  try {
    conn_->prepare(mode == TransactionMode::write ? "BEGIN IMMEDIATE" : "BEGIN").run();
  } catch (...) {
    store_.release(std::move(conn_));
    throw;
  }
}

SqliteTransaction::~SqliteTransaction() {
  conn_->reset_statements();
  if (open_) {
    try {
      conn_->prepare("ROLLBACK").run();
    } catch (...) {
      // A failed rollback leaves SQLite to roll back on its own; destructors never throw.
    }
  }
  store_.release(std::move(conn_));
}

}  // namespace

int sqlite_schema_version() { return static_cast<int>(std::size(kMigrations)); }

std::unique_ptr<SqliteStore> open_sqlite_store(const std::string& location) {
  std::string path = location;
  if (path.rfind("sqlite://", 0) == 0) {
    path = path.substr(std::string_view("sqlite://").size());  // "/rel.db" or "//abs.db" or ""
    if (!path.empty() && path.front() == '/') path.erase(0, 1);
    if (path.empty()) path = ":memory:";
  }
  if (path.empty()) {
    throw Error(ErrorCode::invalid_argument,
                "empty database location; give a file path, sqlite:///relative.db, "
                "sqlite:////abs/path.db or :memory:");
  }
  const bool memory = path == ":memory:";
  return std::make_unique<SqliteStoreImpl>(path, memory);
}

}  // namespace recyclebin
