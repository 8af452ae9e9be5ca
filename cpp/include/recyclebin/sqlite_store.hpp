#pragma once
// The embedded SQLite store: one file (or ":memory:"), WAL, a busy timeout so several
// processes can share the file, one connection per concurrent transaction, group commit of
// concurrent writes, WAL checkpoints on a background thread. Declared apart from store.hpp
// because what it reports (WAL checkpoints) exists on SQLite only. Includes no <sqlite3.h>.

#include <cstdint>
#include <memory>
#include <string>

#include "recyclebin/store.hpp"

namespace recyclebin {

/// What the SQLite store did in the background (for operators' metrics and tests).
struct SqliteStats {
  std::int64_t background_checkpoints = 0;  // WAL checkpoints run off the commit path
  std::int64_t inline_checkpoints = 0;      // run by a committing connection (the backstop)
};

class SqliteStore : public Store {
 public:
  virtual SqliteStats stats() const = 0;
};

/// Opens (creating and migrating as needed) a SQLite store. `location` is a file path,
/// "sqlite:///relative.db", "sqlite:////abs/path.db" or ":memory:". Several processes
/// opening one new file at once all succeed (the open waits within the busy timeout).
std::unique_ptr<SqliteStore> open_sqlite_store(const std::string& location);

/// The schema version open_sqlite_store migrates to (PRAGMA user_version).
int sqlite_schema_version();

}  // namespace recyclebin
