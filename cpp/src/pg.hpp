#pragma once
// A thin RAII layer over libpq (internal to the PostgreSQL store): a connection with its
// prepared-statement cache, a result, bound parameters. Parameters are always bound (text
// format), never spliced into SQL. Errors become recyclebin::Error: conflicts (serialization
// failure, deadlock, lock timeout, unique violation) as pg::Conflict, a dropped connection
// as pg::ConnectionLost, everything else as Error(storage_error) naming where it happened.

#include <libpq-fe.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "recyclebin/error.hpp"

namespace recyclebin::pg {

/// A write that could not commit because of a concurrent one; the store runs it again.
/// Its code is workspace_exists for a unique violation, storage_error otherwise.
class Conflict : public Error {
 public:
  using Error::Error;
};

/// The connection broke (server gone, backend terminated, network): nothing of the open
/// transaction was applied; the connection is dead and must be dropped.
class ConnectionLost : public Error {
 public:
  ConnectionLost(const std::string& message) : Error(ErrorCode::storage_error, message) {}
};

struct ResultDeleter {
  void operator()(PGresult* result) const noexcept { PQclear(result); }
};
struct ConnectionDeleter {
  void operator()(PGconn* connection) const noexcept { PQfinish(connection); }
};

/// The rows (or the command status) of one statement. Columns are read as text.
class Result {
 public:
  explicit Result(PGresult* result) : result_(result) {}

  int rows() const { return PQntuples(result_.get()); }
  int columns() const { return PQnfields(result_.get()); }
  bool is_null(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
  std::string text(int row, int column) const {
    return std::string(PQgetvalue(result_.get(), row, column),
                       static_cast<std::size_t>(PQgetlength(result_.get(), row, column)));
  }
  std::optional<std::string> opt_text(int row, int column) const {
    if (is_null(row, column)) return std::nullopt;
    return text(row, column);
  }
  std::int64_t int64(int row, int column) const;
  std::optional<std::int64_t> opt_int64(int row, int column) const {
    if (is_null(row, column)) return std::nullopt;
    return int64(row, column);
  }
  bool boolean(int row, int column) const { return PQgetvalue(result_.get(), row, column)[0] == 't'; }
  /// Rows an INSERT, UPDATE or DELETE touched.
  std::int64_t affected() const;
  PGresult* get() const { return result_.get(); }
  PGresult* release() { return result_.release(); }

 private:
  std::unique_ptr<PGresult, ResultDeleter> result_;
};

/// Parameters of one statement, in order ($1, $2, ...), as text.
class Params {
 public:
  Params& add(std::int64_t value) { return add_text(std::to_string(value)); }
  Params& add(int value) { return add(static_cast<std::int64_t>(value)); }
  Params& add(bool value) { return add_text(value ? "true" : "false"); }
  Params& add(const std::string& value);
  Params& add(const char* value) { return add(std::string(value)); }
  template <class T>
  Params& add(const std::optional<T>& value) {
    if (value) return add(*value);
    values_.emplace_back();
    nulls_.push_back(true);
    return *this;
  }
  /// A text[] literal of `items` (bound as one parameter: cast it with $n::text[]).
  Params& add_array(const std::vector<std::string>& items);
  /// A boolean[] literal.
  Params& add_array(const std::vector<bool>& items);

  int size() const { return static_cast<int>(values_.size()); }
  /// The C strings libpq reads; valid while this object lives unchanged.
  std::vector<const char*> pointers() const;

 private:
  Params& add_text(std::string value) {
    values_.push_back(std::move(value));
    nulls_.push_back(false);
    return *this;
  }
  std::vector<std::string> values_;
  std::vector<bool> nulls_;
};

/// Where a connection goes, for messages: "PostgreSQL at HOST:PORT, database 'DB'"
/// (never the password), and the URI's password (to scrub it from libpq's messages).
struct Target {
  std::string url;
  std::string where;
  std::string password;  // empty when the URI has none
};

/// Parses `url` for messages; a malformed URI throws Error(storage_error) saying why.
Target parse_target(const std::string& url);

/// One connection and its prepared statements. Used by one thread at a time.
///
/// Round trips are what a short transaction costs, so a connection saves two of them: the
/// command that opens a transaction is sent in front of the transaction's first statement
/// (defer: one pipeline, one round trip), and the one that ends a transaction without a
/// commit is sent without waiting for its answer (send_unawaited: the server acts on it at
/// once; the answer is read before the next statement).
class Connection {
 public:
  /// Runs on every new session (the first, and after a reconnect): the session settings.
  using Setup = std::function<void(Connection&)>;

  /// Connects; throws Error(storage_error) naming the target when it cannot.
  explicit Connection(const Target& target, Setup setup = {});

  /// A statement without parameters (BEGIN, COMMIT, DDL), by the simple protocol (by the
  /// extended one behind a deferred command).
  Result exec(const char* sql);
  /// A statement with bound parameters, prepared on its first use on this connection.
  /// `sql` must be a string literal (the cache is keyed by its address).
  Result exec(const char* sql, const Params& params);
  /// The same, not cached (for statements built once, e.g. migrations).
  Result exec_once(const std::string& sql, const Params& params);

  /// Sends `sql` (a literal command without parameters: BEGIN ...) in the same round trip
  /// as the next exec. When the connection turns out to have dropped (an idle connection the
  /// server closed), nothing of the transaction existed yet: it connects anew once and sends
  /// both again.
  void defer(const char* sql) { deferred_ = sql; }
  /// Whether the deferred command is still unsent (then no statement has run since).
  bool deferred() const { return deferred_ != nullptr; }
  void drop_deferred() { deferred_ = nullptr; }
  /// Sends `sql` (ROLLBACK) now without waiting for its answer, which is read and ignored
  /// with the next statement's (in its round trip when that one opens a transaction). Never
  /// throws: a connection that cannot send it is broken (ok() false), and a pool drops it,
  /// which ends the session's transaction too.
  void send_unawaited(const char* sql) noexcept;

  bool ok() const { return !broken_ && PQstatus(connection_.get()) == CONNECTION_OK; }
  int backend_pid() const { return PQbackendPID(connection_.get()); }
  PGconn* handle() const { return connection_.get(); }
  const std::string& where() const { return target_->where; }

 private:
  Result check(PGresult* result, std::string_view sql);
  std::string scrub(std::string message) const;
  void connect();
  /// Reads the answer of a send_unawaited command and leaves pipeline mode.
  void settle() noexcept;
  /// Reads the answer of a send_unawaited command and its sync point; false when broken.
  bool read_unawaited() noexcept;
  /// The deferred command and `sql` (prepared when `params` is given) in one pipeline.
  Result exec_deferred(const char* sql, const Params* params);
  Result pipeline(const char* first, const char* sql, const Params* params);
  const std::string& statement_name(const char* sql, bool& known);

  const Target* target_;
  Setup setup_;
  std::unique_ptr<PGconn, ConnectionDeleter> connection_;
  std::unordered_map<const char*, std::string> prepared_;  // sql literal -> statement name
  const char* deferred_ = nullptr;
  bool unawaited_ = false;
  bool broken_ = false;
};

}  // namespace recyclebin::pg
