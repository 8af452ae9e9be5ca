// The PostgreSQL store's own promises: migrations recorded in the database, schemas kept
// apart, reconnecting after a dropped connection, and StorageError messages that say what
// failed and where (host, port, database) without the password, with nothing applied.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <libpq-fe.h>

#include "fixtures.hpp"
#include "recyclebin/postgres_store.hpp"
#include "store_locations.hpp"

namespace recyclebin {
namespace {

using testing::expect_error;
using testing::kJan1;
using testing::pg_admin;
using testing::pg_url;

/// The parts of the test URL: postgresql://USER:PASSWORD@HOST:PORT/DB
struct UrlParts {
  std::string user, password, host, port, database;
};

UrlParts parts() {
  const std::string url = pg_url();
  UrlParts p;
  const auto start = url.find("://") + 3;
  const auto at = url.find('@', start);
  const auto colon = url.find(':', start);
  p.user = url.substr(start, colon - start);
  p.password = url.substr(colon + 1, at - colon - 1);
  const auto slash = url.find('/', at);
  const auto port_colon = url.find(':', at);
  p.host = url.substr(at + 1, port_colon - at - 1);
  p.port = url.substr(port_colon + 1, slash - port_colon - 1);
  p.database = url.substr(slash + 1, url.find('?', slash) - slash - 1);
  return p;
}

std::string url_of(const std::string& user, const std::string& password, const std::string& host,
                   const std::string& port, const std::string& database) {
  return "postgresql://" + user + ":" + password + "@" + host + ":" + port + "/" + database;
}

/// A TCP socket bound to a free loopback port, and the port.
std::pair<int, int> loopback_socket() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t size = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  return {fd, ntohs(address.sin_port)};
}

int free_port() {
  const auto [fd, port] = loopback_socket();
  ::close(fd);
  return port;
}

void expect_no_secret(const std::string& message, const std::string& secret) {
  EXPECT_EQ(message.find(secret), std::string::npos) << "the password leaked: " << message;
}

TEST(PostgresStore, AnUnreachableServerIsAStorageErrorNamingWhere) {
  const std::string port = std::to_string(free_port());
  const std::string m = expect_error(ErrorCode::storage_error, [&] {
    open_postgres_store(url_of("someone", "unreachable-secret", "127.0.0.1", port, "platform"));
  });
  EXPECT_NE(m.find("127.0.0.1:" + port), std::string::npos) << m;
  EXPECT_NE(m.find("'platform'"), std::string::npos) << m;
  EXPECT_NE(m.find("cannot connect"), std::string::npos) << m;
  expect_no_secret(m, "unreachable-secret");
}

TEST(PostgresStore, AWrongPasswordIsAStorageErrorWithoutThePassword) {
  const UrlParts p = parts();
  const std::string m = expect_error(ErrorCode::storage_error, [&] {
    open_postgres_store(url_of(p.user, "wrong-secret-123", p.host, p.port, p.database));
  });
  EXPECT_NE(m.find("password authentication failed"), std::string::npos) << m;
  EXPECT_NE(m.find(p.host + ":" + p.port), std::string::npos) << m;
  expect_no_secret(m, "wrong-secret-123");
}

TEST(PostgresStore, AMissingDatabaseIsAStorageErrorNamingIt) {
  const UrlParts p = parts();
  const std::string m = expect_error(ErrorCode::storage_error, [&] {
    open_postgres_store(url_of(p.user, p.password, p.host, p.port, "no_such_database_here"));
  });
  EXPECT_NE(m.find("no_such_database_here"), std::string::npos) << m;
  EXPECT_NE(m.find("does not exist"), std::string::npos) << m;
  expect_no_secret(m, p.password);
}

TEST(PostgresStore, AMalformedUrlIsAStorageErrorWithoutThePassword) {
  for (const std::string url : {"postgresql://user:hidden%zzsecret@127.0.0.1/db",
                                "postgresql://user:hiddensecret@127.0.0.1:5432/db?no_such_option=1",
                                "postgresql://user:hiddensecret@127.0.0.1:notaport/db"}) {
    const std::string m = expect_error(ErrorCode::storage_error, [&] { open_postgres_store(url); });
    expect_no_secret(m, "hidden");
    expect_no_secret(m, "secret");
  }
  const std::string m = expect_error(ErrorCode::storage_error,
                                     [&] { open_postgres_store("postgresql://user:hidden%zzsecret@127.0.0.1/db"); });
  EXPECT_NE(m.find("malformed PostgreSQL URL"), std::string::npos) << m;
}

TEST(PostgresStore, ASchemaWithoutRightsIsAStorageErrorNamingTheSchema) {
  const UrlParts p = parts();
  const std::string role = "rb_limited_" + std::to_string(::getpid());
  const std::string locked = "locked_" + std::to_string(::getpid());
  pg_admin("DROP SCHEMA IF EXISTS " + locked + " CASCADE");
  pg_admin("DROP ROLE IF EXISTS " + role);
  pg_admin("CREATE ROLE " + role + " LOGIN PASSWORD 'limited-secret'");
  pg_admin("REVOKE CREATE ON DATABASE " + p.database + " FROM PUBLIC");
  pg_admin("REVOKE CREATE ON SCHEMA public FROM PUBLIC");
  pg_admin("CREATE SCHEMA " + locked);  // owned by the administrator; the role has no rights on it
  const std::string base = url_of(role, "limited-secret", p.host, p.port, p.database);
  // A schema that exists, without rights on it.
  std::string m = expect_error(ErrorCode::storage_error,
                               [&] { open_postgres_store(testing::with_schema(base, locked)); });
  EXPECT_NE(m.find("schema '" + locked + "'"), std::string::npos) << m;
  EXPECT_NE(m.find("permission denied"), std::string::npos) << m;
  EXPECT_NE(m.find(p.host + ":" + p.port), std::string::npos) << m;
  expect_no_secret(m, "limited-secret");
  // A schema to create, without the right to create schemas.
  m = expect_error(ErrorCode::storage_error, [&] { open_postgres_store(testing::with_schema(base, "never_made")); });
  EXPECT_NE(m.find("schema 'never_made'"), std::string::npos) << m;
  EXPECT_NE(m.find("permission denied"), std::string::npos) << m;
  EXPECT_EQ(pg_admin("SELECT count(*) FROM pg_namespace WHERE nspname = 'never_made'"), "0");
  pg_admin("DROP SCHEMA " + locked + " CASCADE");
  pg_admin("DROP ROLE " + role);
}

TEST(PostgresStore, MigrationsAreRecordedAndANewerSchemaIsRefused) {
  const std::string schema = testing::fresh_schema();
  const std::string url = testing::with_schema(pg_url(), schema);
  open_postgres_store(url);
  open_postgres_store(url);  // a second open finds it migrated
  EXPECT_EQ(pg_admin("SELECT string_agg(version::text, ',' ORDER BY version) FROM " + schema + ".schema_migrations"),
            "1,2,3,4,5");
  EXPECT_EQ(postgres_schema_version(), 5);
  pg_admin("INSERT INTO " + schema + ".schema_migrations (version) VALUES (99)");
  const std::string m = expect_error(ErrorCode::storage_error, [&] { open_postgres_store(url); });
  EXPECT_NE(m.find("newer than this recyclebin understands"), std::string::npos) << m;
}

TEST(PostgresStore, EnginesOnDifferentSchemasAreApart) {
  const std::string a = testing::with_schema(pg_url(), testing::fresh_schema());
  const std::string b = testing::with_schema(pg_url(), testing::fresh_schema());
  auto clock = std::make_shared<ManualClock>(kJan1);
  auto first = Engine::open(a, Policy::builtin("default"), clock);
  auto second = Engine::open(b, Policy::builtin("default"), clock);
  first->create({"sub", "rg", "ws", std::nullopt, false, {}}, std::nullopt);
  expect_error(ErrorCode::workspace_not_found, [&] { second->get("sub", "rg", "ws", std::nullopt); });
  EXPECT_NO_THROW(second->create({"sub", "rg", "ws", std::nullopt, false, {}}, std::nullopt));
  // postgres:// is the same store.
  const std::string alias = "postgres://" + a.substr(std::string("postgresql://").size());
  auto third = Engine::open(alias, Policy::builtin("default"), clock);
  EXPECT_EQ(third->get("sub", "rg", "ws", std::nullopt).id, first->get("sub", "rg", "ws", std::nullopt).id);
}

TEST(PostgresStore, AConnectionDroppedMidTransactionAppliesNothingAndTheStoreReconnects) {
  const std::string app = "rb_drop_" + std::to_string(::getpid());
  const std::string url = testing::with_schema(pg_url(), testing::fresh_schema()) + "&application_name=" + app;
  auto store = open_postgres_store(url);
  {
    auto tx = store->begin(TransactionMode::write);
    WorkspaceRecord r;
    r.workspace = {"dropped", "sub", "rg", "ws", 14, false, WorkspaceState::running, kJan1, {}};
    r.group_key = group_name_key("sub", "rg", "ws");
    tx->insert_workspace(r);
    EXPECT_EQ(pg_admin("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" +
                       app + "'"),
              "1");
    const std::string m = expect_error(ErrorCode::storage_error, [&] { tx->commit(); });
    EXPECT_NE(m.find("connection"), std::string::npos) << m;
    EXPECT_NE(m.find(parts().host + ":" + parts().port), std::string::npos) << m;
    expect_no_secret(m, parts().password);
  }
  auto tx = store->begin(TransactionMode::read);  // a new connection
  EXPECT_FALSE(tx->find_by_id("dropped").has_value());
}

TEST(PostgresStore, AnEngineCarriesOnAfterItsConnectionsWereDropped) {
  const std::string app = "rb_idle_" + std::to_string(::getpid());
  const std::string url = testing::with_schema(pg_url(), testing::fresh_schema()) + "&application_name=" + app;
  auto engine = Engine::open(url, Policy::builtin("default"), std::make_shared<ManualClock>(kJan1));
  const auto w = engine->create({"sub", "rg", "ws", std::nullopt, false, {}}, std::nullopt);
  pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" + app + "'");
  EXPECT_EQ(engine->get("sub", "rg", "ws", std::nullopt).id, w.id);  // a read reconnects
  pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" + app + "'");
  EXPECT_NO_THROW(engine->remove(w.id, {}, std::nullopt));  // so does a write
  EXPECT_EQ(engine->get_deleted("sub", "rg", "ws", std::nullopt).id, w.id);
  // A create sends its whole transaction, COMMIT included, in one round trip: the server's
  // farewell, answering its first statement, says nothing of it ran; it is sent again.
  pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" + app + "'");
  const auto second = engine->create({"sub", "rg", "other", std::nullopt, false, {}}, std::nullopt);
  EXPECT_EQ(engine->get("sub", "rg", "other", std::nullopt).id, second.id);
}

TEST(PostgresStore, AFinishedTransactionHoldsNoLockNorSnapshotOnTheServer) {
  // A read ends without waiting for its ROLLBACK's answer: the server must still end it at
  // once, not when the pooled connection is next used (a schema change waits for no one).
  const std::string app = "rb_ended_" + std::to_string(::getpid());
  const std::string schema = testing::fresh_schema();
  const std::string url = testing::with_schema(pg_url(), schema) + "&application_name=" + app;
  auto engine = Engine::open(url, Policy::builtin("default"), std::make_shared<ManualClock>(kJan1));
  const auto w = engine->create({"sub", "rg", "ws", std::nullopt, false, {{"models", "m", false}}}, std::nullopt);
  EXPECT_EQ(engine->get("sub", "rg", "ws", std::nullopt).components.size(), 1u);
  expect_error(ErrorCode::workspace_not_found, [&] { engine->get("sub", "rg", "missing", std::nullopt); });
  expect_error(ErrorCode::workspace_exists,
               [&] { engine->create({"sub", "rg", "ws", std::nullopt, false, {}}, std::nullopt); });
  std::string open_transactions = "?";
  for (int i = 0; i < 100 && open_transactions != "0"; ++i) {
    open_transactions = pg_admin("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app +
                                 "' AND (state <> 'idle' OR backend_xmin IS NOT NULL)");
    if (open_transactions != "0") std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(open_transactions, "0");
  EXPECT_EQ(pg_admin("SET lock_timeout = '2s'; BEGIN; LOCK TABLE " + schema +
                     ".workspaces, " + schema + ".components IN ACCESS EXCLUSIVE MODE; ROLLBACK; SELECT 'locked'"),
            "locked");
  EXPECT_EQ(engine->get_by_id(w.id, std::nullopt).components.size(), 1u);  // and the pool carries on
}

// ---- a write's queued statements (sent with the next one that answers, or with COMMIT) ----

WorkspaceRecord live_row(const std::string& id, const std::string& name = "ws") {
  WorkspaceRecord r;
  r.workspace = {id, "sub", "rg", name, 14, false, WorkspaceState::running, kJan1, {}};
  r.group_key = group_name_key("sub", "rg", name);
  return r;
}

AuditRecord audit_of(const std::string& action) { return {0, kJan1, action, "sub", "rg", "ws", "ok", "", ""}; }

/// Waits until no session of `app` is left on the server (a terminated backend is gone).
void wait_until_gone(const std::string& app) {
  for (int i = 0; i < 200; ++i) {
    if (pg_admin("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app + "'") == "0") return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "the sessions of " << app << " did not end";
}

TEST(PostgresStore, ACreateOrGetOnAConnectionDroppedIdleIsSentOnANewConnectionOnce) {
  const std::string app = "rb_gone_" + std::to_string(::getpid());
  const std::string schema = testing::fresh_schema();
  const std::string url = testing::with_schema(pg_url(), schema) + "&application_name=" + app;
  auto engine = Engine::open(url, Policy::builtin("default"), std::make_shared<ManualClock>(kJan1));
  engine->create({"sub", "rg", "first", std::nullopt, false, {}}, std::nullopt);
  pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" + app + "'");
  wait_until_gone(app);  // the server's farewell is on the idle socket
  engine->create({"sub", "rg", "second", std::nullopt, false, {{"models", "m", false}}}, std::nullopt);
  EXPECT_EQ(pg_admin("SELECT count(*) FROM " + schema + ".workspaces"), "2");
  EXPECT_EQ(pg_admin("SELECT count(*) FROM " + schema + ".components"), "1");
  EXPECT_EQ(pg_admin("SELECT count(*) FROM " + schema + ".audit_log WHERE action = 'create'"), "2");
  // A get is one statement outside a transaction: sent again on a new connection, once.
  pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" + app + "'");
  wait_until_gone(app);
  EXPECT_EQ(engine->get("sub", "rg", "second", std::nullopt).components.size(), 1u);
  EXPECT_EQ(pg_admin("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app +
                     "' AND state <> 'idle'"),
            "0");  // nor left a transaction open
}

/// A loopback TCP proxy to the test server that, once armed, passes on the next client data
/// holding a COMMIT and then drops the client's connection without passing on the server's
/// answer: the server applies the COMMIT, the client never learns it. It also counts round
/// trips (turns(): each time a client sends after the server last spoke to it; one pipeline
/// is one turn however libpq splits it). Bounded:
/// every wait is a 50 ms poll, and the destructor stops and joins everything.
class CommitCuttingProxy {
 public:
  explicit CommitCuttingProxy(const UrlParts& server) : server_(server) {
    std::tie(listener_, port_) = loopback_socket();
    ::listen(listener_, 8);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~CommitCuttingProxy() {
    stop_ = true;
    acceptor_.join();  // then no pump is added any more
    for (auto& t : pumps_) t.join();
    ::close(listener_);
  }
  int port() const { return port_; }
  /// The test server's URL through this proxy, on `schema`.
  std::string url(const std::string& schema) const {
    return testing::with_schema(
        url_of(server_.user, server_.password, "127.0.0.1", std::to_string(port_), server_.database), schema);
  }
  /// How many round trips the clients began so far.
  int turns() const { return turns_; }
  void arm() { armed_ = true; }
  /// Ends every client connection now, with no message from the server (as a crash or a
  /// network fault would), and waits until they are closed.
  void drop_clients() {
    drop_ = true;
    for (int i = 0; i < 100 && live_ > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    drop_ = false;
  }
  bool cut() const { return cut_; }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int client = ::accept(listener_, nullptr, nullptr);
      if (client < 0) continue;
      const int upstream = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_port = htons(static_cast<std::uint16_t>(std::stoi(server_.port)));
      ::inet_pton(AF_INET, server_.host.c_str(), &address.sin_addr);
      if (::connect(upstream, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(client);
        ::close(upstream);
        continue;
      }
      ++live_;
      pumps_.emplace_back([this, client, upstream] { pump(client, upstream); });
    }
  }
  void pump(int client, int upstream) {
    char buffer[65536];
    bool dropped = false;
    bool answered = true;  // the server spoke last (as before the first statement)
    while (!stop_ && !dropped && !drop_) {
      pollfd p[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
      if (::poll(p, 2, 50) <= 0) continue;
      if (p[0].revents != 0) {
        const ssize_t n = ::read(client, buffer, sizeof buffer);
        if (n <= 0) break;
        if (std::exchange(answered, false)) ++turns_;
        const std::string_view data(buffer, static_cast<std::size_t>(n));
        if (armed_ && data.find("COMMIT") != std::string_view::npos) {
          armed_ = false;
          cut_ = true;
          dropped = true;  // the server gets it all; the client hears nothing more
        }
        if (::write(upstream, buffer, static_cast<std::size_t>(n)) != n) break;
      }
      if (!dropped && p[1].revents != 0) {
        const ssize_t n = ::read(upstream, buffer, sizeof buffer);
        if (n <= 0 || ::write(client, buffer, static_cast<std::size_t>(n)) != n) break;
        answered = true;
      }
    }
    ::close(client);  // the client sees its connection end
    --live_;
    // Let the server finish what it was sent before its session ends.
    for (int i = 0; i < 40 && !stop_; ++i) {
      pollfd p{upstream, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0 && ::read(upstream, buffer, sizeof buffer) <= 0) break;
    }
    ::close(upstream);
  }

  UrlParts server_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false}, armed_{false}, cut_{false}, drop_{false};
  std::atomic<int> live_{0};  // client connections open
  std::atomic<int> turns_{0};
  std::thread acceptor_;
  std::vector<std::thread> pumps_;  // added by the acceptor only
};

TEST(PostgresStore, ACreateLostAfterItsCommitWasSentSaysToCheckAndIsNotSentAgain) {
  // The create's BEGIN, statement and COMMIT travel together: when the connection is lost
  // once they were sent, the store cannot know whether they applied. It says so, naming
  // where, and does not send them again (the server did apply them here: one row, not two).
  const UrlParts p = parts();
  const std::string schema = testing::fresh_schema();
  CommitCuttingProxy proxy(p);
  auto engine = Engine::open(proxy.url(schema), Policy::builtin("default"), std::make_shared<ManualClock>(kJan1));
  proxy.arm();
  const std::string m = expect_error(ErrorCode::storage_error, [&] {
    engine->create({"sub", "rg", "ws", std::nullopt, false, {{"models", "m", false}}}, std::nullopt);
  });
  EXPECT_TRUE(proxy.cut());
  EXPECT_NE(m.find("lost while committing: check whether the change was applied"), std::string::npos) << m;
  EXPECT_NE(m.find("127.0.0.1:" + std::to_string(proxy.port())), std::string::npos) << m;
  expect_no_secret(m, p.password);
  std::string rows;
  for (int i = 0; i < 100 && rows != "1"; ++i) {  // the server applies it as the proxy lets its session end
    rows = pg_admin("SELECT count(*) FROM " + schema + ".workspaces");
    if (rows != "1") std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(rows, "1");
  // The engine carries on, on a new connection: it finds what was applied.
  EXPECT_EQ(engine->get("sub", "rg", "ws", std::nullopt).components.size(), 1u);
  expect_error(ErrorCode::workspace_exists, [&] {
    engine->create({"sub", "rg", "ws", std::nullopt, false, {}}, std::nullopt);
  });
}

TEST(PostgresStore, ACreateOnAConnectionThatEndedWithoutAWordIsSentOnANewOneOnce) {
  // The server's side ended without a farewell (a crash, a network fault): the create, whose
  // whole transaction goes in one trip, finds it before sending and sends it once, anew.
  const UrlParts p = parts();
  const std::string schema = testing::fresh_schema();
  CommitCuttingProxy proxy(p);
  auto engine = Engine::open(proxy.url(schema), Policy::builtin("default"), std::make_shared<ManualClock>(kJan1));
  proxy.drop_clients();
  engine->create({"sub", "rg", "ws", std::nullopt, false, {{"models", "m", false}}}, std::nullopt);
  EXPECT_EQ(pg_admin("SELECT count(*) FROM " + schema + ".workspaces"), "1");
  EXPECT_EQ(pg_admin("SELECT count(*) FROM " + schema + ".audit_log"), "1");
  proxy.drop_clients();
  EXPECT_EQ(engine->get("sub", "rg", "ws", std::nullopt).components.size(), 1u);  // and a get
}

TEST(PostgresStore, ACreateWhoseNameIsHeldWritesNothingAndSaysWhoHoldsIt) {
  // The first run inserts without looking (one round trip); finding the name held there, it
  // writes nothing and runs again looking first, which says why.
  const std::string schema = testing::fresh_schema();
  auto clock = std::make_shared<ManualClock>(kJan1);
  auto engine = Engine::open(testing::with_schema(pg_url(), schema), Policy::builtin("dataworks"), clock);
  const CreateRequest request{"sub", "rg", "ws", std::nullopt, false, {{"models", "m", false}, {"runs", "r", false}}};
  const auto w = engine->create(request, std::nullopt);
  auto count = [&](const std::string& table) { return pg_admin("SELECT count(*) FROM " + schema + "." + table); };
  // One trip, so no seq reserved ahead for it: its record takes the first.
  EXPECT_EQ(pg_admin("SELECT seq FROM " + schema + ".audit_log"), "1");
  const std::string exists = expect_error(ErrorCode::workspace_exists, [&] { engine->create(request, std::nullopt); });
  EXPECT_NE(exists.find("already exists"), std::string::npos) << exists;
  DeleteOptions confirmed;
  confirmed.confirm_name = "ws";  // dataworks asks for the typed-in name
  engine->remove(w.id, confirmed, std::nullopt);
  // dataworks reserves a name tenant-wide: another group of the subscription is refused too.
  CreateRequest elsewhere = request;
  elsewhere.resource_group = "rg-2";
  const std::string reserved = expect_error(ErrorCode::name_reserved, [&] { engine->create(elsewhere, std::nullopt); });
  EXPECT_NE(reserved.find("reserved until"), std::string::npos) << reserved;
  EXPECT_EQ(count("workspaces"), "1");
  EXPECT_EQ(count("components"), "2");
  EXPECT_EQ(pg_admin("SELECT string_agg(action || ':' || outcome, ',' ORDER BY seq) FROM " + schema + ".audit_log"),
            "create:ok,create:refused:workspace_exists,delete:ok,create:refused:name_reserved");
  // The name is free again once the reservation ended: the one-round-trip create applies.
  clock->advance(400 * kMicrosPerDay);
  engine->purge_expired(std::nullopt, false);
  EXPECT_NO_THROW(engine->create(elsewhere, std::nullopt));
  EXPECT_EQ(count("workspaces"), "1");
  EXPECT_EQ(count("components"), "2");
}

TEST(PostgresStore, AQueuedInsertBeatenToTheNameIsRunAgainThenRefused) {
  const std::string url = testing::with_schema(pg_url(), testing::fresh_schema());
  auto store = open_postgres_store(url);
  auto other = open_postgres_store(url);
  int runs = 0, audited = 0;
  const std::string m = expect_error(ErrorCode::workspace_exists, [&] {
    store->write(
        [&](StoreTransaction& tx) {
          ++runs;
          if (!tx.find_name_holders(group_name_key("sub", "rg", "ws"), "").empty()) {
            throw Error(ErrorCode::workspace_exists, "the name was taken meanwhile");
          }
          // Another writer takes the name after this one found it free; this insert is
          // queued, so its unique violation surfaces at the commit: a conflict, run again.
          if (runs == 1) other->write([](StoreTransaction& o) { o.insert_workspace(live_row("theirs")); }, {});
          tx.insert_workspace(live_row("mine"));
          tx.add_audit(audit_of("create"));
        },
        [&](StoreTransaction&, const std::exception_ptr&) { ++audited; });
  });
  EXPECT_NE(m.find("taken meanwhile"), std::string::npos) << m;
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(audited, 1);  // the refusal of the second run, not the conflict of the first
  auto tx = store->begin(TransactionMode::read);
  EXPECT_FALSE(tx->find_by_id("mine").has_value());
  EXPECT_TRUE(tx->find_by_id("theirs").has_value());
  EXPECT_TRUE(tx->audit_log({}).empty());  // the first run's audit record went with its insert
}

TEST(PostgresStore, AQueuedStatementThatFailsDecidesTheOutcomeOfARefusalThrownAfterIt) {
  const std::string url = testing::with_schema(pg_url(), testing::fresh_schema());
  auto store = open_postgres_store(url);
  auto other = open_postgres_store(url);
  int runs = 0, audited = 0;
  store->write(
      [&](StoreTransaction& tx) {
        ++runs;
        tx.find_by_id("mine");  // the transaction is open
        if (runs == 1) {
          other->write([](StoreTransaction& o) { o.insert_workspace(live_row("theirs")); }, {});
          tx.insert_workspace(live_row("mine"));  // queued; it fails (unique violation)
          // The refusal comes after the failed insert: the failure is the outcome, as it
          // would be had the insert answered at once (run again, the refusal not audited).
          throw Error(ErrorCode::name_reserved, "refused after the insert");
        }
      },
      [&](StoreTransaction&, const std::exception_ptr&) { ++audited; });
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(audited, 0);
}

TEST(PostgresStore, AConnectionDroppedWhileStatementsAreQueuedAppliesNothingAndTheWriteRunsAgain) {
  const std::string app = "rb_queued_" + std::to_string(::getpid());
  const std::string url = testing::with_schema(pg_url(), testing::fresh_schema()) + "&application_name=" + app;
  auto store = open_postgres_store(url);
  int runs = 0;
  store->write(
      [&](StoreTransaction& tx) {
        ++runs;
        EXPECT_FALSE(tx.find_by_id("w").has_value());  // the transaction is open
        tx.insert_workspace(live_row("w"));
        tx.add_audit(audit_of("create"));
        if (runs == 1) {
          // The server ends the session with the insert and the audit record still queued:
          // it says so for the first of them, so the COMMIT behind them cannot have applied.
          pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" + app + "'");
          wait_until_gone(app);
        }
      },
      {});
  EXPECT_EQ(runs, 2);
  auto tx = store->begin(TransactionMode::read);
  EXPECT_TRUE(tx->find_by_id("w").has_value());
  EXPECT_EQ(tx->audit_log({}).size(), 1u);
}

TEST(PostgresStore, AQueuedStatementPastTheStatementTimeoutIsAStorageErrorNamingWhere) {
  const std::string schema = testing::fresh_schema();
  const std::string url = testing::with_schema(pg_url(), schema + "%20-cstatement_timeout%3D300");
  auto store = open_postgres_store(url);
  store->write([](StoreTransaction& tx) { tx.insert_workspace(live_row("w")); }, {});
  // Another session holds the row: the queued update waits past the statement timeout.
  PGconn* holder = PQconnectdb(pg_url().c_str());
  ASSERT_EQ(PQstatus(holder), CONNECTION_OK);
  PQclear(PQexec(holder, ("BEGIN; SELECT id FROM " + schema + ".workspaces WHERE id = 'w' FOR UPDATE").c_str()));
  const std::string m = expect_error(ErrorCode::storage_error, [&] {
    store->write(
        [](StoreTransaction& tx) {
          tx.set_state("w", WorkspaceState::stopped);
          tx.add_audit(audit_of("stop"));
        },
        {});
  });
  EXPECT_NE(m.find("statement timeout"), std::string::npos) << m;
  EXPECT_NE(m.find(parts().host + ":" + parts().port), std::string::npos) << m;
  expect_no_secret(m, parts().password);
  PQclear(PQexec(holder, "ROLLBACK"));
  PQfinish(holder);
  {
    auto tx = store->begin(TransactionMode::read);
    EXPECT_EQ(tx->find_by_id("w")->workspace.state, WorkspaceState::running);
    EXPECT_TRUE(tx->audit_log({}).empty());
  }
  store->write([](StoreTransaction& tx) { tx.set_state("w", WorkspaceState::stopped); }, {});
  EXPECT_EQ(store->begin(TransactionMode::read)->find_by_id("w")->workspace.state, WorkspaceState::stopped);
}

TEST(PostgresStore, AQueuedUpdateOfAVanishedRowFailsTheWrite) {
  auto store = open_postgres_store(testing::with_schema(pg_url(), testing::fresh_schema()));
  int runs = 0;
  const std::string m = expect_error(ErrorCode::storage_error, [&] {
    store->write(
        [&](StoreTransaction& tx) {
          ++runs;
          tx.insert_workspace(live_row("w"));
          tx.set_state("gone", WorkspaceState::stopped);  // queued: no such row
        },
        {});
  });
  EXPECT_NE(m.find("workspace gone vanished"), std::string::npos) << m;
  EXPECT_EQ(runs, 1);  // not a conflict
  EXPECT_FALSE(store->begin(TransactionMode::read)->find_by_id("w").has_value());
}

TEST(PostgresStore, AFailedStatementFailsTheRestOfItsTransactionCommitIncluded) {
  auto store = open_postgres_store(testing::with_schema(pg_url(), testing::fresh_schema()));
  store->write([](StoreTransaction& tx) { tx.insert_workspace(live_row("a")); }, {});
  auto tx = store->begin(TransactionMode::write);
  expect_error(ErrorCode::workspace_exists, [&] { tx->insert_workspace(live_row("b")); });
  // PostgreSQL ignores the rest of a failed transaction: each later call says why.
  expect_error(ErrorCode::workspace_exists, [&] { tx->find_by_id("a"); });
  expect_error(ErrorCode::workspace_exists, [&] { tx->commit(); });
  tx.reset();
  EXPECT_TRUE(store->begin(TransactionMode::read)->find_by_id("a").has_value());
  EXPECT_FALSE(store->begin(TransactionMode::read)->find_by_id("b").has_value());
}

TEST(PostgresStore, TextWithANulByteIsRefusedNotCut) {
  auto store = open_postgres_store(testing::with_schema(pg_url(), testing::fresh_schema()));
  auto tx = store->begin(TransactionMode::write);
  expect_error(ErrorCode::invalid_argument, [&] {
    tx->insert_components("w", {{"models", std::string("a\0b", 3), false}});
  });
}

// --- writes that start from the rows the store last saw (RowCache) ------------------------------
// A write by id starts from the store's own last view of the row and checks, in its first
// statements, that the row and its components are still exactly that; when another engine
// changed them meanwhile, the write runs again from the row as it is now.

TEST(PostgresStore, ADeleteStartedFromACachedRowSeesALienAnotherEnginePlacedSince) {
  const std::string schema = testing::fresh_schema();
  const std::string url = testing::with_schema(pg_url(), schema);
  auto clock = std::make_shared<ManualClock>(kJan1);
  auto mine = Engine::open(url, Policy::builtin("default"), clock);
  auto theirs = Engine::open(url, Policy::builtin("default"), clock);
  const auto w = mine->create({"sub", "rg", "ws", std::nullopt, false, {{"run_history", "r", false}}}, std::nullopt);
  theirs->add_lien(w.id, "backup", "nightly copy", std::nullopt);  // `mine` last saw the row without it
  const std::string m = expect_error(ErrorCode::precondition_failed, [&] { mine->remove(w.id, {}, std::nullopt); });
  EXPECT_NE(m.find("backup"), std::string::npos) << m;
  EXPECT_NO_THROW(mine->get("sub", "rg", "ws", std::nullopt));  // still live
  // The refusal is audited once, from the run that saw the lien.
  EXPECT_EQ(pg_admin("SELECT string_agg(action || ':' || outcome, ',' ORDER BY seq) FROM " + schema + ".audit_log"),
            "create:ok,add_lien:ok,delete:refused:precondition_failed");
}

TEST(PostgresStore, ADeleteStartedFromACachedRowUsesTheComponentsAsTheyAreNow) {
  const std::string schema = testing::fresh_schema();
  auto clock = std::make_shared<ManualClock>(kJan1);
  auto engine = Engine::open(testing::with_schema(pg_url(), schema), Policy::builtin("default"), clock);
  const auto w = engine->create({"sub", "rg", "ws", std::nullopt, false, {{"run_history", "r", false}}}, std::nullopt);
  // The components change underneath, the row does not.
  pg_admin("UPDATE " + schema + ".components SET kind = 'models', ref = 'm' WHERE workspace_id = '" + w.id + "'");
  const DeleteResult result = engine->remove(w.id, {}, std::nullopt);
  std::vector<std::string> kinds = result.retained;
  kinds.insert(kinds.end(), result.destroyed.begin(), result.destroyed.end());
  kinds.insert(kinds.end(), result.preserved.begin(), result.preserved.end());
  EXPECT_EQ(kinds, std::vector<std::string>{"models"});
  EXPECT_EQ(pg_admin("SELECT count(*) FROM " + schema + ".audit_log WHERE action = 'delete'"), "1");
}

TEST(PostgresStore, AWriteStartedFromACachedRowThatAnotherEngineRemovedFindsItGone) {
  const std::string url = testing::with_schema(pg_url(), testing::fresh_schema());
  auto clock = std::make_shared<ManualClock>(kJan1);
  auto mine = Engine::open(url, Policy::builtin("default"), clock);
  auto theirs = Engine::open(url, Policy::builtin("default"), clock);
  const auto w = mine->create({"sub", "rg", "ws", std::nullopt, false, {}}, std::nullopt);
  DeleteOptions permanently;
  permanently.permanently_delete = true;
  theirs->remove(w.id, permanently, std::nullopt);
  expect_error(ErrorCode::workspace_not_found, [&] { mine->remove(w.id, {}, std::nullopt); });
  expect_error(ErrorCode::workspace_not_found, [&] { mine->stop(w.id, std::nullopt); });
}

TEST(PostgresStore, ADeleteStartedFromACachedRowCarriesItsAuditSeqAndLeavesNoGap) {
  const std::string schema = testing::fresh_schema();
  auto clock = std::make_shared<ManualClock>(kJan1);
  auto engine = Engine::open(testing::with_schema(pg_url(), schema), Policy::builtin("default"), clock);
  const auto a = engine->create({"sub", "rg", "a", std::nullopt, false, {}}, std::nullopt);
  const auto b = engine->create({"sub", "rg", "b", std::nullopt, false, {}}, std::nullopt);
  engine->remove(a.id, {}, std::nullopt);  // at the same instant: deleted_seq orders them
  engine->remove(b.id, {}, std::nullopt);
  EXPECT_EQ(pg_admin("SELECT string_agg(seq::text, ',' ORDER BY seq) FROM " + schema + ".audit_log"), "1,2,3,4");
  EXPECT_EQ(pg_admin("SELECT string_agg(w.name || ':' || w.deleted_seq, ',' ORDER BY w.name) FROM " + schema +
                     ".workspaces AS w JOIN " + schema + ".audit_log AS l ON l.seq = w.deleted_seq "
                     "AND l.workspace_id = w.id AND l.action = 'delete'"),
            "a:3,b:4");
  const auto page = engine->list_deleted("sub", std::nullopt, 10, std::nullopt, std::nullopt);
  ASSERT_EQ(page.items.size(), 2u);
  EXPECT_EQ(page.items[0].name, "b");  // the later delete first
  EXPECT_EQ(page.items[1].name, "a");
  // What the deletes left is what the next write starts from: a recover and a delete again.
  engine->recover("sub", "rg", "a", std::nullopt);
  engine->remove(a.id, {}, std::nullopt);
  EXPECT_EQ(pg_admin("SELECT deleted_seq FROM " + schema + ".workspaces WHERE name = 'a'"), "6");
}

TEST(PostgresStore, ARecoverStartedFromCachedRowsFindsTheNewestDeletedOfTheNameAsItIsNow) {
  // parsec reserves no name: a new workspace may take the name of one in the bin.
  const std::string url = testing::with_schema(pg_url(), testing::fresh_schema());
  auto clock = std::make_shared<ManualClock>(kJan1);
  auto mine = Engine::open(url, Policy::builtin("parsec"), clock);
  auto theirs = Engine::open(url, Policy::builtin("parsec"), clock);
  const auto first = mine->create({"sub", "rg", "ws", std::nullopt, false, {}}, std::nullopt);
  mine->remove(first.id, {}, std::nullopt);  // `mine` last saw the bin holding this one only
  clock->advance(kMicrosPerSecond);
  const auto second = theirs->create({"sub", "rg", "ws", std::nullopt, false, {}}, std::nullopt);
  theirs->remove(second.id, {}, std::nullopt);
  EXPECT_EQ(mine->recover("sub", "rg", "ws", std::nullopt).workspace.id, second.id);  // the newest
  // A live one of the name now: the next recover is refused, though `mine` saw none.
  const std::string m = expect_error(ErrorCode::workspace_exists, [&] { mine->recover("sub", "rg", "ws", std::nullopt); });
  EXPECT_NE(m.find(second.id), std::string::npos) << m;
  // Deleted again by the other engine: `mine` last saw it live, and recovers it again.
  clock->advance(kMicrosPerSecond);
  theirs->remove(second.id, {}, std::nullopt);
  EXPECT_EQ(mine->recover("sub", "rg", "ws", std::nullopt).workspace.id, second.id);
  // From its own view, once more: delete and recover by this engine alone.
  clock->advance(kMicrosPerSecond);
  mine->remove(second.id, {}, std::nullopt);
  EXPECT_EQ(mine->recover("sub", "rg", "ws", std::nullopt).workspace.id, second.id);
  EXPECT_EQ(mine->list_deleted("sub", std::nullopt, 10, std::nullopt, std::nullopt).items.size(), 1u);  // first
}

TEST(PostgresStore, WritesThatStartFromCachedRowsAreOneRoundTripEach) {
  const std::string schema = testing::fresh_schema();
  CommitCuttingProxy proxy(parts());
  auto clock = std::make_shared<ManualClock>(kJan1);
  auto engine = Engine::open(proxy.url(schema), Policy::builtin("default"), clock);
  auto theirs = Engine::open(testing::with_schema(pg_url(), schema), Policy::builtin("default"), clock);
  const auto w = engine->create({"sub", "rg", "ws", std::nullopt, false, {{"run_history", "r", false}}}, std::nullopt);
  auto trips = [&](const std::function<void()>& call) {
    const int before = proxy.turns();
    call();
    return proxy.turns() - before;
  };
  EXPECT_EQ(trips([&] { engine->remove(w.id, {}, std::nullopt); }), 1);
  EXPECT_EQ(trips([&] { engine->recover("sub", "rg", "ws", std::nullopt); }), 1);
  EXPECT_EQ(trips([&] { engine->stop(w.id, std::nullopt); }), 1);
  EXPECT_EQ(trips([&] { engine->get("sub", "rg", "ws", std::nullopt); }), 1);
  // Changed by another engine since: the run from the cache fails its check (one trip; its
  // ROLLBACK goes unawaited), then the write reads (one trip) and writes (one).
  theirs->start(w.id, std::nullopt);
  EXPECT_GE(trips([&] { engine->stop(w.id, std::nullopt); }), 3);
  EXPECT_EQ(trips([&] { engine->start(w.id, std::nullopt); }), 1);  // from what that write left
  EXPECT_EQ(engine->get("sub", "rg", "ws", std::nullopt).state, WorkspaceState::running);
}

}  // namespace
}  // namespace recyclebin
