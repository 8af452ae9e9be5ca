// Many threads, and several engines on one file (as separate processes would be).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "fixtures.hpp"

namespace recyclebin {
namespace {

using testing::kJan1;
using testing::TempDb;

TEST(Concurrency, TwoEnginesRacingToCreateOneNameOnlyOneWins) {
  TempDb db;
  auto clock = std::make_shared<ManualClock>(kJan1);
  for (int round = 0; round < 20; ++round) {
    auto first = Engine::open(db.path(), Policy::builtin("default"), clock);
    auto second = Engine::open(db.path(), Policy::builtin("default"), clock);
    std::atomic<int> wins{0}, exists{0};
    std::atomic<bool> go{false};
    auto racer = [&](Engine& engine) {
      while (!go.load()) std::this_thread::yield();
      try {
        engine.create({"sub", "rg", "race" + std::to_string(round), std::nullopt, false, {}}, std::nullopt);
        ++wins;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::workspace_exists) << e.what();
        ++exists;
      }
    };
    std::thread a(racer, std::ref(*first)), b(racer, std::ref(*second));
    go = true;
    a.join();
    b.join();
    EXPECT_EQ(wins.load(), 1);
    EXPECT_EQ(exists.load(), 1);
  }
}

TEST(Concurrency, ManyThreadsDeleteAndRecoverThroughOneEngine) {
  TempDb db;
  auto engine = Engine::open(db.path(), Policy::builtin("default"), std::make_shared<ManualClock>(kJan1));
  constexpr int kThreads = 8, kEach = 25;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < kEach; ++i) {
          const std::string name = "t" + std::to_string(t) + "-" + std::to_string(i);
          const Workspace w = engine->create({"sub", "rg", name, std::nullopt, false, {}}, std::nullopt);
          engine->remove(w.id, {}, std::nullopt);
          if (i % 2 == 0) engine->recover("sub", "rg", name, std::nullopt);
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  const auto deleted = engine->list_deleted("sub", std::nullopt, std::nullopt, std::nullopt, std::nullopt);
  EXPECT_EQ(deleted.items.size(), static_cast<std::size_t>(kThreads * (kEach / 2)));
  EXPECT_EQ(engine->audit_log(std::nullopt).size(), static_cast<std::size_t>(kThreads * (kEach * 2 + (kEach + 1) / 2)));
}

TEST(Concurrency, SharedCommitsKeepRefusalsApart) {
  // Threads race for the same names: commits are shared, but each refused create must leave
  // nothing behind except its audit record, and each name must be won exactly once.
  TempDb db;
  auto engine = Engine::open(db.path(), Policy::builtin("default"), std::make_shared<ManualClock>(kJan1));
  constexpr int kThreads = 8, kNames = 40;
  std::atomic<int> wins{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kNames; ++i) {
        try {
          engine->create({"sub", "rg", "n" + std::to_string(i), std::nullopt, false, {{"models", "m", false}}},
                         std::nullopt);
          ++wins;
        } catch (const Error& e) {
          EXPECT_EQ(e.code(), ErrorCode::workspace_exists) << e.what();
          ++refused;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wins.load(), kNames);
  EXPECT_EQ(refused.load(), kNames * (kThreads - 1));
  std::size_t ok = 0, refusals = 0;
  for (const auto& record : engine->audit_log(std::nullopt)) {
    (record.outcome == "ok" ? ok : refusals) += 1;
    if (record.outcome != "ok") {
      EXPECT_EQ(record.outcome, "refused:workspace_exists");
    }
  }
  EXPECT_EQ(ok, static_cast<std::size_t>(kNames));
  EXPECT_EQ(refusals, static_cast<std::size_t>(kNames * (kThreads - 1)));
  for (int i = 0; i < kNames; ++i) {
    EXPECT_EQ(engine->get("sub", "rg", "n" + std::to_string(i), std::nullopt).components.size(), 1u);
  }
}

TEST(Concurrency, CloseWaitsForCallsInFlight) {
  auto engine = Engine::open(":memory:", Policy::builtin("default"), std::make_shared<ManualClock>(kJan1));
  std::atomic<bool> stop{false};
  std::atomic<int> closed_seen{0};
  std::thread worker([&] {
    for (int i = 0; !stop; ++i) {
      try {
        engine->create({"sub", "rg", "w" + std::to_string(i), std::nullopt, false, {}}, std::nullopt);
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::engine_closed);
        ++closed_seen;
        return;
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  engine->close();
  worker.join();
  stop = true;
  EXPECT_EQ(closed_seen.load(), 1);
}


TEST(Concurrency, FencedPurgesRefusedInASharedCommitRollBackAlone) {
  // purge_by_id with expected_refs refuses after it has written (inside its savepoint): in a
  // group commit shared with other purges, only the refused one is rolled back.
  TempDb db;
  auto clock = std::make_shared<ManualClock>(kJan1);
  auto engine = Engine::open(db.path(), Policy::builtin("parsec"), clock);
  constexpr int kRealms = 32;
  std::vector<std::string> ids;
  for (int i = 0; i < kRealms; ++i) {
    const std::string ref = "blocks/" + std::to_string(i);
    const Workspace w = engine->create({"org", "rg", "r" + std::to_string(i), std::nullopt, false,
                                        {{"block", ref + "/a", false}, {"block", ref + "/b", false}}},
                                       Principal{"alice", {}});
    engine->revoke(w.id, "alice", std::nullopt);  // orphaned: deletable at once
    ids.push_back(w.id);
  }
  std::atomic<bool> go{false};
  std::atomic<int> purged{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kRealms; ++i) {
    threads.emplace_back([&, i] {
      const std::string ref = "blocks/" + std::to_string(i);
      PurgeByIdOptions options;
      options.expected_refs = i % 2 == 0 ? std::vector<std::string>{ref + "/a", ref + "/b"}
                                         : std::vector<std::string>{ref + "/a"};
      while (!go.load()) std::this_thread::yield();
      try {
        engine->purge_by_id(ids[static_cast<std::size_t>(i)], std::nullopt, options);
        ++purged;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::operation_not_allowed) << e.what();
        ++refused;
      }
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(purged.load(), kRealms / 2);
  EXPECT_EQ(refused.load(), kRealms / 2);
  std::vector<std::string> left;
  for (const auto& d : engine->list_deletable("org")) left.push_back(d.workspace_id);
  std::vector<std::string> refs;
  for (const auto& t : engine->cleanup_tasks()) refs.push_back(t.ref);
  EXPECT_EQ(refs.size(), static_cast<std::size_t>(kRealms));  // two per purged realm, none else
  for (int i = 0; i < kRealms; ++i) {
    const std::string& id = ids[static_cast<std::size_t>(i)];
    const bool kept = std::find(left.begin(), left.end(), id) != left.end();
    EXPECT_EQ(kept, i % 2 == 1) << i;
    const bool has_tasks = std::find(refs.begin(), refs.end(), "blocks/" + std::to_string(i) + "/a") != refs.end();
    EXPECT_EQ(has_tasks, i % 2 == 0) << i;
  }
}

}  // namespace
}  // namespace recyclebin
