#pragma once
// A thin RAII layer over libpq (internal to the PostgreSQL store): a connection with its
// prepared-statement cache, a result, bound parameters. Parameters are always bound (text
// format), never spliced into SQL. Errors become recyclebin::Error: conflicts (serialization
// failure, deadlock, lock timeout, unique violation) as pg::Conflict, a dropped connection
// as pg::ConnectionLost, everything else as Error(storage_error) naming where it happened.

#include <libpq-fe.h>

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "recyclebin/error.hpp"

namespace recyclebin::pg {

/// A write that could not commit because of a concurrent one; the store runs it again.
/// Its code is workspace_exists for a unique violation, storage_error otherwise.
class Conflict : public Error {
 public:
  using Error::Error;
};

/// A statement's check that the data is still as the store last saw it failed (SQLSTATE
/// RB409, raised by the schema's rb_unchanged function): the store runs the write again,
/// reading afresh. Its code is storage_error, should it ever reach a caller.
class Stale : public Error {
 public:
  using Error::Error;
};

/// The connection broke (server gone, backend terminated, network): nothing of the open
/// transaction was applied; the connection is dead and must be dropped.
class ConnectionLost : public Error {
 public:
  /// `cause`: where, and what libpq said.
  explicit ConnectionLost(const std::string& cause)
      : Error(ErrorCode::storage_error, cause + "; nothing of the transaction was applied"), cause_(cause) {}
  /// The message without the claim that nothing was applied (for a loss after a COMMIT was sent).
  const std::string& cause() const { return cause_; }

 private:
  std::string cause_;
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
  /// A bigint[] literal.
  Params& add_array(const std::vector<std::int64_t>& items);

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

/// Checks the answer of a queued statement when it arrives (e.g. the rows it touched); may throw.
using Verify = std::function<void(const Result&)>;

/// How a queued statement travels.
enum class Queue {
  /// Must run; its verify checks an answer the server does not fail on (the rows it
  /// touched), so in the transaction's first round trip it is checked before a COMMIT is
  /// sent. Later round trips follow lookups that locked the rows it touches, and it travels
  /// with the COMMIT.
  checked_before_commit,
  /// Must run; a COMMIT may be sent behind it: a failure its verify finds means the
  /// statement wrote nothing.
  commit_may_follow,
  /// A read whose answer may come in handy: rides along with other statements only, and
  /// not with a COMMIT (nothing can use it then).
  speculative,
};

/// One connection and its prepared statements. Used by one thread at a time.
///
/// Round trips are what a short transaction costs, so a connection sends what it can in the
/// round trip of a statement whose answer is awaited (one libpq pipeline, one sync point):
/// - the command that opens a transaction goes in front of the transaction's first
///   statement (defer);
/// - statements whose answer nobody reads at once (queue: the void writes of a transaction
///   run by Store::write) go in front of the next statement that answers, or of COMMIT;
///   they are checked there, in order, and the first failure is thrown from that call;
/// - the command that ends a transaction without a commit is sent without waiting for its
///   answer (send_unawaited: the server acts on it at once; the answer is read with the
///   next statement's).
/// Once a statement of the transaction failed, every later call rethrows that failure
/// (PostgreSQL ignores the rest of a failed transaction): a failure cannot be caught and
/// written past. defer() starts afresh.
class Connection {
 public:
  /// Runs on every new session (the first, and after a reconnect): the session settings.
  using Setup = std::function<void(Connection&)>;

  /// Connects; throws Error(storage_error) naming the target when it cannot.
  explicit Connection(const Target& target, Setup setup = {});

  /// A statement without parameters (BEGIN, COMMIT, DDL), by the simple protocol (by the
  /// extended one behind deferred or queued commands).
  Result exec(const char* sql);
  /// A statement with bound parameters, prepared on its first use on this connection.
  /// `sql` must be a string literal (the cache is keyed by its address).
  Result exec(const char* sql, const Params& params);
  /// Several statements (literals, as for exec) in one round trip, after whatever is deferred
  /// or queued; their results in order. Each takes its snapshot when it starts (READ
  /// COMMITTED): a later one sees what an earlier one waited for.
  std::vector<Result> exec_each(const std::vector<std::pair<const char*, const Params*>>& statements);
  /// The same, not cached (for statements built once, e.g. migrations).
  Result exec_once(const std::string& sql, const Params& params);

  /// Queues a statement (a literal, as for exec) whose answer is not awaited: it is sent with
  /// the next exec, or by flush(), and `verify` checks its answer then.
  void queue(const char* sql, Params params, Verify verify = {}, Queue how = Queue::checked_before_commit);
  /// Whether statements that must run are queued.
  bool queued() const { return waiting_.required > 0; }
  /// Sends the deferred command and the queued statements now and checks their answers.
  void flush();
  /// COMMIT, after whatever is deferred or queued. When that is the transaction's opening
  /// (nothing of it was sent yet) and no queued statement must be checked before a COMMIT
  /// (Queue::checked_before_commit), the whole transaction is one round trip: an idle
  /// connection that dropped is found before it is sent, and connected anew; a loss once
  /// it was sent is thrown (the COMMIT may have applied) unless the server reported a
  /// failure in front of the COMMIT (then it is sent again on a new connection).
  void commit();

  /// Sends `sql` (a literal command without parameters: BEGIN ...) in the same round trip
  /// as the next exec, and starts a transaction's bookkeeping afresh. When the connection
  /// turns out to have dropped (an idle connection the server closed), nothing of the
  /// transaction existed yet: it connects anew once and sends it all again.
  void defer(const char* sql) {
    alone_ = false;
    waiting_.deferred = sql;
    failure_ = nullptr;
    failed_before_last_ = false;
  }
  /// Starts a read of one statement outside any transaction, on its own snapshot: nothing is
  /// deferred, and when the connection turns out to have dropped the statement is sent again
  /// on a new connection, once (a read may be sent twice). defer() ends it.
  void start_alone() {
    waiting_.deferred = nullptr;
    failure_ = nullptr;
    failed_before_last_ = false;
    alone_ = true;
  }
  /// Whether the deferred command is still unsent (then no statement has run since).
  bool deferred() const { return waiting_.deferred != nullptr; }
  /// Forgets the deferred command and the queued statements (a transaction ended unsent).
  void drop_unsent() { waiting_ = {}; }
  /// Forgets the queued speculative statements (their answers are not wanted now).
  void drop_speculative();
  /// Sends `sql` (ROLLBACK) now without waiting for its answer, which is read and ignored
  /// with the next statement's (in its round trip when that one opens a transaction). Never
  /// throws: a connection that cannot send it is broken (ok() false), and a pool drops it,
  /// which ends the session's transaction too.
  void send_unawaited(const char* sql) noexcept;

  /// Throws the transaction's first failure again, if a statement of it failed.
  void rethrow_failure() const {
    if (failure_) std::rethrow_exception(failure_);
  }
  /// Whether the session is inside a transaction (as the server last said).
  bool in_transaction() const {
    const PGTransactionStatusType status = PQtransactionStatus(connection_.get());
    return status == PQTRANS_INTRANS || status == PQTRANS_INERROR;
  }
  /// Whether the last failure thrown was reported by the server for a statement sent before
  /// the last one of its round trip (before a COMMIT: then the COMMIT cannot have applied).
  bool failed_before_last() const { return failed_before_last_; }

  bool ok() const { return !broken_ && PQstatus(connection_.get()) == CONNECTION_OK; }
  int backend_pid() const { return PQbackendPID(connection_.get()); }
  PGconn* handle() const { return connection_.get(); }
  const std::string& where() const { return target_->where; }

 private:
  /// One statement of a pipeline: params null for a command without parameters.
  struct Command {
    const char* sql;
    const Params* params;
    Verify verify;
  };
  struct Queued {
    const char* sql;
    Params params;
    Verify verify;
    bool speculative;
  };
  /// What waits to be sent: the deferred command and the queued statements, with their counts.
  struct Pending {
    const char* deferred = nullptr;
    std::vector<Queued> queue;
    std::size_t required = 0;               // queued statements that are not speculative
    std::size_t checked_before_commit = 0;  // queued ones whose verify must be seen before a COMMIT
  };

  Result check(PGresult* result, std::string_view sql);
  /// check(), remembering the failure it throws for the rest of the transaction.
  Result checked(PGresult* result, std::string_view sql);
  /// A prepared statement's execution on its own (nothing deferred or queued).
  Result exec_prepared(const char* sql, const Params& params);
  std::string scrub(std::string message) const;
  void connect();
  /// Reads the answer of a send_unawaited command and leaves pipeline mode.
  void settle() noexcept;
  /// Reads the answer of a send_unawaited command and its sync point; false when broken.
  bool read_unawaited() noexcept;
  /// Whether the next exec must go by a pipeline (something deferred or queued).
  bool pending() const { return waiting_.deferred != nullptr || !waiting_.queue.empty(); }
  /// The deferred command, the queued statements and `last` in one pipeline; the answers of
  /// `last` (all of them checked), reconnecting once if the transaction's opening found the
  /// connection dropped.
  std::vector<Result> run(std::vector<Command> last, bool commits = false);
  /// Connects anew when the server closed this idle connection (its farewell is waiting on
  /// the socket); costs no round trip.
  void revive_if_dropped();
  /// One pipeline of `commands`; their results, checked in order.
  std::vector<Result> pipeline(const std::vector<Command>& commands);
  const std::string& statement_name(const char* sql, bool& known);
  const Target* target_;
  Setup setup_;
  std::unique_ptr<PGconn, ConnectionDeleter> connection_;
  std::unordered_map<const char*, std::string> prepared_;  // sql literal -> statement name
  Pending waiting_;
  std::exception_ptr failure_;  // the transaction's first failure, rethrown by later calls
  bool failed_before_last_ = false;
  bool unawaited_ = false;
  bool broken_ = false;
  bool alone_ = false;  // start_alone: statements outside a transaction
};

}  // namespace recyclebin::pg
