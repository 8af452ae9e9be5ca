// The C++ side of the benchmarks (bench/README.md): the same operations as bench/cases.py,
// timed without Python, against
//   --impl raw     the ceiling: libsqlite3 with the minimum statements per operation, on
//                  bench/ceiling_schema.sql (one autocommitted statement per single op);
//   --impl engine  recyclebin::Engine itself (no binding), on its own SQLite store.
// Prints one JSON object on stdout: per operation, count, wall seconds, CPU seconds.
//
// --mode file   WAL + synchronous=NORMAL (the store's own setting)
// --mode full   WAL + synchronous=FULL (for the engine: forced on each of its connections by
//               an auto extension and an authorizer that ignores the store's NORMAL)
// --mode memory an in-memory database (":memory:" for the engine, "file::memory:" for raw)

#include <sqlite3.h>
#include <sys/resource.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "recyclebin/engine.hpp"

namespace {

using recyclebin::Timestamp;

constexpr Timestamp kJan1 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
constexpr Timestamp kDay = recyclebin::kMicrosPerDay;
constexpr int kRetentionDays = 14;
const std::string kSubscription = "sub-bench";

struct Options {
  std::string impl = "raw";
  std::string mode = "file";
  std::string dir = "/tmp";
  std::string schema = "bench/ceiling_schema.sql";
  std::string ops = "create,delete,list,recover,purge,delete_many";
  long n = 2000;
  long pages = 1000;
  long page_size = 100;
  long batch = 1000;
  long groups = 100;
  long threads = 0;  // > 0: the threads case (delete + recover of each workspace, file mode)
};

bool wants(const Options& o, const std::string& op) {
  return ("," + o.ops + ",").find("," + op + ",") != std::string::npos;
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// Bytes this process handed to write() so far (/proc/self/io "wchar"): with WAL, what each
/// commit appends to the log.
long long written_bytes() {
  std::ifstream io("/proc/self/io");
  std::string key;
  long long value = 0;
  while (io >> key >> value) {
    if (key == "wchar:") return value;
  }
  return 0;
}

struct Measure {
  std::string op;
  long count = 0;
  double wall = 0;
  double cpu = 0;
  long long written = 0;
};

/// Times a block: wall (steady clock), process CPU time, bytes written.
class Stopwatch {
 public:
  Stopwatch() : written_(written_bytes()), wall_(std::chrono::steady_clock::now()), cpu_(process_cpu_seconds()) {}
  Measure stop(std::string op, long count) const {
    const auto wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_).count();
    const double cpu = process_cpu_seconds() - cpu_;
    return {std::move(op), count, wall, cpu, written_bytes() - written_};
  }

 private:
  long long written_;
  std::chrono::steady_clock::time_point wall_;
  double cpu_;
};

std::string group_of(long i, long groups) { return "rg-" + std::to_string(i % groups); }
std::string name_of(long i) { return "ws-" + std::to_string(i); }

/// A 32-hex-digit id, like the engine's (a UUID without dashes); cheap and unique per i.
std::string id_of(long i) {
  std::uint64_t x = static_cast<std::uint64_t>(i) + 0x9E3779B97F4A7C15ULL;
  auto mix = [](std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  };
  char text[33];
  std::snprintf(text, sizeof text, "%016" PRIx64 "%016" PRIx64, mix(x), mix(x ^ 0xA5A5A5A5A5A5A5A5ULL));
  return text;
}

std::string file_path(const Options& o) {
  const std::string path = o.dir + "/bench-" + o.impl + "-" + o.mode + "-" + std::to_string(::getpid()) + ".db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  return path;
}

long long file_bytes(const std::string& path) {
  long long total = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path + suffix, ec);
    if (!ec) total += static_cast<long long>(size);
  }
  return total;
}

void remove_files(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
}

// ---------------------------------------------------------------------------------------
// synchronous=FULL for the engine's connections: the store sets NORMAL on each connection it
// opens; an auto extension sets FULL first and installs an authorizer that ignores later
// "PRAGMA synchronous = ..." statements.

long g_ignored_synchronous = 0;  // how often the store's own setting was ignored (proof it ran)

int ignore_synchronous(void*, int action, const char* arg1, const char* arg2, const char*, const char*) {
  if (action == SQLITE_PRAGMA && arg1 && arg2 && sqlite3_stricmp(arg1, "synchronous") == 0) {
    ++g_ignored_synchronous;
    return SQLITE_IGNORE;
  }
  return SQLITE_OK;
}

int force_full(sqlite3* db, char**, const sqlite3_api_routines*) {
  sqlite3_exec(db, "PRAGMA synchronous = FULL", nullptr, nullptr, nullptr);
  sqlite3_set_authorizer(db, ignore_synchronous, nullptr);
  return SQLITE_OK;
}

// ---------------------------------------------------------------------------------------
// Raw SQLite.

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  throw std::runtime_error(what + ": " + (db ? sqlite3_errmsg(db) : "?"));
}

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) fail(db, sql);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, "step");
  }
  void run() {
    while (step()) {
    }
    sqlite3_reset(stmt_);
  }
  void reset() { sqlite3_reset(stmt_); }
  std::int64_t i64(int c) const { return sqlite3_column_int64(stmt_, c); }
  std::string text(int c) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, c));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, c))) : std::string();
  }
  bool null(int c) const { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string text = message ? message : "?";
    sqlite3_free(message);
    throw std::runtime_error(sql.substr(0, 80) + ": " + text);
  }
}

/// A listed row, materialized as the engine materializes its DeletedWorkspace.
struct ListedRow {
  std::string id, subscription_id, resource_group, name;
  std::int64_t deleted_at = 0, purge_at = 0, deleted_seq = 0, retention_days = 0;
};

std::vector<Measure> run_raw(const Options& o, std::string& path, long long& bytes) {
  std::ifstream schema_file(o.schema);
  if (!schema_file) throw std::runtime_error("cannot read schema " + o.schema);
  std::stringstream schema;
  schema << schema_file.rdbuf();

  const bool memory = o.mode == "memory";
  path = memory ? "file::memory:" : file_path(o);
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, nullptr) !=
      SQLITE_OK) {
    fail(db, "open " + path);
  }
  if (!memory) {
    exec(db, "PRAGMA journal_mode = WAL");
    exec(db, o.mode == "full" ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
  }
  exec(db, schema.str());

  std::vector<Measure> out;
  {
    Stmt insert(db,
                "INSERT INTO workspaces (id, subscription_id, resource_group, name, retention_days, created_at, "
                "component_kind, component_ref) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'run_history', ?7)");
    Stmt soft_delete(db,
                     "UPDATE workspaces SET deleted_at = ?1, purge_at = ?2, deleted_seq = ?3 "
                     "WHERE id = ?4 AND deleted_at IS NULL");
    Stmt page(db,
              "SELECT id, subscription_id, resource_group, name, deleted_at, purge_at, deleted_seq, "
              "retention_days FROM workspaces WHERE subscription_id = ?1 AND deleted_at IS NOT NULL "
              "AND (deleted_at, deleted_seq) < (?2, ?3) AND purge_at > ?4 "
              "ORDER BY deleted_at DESC, deleted_seq DESC LIMIT ?5");
    Stmt recover(db,
                 "UPDATE workspaces SET deleted_at = NULL, purge_at = NULL, deleted_seq = 0 "
                 "WHERE subscription_id = ?1 AND resource_group = ?2 AND name = ?3 AND deleted_at IS NOT NULL");
    Stmt purge_cleanup(db,
                       "INSERT INTO cleanup_tasks (kind, ref, workspace_id, created_at) "
                       "SELECT component_kind, component_ref, id, ?1 FROM workspaces WHERE purge_at <= ?1");
    Stmt purge_audit(db,
                     "INSERT INTO audit_log (at, action, subscription_id, resource_group, name, outcome, "
                     "workspace_id) SELECT ?1, 'expire', subscription_id, resource_group, name, 'ok', id "
                     "FROM workspaces WHERE purge_at <= ?1");
    Stmt purge_rows(db, "DELETE FROM workspaces WHERE purge_at <= ?1");
    Stmt begin(db, "BEGIN IMMEDIATE");
    Stmt commit(db, "COMMIT");

    Timestamp now = kJan1;
    std::int64_t seq = 0;
    if (wants(o, "create")) {
      Stopwatch sw;
      for (long i = 0; i < o.n; ++i) {
        insert.bind(1, id_of(i)).bind(2, kSubscription).bind(3, group_of(i, o.groups)).bind(4, name_of(i))
            .bind(5, kRetentionDays).bind(6, now).bind(7, "blob/" + std::to_string(i)).run();
      }
      out.push_back(sw.stop("create", o.n));
    }
    if (wants(o, "delete")) {
      Stopwatch sw;
      for (long i = 0; i < o.n; ++i) {
        soft_delete.bind(1, now).bind(2, now + kRetentionDays * kDay).bind(3, ++seq).bind(4, id_of(i)).run();
      }
      out.push_back(sw.stop("delete", o.n));
    }
    if (wants(o, "list")) {
      std::optional<std::pair<std::int64_t, std::int64_t>> cursor;
      long rows = 0;
      Stopwatch sw;
      for (long p = 0; p < o.pages; ++p) {
        page.bind(1, kSubscription)
            .bind(2, cursor ? cursor->first : INT64_MAX)
            .bind(3, cursor ? cursor->second : INT64_MAX)
            .bind(4, now)
            .bind(5, o.page_size + 1);
        std::vector<ListedRow> items;
        while (page.step()) {
          items.push_back({page.text(0), page.text(1), page.text(2), page.text(3), page.i64(4), page.i64(5),
                           page.i64(6), page.i64(7)});
        }
        page.reset();
        if (static_cast<long>(items.size()) > o.page_size) {
          items.resize(static_cast<std::size_t>(o.page_size));
          cursor = std::make_pair(items.back().deleted_at, items.back().deleted_seq);
        } else {
          cursor.reset();  // the last page: start over
        }
        rows += static_cast<long>(items.size());
      }
      out.push_back(sw.stop("list", o.pages));
      if (rows == 0 && o.n > 0) throw std::runtime_error("list returned nothing");
    }
    if (wants(o, "recover")) {
      long count = 0;
      Stopwatch sw;
      for (long i = 0; i < o.n; i += 2, ++count) {
        recover.bind(1, kSubscription).bind(2, group_of(i, o.groups)).bind(3, name_of(i)).run();
        if (sqlite3_changes(db) != 1) throw std::runtime_error("recover changed nothing");
      }
      out.push_back(sw.stop("recover", count));
    }
    if (wants(o, "purge")) {
      now += (kRetentionDays + 1) * kDay;
      Stopwatch sw;
      begin.run();
      purge_cleanup.bind(1, now).run();
      purge_audit.bind(1, now).run();
      purge_rows.bind(1, now).run();
      const long purged = sqlite3_changes(db);
      commit.run();
      out.push_back(sw.stop("purge", purged));
    }
    if (wants(o, "delete_many")) {
      long count = 0;
      Stopwatch sw;
      for (long start = 0; start < o.n; start += 2 * o.batch) {
        begin.run();
        for (long i = start; i < std::min(o.n, start + 2 * o.batch); i += 2, ++count) {
          soft_delete.bind(1, now).bind(2, now + kRetentionDays * kDay).bind(3, ++seq).bind(4, id_of(i)).run();
          if (sqlite3_changes(db) != 1) throw std::runtime_error("delete_many changed nothing");
        }
        commit.run();
      }
      out.push_back(sw.stop("delete_many", count));
    }
  }
  if (memory) {
    Stmt size(db, "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()");
    size.step();
    bytes = size.i64(0);
  }
  sqlite3_close_v2(db);  // checkpoints the WAL into the database file
  if (!memory) bytes = file_bytes(path);
  return out;
}

// ---------------------------------------------------------------------------------------
// recyclebin::Engine, called directly.

std::vector<Measure> run_engine(const Options& o, std::string& path, long long& bytes) {
  using namespace recyclebin;
  const bool memory = o.mode == "memory";
  path = memory ? ":memory:" : file_path(o);
  if (o.mode == "full") {
    sqlite3_auto_extension(reinterpret_cast<void (*)()>(force_full));  // NOLINT: SQLite's own signature
  }
  auto clock = std::make_shared<ManualClock>(kJan1);
  auto engine = Engine::open(path, Policy::builtin("default"), clock);

  std::vector<Measure> out;
  std::vector<std::string> ids(static_cast<std::size_t>(o.n));
  if (wants(o, "create")) {
    Stopwatch sw;
    for (long i = 0; i < o.n; ++i) {
      CreateRequest request;
      request.subscription_id = kSubscription;
      request.resource_group = group_of(i, o.groups);
      request.name = name_of(i);
      request.components = {Component{"run_history", "blob/" + std::to_string(i), false}};
      ids[static_cast<std::size_t>(i)] = engine->create(request, std::nullopt).id;
    }
    out.push_back(sw.stop("create", o.n));
  }
  if (wants(o, "delete")) {
    Stopwatch sw;
    for (long i = 0; i < o.n; ++i) engine->remove(ids[static_cast<std::size_t>(i)], DeleteOptions{}, std::nullopt);
    out.push_back(sw.stop("delete", o.n));
  }
  if (wants(o, "list")) {
    std::optional<std::string> cursor;
    long rows = 0;
    Stopwatch sw;
    for (long p = 0; p < o.pages; ++p) {
      auto page = engine->list_deleted(kSubscription, std::nullopt, static_cast<std::size_t>(o.page_size), cursor,
                                       std::nullopt);
      rows += static_cast<long>(page.items.size());
      cursor = page.next_cursor;  // nullopt after the last page: start over
    }
    out.push_back(sw.stop("list", o.pages));
    if (rows == 0 && o.n > 0) throw std::runtime_error("list returned nothing");
  }
  if (wants(o, "recover")) {
    long count = 0;
    Stopwatch sw;
    for (long i = 0; i < o.n; i += 2, ++count) {
      engine->recover(kSubscription, group_of(i, o.groups), name_of(i), std::nullopt);
    }
    out.push_back(sw.stop("recover", count));
  }
  if (wants(o, "purge")) {
    clock->advance((kRetentionDays + 1) * kDay);
    Stopwatch sw;
    const auto report = engine->purge_expired(std::nullopt);
    out.push_back(sw.stop("purge", static_cast<long>(report.purged.size())));
    if (report.cleanup.size() != report.purged.size()) throw std::runtime_error("purge wrote no cleanup tasks");
  }
  if (wants(o, "delete_many")) {
    long count = 0;
    Stopwatch sw;
    for (long start = 0; start < o.n; start += 2 * o.batch) {
      std::vector<std::string> batch;
      for (long i = start; i < std::min(o.n, start + 2 * o.batch); i += 2) batch.push_back(ids[static_cast<std::size_t>(i)]);
      count += static_cast<long>(engine->remove_many(batch, DeleteOptions{}, std::nullopt).size());
    }
    out.push_back(sw.stop("delete_many", count));
  }
  engine->close();
  if (o.mode == "full" && g_ignored_synchronous == 0) {
    throw std::runtime_error("synchronous=FULL was not forced on the store's connections");
  }
  bytes = memory ? 0 : file_bytes(path);
  return out;
}

// ---------------------------------------------------------------------------------------
// Threads: `threads` threads, each soft-deleting then recovering its own share of n
// workspaces (durable file, WAL, synchronous=NORMAL, or FULL with --mode full: every commit
// waits for the disk); throughput in operations per second.

struct ThreadsResult {
  double wall = 0;
  double cpu = 0;
};

template <class Work>
ThreadsResult run_threads(long threads, Work work) {
  std::vector<std::thread> pool;
  Stopwatch sw;
  for (long t = 0; t < threads; ++t) pool.emplace_back(work, t);
  for (auto& thread : pool) thread.join();
  const Measure m = sw.stop("threads", 0);
  return {m.wall, m.cpu};
}

ThreadsResult threads_engine(const Options& o) {
  using namespace recyclebin;
  const std::string path = file_path(o);
  if (o.mode == "full") {
    sqlite3_auto_extension(reinterpret_cast<void (*)()>(force_full));  // NOLINT: SQLite's own signature
  }
  auto engine = Engine::open(path, Policy::builtin("default"), std::make_shared<ManualClock>(kJan1));
  std::vector<std::string> ids;
  for (long i = 0; i < o.n; ++i) {
    CreateRequest request;
    request.subscription_id = kSubscription;
    request.resource_group = group_of(i, o.groups);
    request.name = name_of(i);
    request.components = {Component{"run_history", "blob/" + std::to_string(i), false}};
    ids.push_back(engine->create(request, std::nullopt).id);
  }
  const auto result = run_threads(o.threads, [&](long t) {
    for (long i = t; i < o.n; i += o.threads) {
      engine->remove(ids[static_cast<std::size_t>(i)], DeleteOptions{}, std::nullopt);
      engine->recover(kSubscription, group_of(i, o.groups), name_of(i), std::nullopt);
    }
  });
  engine->close();
  remove_files(path);
  if (o.mode == "full" && g_ignored_synchronous == 0) {
    throw std::runtime_error("synchronous=FULL was not forced on the store's connections");
  }
  return result;
}

ThreadsResult threads_raw(const Options& o) {
  std::ifstream schema_file(o.schema);
  if (!schema_file) throw std::runtime_error("cannot read schema " + o.schema);
  std::stringstream schema;
  schema << schema_file.rdbuf();
  const std::string path = file_path(o);
  auto open = [&]() {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
      fail(db, "open " + path);
    }
    sqlite3_busy_timeout(db, 10'000);
    exec(db, "PRAGMA journal_mode = WAL");
    exec(db, o.mode == "full" ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    return db;
  };
  sqlite3* setup = open();
  exec(setup, schema.str());
  {
    Stmt insert(setup,
                "INSERT INTO workspaces (id, subscription_id, resource_group, name, retention_days, created_at, "
                "component_kind, component_ref) VALUES (?1, ?2, ?3, ?4, 14, ?5, 'run_history', ?6)");
    exec(setup, "BEGIN");
    for (long i = 0; i < o.n; ++i) {
      insert.bind(1, id_of(i)).bind(2, kSubscription).bind(3, group_of(i, o.groups)).bind(4, name_of(i))
          .bind(5, kJan1).bind(6, "blob/" + std::to_string(i)).run();
    }
    exec(setup, "COMMIT");
  }
  const auto result = run_threads(o.threads, [&](long t) {
    sqlite3* db = open();
    {
      Stmt soft_delete(db, "UPDATE workspaces SET deleted_at = ?1, purge_at = ?2, deleted_seq = ?3 WHERE id = ?4");
      Stmt recover(db,
                   "UPDATE workspaces SET deleted_at = NULL, purge_at = NULL, deleted_seq = 0 "
                   "WHERE subscription_id = ?1 AND resource_group = ?2 AND name = ?3 AND deleted_at IS NOT NULL");
      for (long i = t; i < o.n; i += o.threads) {
        soft_delete.bind(1, kJan1).bind(2, kJan1 + kRetentionDays * kDay).bind(3, i + 1).bind(4, id_of(i)).run();
        recover.bind(1, kSubscription).bind(2, group_of(i, o.groups)).bind(3, name_of(i)).run();
      }
    }
    sqlite3_close_v2(db);
  });
  sqlite3_close_v2(setup);
  remove_files(path);
  return result;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value for " + arg);
      return argv[++i];
    };
    if (arg == "--impl") o.impl = value();
    else if (arg == "--mode") o.mode = value();
    else if (arg == "--dir") o.dir = value();
    else if (arg == "--schema") o.schema = value();
    else if (arg == "--ops") o.ops = value();
    else if (arg == "--n") o.n = std::stol(value());
    else if (arg == "--pages") o.pages = std::stol(value());
    else if (arg == "--page-size") o.page_size = std::stol(value());
    else if (arg == "--batch") o.batch = std::stol(value());
    else if (arg == "--groups") o.groups = std::stol(value());
    else if (arg == "--threads") o.threads = std::stol(value());
    else throw std::runtime_error("unknown argument " + arg);
  }
  if (o.impl != "raw" && o.impl != "engine") throw std::runtime_error("--impl is raw or engine");
  if (o.mode != "file" && o.mode != "full" && o.mode != "memory") throw std::runtime_error("--mode is file, full or memory");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    if (o.threads > 0) {
      const ThreadsResult r = o.impl == "raw" ? threads_raw(o) : threads_engine(o);
      rusage usage{};
      getrusage(RUSAGE_SELF, &usage);
      std::printf("{\"impl\": \"%s\", \"mode\": \"%s\", \"case\": \"threads\", \"threads\": %ld, \"n\": %ld, "
                  "\"ops\": %ld, \"wall_s\": %.6f, \"cpu_s\": %.6f, \"ops_per_s\": %.1f, \"peak_rss_kb\": %ld}\n",
                  o.impl.c_str(), o.mode == "memory" ? "file" : o.mode.c_str(), o.threads, o.n, 2 * o.n, r.wall, r.cpu, static_cast<double>(2 * o.n) / r.wall,
                  usage.ru_maxrss);
      return 0;
    }
    std::string path;
    long long bytes = 0;
    const auto measures = o.impl == "raw" ? run_raw(o, path, bytes) : run_engine(o, path, bytes);
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    std::printf("{\"impl\": \"%s\", \"mode\": \"%s\", \"n\": %ld, \"sqlite\": \"%s\", \"db_bytes\": %lld, "
                "\"peak_rss_kb\": %ld, \"ops\": {",
                o.impl.c_str(), o.mode.c_str(), o.n, sqlite3_libversion(), bytes, usage.ru_maxrss);
    for (std::size_t i = 0; i < measures.size(); ++i) {
      const Measure& m = measures[i];
      std::printf("%s\"%s\": {\"count\": %ld, \"wall_s\": %.6f, \"cpu_s\": %.6f, \"written\": %lld}",
                  i ? ", " : "", m.op.c_str(), m.count, m.wall, m.cpu, m.written);
    }
    std::printf("}}\n");
    if (o.mode != "memory") remove_files(path);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "recyclebin_bench_core: %s\n", e.what());
    return 1;
  }
}
