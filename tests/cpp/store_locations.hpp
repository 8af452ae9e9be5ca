#pragma once
// Where the contract tests open their stores: a fresh SQLite file, or a fresh schema of the
// test PostgreSQL database named by RECYCLEBIN_TEST_PG_URL (./scripts/test.sh starts a
// throwaway server and sets it). Without the variable the PostgreSQL tests fail, saying so.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "fixtures.hpp"

namespace recyclebin::testing {

inline std::string pg_url() {
  const char* url = std::getenv("RECYCLEBIN_TEST_PG_URL");
  if (url == nullptr || *url == '\0') {
    ADD_FAILURE() << "RECYCLEBIN_TEST_PG_URL is not set: the PostgreSQL store tests need a server; "
                     "run them through ./scripts/test.sh, which starts a throwaway PostgreSQL 15 "
                     "(scripts/pg-test-server.sh)";
    return "postgresql://recyclebin-test-url-not-set.invalid/none";
  }
  return url;
}

/// `url` with its search_path set to `schema` (a fresh, unique name per call of fresh_schema).
inline std::string with_schema(const std::string& url, const std::string& schema) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" + schema;
}

inline std::string fresh_schema() {
  static std::atomic<int> counter{0};
  std::random_device random;
  return "t" + std::to_string(::getpid()) + "_" + std::to_string(++counter) + "_" + std::to_string(random() % 100000);
}

/// Keeps what a location needs alive for the test (the SQLite file).
struct LocationHolder {
  std::unique_ptr<TempDb> db;
};

inline std::string fresh_location(const std::string& kind, LocationHolder& holder) {
  if (kind == "postgres") return with_schema(pg_url(), fresh_schema());
  holder.db = std::make_unique<TempDb>();
  return holder.db->path();
}

/// Runs `sql` on the test database as its administrator; returns the first value ("" if none).
inline std::string pg_admin(const std::string& sql) {
  PGconn* conn = PQconnectdb(pg_url().c_str());
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  std::string out;
  if (PQstatus(conn) != CONNECTION_OK) {
    ADD_FAILURE() << "cannot connect to the test PostgreSQL: " << PQerrorMessage(conn);
  } else {
    PGresult* r = PQexec(conn, sql.c_str());
    const auto status = PQresultStatus(r);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
    } else if (status == PGRES_TUPLES_OK && PQntuples(r) > 0) {
      out = PQgetvalue(r, 0, 0);
    }
    PQclear(r);
  }
  PQfinish(conn);
  return out;
}

}  // namespace recyclebin::testing
