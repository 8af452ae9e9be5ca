// PostgreSQL per-operation costs, one client: the C++ Engine on the PostgreSQL store
// (--impl engine) against the fewest raw libpq statements that make the same change
// (--impl raw: one prepared, autocommitted statement per operation, on the same tables and
// indexes as the store, writing the operation's audit record as the engine does). Prints one JSON object: microseconds per operation.
//
//   recyclebin_bench_pg --impl raw|engine --url URL --n 2000 --pages 200

#include <libpq-fe.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "recyclebin/engine.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr recyclebin::Timestamp kStart = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z

/// prefix + n (appended: GCC 12 warns falsely about "literal" + std::string).
template <class N>
std::string text(const char* prefix, N n) {
  std::string out = prefix;
  out += std::to_string(n);
  return out;
}

using Figures = std::vector<std::pair<const char*, double>>;

double micros_per(Clock::time_point begin, std::size_t n) {
  return std::chrono::duration<double, std::micro>(Clock::now() - begin).count() / static_cast<double>(n);
}

struct Args {
  std::string impl = "raw";
  std::string url;
  std::size_t n = 2000;
  std::size_t pages = 200;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--impl") a.impl = value;
    else if (key == "--url") a.url = value;
    else if (key == "--n") a.n = std::stoul(value);
    else if (key == "--pages") a.pages = std::stoul(value);
    else throw std::runtime_error("unknown option " + key);
  }
  if (a.url.empty()) throw std::runtime_error("--url is required");
  return a;
}

Figures run_engine(const Args& a) {
  auto clock = std::make_shared<recyclebin::ManualClock>(kStart);
  auto engine = recyclebin::Engine::open(a.url, recyclebin::Policy::builtin("default"), clock);
  Figures out;
  std::vector<std::string> ids;
  auto t = Clock::now();
  for (std::size_t i = 0; i < a.n; ++i) {
    ids.push_back(engine->create({"sub", "rg", text("ws", i), std::nullopt, false,
                                  {{"run_history", text("r", i), false}}},
                                 std::nullopt)
                      .id);
  }
  out.emplace_back("create", micros_per(t, a.n));
  t = Clock::now();
  for (std::size_t i = 0; i < a.n; ++i) engine->get("sub", "rg", text("ws", i), std::nullopt);
  out.emplace_back("get", micros_per(t, a.n));
  t = Clock::now();
  for (std::size_t i = 0; i < a.n; ++i) {
    clock->advance(1);
    engine->remove(ids[i], {}, std::nullopt);
  }
  out.emplace_back("soft_delete", micros_per(t, a.n));
  t = Clock::now();
  std::optional<std::string> cursor;
  for (std::size_t p = 0; p < a.pages; ++p) {
    auto page = engine->list_deleted("sub", std::nullopt, 100, cursor, std::nullopt);
    cursor = page.next_cursor;
  }
  out.emplace_back("list_page", micros_per(t, a.pages));
  t = Clock::now();
  for (std::size_t i = 0; i < a.n; i += 2) engine->recover("sub", "rg", text("ws", i), std::nullopt);
  out.emplace_back("recover", micros_per(t, a.n / 2));
  return out;
}

struct Raw {
  PGconn* conn;
  explicit Raw(const std::string& url) : conn(PQconnectdb(url.c_str())) {
    if (PQstatus(conn) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(conn));
  }
  ~Raw() { PQfinish(conn); }
  void exec(const char* sql) {
    PGresult* r = PQexec(conn, sql);
    const auto s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) throw std::runtime_error(PQresultErrorMessage(r));
    PQclear(r);
  }
  void prepare(const char* name, const char* sql) {
    PGresult* r = PQprepare(conn, name, sql, 0, nullptr);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) throw std::runtime_error(PQresultErrorMessage(r));
    PQclear(r);
  }
  int run(const char* name, const std::vector<std::string>& params) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    PGresult* r = PQexecPrepared(conn, name, static_cast<int>(values.size()), values.data(), nullptr, nullptr, 0);
    const auto s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) throw std::runtime_error(PQresultErrorMessage(r));
    const int rows = PQntuples(r);
    PQclear(r);
    return rows;
  }
};

Figures run_raw(const Args& a) {
  // The store's own tables and indexes (opened once to create them), then plain statements.
  recyclebin::Engine::open(a.url, recyclebin::Policy::builtin("default"),
                           std::make_shared<recyclebin::ManualClock>(kStart));
  Raw db(a.url);
  // Each change writes its audit record too, as the engine's do.
#define RB_AUDIT_FROM(action, at) \
  "INSERT INTO audit_log (at, action, subscription_id, resource_group, name, outcome, workspace_id, principal_id) " \
  "SELECT " at ", '" action "', 'sub', 'rg', name, 'ok', id, '' FROM "
  db.prepare("create",
             "WITH w AS (INSERT INTO workspaces (id, subscription_id, resource_group, name, state, retention_days, "
             "cmk_encrypted, created_at, group_key) VALUES ($1, 'sub', 'rg', $2, 0, 14, false, $3, $4) "
             "RETURNING id, name), "
             "c AS (INSERT INTO components (workspace_id, position, kind, ref, standalone) "
             "SELECT id, 0, 'run_history', $5, false FROM w) " RB_AUDIT_FROM("create", "$3::bigint") "w");
  db.prepare("get",
             "SELECT w.id, w.name, w.state, c.kind, c.ref FROM workspaces w LEFT JOIN components c "
             "ON c.workspace_id = w.id WHERE w.group_key = $1 AND w.deleted_at IS NULL");
  db.prepare("delete",
             "WITH u AS (UPDATE workspaces SET deleted_at = $2, purge_at = $3, deleted_seq = $4, "
             "retained_kinds = 'run_history' WHERE id = $1 AND deleted_at IS NULL RETURNING id, name) "
             RB_AUDIT_FROM("delete", "$2::bigint") "u");
  db.prepare("page",
             "SELECT id, name, subscription_id, resource_group, deleted_at, purge_at, retention_days, retained_kinds, "
             "deleted_seq FROM workspaces WHERE subscription_id = 'sub' AND deleted_at IS NOT NULL "
             "AND (deleted_at, deleted_seq) < ($1, $2) ORDER BY deleted_at DESC, deleted_seq DESC LIMIT 101");
  db.prepare("recover",
             "WITH u AS (UPDATE workspaces SET deleted_at = NULL, purge_at = NULL, deleted_seq = 0, retained_kinds = '' "
             "WHERE group_key = $1 AND deleted_at IS NOT NULL RETURNING id, name) "
             RB_AUDIT_FROM("recover", "$2::bigint") "u");
#undef RB_AUDIT_FROM
  Figures out;
  auto key = [](std::size_t i) { return recyclebin::group_name_key("sub", "rg", text("ws", i)); };
  auto t = Clock::now();
  for (std::size_t i = 0; i < a.n; ++i) {
    db.run("create", {text("id", 100000 + i), text("ws", i), std::to_string(kStart), key(i),
                      text("r", i)});
  }
  out.emplace_back("create", micros_per(t, a.n));
  t = Clock::now();
  for (std::size_t i = 0; i < a.n; ++i) db.run("get", {key(i)});
  out.emplace_back("get", micros_per(t, a.n));
  t = Clock::now();
  for (std::size_t i = 0; i < a.n; ++i) {
    const auto at = kStart + static_cast<std::int64_t>(i);
    db.run("delete", {text("id", 100000 + i), std::to_string(at),
                      std::to_string(at + 14 * recyclebin::kMicrosPerDay), std::to_string(i + 1)});
  }
  out.emplace_back("soft_delete", micros_per(t, a.n));
  t = Clock::now();
  const std::string top = std::to_string(std::numeric_limits<std::int64_t>::max());
  std::string at = top, seq = top;
  for (std::size_t p = 0; p < a.pages; ++p) {
    const char* values[] = {at.c_str(), seq.c_str()};
    PGresult* r = PQexecPrepared(db.conn, "page", 2, values, nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) throw std::runtime_error(PQresultErrorMessage(r));
    const int rows = PQntuples(r);
    if (rows > 100) {  // the extra row says another page exists: continue after the 100th
      at = PQgetvalue(r, 99, 4);
      seq = PQgetvalue(r, 99, 8);
    } else {
      at = seq = top;  // start over after the last page
    }
    PQclear(r);
  }
  out.emplace_back("list_page", micros_per(t, a.pages));
  t = Clock::now();
  for (std::size_t i = 0; i < a.n; i += 2) db.run("recover", {key(i), std::to_string(kStart + 2 * a.n + i)});
  out.emplace_back("recover", micros_per(t, a.n / 2));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    const auto figures = a.impl == "engine" ? run_engine(a) : run_raw(a);
    std::printf("{");
    bool first = true;
    for (const auto& [op, us] : figures) {
      std::printf("%s\"%s\": %.2f", first ? "" : ", ", op, us);
      first = false;
    }
    std::printf("}\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_pg: %s\n", e.what());
    return 1;
  }
}
