// The SQLite store: durability, schema versioning, the unique indexes, index use.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include "fixtures.hpp"

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

TEST(Store, MigratesForwardFromVersionOne) {
  TempDb db;
  {
    auto engine = Engine::open(db.path(), Policy::builtin("default"), std::make_shared<ManualClock>(kJan1));
    engine->remove(engine->create({"sub", "rg", "old", std::nullopt, false, {}}, std::nullopt).id, {}, std::nullopt);
  }
  sqlite3* raw = nullptr;  // put the file back to what version 1 wrote
  sqlite3_open(db.path().c_str(), &raw);
  sqlite3_exec(raw,
               "DROP INDEX workspaces_deleted_name; "
               "CREATE INDEX workspaces_live ON workspaces(subscription_id, resource_group, name); "
               "PRAGMA user_version = 1",
               nullptr, nullptr, nullptr);
  sqlite3_close(raw);
  ASSERT_EQ(user_version(db.path()), 1);
  auto engine = Engine::open(db.path(), Policy::builtin("default"), std::make_shared<ManualClock>(kJan1));
  EXPECT_EQ(user_version(db.path()), sqlite_schema_version());
  EXPECT_EQ(engine->get_deleted("sub", "rg", "old", std::nullopt).name, "old");
  const std::string plan = query_plan(db.path(), "SELECT id FROM workspaces WHERE subscription_id = 's' AND "
      "resource_group = 'g' AND name = 'n' AND deleted_at IS NOT NULL ORDER BY deleted_at DESC, deleted_seq DESC");
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
    EXPECT_NE(previous, id);
    previous = id;
  }
}

TEST(Store, UniqueIndexIsTheLastWordOnNames) {
  auto store = open_sqlite_store(":memory:");
  WorkspaceRecord a;
  a.workspace = {"id-a", "sub", "rg", "ws", 14, false, WorkspaceState::running, kJan1, {}};
  a.group_key = group_name_key("sub", "rg", "ws");
  WorkspaceRecord b = a;
  b.workspace.id = "id-b";
  auto tx = store->begin(TransactionMode::write);
  tx->insert_workspace(a);
  expect_error(ErrorCode::workspace_exists, [&] { tx->insert_workspace(b); });
  b.group_key.reset();
  b.tenant_key = tenant_name_key("sub", "ws");
  tx->insert_workspace(b);
  WorkspaceRecord c = b;
  c.workspace.id = "id-c";
  expect_error(ErrorCode::workspace_exists, [&] { tx->insert_workspace(c); });
}

TEST(Store, UncommittedTransactionRollsBack) {
  auto store = open_sqlite_store(":memory:");
  WorkspaceRecord a;
  a.workspace = {"id-a", "sub", "rg", "ws", 14, false, WorkspaceState::running, kJan1, {}};
  { store->begin(TransactionMode::write)->insert_workspace(a); }
  EXPECT_FALSE(store->begin(TransactionMode::read)->find_by_id("id-a").has_value());
}

TEST(Store, HotQueriesUseIndexesNotScans) {
  TempDb db;
  open_sqlite_store(db.path());
  const std::string select = "SELECT id FROM workspaces ";
  const std::string list = query_plan(db.path(), select +
      "WHERE subscription_id = 's' AND deleted_at IS NOT NULL AND (deleted_at, deleted_seq) < (5, 5) "
      "AND purge_at > 0 ORDER BY deleted_at DESC, deleted_seq DESC LIMIT 100");
  EXPECT_NE(list.find("INDEX workspaces_deleted"), std::string::npos) << list;
  EXPECT_EQ(list.find("TEMP B-TREE"), std::string::npos) << list;
  const std::string group = query_plan(db.path(), select +
      "WHERE subscription_id = 's' AND resource_group = 'g' AND deleted_at IS NOT NULL "
      "AND (deleted_at, deleted_seq) < (5, 5) AND purge_at > 0 ORDER BY deleted_at DESC, deleted_seq DESC LIMIT 100");
  EXPECT_NE(group.find("INDEX workspaces_deleted_group"), std::string::npos) << group;
  const std::string expired = query_plan(db.path(), select +
      "WHERE purge_at IS NOT NULL AND purge_at <= 5 AND (purge_at, id) > (0, '') ORDER BY purge_at, id LIMIT 10");
  EXPECT_NE(expired.find("INDEX workspaces_purge_at"), std::string::npos) << expired;
  const std::string holders = query_plan(db.path(), select + "WHERE group_key = 'k' UNION " + select + "WHERE tenant_key = 't'");
  EXPECT_EQ(holders.find("SCAN workspaces"), std::string::npos) << holders;
}

}  // namespace
}  // namespace recyclebin
