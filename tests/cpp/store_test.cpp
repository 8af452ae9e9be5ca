// The SQLite store's own promises: durability, schema versioning, WAL checkpoints, index use,
// several processes opening one file (what both stores promise: store_contract_test.cpp).
#include <gtest/gtest.h>

#include <sqlite3.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "fixtures.hpp"
#include "recyclebin/sqlite_store.hpp"

namespace recyclebin {
namespace {

using testing::expect_error;
using testing::kJan1;
using testing::TempDb;

std::string query_plan(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* stmt = nullptr;
  std::string plan;
  if (sqlite3_prepare_v2(db, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &stmt, nullptr) == SQLITE_OK) {
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      plan += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3));
      plan += "\n";
    }
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return plan;
}

int user_version(const std::string& path) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr);
  sqlite3_step(stmt);
  const int version = sqlite3_column_int(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return version;
}

TEST(Store, ReopenAfterCloseSeesEverything) {
  TempDb db;
  auto clock = std::make_shared<ManualClock>(kJan1);
  std::string id;
  {
    auto engine = Engine::open(db.path(), Policy::builtin("default"), clock);
    id = engine->create({"sub", "rg", "keep", std::nullopt, false, {{"models", "m", false}}}, std::nullopt).id;
    const auto gone = engine->create({"sub", "rg", "gone", 5, false, {}}, std::nullopt);
    engine->remove(gone.id, {}, std::nullopt);
    engine->close();
  }
  auto engine = Engine::open("sqlite:///" + db.path(), Policy::builtin("default"), clock);  // sqlite:////abs
  EXPECT_EQ(engine->get("sub", "rg", "keep", std::nullopt).id, id);
  EXPECT_EQ(engine->get("sub", "rg", "keep", std::nullopt).components.size(), 1u);
  const auto deleted = engine->get_deleted("sub", "rg", "gone", std::nullopt);
  EXPECT_EQ(deleted.retention_days, 5);
  EXPECT_EQ(deleted.deleted_at, kJan1);
  EXPECT_EQ(engine->audit_log(std::nullopt).size(), 3u);
  expect_error(ErrorCode::name_reserved, [&] { engine->create({"sub", "rg", "gone", std::nullopt, false, {}}, std::nullopt); });
}

TEST(Store, LocationForms) {
  EXPECT_NO_THROW(open_sqlite_store(":memory:"));
  EXPECT_NO_THROW(open_sqlite_store("sqlite://"));
  TempDb db;
  auto store = open_sqlite_store("sqlite:///" + db.path());  // sqlite:////abs/path.db
  EXPECT_EQ(user_version(db.path()), sqlite_schema_version());
  expect_error(ErrorCode::invalid_argument, [] { open_sqlite_store(""); });
  expect_error(ErrorCode::storage_error, [] { open_sqlite_store("/nonexistent-dir/x/y.db"); });
}

// Issue 10: several processes opening one brand-new file at once sometimes failed with
// "PRAGMA journal_mode = WAL: database is locked" (entering WAL takes a lock SQLite's busy
// handler does not wait for). Every open must succeed.
TEST(Store, ManyProcessesOpeningOneNewFileAllSucceed) {
  constexpr int kRounds = 60, kProcesses = 8;
  int failures = 0;
  std::string first_failure;
  for (int round = 0; round < kRounds; ++round) {
    TempDb db;
    int go[2], report[2];
    ASSERT_EQ(::pipe(go), 0);
    ASSERT_EQ(::pipe(report), 0);
    std::vector<pid_t> children;
    for (int i = 0; i < kProcesses; ++i) {
      const pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        ::close(go[1]);
        char byte = 0;
        if (::read(go[0], &byte, 1) != 1) ::_exit(3);  // all start together
        int code = 0;
        try {
          auto store = open_sqlite_store(db.path());
          store->begin(TransactionMode::read)->find_by_id("x");
        } catch (const std::exception& e) {
          const std::string line = std::string(e.what()).substr(0, 200) + "\n";
          if (::write(report[1], line.data(), line.size()) < 0) code = 2;
          code = 1;
        }
        ::_exit(code);
      }
      children.push_back(pid);
    }
    ::close(go[0]);
    ::close(report[1]);
    const char start[kProcesses] = {};
    ASSERT_EQ(::write(go[1], start, sizeof start), static_cast<ssize_t>(sizeof start));
    ::close(go[1]);
    for (const pid_t pid : children) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
    }
    char buffer[512] = {};
    const ssize_t n = ::read(report[0], buffer, sizeof buffer - 1);
    if (n > 0 && first_failure.empty()) first_failure.assign(buffer, static_cast<std::size_t>(n));
    ::close(report[0]);
  }
  EXPECT_EQ(failures, 0) << "of " << kRounds * kProcesses << " opens; first: " << first_failure;
}

TEST(Store, RefusesANewerSchema) {
  TempDb db;
  open_sqlite_store(db.path());
  sqlite3* raw = nullptr;
  sqlite3_open(db.path().c_str(), &raw);
  sqlite3_exec(raw, "PRAGMA user_version = 99", nullptr, nullptr, nullptr);
  sqlite3_close(raw);
  const std::string m = expect_error(ErrorCode::storage_error, [&] { open_sqlite_store(db.path()); });
  EXPECT_NE(m.find("newer than this recyclebin understands"), std::string::npos) << m;
}

// What version 1 of the schema was (a fixed fact of history, so it is written out here).
constexpr const char* kSchemaVersionOne = R"sql(
CREATE TABLE workspaces (
  id TEXT PRIMARY KEY, subscription_id TEXT NOT NULL, resource_group TEXT NOT NULL, name TEXT NOT NULL,
  state INTEGER NOT NULL, retention_days INTEGER NOT NULL, cmk_encrypted INTEGER NOT NULL,
  created_at INTEGER NOT NULL, deleted_at INTEGER, purge_at INTEGER, deleted_seq INTEGER NOT NULL DEFAULT 0,
  orphaned_at INTEGER, had_members INTEGER NOT NULL DEFAULT 0, group_key TEXT, tenant_key TEXT,
  retained_kinds TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE UNIQUE INDEX workspaces_group_key ON workspaces(group_key) WHERE group_key IS NOT NULL;
CREATE UNIQUE INDEX workspaces_tenant_key ON workspaces(tenant_key) WHERE tenant_key IS NOT NULL;
CREATE INDEX workspaces_live ON workspaces(subscription_id, resource_group, name);
CREATE INDEX workspaces_deleted ON workspaces(subscription_id, deleted_at DESC, deleted_seq DESC)
  WHERE deleted_at IS NOT NULL;
CREATE INDEX workspaces_deleted_group
  ON workspaces(subscription_id, resource_group, deleted_at DESC, deleted_seq DESC) WHERE deleted_at IS NOT NULL;
CREATE INDEX workspaces_purge_at ON workspaces(purge_at, id) WHERE purge_at IS NOT NULL;
CREATE INDEX workspaces_orphaned ON workspaces(orphaned_at) WHERE orphaned_at IS NOT NULL;
CREATE TABLE components (
  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE, position INTEGER NOT NULL,
  kind TEXT NOT NULL, ref TEXT NOT NULL, standalone INTEGER NOT NULL, destroyed INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (workspace_id, position)
) WITHOUT ROWID;
CREATE TABLE members (
  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE, principal_id TEXT NOT NULL,
  role TEXT NOT NULL, PRIMARY KEY (workspace_id, principal_id)
) WITHOUT ROWID;
CREATE TABLE audit_log (
  seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, action TEXT NOT NULL, subscription_id TEXT NOT NULL,
  resource_group TEXT NOT NULL, name TEXT NOT NULL, outcome TEXT NOT NULL, workspace_id TEXT NOT NULL,
  principal_id TEXT NOT NULL
);
CREATE INDEX audit_log_subscription ON audit_log(subscription_id, seq);
CREATE TABLE cleanup_tasks (
  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, ref TEXT NOT NULL, workspace_id TEXT NOT NULL,
  created_at INTEGER NOT NULL, completed_at INTEGER
);
CREATE INDEX cleanup_tasks_pending ON cleanup_tasks(id) WHERE completed_at IS NULL;
PRAGMA user_version = 1;
)sql";

std::int64_t count(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* stmt = nullptr;
  std::int64_t n = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    n = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return n;
}

TEST(Store, MigratesForwardFromVersionOne) {
  TempDb db;
  sqlite3* raw = nullptr;
  sqlite3_open(db.path().c_str(), &raw);
  ASSERT_EQ(sqlite3_exec(raw, kSchemaVersionOne, nullptr, nullptr, nullptr), SQLITE_OK);
  // In the bin: "kept" still holds its name (group key), "released" gave it up (scope none).
  const Timestamp deleted = kJan1 + kMicrosPerDay, purge = add_days(deleted, 14);
  const std::string rows =
      "INSERT INTO workspaces VALUES ('w1', 'sub', 'rg', 'kept', 1, 14, 0, " + std::to_string(kJan1) + ", " +
      std::to_string(deleted) + ", " + std::to_string(purge) + ", 2, NULL, 1, 'sub\x1frg\x1fkept', NULL, 'logs');"
      "INSERT INTO workspaces VALUES ('w2', 'sub', 'rg', 'released', 1, 14, 0, " + std::to_string(kJan1) + ", " +
      std::to_string(deleted) + ", " + std::to_string(purge) + ", 3, NULL, 0, NULL, NULL, '');"
      "INSERT INTO components VALUES ('w1', 0, 'logs', 'blob://logs', 0, 0);"
      "INSERT INTO members VALUES ('w1', 'alice', 'owner');";
  ASSERT_EQ(sqlite3_exec(raw, rows.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
  ASSERT_EQ(sqlite3_exec(raw, "UPDATE workspaces SET group_key = replace(group_key, '\\x1f', char(31))",
                         nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  ASSERT_EQ(user_version(db.path()), 1);

  auto engine = Engine::open(db.path(), Policy::builtin("default"), std::make_shared<ManualClock>(deleted));
  EXPECT_EQ(user_version(db.path()), sqlite_schema_version());
  EXPECT_EQ(engine->get_deleted("sub", "rg", "kept", std::nullopt).id, "w1");
  EXPECT_EQ(engine->get_deleted("sub", "rg", "released", std::nullopt).id, "w2");
  // The children came across, without their foreign keys.
  EXPECT_EQ(count(db.path(), "SELECT count(*) FROM members WHERE workspace_id = 'w1'"), 1);
  EXPECT_EQ(count(db.path(), "SELECT count(*) FROM pragma_foreign_key_list('components')"), 0);
  EXPECT_EQ(count(db.path(), "SELECT count(*) FROM pragma_foreign_key_list('members')"), 0);
  const auto recovered = engine->recover("sub", "rg", "kept", std::nullopt);
  ASSERT_EQ(recovered.workspace.components.size(), 1u);
  EXPECT_EQ(recovered.workspace.components.front().ref, "blob://logs");
  // Purging removes the children the cascade used to remove.
  engine->purge("sub", "rg", "released", std::nullopt);
  engine->remove("w1", {false, true, std::nullopt}, std::nullopt);
  EXPECT_EQ(count(db.path(), "SELECT count(*) FROM components"), 0);
  EXPECT_EQ(count(db.path(), "SELECT count(*) FROM members"), 0);
  EXPECT_EQ(count(db.path(), "SELECT count(*) FROM workspaces"), 0);

  const std::string plan = query_plan(db.path(), "SELECT id FROM workspaces WHERE subscription_id = 's' AND "
      "resource_group = 'g' AND name = 'n' AND deleted_at IS NOT NULL AND group_key IS NULL "
      "ORDER BY deleted_at DESC, deleted_seq DESC");
  EXPECT_NE(plan.find("INDEX workspaces_deleted_name"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
}

TEST(Store, WorkspaceIdsAreOpaqueHexInCreationOrder) {
  auto engine = Engine::open(":memory:", Policy::builtin("default"), std::make_shared<ManualClock>(kJan1));
  std::string previous;
  for (int i = 0; i < 50; ++i) {
    const std::string id = engine->create({"sub", "rg", "w" + std::to_string(i), std::nullopt, false, {}}, std::nullopt).id;
    ASSERT_EQ(id.size(), 32u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    EXPECT_LE(previous.substr(0, 13), id.substr(0, 13));  // time prefix: B-tree locality
    // The prefix is the engine's clock (a ManualClock here), not the system's.
    EXPECT_EQ(std::stoull(id.substr(0, 13), nullptr, 16), static_cast<unsigned long long>(kJan1)) << id;
    EXPECT_NE(previous, id);
    previous = id;
  }
}

TEST(Store, TheWalIsCheckpointedOffTheCommitPathAndStaysBounded) {
  TempDb db;
  {
    auto store = open_sqlite_store(db.path());
    // About 8 WAL frames a commit: far past the checkpoint mark (1,000 frames), many times over.
    for (int i = 0; i < 4'000; ++i) {
      WorkspaceRecord r;
      r.workspace = {"id" + std::to_string(i), "sub", "rg" + std::to_string(i % 50), "w" + std::to_string(i),
                     14, false, WorkspaceState::running, kJan1, {}};
      r.group_key = group_name_key("sub", r.workspace.resource_group, r.workspace.name);
      auto tx = store->begin(TransactionMode::write);
      tx->insert_workspace(r);
      tx->insert_components(r.workspace.id, {{"models", "m" + std::to_string(i), false}});
      tx->commit();
    }
    // The checkpointer thread ran (its timing varies: give it a moment); pages reach the
    // database file only through checkpoints (the schema alone is 60 KB).
    for (int wait = 0; wait < 500 && store->stats().background_checkpoints == 0; ++wait) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_GT(store->stats().background_checkpoints, 0);
    EXPECT_GT(std::filesystem::file_size(db.path()), 200'000u);
    // The WAL restarts from its beginning after each complete checkpoint, so it never grows
    // past the backstop (16,000 frames of 4 KiB) plus one commit.
    EXPECT_LT(std::filesystem::file_size(db.path() + "-wal"), 17'000u * 4'120u);
    EXPECT_EQ(count(db.path(), "SELECT count(*) FROM workspaces"), 4'000);
  }
  // Closing the last connection folds the rest in and removes the WAL.
  EXPECT_FALSE(std::filesystem::exists(db.path() + "-wal"));
  auto engine = Engine::open(db.path(), Policy::builtin("default"), std::make_shared<ManualClock>(kJan1));
  EXPECT_EQ(engine->get("sub", "rg7", "w7", std::nullopt).name, "w7");
  EXPECT_EQ(open_sqlite_store(":memory:")->stats().background_checkpoints, 0);  // no WAL, no thread
}

TEST(Store, HotQueriesUseIndexesNotScans) {
  TempDb db;
  open_sqlite_store(db.path());
  const std::string select = "SELECT id FROM workspaces ";
  // A listing page is read from its index alone.
  const std::string listing = "SELECT id, name, subscription_id, resource_group, deleted_at, purge_at, "
                              "retention_days, retained_kinds, deleted_seq FROM workspaces ";
  const std::string list = query_plan(db.path(), listing +
      "WHERE subscription_id = 's' AND deleted_at IS NOT NULL AND (deleted_at, deleted_seq) < (5, 5) "
      "AND purge_at > 0 ORDER BY deleted_at DESC, deleted_seq DESC LIMIT 100");
  EXPECT_NE(list.find("COVERING INDEX workspaces_deleted "), std::string::npos) << list;
  EXPECT_EQ(list.find("TEMP B-TREE"), std::string::npos) << list;
  const std::string group = query_plan(db.path(), listing +
      "WHERE subscription_id = 's' AND resource_group = 'g' AND deleted_at IS NOT NULL "
      "AND (deleted_at, deleted_seq) < (5, 5) AND purge_at > 0 ORDER BY deleted_at DESC, deleted_seq DESC LIMIT 100");
  EXPECT_NE(group.find("COVERING INDEX workspaces_deleted_group "), std::string::npos) << group;
  EXPECT_EQ(group.find("TEMP B-TREE"), std::string::npos) << group;
  const std::string expired = query_plan(db.path(), select +
      "WHERE purge_at IS NOT NULL AND purge_at <= 5 AND (purge_at, id) > (0, '') ORDER BY purge_at, id LIMIT 10");
  EXPECT_NE(expired.find("INDEX workspaces_purge_at"), std::string::npos) << expired;
  const std::string holders = query_plan(db.path(), select + "WHERE group_key = 'k' UNION " + select + "WHERE tenant_key = 't'");
  EXPECT_EQ(holders.find("SCAN workspaces"), std::string::npos) << holders;
  const std::string reserved = query_plan(db.path(), select + "WHERE group_key = 'k' AND deleted_at IS NOT NULL");
  EXPECT_NE(reserved.find("INDEX workspaces_group_key"), std::string::npos) << reserved;
  // The purge sweep's set statements seek each listed workspace; none scans a table.
  for (const std::string sql :
       {"SELECT c.kind FROM json_each('[]') AS j CROSS JOIN components AS c ON c.workspace_id = j.value",
        "SELECT w.name FROM json_each('[]') AS j CROSS JOIN workspaces AS w ON w.id = j.value",
        "DELETE FROM components WHERE workspace_id IN (SELECT value FROM json_each('[]'))",
        "DELETE FROM members WHERE workspace_id IN (SELECT value FROM json_each('[]'))",
        "DELETE FROM workspaces WHERE id IN (SELECT value FROM json_each('[]'))"}) {
    const std::string sweep = query_plan(db.path(), sql);
    EXPECT_EQ(sweep.find("SCAN c"), std::string::npos) << sql << "\n" << sweep;
    EXPECT_EQ(sweep.find("SCAN w"), std::string::npos) << sql << "\n" << sweep;
    EXPECT_EQ(sweep.find("SCAN components"), std::string::npos) << sql << "\n" << sweep;
    EXPECT_EQ(sweep.find("SCAN members"), std::string::npos) << sql << "\n" << sweep;
    EXPECT_EQ(sweep.find("SCAN workspaces"), std::string::npos) << sql << "\n" << sweep;
  }
}

}  // namespace
}  // namespace recyclebin
