#pragma once
// A thin RAII layer over libpq (internal to the PostgreSQL store): a connection with its
// prepared-statement cache, a result, bound parameters. Parameters are always bound (text
// format), never spliced into SQL. Errors become recyclebin::Error: conflicts (serialization
// failure, deadlock, lock timeout, unique violation) as pg::Conflict, a dropped connection
// as pg::ConnectionLost, everything else as Error(storage_error) naming where it happened.

#include <libpq-fe.h>

#include <cstdint>
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
class Connection {
 public:
  /// Connects; throws Error(storage_error) naming the target when it cannot.
  explicit Connection(const Target& target);

  /// A statement without parameters (BEGIN, COMMIT, DDL), by the simple protocol.
  Result exec(const char* sql);
  /// A statement with bound parameters, prepared on its first use on this connection.
  /// `sql` must be a string literal (the cache is keyed by its address).
  Result exec(const char* sql, const Params& params);
  /// The same, not cached (for statements built once, e.g. migrations).
  Result exec_once(const std::string& sql, const Params& params);

  bool ok() const { return PQstatus(connection_.get()) == CONNECTION_OK; }
  int backend_pid() const { return PQbackendPID(connection_.get()); }
  PGconn* handle() const { return connection_.get(); }
  const std::string& where() const { return target_->where; }

 private:
  Result check(PGresult* result, std::string_view sql);
  std::string scrub(std::string message) const;

  const Target* target_;
  std::unique_ptr<PGconn, ConnectionDeleter> connection_;
  std::unordered_map<const char*, std::string> prepared_;  // sql literal -> statement name
};

}  // namespace recyclebin::pg
