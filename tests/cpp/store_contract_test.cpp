// The Store contract, written once and run against both stores (SQLite file, PostgreSQL),
// and the engine's promises for several engines on one store. A behaviour that holds on one
// store only is a bug in the other. The PostgreSQL runs need RECYCLEBIN_TEST_PG_URL (set by
// ./scripts/test.sh, which starts a throwaway server); without it they fail, never skip.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "fixtures.hpp"
#include "store_locations.hpp"

namespace recyclebin {
namespace {

using testing::expect_error;
using testing::kJan1;

WorkspaceRecord row(const std::string& id, const std::string& name = "ws", const std::string& group = "rg") {
  WorkspaceRecord r;
  r.workspace = {id, "sub", group, name, 14, false, WorkspaceState::running, kJan1, {}};
  r.group_key = group_name_key("sub", group, name);
  return r;
}

CleanupTask task(const std::string& ref, Timestamp at) {
  CleanupTask t;
  t.kind = "compute_instance";
  t.ref = ref;
  t.workspace_id = "gone";
  t.created_at = at;
  return t;
}

class StoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { location = testing::fresh_location(GetParam(), holder); }
  std::unique_ptr<Store> open() { return open_store(location); }

  testing::LocationHolder holder;
  std::string location;
};

TEST_P(StoreContract, UniqueIndexesAreTheLastWordOnNames) {
  auto store = open();
  {
    auto tx = store->begin(TransactionMode::write);
    tx->insert_workspace(row("id-a"));
    tx->commit();
  }
  expect_error(ErrorCode::workspace_exists, [&] { store->begin(TransactionMode::write)->insert_workspace(row("id-b")); });
  WorkspaceRecord b = row("id-b");
  b.group_key.reset();
  b.tenant_key = tenant_name_key("sub", "ws");
  {
    auto tx = store->begin(TransactionMode::write);
    tx->insert_workspace(b);
    tx->commit();
  }
  WorkspaceRecord c = b;
  c.workspace.id = "id-c";
  c.workspace.resource_group = "other";
  expect_error(ErrorCode::workspace_exists, [&] { store->begin(TransactionMode::write)->insert_workspace(c); });
  // Holders: the group holder first.
  auto tx = store->begin(TransactionMode::read);
  const auto holders = tx->find_name_holders(group_name_key("sub", "rg", "ws"), tenant_name_key("sub", "ws"));
  ASSERT_EQ(holders.size(), 2u);
  EXPECT_EQ(holders[0].workspace.id, "id-a");
  EXPECT_EQ(holders[1].workspace.id, "id-b");
}

TEST_P(StoreContract, RowsRoundTripEveryField) {
  auto store = open();
  WorkspaceRecord r = row("id-1", "näme \"q\" \\ x");
  r.workspace.cmk_encrypted = true;
  r.workspace.state = WorkspaceState::stopped;
  r.deleted_at = kJan1 + 5;
  r.purge_at = kJan1 + 10;
  r.deleted_seq = 7;
  r.orphaned_at = kJan1 + 3;
  r.had_members = true;
  r.tenant_key = tenant_name_key("sub", "x");
  r.retained_kinds = {"models", "logs"};
  {
    auto tx = store->begin(TransactionMode::write);
    tx->insert_workspace(r);
    tx->insert_components("id-1", {{"models", "m/\"0\"", false}, {"logs", "l,{1}", true}});
    tx->commit();
  }
  auto tx = store->begin(TransactionMode::read);
  const auto got = tx->find_by_id("id-1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->workspace.name, r.workspace.name);
  EXPECT_TRUE(got->workspace.cmk_encrypted);
  EXPECT_EQ(got->workspace.state, WorkspaceState::stopped);
  EXPECT_EQ(got->deleted_at, r.deleted_at);
  EXPECT_EQ(got->purge_at, r.purge_at);
  EXPECT_EQ(got->deleted_seq, 7);
  EXPECT_EQ(got->orphaned_at, r.orphaned_at);
  EXPECT_TRUE(got->had_members);
  EXPECT_EQ(got->group_key, r.group_key);
  EXPECT_EQ(got->tenant_key, r.tenant_key);
  EXPECT_EQ(got->retained_kinds, r.retained_kinds);
  const auto components = tx->components("id-1");
  ASSERT_EQ(components.size(), 2u);
  EXPECT_EQ(components[0].component.ref, "m/\"0\"");
  EXPECT_EQ(components[1].component.ref, "l,{1}");
  EXPECT_TRUE(components[1].component.standalone);
  EXPECT_EQ(components[1].position, 1);
}

TEST_P(StoreContract, SetOperationsTakeEveryListedWorkspaceAndOnlyThose) {
  auto store = open();
  auto tx = store->begin(TransactionMode::write);
  std::vector<std::string> ids;
  for (const std::string id : {"a", "b\"quote", "c\\back\nline", "d"}) {
    WorkspaceRecord r = row(id, "n-" + id);
    tx->insert_workspace(r);
    tx->insert_components(id, {{"models", id + "/m0", false}, {"logs", id + "/l1", true}});
    tx->put_member(id, "alice", "owner");
    ids.push_back(id);
  }
  const std::vector<std::string> taken = {ids[2], ids[0], ids[1]};  // any order; "d" stays
  const auto components = tx->components_of(taken);
  ASSERT_EQ(components.size(), 3u);
  for (std::size_t i = 0; i < taken.size(); ++i) {
    ASSERT_EQ(components[i].size(), 2u);
    EXPECT_EQ(components[i][0].component.ref, taken[i] + "/m0");
    EXPECT_EQ(components[i][1].component.ref, taken[i] + "/l1");
  }
  tx->append_audit_for(taken, {0, kJan1, "expire", "", "", "", "ok", "", "reaper"});
  tx->remove_workspaces(taken);
  const auto log = tx->audit_log({});
  ASSERT_EQ(log.size(), 3u);
  for (std::size_t i = 0; i < taken.size(); ++i) {
    EXPECT_EQ(log[i].workspace_id, taken[i]);
    EXPECT_EQ(log[i].name, "n-" + taken[i]);
    EXPECT_EQ(log[i].principal_id, "reaper");
  }
  for (const auto& id : taken) {
    EXPECT_FALSE(tx->find_by_id(id).has_value());
    EXPECT_TRUE(tx->components(id).empty());
    EXPECT_FALSE(tx->member_role(id, "alice").has_value());
  }
  EXPECT_EQ(tx->member_role("d", "alice"), "owner");
  tx->remove_workspaces({});
  EXPECT_TRUE(tx->components_of({}).empty());
  tx->commit();
}

TEST_P(StoreContract, FindDeletedIsNewestFirstWhetherTheNameIsHeldOrNot) {
  auto store = open();
  auto tx = store->begin(TransactionMode::write);
  const auto deleted = [&](const std::string& id, Timestamp at, std::int64_t seq, bool reserved,
                           const std::string& name = "ws") {
    WorkspaceRecord r = row(id, name);
    r.deleted_at = at;
    r.purge_at = add_days(at, 14);
    r.deleted_seq = seq;
    if (!reserved) r.group_key.reset();
    tx->insert_workspace(r);
  };
  deleted("oldest", kJan1 + 1, 1, false);
  deleted("middle", kJan1 + 2, 2, true);
  deleted("newest", kJan1 + 2, 3, false);
  deleted("other-name", kJan1 + 5, 4, false, "other");
  std::vector<std::string> ids;
  for (const auto& r : tx->find_deleted("sub", "rg", "ws")) ids.push_back(r.workspace.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"newest", "middle", "oldest"}));
}

TEST_P(StoreContract, AnUncommittedTransactionLeavesNoTrace) {
  auto store = open();
  { store->begin(TransactionMode::write)->insert_workspace(row("id-a")); }
  EXPECT_FALSE(store->begin(TransactionMode::read)->find_by_id("id-a").has_value());
}

TEST_P(StoreContract, AReadSeesOneSnapshotWithTheComponentsItLookedUp) {
  auto store = open();
  store->write(
      [](StoreTransaction& tx) {
        tx.insert_workspace(row("id-a", "a"));
        tx.insert_components("id-a", {{"models", "m1", false}, {"datastores", "d1", true}, {"models", "m2", false}});
        tx.set_component_destroyed("id-a", 1, true);
        tx.insert_workspace(row("id-b", "b"));
      },
      {});
  auto read = store->begin(TransactionMode::read);
  const auto a = read->find_live("sub", "rg", "a");
  ASSERT_TRUE(a.has_value());
  // Changes committed after the read's first statement are not seen by the read.
  store->write(
      [](StoreTransaction& tx) {
        tx.set_component_destroyed("id-a", 0, true);
        tx.remove_component("id-a", 2);
        tx.insert_components("id-b", {{"models", "late", false}});
        tx.insert_workspace(row("id-c", "c"));
        tx.set_state("id-a", WorkspaceState::stopped);
      },
      {});
  const auto components = read->components("id-a");
  ASSERT_EQ(components.size(), 3u);
  EXPECT_EQ(components[0].component.ref, "m1");
  EXPECT_FALSE(components[0].destroyed);
  EXPECT_EQ(components[1].component.ref, "d1");
  EXPECT_TRUE(components[1].component.standalone);
  EXPECT_TRUE(components[1].destroyed);
  EXPECT_EQ(components[2].component.ref, "m2");
  EXPECT_EQ(components[2].position, 2);
  EXPECT_EQ(read->find_by_id("id-a")->workspace.state, WorkspaceState::running);
  EXPECT_EQ(read->components("id-a").size(), 3u);  // asked again: the same answer
  const auto b = read->find_by_id("id-b");
  ASSERT_TRUE(b.has_value());
  EXPECT_TRUE(read->components("id-b").empty());
  EXPECT_FALSE(read->find_by_id("id-c").has_value());
  EXPECT_FALSE(read->find_live("sub", "rg", "c").has_value());
  read.reset();
  // A new read sees them all.
  auto later = store->begin(TransactionMode::read);
  EXPECT_EQ(later->find_live("sub", "rg", "a")->workspace.state, WorkspaceState::stopped);
  const auto now = later->components("id-a");
  ASSERT_EQ(now.size(), 2u);
  EXPECT_TRUE(now[0].destroyed);
  EXPECT_EQ(later->components("id-b").size(), 1u);
  EXPECT_TRUE(later->find_by_id("id-c").has_value());
}

TEST_P(StoreContract, ALiveListingAndItsComponentsAreOneSnapshot) {
  auto store = open();
  store->write(
      [](StoreTransaction& tx) {
        tx.insert_workspace(row("id-b", "b"));
        tx.insert_components("id-b", {{"models", "b1", false}, {"models", "b2", true}});
        tx.insert_workspace(row("id-a", "a"));
        tx.insert_workspace(row("id-c", "c", "rg2"));
        tx.insert_components("id-c", {{"datastores", "c1", false}});
        tx.insert_workspace(row("id-d", "d"));
        tx.insert_components("id-d", {{"models", "d1", false}});
      },
      {});
  auto read = store->begin(TransactionMode::read);
  LiveQuery query;
  query.subscription_id = "sub";
  query.limit = 3;
  const auto page = read->list_live(query);
  std::vector<std::string> ids;
  for (const auto& r : page) ids.push_back(r.workspace.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"id-a", "id-b", "id-d"}));
  store->write(
      [](StoreTransaction& tx) {
        tx.remove_component("id-b", 0);
        tx.insert_components("id-a", {{"models", "late", false}});
        tx.set_component_destroyed("id-d", 0, true);
      },
      {});
  const auto components = read->components_of({"id-a", "id-b", "id-d"});
  ASSERT_EQ(components.size(), 3u);
  EXPECT_TRUE(components[0].empty());
  ASSERT_EQ(components[1].size(), 2u);
  EXPECT_EQ(components[1][0].component.ref, "b1");
  EXPECT_EQ(components[1][1].component.ref, "b2");
  EXPECT_TRUE(components[1][1].component.standalone);
  ASSERT_EQ(components[2].size(), 1u);
  EXPECT_FALSE(components[2][0].destroyed);
  // Ids the listing did not bring are read too, from the same snapshot.
  const auto other = read->components_of({"id-c", "id-a"});
  ASSERT_EQ(other.size(), 2u);
  ASSERT_EQ(other[0].size(), 1u);
  EXPECT_EQ(other[0][0].component.ref, "c1");
  EXPECT_TRUE(other[1].empty());
  query.resource_group = "rg2";
  const auto group = read->list_live(query);
  ASSERT_EQ(group.size(), 1u);
  EXPECT_EQ(read->components(group[0].workspace.id).size(), 1u);
  read.reset();
  auto later = store->begin(TransactionMode::read);
  const auto now = later->components_of({"id-a", "id-b", "id-d"});
  EXPECT_EQ(now[0].size(), 1u);
  EXPECT_EQ(now[1].size(), 1u);
  EXPECT_TRUE(now[2][0].destroyed);
}

TEST_P(StoreContract, AFailedFirstStatementLeavesTheStoreUsable) {
  auto store = open();
  store->write([](StoreTransaction& tx) { tx.insert_workspace(row("id-a")); }, {});
  for (int round = 0; round < 3; ++round) {
    auto tx = store->begin(TransactionMode::write);
    expect_error(ErrorCode::workspace_exists, [&] { tx->insert_workspace(row("id-other")); });
  }
  for (int round = 0; round < 3; ++round) {
    auto tx = store->begin(TransactionMode::read);
    EXPECT_TRUE(tx->find_by_id("id-a").has_value());
    tx->commit();  // a read may be committed too
  }
  { auto unused = store->begin(TransactionMode::write); }  // nothing ran: nothing to end
  store->begin(TransactionMode::write)->commit();
  store->write([](StoreTransaction& tx) { tx.insert_workspace(row("id-b", "b")); }, {});
  EXPECT_TRUE(store->begin(TransactionMode::read)->find_live("sub", "rg", "b").has_value());
}

TEST_P(StoreContract, AWriteSeesItsOwnComponentChangesAndThoseOfTheWriteItWaitedFor) {
  auto store = open();
  store->write(
      [](StoreTransaction& tx) {
        tx.insert_workspace(row("w"));
        tx.insert_components("w", {{"models", "m", false}, {"data", "d", false}});
      },
      {});
  auto destroyed = [](const std::vector<StoredComponent>& list) {
    std::vector<bool> out;
    for (const auto& c : list) out.push_back(c.destroyed);
    return out;
  };
  store->write(
      [&](StoreTransaction& tx) {
        ASSERT_TRUE(tx.find_by_id("w").has_value());
        EXPECT_EQ(destroyed(tx.components("w")), (std::vector<bool>{false, false}));
        tx.set_component_destroyed("w", 0, true);
        EXPECT_EQ(destroyed(tx.components("w")), (std::vector<bool>{true, false}));
        tx.remove_component("w", 1);
        EXPECT_EQ(destroyed(tx.components("w")), (std::vector<bool>{true}));
        auto r = *tx.find_by_id("w");
        r.deleted_at = kJan1;
        r.purge_at = kJan1 + kMicrosPerDay;
        tx.set_bin(r);
      },
      {});
  store->write(
      [&](StoreTransaction& tx) {
        ASSERT_EQ(tx.find_deleted("sub", "rg", "ws").size(), 1u);
        EXPECT_EQ(destroyed(tx.components("w")), (std::vector<bool>{true}));
        tx.set_component_destroyed("w", 0, false);
        EXPECT_EQ(destroyed(tx.components("w")), (std::vector<bool>{false}));
      },
      {});
  EXPECT_EQ(destroyed(store->begin(TransactionMode::read)->components("w")), (std::vector<bool>{false}));
  // A write that waits for the row sees the components as the write it waited for left them.
  auto second = open();
  std::mutex mutex;
  std::condition_variable changed;
  bool holding = false;
  std::thread first([&] {
    store->write(
        [&](StoreTransaction& tx) {
          tx.find_by_id("w");
          tx.set_component_destroyed("w", 0, true);
          tx.count_members("w");  // sent: the change is made, not committed
          {
            std::lock_guard lock(mutex);
            holding = true;
          }
          changed.notify_all();
          std::this_thread::sleep_for(std::chrono::milliseconds(300));
        },
        {});
  });
  {
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return holding; });
  }
  second->write(
      [&](StoreTransaction& tx) {
        ASSERT_TRUE(tx.find_deleted("sub", "rg", "ws").size() == 1u);
        EXPECT_EQ(destroyed(tx.components("w")), (std::vector<bool>{true}));
      },
      {});
  first.join();
}

TEST_P(StoreContract, SetBinWritesTheNameKeys) {
  auto store = open();
  store->write([](StoreTransaction& tx) { tx.insert_workspace(row("w")); }, {});
  store->write(
      [](StoreTransaction& tx) {
        auto r = *tx.find_by_id("w");
        r.deleted_at = kJan1;
        r.purge_at = kJan1 + 1;
        r.group_key.reset();
        r.tenant_key = tenant_name_key("sub", "ws");
        tx.set_bin(r);
      },
      {});
  auto tx = store->begin(TransactionMode::read);
  const auto r = tx->find_by_id("w");
  EXPECT_FALSE(r->group_key.has_value());
  EXPECT_EQ(r->tenant_key, tenant_name_key("sub", "ws"));
  EXPECT_FALSE(tx->find_live("sub", "rg", "ws").has_value());
}

TEST_P(StoreContract, ARefusalIsRolledBackAuditedAndRethrown) {
  auto store = open();
  int audits = 0;
  expect_error(ErrorCode::name_reserved, [&] {
    store->write(
        [](StoreTransaction& tx) {
          tx.insert_workspace(row("w"));
          throw Error(ErrorCode::name_reserved, "refused");
        },
        [&](StoreTransaction& tx, const std::exception_ptr&) {
          ++audits;
          tx.append_audit({0, kJan1, "create", "sub", "rg", "ws", "refused:name_reserved", "", ""});
        });
  });
  EXPECT_EQ(audits, 1);
  auto tx = store->begin(TransactionMode::read);
  EXPECT_FALSE(tx->find_by_id("w").has_value());
  ASSERT_EQ(tx->audit_log({}).size(), 1u);
  // A storage failure is no refusal: not audited.
  expect_error(ErrorCode::storage_error, [&] {
    store->write([](StoreTransaction&) { throw Error(ErrorCode::storage_error, "disk"); },
                 [&](StoreTransaction&, const std::exception_ptr&) { ++audits; });
  });
  EXPECT_EQ(audits, 1);
}

TEST_P(StoreContract, ConflictingWritesAreRetriedNotSurfaced) {
  auto store = open();
  store->write([](StoreTransaction& tx) { tx.insert_workspace(row("w")); }, {});
  // Two writes read the same row, then both change it: on PostgreSQL one of them meets a
  // serialization failure and runs again; SQLite runs them one after the other.
  std::mutex mutex;
  std::condition_variable both_read;
  int readers = 0;
  std::atomic<int> runs{0};
  auto writer = [&](const std::string& member) {
    store->write(
        [&](StoreTransaction& tx) {
          ++runs;
          const auto before = tx.count_members("w");
          {
            std::unique_lock lock(mutex);
            ++readers;
            both_read.notify_all();
            both_read.wait_for(lock, std::chrono::milliseconds(300), [&] { return readers >= 2; });
          }
          tx.put_member("w", member, "owner");
          tx.set_membership("w", std::nullopt, before + 1 > 0);
        },
        {});
  };
  std::thread a(writer, "alice"), b(writer, "bob");
  a.join();
  b.join();
  auto tx = store->begin(TransactionMode::read);
  EXPECT_EQ(tx->count_members("w"), 2);
  EXPECT_GE(runs.load(), 2);
}

TEST_P(StoreContract, CleanupClaimsLeaseFailAndComplete) {
  auto store = open();
  std::vector<std::int64_t> ids;
  store->write(
      [&](StoreTransaction& tx) {
        ids.clear();
        for (int i = 0; i < 5; ++i) ids.push_back(tx.add_cleanup(task("ref" + std::to_string(i), kJan1)).id);
      },
      {});
  const Timestamp lease = 60 * kMicrosPerSecond;
  auto claim = [&](const std::string& worker, Timestamp now, std::size_t limit) {
    std::vector<CleanupTask> out;
    store->write([&](StoreTransaction& tx) { out = tx.claim_cleanup(worker, now, now + lease, limit); }, {});
    return out;
  };
  auto idsof = [](const std::vector<CleanupTask>& tasks) {
    std::vector<std::int64_t> out;
    for (const auto& t : tasks) out.push_back(t.id);
    return out;
  };
  const auto first = claim("w1", kJan1, 2);
  EXPECT_EQ(idsof(first), (std::vector<std::int64_t>{ids[0], ids[1]}));
  EXPECT_EQ(first[0].leased_by, "w1");
  EXPECT_EQ(first[0].leased_until, kJan1 + lease);
  EXPECT_EQ(idsof(claim("w2", kJan1 + 1, 2)), (std::vector<std::int64_t>{ids[2], ids[3]}));
  std::optional<bool> failed;
  store->write([&](StoreTransaction& tx) { failed = tx.fail_cleanup(ids[0], "boom", kJan1 + 10); }, {});
  EXPECT_EQ(failed, true);
  // Task 0 is claimable again from kJan1 + 10; the others are leased.
  EXPECT_EQ(idsof(claim("w3", kJan1 + 5, 10)), (std::vector<std::int64_t>{ids[4]}));
  const auto retried = claim("w3", kJan1 + 10, 10);
  ASSERT_EQ(idsof(retried), (std::vector<std::int64_t>{ids[0]}));
  EXPECT_EQ(retried[0].attempts, 1);
  EXPECT_EQ(retried[0].last_error, "boom");
  // Leases run out: everything not completed comes back.
  std::optional<bool> completed;
  store->write([&](StoreTransaction& tx) { completed = tx.complete_cleanup(ids[1], kJan1 + 20); }, {});
  EXPECT_EQ(completed, true);
  EXPECT_EQ(idsof(claim("w4", kJan1 + 2 * lease, 10)), (std::vector<std::int64_t>{ids[0], ids[2], ids[3], ids[4]}));
  store->write(
      [&](StoreTransaction& tx) {
        EXPECT_EQ(tx.complete_cleanup(ids[1], kJan1 + 30), false);
        EXPECT_EQ(tx.fail_cleanup(ids[1], "late", kJan1), false);
        EXPECT_EQ(tx.fail_cleanup(999'999, "x", kJan1), std::nullopt);
        EXPECT_EQ(tx.complete_cleanup(999'999, kJan1), std::nullopt);
      },
      {});
  auto tx = store->begin(TransactionMode::read);
  const auto pending = tx->pending_cleanup();
  ASSERT_EQ(pending.size(), 4u);
  EXPECT_EQ(pending[0].leased_by, "w4");
}

TEST_P(StoreContract, ConcurrentClaimsNeverShareATask) {
  auto store = open();
  constexpr int kTasks = 300;
  store->write(
      [&](StoreTransaction& tx) {
        for (int i = 0; i < kTasks; ++i) tx.add_cleanup(task("r" + std::to_string(i), kJan1));
      },
      {});
  std::mutex mutex;
  std::multiset<std::int64_t> seen;
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&, w] {
      auto own = open_store(location);  // an engine of its own, as another replica
      for (int round = 0; round < 200; ++round) {
        std::vector<CleanupTask> got;
        own->write([&](StoreTransaction& tx) {
          got = tx.claim_cleanup("w" + std::to_string(w), kJan1, kJan1 + kMicrosPerDay, 7);
        }, {});
        if (got.empty()) break;
        std::lock_guard lock(mutex);
        for (const auto& t : got) seen.insert(t.id);
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kTasks));
  EXPECT_EQ(std::set<std::int64_t>(seen.begin(), seen.end()).size(), static_cast<std::size_t>(kTasks));
}

// ---- several engines on one store ----

class EnginesOnOneStore : public StoreContract {
 protected:
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>(kJan1);
  std::vector<std::unique_ptr<Engine>> engines(int n) {
    // compute instances are destroyed at a soft delete (a task then), the rest at purge.
    const Policy policy = Policy::from_yaml(
        "version: 1\nname: races\ncomponents:\n  compute_instance: {on_delete: destroy}\n");
    std::vector<std::unique_ptr<Engine>> out;
    for (int i = 0; i < n; ++i) out.push_back(Engine::open(location, policy, clock));
    return out;
  }
  template <class Body>
  static void race(int n, Body&& body) {
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        while (!go.load()) std::this_thread::yield();
        body(i);
      });
    }
    go = true;
    for (auto& t : threads) t.join();
  }
};

TEST_P(EnginesOnOneStore, OfRacingCreatesExactlyOneWins) {
  auto es = engines(4);
  for (int round = 0; round < 5; ++round) {
    std::atomic<int> wins{0}, lost{0};
    race(4, [&](int i) {
      try {
        es[static_cast<std::size_t>(i)]->create({"sub", "rg", "race" + std::to_string(round), std::nullopt, false, {}},
                                                std::nullopt);
        ++wins;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::workspace_exists) << e.what();
        ++lost;
      }
    });
    EXPECT_EQ(wins.load(), 1);
    EXPECT_EQ(lost.load(), 3);
  }
}

TEST_P(EnginesOnOneStore, OfRacingRecoversAndPurgesExactlyOneSucceeds) {
  auto es = engines(4);
  for (int round = 0; round < 4; ++round) {
    const std::string name = "ws" + std::to_string(round);
    const auto w = es[0]->create({"sub", "rg", name, std::nullopt, false, {{"compute_instance", "ci", false}}}, std::nullopt);
    es[0]->remove(w.id, {}, std::nullopt);
    std::atomic<int> ok{0}, not_found{0};
    race(4, [&](int i) {
      try {
        if ((i + round) % 2 == 0) {
          es[static_cast<std::size_t>(i)]->recover("sub", "rg", name, std::nullopt);
        } else {
          es[static_cast<std::size_t>(i)]->purge("sub", "rg", name, std::nullopt);
        }
        ++ok;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::workspace_not_found) << e.what();
        ++not_found;
      }
    });
    EXPECT_EQ(ok.load(), 1);
    EXPECT_EQ(not_found.load(), 3);
  }
}

TEST_P(EnginesOnOneStore, ConcurrentPurgeExpiredRemovesEachWorkspaceOnce) {
  auto es = engines(4);
  constexpr int kWorkspaces = 600;
  for (int i = 0; i < kWorkspaces; ++i) {
    const auto w = es[0]->create({"sub", "rg" + std::to_string(i % 7), "w" + std::to_string(i), 1, false,
                                  {{"compute_instance", "ci" + std::to_string(i), false}, {"models", "m", false}}},
                                 std::nullopt);
    es[0]->remove(w.id, {}, std::nullopt);
  }
  clock->advance(2 * kMicrosPerDay);
  std::vector<PurgeReport> reports(4);
  race(4, [&](int i) { reports[static_cast<std::size_t>(i)] = es[static_cast<std::size_t>(i)]->purge_expired(std::nullopt); });
  std::set<std::string> names;
  std::size_t purged = 0, tasks = 0;
  for (const auto& r : reports) {
    purged += r.purged.size();
    tasks += r.cleanup.size();
    for (const auto& p : r.purged) names.insert(p.resource_group + "/" + p.name);
  }
  EXPECT_EQ(purged, static_cast<std::size_t>(kWorkspaces));
  EXPECT_EQ(names.size(), static_cast<std::size_t>(kWorkspaces));
  // The soft delete wrote one task (compute_instance); the purge one more (models).
  EXPECT_EQ(tasks, static_cast<std::size_t>(kWorkspaces));
  EXPECT_EQ(es[0]->cleanup_tasks().size(), static_cast<std::size_t>(2 * kWorkspaces));
  int expires = 0;
  for (const auto& a : es[0]->audit_log(std::nullopt)) expires += a.action == "expire";
  EXPECT_EQ(expires, kWorkspaces);
}

TEST_P(EnginesOnOneStore, ConcurrentPurgeExpiredAutoDeletesEachWorkspaceOnce) {
  auto es = engines(4);
  constexpr int kWorkspaces = 300;
  for (int i = 0; i < kWorkspaces; ++i) {
    CreateRequest request{"sub", "rg", "t" + std::to_string(i), std::nullopt, false, {}};
    request.auto_delete_at = kJan1 + 1;
    es[0]->create(request, std::nullopt);
  }
  clock->advance(1);
  std::vector<PurgeReport> reports(4);
  race(4, [&](int i) { reports[static_cast<std::size_t>(i)] = es[static_cast<std::size_t>(i)]->purge_expired(std::nullopt); });
  std::set<std::string> names;
  std::size_t deleted = 0;
  for (const auto& r : reports) {
    deleted += r.auto_deleted.size();
    EXPECT_TRUE(r.auto_delete_refused.empty());
    for (const auto& p : r.auto_deleted) names.insert(p.name);
  }
  EXPECT_EQ(deleted, static_cast<std::size_t>(kWorkspaces));
  EXPECT_EQ(names.size(), static_cast<std::size_t>(kWorkspaces));
  int deletes = 0;
  for (const auto& a : es[0]->audit_log(std::nullopt)) {
    if (a.action == "delete") {
      ++deletes;
      EXPECT_EQ(a.principal_id, "auto-delete");
    }
  }
  EXPECT_EQ(deletes, kWorkspaces);
}

TEST_P(EnginesOnOneStore, RacingHoldReleasesLeaveTheFlagInStepWithTheRows) {
  auto es = engines(4);
  const auto w = es[0]->create({"sub", "rg", "held", std::nullopt, false, {}}, std::nullopt);
  for (int round = 0; round < 5; ++round) {
    std::vector<Hold> holds;
    for (int i = 0; i < 4; ++i) holds.push_back(es[0]->place_hold(w.id, "h" + std::to_string(i), std::nullopt));
    // The four engines release one hold each at once: the workspace is held exactly while a
    // hold row exists, so after the last release it is not (and a new hold holds it again).
    race(4, [&](int i) {
      es[static_cast<std::size_t>(i)]->release_hold(holds[static_cast<std::size_t>(i)].id, std::nullopt);
    });
    EXPECT_TRUE(es[1]->holds(w.id).empty());
    DeleteOptions permanent;
    permanent.permanently_delete = true;
    permanent.dry_run = true;
    EXPECT_NO_THROW(es[2]->remove(w.id, permanent, std::nullopt));  // no longer held
    es[3]->place_hold(w.id, "again", std::nullopt);
    expect_error(ErrorCode::workspace_held, [&] { es[2]->remove(w.id, permanent, std::nullopt); });
    es[3]->release_hold(es[3]->holds(w.id).front().id, std::nullopt);
  }
}

TEST_P(EnginesOnOneStore, ClaimCleanupHandsEachTaskToOneWorkerWhileTheLeaseHolds) {
  auto es = engines(4);
  for (int i = 0; i < 50; ++i) {
    const auto w = es[0]->create({"sub", "rg", "w" + std::to_string(i), std::nullopt, false,
                                  {{"compute_instance", "a" + std::to_string(i), false}, {"compute_instance", "b", false}}},
                                 std::nullopt);
    es[0]->remove(w.id, {}, std::nullopt);
  }
  std::mutex mutex;
  std::vector<std::int64_t> seen;
  race(4, [&](int i) {
    for (int round = 0; round < 100; ++round) {
      const auto got = es[static_cast<std::size_t>(i)]->claim_cleanup("worker" + std::to_string(i), 3, 60 * kMicrosPerSecond);
      if (got.empty()) return;
      std::lock_guard lock(mutex);
      for (const auto& t : got) seen.push_back(t.id);
    }
  });
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_EQ(std::set<std::int64_t>(seen.begin(), seen.end()).size(), 100u);
  EXPECT_TRUE(es[1]->claim_cleanup("late", 100, 60 * kMicrosPerSecond).empty());  // all leased
  clock->advance(61 * kMicrosPerSecond);
  EXPECT_EQ(es[1]->claim_cleanup("late", 1000, 60 * kMicrosPerSecond).size(), 100u);  // leases ran out
}

TEST_P(EnginesOnOneStore, ATailingConsumerReadsTheAuditLogInPagesByAfterSeq) {
  auto es = engines(2);
  const Principal alice{"alice", {"contributor"}};
  for (int i = 0; i < 7; ++i) {
    const std::string sub = i % 2 == 0 ? "sub" : "other";
    es[static_cast<std::size_t>(i % 2)]->create({sub, "rg", "ws" + std::to_string(i), std::nullopt, false, {}},
                                                i == 3 ? MaybePrincipal(alice) : std::nullopt);
  }
  const auto all = es[0]->audit_log(std::nullopt);
  ASSERT_EQ(all.size(), 7u);
  // Pages of 3 from each engine in turn, each starting after the last seq seen.
  std::vector<AuditRecord> tailed;
  std::int64_t last = 0;
  for (int page = 0; page < 10; ++page) {
    const auto got = es[static_cast<std::size_t>(page % 2)]->audit_log(std::nullopt, last, 3);
    EXPECT_LE(got.size(), 3u);
    if (got.empty()) break;
    tailed.insert(tailed.end(), got.begin(), got.end());
    last = got.back().seq;
  }
  ASSERT_EQ(tailed.size(), all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(tailed[i].seq, all[i].seq);
    EXPECT_EQ(tailed[i].name, all[i].name);
    if (i > 0) {
      EXPECT_GT(tailed[i].seq, tailed[i - 1].seq);
    }
  }
  // Records appended after the consumer caught up are the next page, and only those.
  es[1]->create({"sub", "rg", "late", std::nullopt, false, {}}, alice);
  const auto next = es[0]->audit_log(std::nullopt, last, 3);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].name, "late");
  EXPECT_EQ(next[0].principal_id, "alice");
  EXPECT_FALSE(next[0].workspace_id.empty());
  EXPECT_TRUE(es[0]->audit_log(std::nullopt, next[0].seq, std::nullopt).empty());
  // Of one subscription: the same keyset, seqs of that subscription only.
  const auto sub = es[0]->audit_log(std::string("sub"), all[0].seq, 2);
  ASSERT_EQ(sub.size(), 2u);
  EXPECT_EQ(sub[0].name, "ws2");
  EXPECT_EQ(sub[1].name, "ws4");
  EXPECT_EQ(sub[0].principal_id, "");  // the platform
  EXPECT_EQ(es[0]->audit_log(std::string("other"), std::nullopt, std::nullopt).size(), 3u);
  // after_seq 0 is the start; limit beyond the count is everything.
  EXPECT_EQ(es[0]->audit_log(std::nullopt, 0, 1'000'000).size(), 8u);
  const std::string negative = expect_error(ErrorCode::invalid_argument, [&] { es[0]->audit_log(std::nullopt, -1, 3); });
  EXPECT_NE(negative.find("after_seq must be 0 or more"), std::string::npos) << negative;
  const std::string zero = expect_error(ErrorCode::invalid_argument, [&] { es[0]->audit_log(std::nullopt, 0, 0); });
  EXPECT_NE(zero.find("limit must be at least 1"), std::string::npos) << zero;
}

TEST_P(EnginesOnOneStore, ListDeletedPurgeBeforeKeepsOnlyEarlierPurgeDates) {
  auto es = engines(1);
  Engine& e = *es[0];
  std::vector<Timestamp> purge_at;
  for (int i = 0; i < 5; ++i) {
    const auto w = e.create({"sub", i < 3 ? "rg" : "rg2", "ws" + std::to_string(i), 7 + i, false, {}}, std::nullopt);
    purge_at.push_back(e.remove(w.id, {}, std::nullopt).purge_at.value());
    clock->advance(kMicrosPerSecond);
  }
  auto names = [&](const std::optional<std::string>& group, std::optional<Timestamp> before, std::size_t limit) {
    std::vector<std::string> out;
    std::optional<std::string> cursor;
    for (int page = 0; page < 10; ++page) {
      auto p = e.list_deleted("sub", group, limit, cursor, std::nullopt, before);
      for (const auto& d : p.items) out.push_back(d.name);
      if (!p.next_cursor) break;
      cursor = p.next_cursor;
    }
    return out;
  };
  using Names = std::vector<std::string>;
  EXPECT_EQ(names(std::nullopt, std::nullopt, 100), (Names{"ws4", "ws3", "ws2", "ws1", "ws0"}));
  // Strictly earlier: a purge date equal to purge_before is left out.
  EXPECT_EQ(names(std::nullopt, purge_at[2], 100), (Names{"ws1", "ws0"}));
  EXPECT_EQ(names(std::nullopt, purge_at[2] + 1, 1), (Names{"ws2", "ws1", "ws0"}));  // paged
  EXPECT_EQ(names(std::string("rg2"), purge_at[4], 100), (Names{"ws3"}));
  EXPECT_EQ(names(std::string("rg"), purge_at[0], 100), Names{});
}

TEST_P(StoreContract, HoldsLiensAndProtectionFieldsRoundTrip) {
  auto store = open();
  WorkspaceRecord r = row("id-p");
  r.workspace.purge_protection = true;
  r.workspace.auto_delete_at = kJan1 + 5;
  {
    auto tx = store->begin(TransactionMode::write);
    tx->insert_workspace(r);
    tx->insert_guard({GuardKind::hold, "h-2", "id-p", "", "second", std::nullopt, kJan1 + 2});
    tx->insert_guard({GuardKind::hold, "h-1", "id-p", "", "first", std::string("alice"), kJan1 + 1});
    tx->insert_guard({GuardKind::lien, "l-1", "id-p", "billing", "invoice", std::nullopt, kJan1});
    r.held = true;
    r.has_liens = true;
    tx->set_protection(r);
    tx->commit();
  }
  {
    auto tx = store->begin(TransactionMode::read);
    const auto back = tx->find_by_id("id-p");
    ASSERT_TRUE(back);
    EXPECT_TRUE(back->held);
    EXPECT_TRUE(back->has_liens);
    EXPECT_TRUE(back->workspace.purge_protection);
    EXPECT_EQ(back->workspace.auto_delete_at, kJan1 + 5);
    const auto holds = tx->guards(GuardKind::hold, "id-p");
    ASSERT_EQ(holds.size(), 2u);
    EXPECT_EQ(holds[0].id, "h-1");  // oldest first
    EXPECT_EQ(holds[0].placed_by, std::optional<std::string>("alice"));
    EXPECT_EQ(holds[1].placed_by, std::nullopt);
    EXPECT_EQ(tx->find_guard(GuardKind::hold, "h-2")->reason, "second");
    EXPECT_FALSE(tx->find_guard(GuardKind::hold, "h-3"));
    EXPECT_FALSE(tx->find_guard(GuardKind::lien, "h-2"));  // a hold is not a lien
    const auto liens = tx->guards(GuardKind::lien, "id-p");
    ASSERT_EQ(liens.size(), 1u);
    EXPECT_EQ(liens[0].origin, "billing");
    EXPECT_EQ(tx->find_guard(GuardKind::lien, "l-1")->reason, "invoice");
    // Due for auto-deletion from its time on, not before.
    EXPECT_TRUE(tx->auto_delete_due(kJan1 + 4, std::nullopt, 10).empty());
    EXPECT_EQ(tx->auto_delete_due(kJan1 + 5, std::nullopt, 10).size(), 1u);
    EXPECT_TRUE(tx->auto_delete_due(kJan1 + 5, ExpiryCursor{kJan1 + 5, "id-p"}, 10).empty());
  }
  {
    auto tx = store->begin(TransactionMode::write);
    EXPECT_FALSE(tx->remove_guard(GuardKind::lien, "h-1"));
    EXPECT_TRUE(tx->remove_guard(GuardKind::hold, "h-1"));
    EXPECT_FALSE(tx->remove_guard(GuardKind::hold, "h-1"));
    EXPECT_TRUE(tx->remove_guard(GuardKind::lien, "l-1"));
    EXPECT_FALSE(tx->remove_guard(GuardKind::lien, "l-1"));
    tx->commit();
  }
  auto tx = store->begin(TransactionMode::read);
  EXPECT_EQ(tx->guards(GuardKind::hold, "id-p").size(), 1u);
  EXPECT_TRUE(tx->guards(GuardKind::lien, "id-p").empty());
}

TEST_P(StoreContract, HeldRowsDoNotExpireButAreListed) {
  auto store = open();
  WorkspaceRecord held = row("id-held", "held");
  WorkspaceRecord plain = row("id-plain", "plain");
  for (WorkspaceRecord* r : {&held, &plain}) {
    r->deleted_at = kJan1;
    r->purge_at = kJan1 + 10;
    r->deleted_seq = r == &held ? 1 : 2;
  }
  held.held = true;
  {
    auto tx = store->begin(TransactionMode::write);
    tx->insert_workspace(held);
    tx->insert_workspace(plain);
    tx->commit();
  }
  auto tx = store->begin(TransactionMode::read);
  const auto due = tx->expired(kJan1 + 10, std::nullopt, 10);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].workspace.id, "id-plain");
  ASSERT_EQ(tx->expired_in("sub", kJan1 + 10).size(), 1u);
  DeletedQuery query;
  query.subscription_id = "sub";
  query.purge_after = kJan1 + 10;  // the expired rows are hidden, the held one is not
  const auto listed = tx->list_deleted(query);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].workspace.id, "id-held");
  EXPECT_TRUE(listed[0].workspace.held);
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContract, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Stores, EnginesOnOneStore, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace recyclebin
