#pragma once
// Shared helpers for the C++ tests: an engine on an in-memory or temporary SQLite file,
// a manual clock, and the fixture policies under policies/ (the same files Python reads).

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "recyclebin/engine.hpp"

namespace recyclebin::testing {

inline constexpr Timestamp kJan1 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
inline constexpr Timestamp kMicro = 1;

inline std::string policy_path(const std::string& name) {
  return std::string(RECYCLEBIN_POLICY_DIR) + "/" + name + ".yaml";
}

/// A fresh temporary database path, removed with its WAL files on destruction.
class TempDb {
 public:
  TempDb() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("recyclebin-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + ".db");
    remove();
  }
  ~TempDb() { remove(); }
  std::string path() const { return path_.string(); }

 private:
  void remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_.string() + suffix);
  }
  std::filesystem::path path_;
};

struct EngineFixture : ::testing::Test {
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>(kJan1);
  std::unique_ptr<Engine> engine;

  void open(const Policy& policy, const std::string& location = ":memory:") {
    engine = Engine::open(location, policy, clock);
  }
  void open_yaml(const std::string& yaml) { open(Policy::from_yaml(yaml)); }
  void SetUp() override { open(Policy::builtin("default")); }

  Workspace make(const std::string& name, std::vector<Component> components = {},
                 std::optional<int> retention = std::nullopt, const std::string& group = "rg",
                 const std::string& subscription = "sub") {
    CreateRequest request;
    request.subscription_id = subscription;
    request.resource_group = group;
    request.name = name;
    request.retention_days = retention;
    request.components = std::move(components);
    return engine->create(request, std::nullopt);
  }
  DeleteResult soft_delete(const Workspace& w, DeleteOptions options = {}) {
    return engine->remove(w.id, options, std::nullopt);
  }
  static void advance_days(ManualClock& c, int days) { c.advance(days * kMicrosPerDay); }
};

/// Runs `body`, expects Error with `code`, returns its message.
template <class Body>
std::string expect_error(ErrorCode code, Body&& body) {
  try {
    body();
  } catch (const Error& e) {
    EXPECT_EQ(code_name(e.code()), code_name(code)) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected " << code_name(code);
  return {};
}

}  // namespace recyclebin::testing
