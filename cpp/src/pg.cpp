#include "pg.hpp"

#include <poll.h>

#include <charconv>
#include <cstring>
#include <utility>

namespace recyclebin::pg {
namespace {

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\t')) text.pop_back();
  return text;
}

void replace_all(std::string& text, const std::string& what, const std::string& with) {
  if (what.empty()) return;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + with.size())) {
    text.replace(at, what.size(), with);
  }
}

std::string percent_decode(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    unsigned value = 0;
    if (text[i] == '%' && i + 2 < text.size() + 0 &&
        std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16).ptr == text.data() + i + 3) {
      out += static_cast<char>(value);
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

/// The password part of a URI's user info, as written (percent-encoded), found by text so
/// that even a URI libpq refuses can be reported without it.
std::string uri_password(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return {};
  const std::size_t start = scheme + 3;
  const std::size_t end = std::min(url.find_first_of("/?", start), url.size());
  const std::string authority = url.substr(start, end - start);
  const auto at = authority.rfind('@');
  if (at == std::string::npos) return {};
  const auto colon = authority.find(':');
  if (colon == std::string::npos || colon > at) return {};
  return authority.substr(colon + 1, at - colon - 1);
}

/// `message` without the password, raw or decoded.
std::string scrub_password(std::string message, const std::string& password) {
  if (password.empty()) return message;
  const std::string decoded = percent_decode(password);
  replace_all(message, password, "***");
  replace_all(message, decoded, "***");
  return message;
}

std::string quote(const std::string& text) { return "'" + text + "'"; }

}  // namespace

std::int64_t Result::int64(int row, int column) const {
  const char* value = PQgetvalue(result_.get(), row, column);
  const char* end = value + PQgetlength(result_.get(), row, column);
  std::int64_t out = 0;
  const auto [ptr, ec] = std::from_chars(value, end, out);
  if (ec != std::errc() || ptr != end) {
    throw Error(ErrorCode::storage_error, "PostgreSQL returned '" + std::string(value, end) +
                                              "' where an integer was expected");
  }
  return out;
}

std::int64_t Result::affected() const {
  const char* tuples = PQcmdTuples(result_.get());
  std::int64_t out = 0;
  std::from_chars(tuples, tuples + std::strlen(tuples), out);
  return out;
}

Params& Params::add(const std::string& value) {
  // libpq reads parameters as C strings: a NUL would cut the value short.
  if (value.find('\0') != std::string::npos) {
    throw Error(ErrorCode::invalid_argument, "text contains a NUL character, which cannot be stored; give printable text");
  }
  return add_text(value);
}

Params& Params::add_array(const std::vector<std::string>& items) {
  std::string literal = "{";
  for (const auto& item : items) {
    if (item.find('\0') != std::string::npos) {
      throw Error(ErrorCode::invalid_argument, "text contains a NUL character, which cannot be stored; give printable text");
    }
    if (literal.size() > 1) literal += ',';
    literal += '"';
    for (const char ch : item) {
      if (ch == '"' || ch == '\\') literal += '\\';
      literal += ch;
    }
    literal += '"';
  }
  return add_text(literal + "}");
}

namespace {
/// An array literal of items that need no quoting, each written by `text`.
template <typename T, typename Text>
std::string array_literal(const std::vector<T>& items, Text text) {
  std::string literal = "{";
  for (const T item : items) {
    if (literal.size() > 1) literal += ',';
    literal += text(item);
  }
  return literal + "}";
}
}  // namespace

Params& Params::add_array(const std::vector<bool>& items) {
  return add_text(array_literal(items, [](bool item) { return std::string(item ? "t" : "f"); }));
}

Params& Params::add_array(const std::vector<std::int64_t>& items) {
  return add_text(array_literal(items, [](std::int64_t item) { return std::to_string(item); }));
}

std::vector<const char*> Params::pointers() const {
  std::vector<const char*> out(values_.size());
  for (std::size_t i = 0; i < values_.size(); ++i) out[i] = nulls_[i] ? nullptr : values_[i].c_str();
  return out;
}

Target parse_target(const std::string& url) {
  Target target;
  target.url = url;
  target.password = uri_password(url);
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options == nullptr) {
    std::string message = error ? trim(error) : "out of memory";
    PQfreemem(error);
    throw Error(ErrorCode::storage_error,
                "malformed PostgreSQL URL '" + scrub_password(url, target.password) + "': " +
                    scrub_password(message, target.password) +
                    " (expected postgresql://[user[:password]@][host][:port][/database][?param=value...])");
  }
  PQconninfoOption* defaults = PQconndefaults();  // the PG* environment variables, or libpq's defaults
  auto value = [&](const char* keyword) -> std::string {
    for (PQconninfoOption* o = options; o && o->keyword; ++o) {
      if (std::strcmp(o->keyword, keyword) == 0 && o->val && *o->val) return o->val;
    }
    for (PQconninfoOption* o = defaults; o && o->keyword; ++o) {
      if (std::strcmp(o->keyword, keyword) == 0 && o->val && *o->val) return o->val;
    }
    return {};
  };
  std::string host = value("host");
  if (host.empty()) host = value("hostaddr");
  if (host.empty()) host = "the local socket";
  std::string port = value("port");
  if (port.empty()) port = "5432";
  std::string database = value("dbname");
  const std::string user = value("user");
  if (database.empty()) database = user;
  target.where = "PostgreSQL at " + host + ":" + port + ", database " + quote(database) +
                 (user.empty() ? "" : " as user " + quote(user));
  // A password given by the environment is scrubbed too.
  if (target.password.empty()) target.password = value("password");
  PQconninfoFree(options);
  PQconninfoFree(defaults);
  return target;
}

Connection::Connection(const Target& target, Setup setup) : target_(&target), setup_(std::move(setup)) { connect(); }

void Connection::connect() {
  // connect_timeout first: the URI's own value, later in the list, wins.
  const char* keywords[] = {"connect_timeout", "fallback_application_name", "dbname", nullptr};
  const char* values[] = {"10", "recyclebin", target_->url.c_str(), nullptr};
  connection_.reset(PQconnectdbParams(keywords, values, 1));
  prepared_.clear();
  failure_ = nullptr;
  failed_before_last_ = false;
  unawaited_ = broken_ = false;
  if (connection_ == nullptr) throw Error(ErrorCode::storage_error, target_->where + ": cannot connect: out of memory");
  if (PQstatus(connection_.get()) != CONNECTION_OK) {
    throw Error(ErrorCode::storage_error,
                target_->where + ": cannot connect: " + scrub(trim(PQerrorMessage(connection_.get()))));
  }
  // The server's notices ("relation already exists, skipping") are not errors; libpq would
  // print them on stderr.
  PQsetNoticeProcessor(connection_.get(), [](void*, const char*) {}, nullptr);
  if (setup_) setup_(*this);
}

std::string Connection::scrub(std::string message) const { return scrub_password(std::move(message), target_->password); }

Result Connection::check(PGresult* raw, std::string_view sql) {
  Result result(raw);
  const ExecStatusType status = raw ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  const char* state = raw ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state ? state : "";
  std::string message = scrub(trim(raw ? PQresultErrorMessage(raw) : PQerrorMessage(connection_.get())));
  if (message.empty()) message = scrub(trim(PQerrorMessage(connection_.get())));
  const std::string statement(sql.substr(0, std::min<std::size_t>(sql.size(), 40)));
  if (!ok() || sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03") {
    throw ConnectionLost(where() + ": the connection was lost (" + message + ")");
  }
  if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "55P03") {
    throw Conflict(ErrorCode::storage_error, where() + ": " + message);
  }
  if (sqlstate == "RB409") throw Stale(ErrorCode::storage_error, where() + ": " + message);
  if (sqlstate == "23505") {
    throw Conflict(ErrorCode::workspace_exists,
                   "the name is already held by another workspace (unique index): " + message);
  }
  if (sqlstate == "57014") {
    throw Error(ErrorCode::storage_error, where() + ": a statement ran past the statement timeout (" + message + ")");
  }
  if (sqlstate.rfind("22", 0) == 0) {
    throw Error(ErrorCode::invalid_argument, "PostgreSQL refused a value: " + message);
  }
  throw Error(ErrorCode::storage_error, where() + ": " + message + " [" + statement + "...]");
}

Result Connection::checked(PGresult* raw, std::string_view sql) {
  try {
    return check(raw, sql);
  } catch (...) {
    failure_ = std::current_exception();
    throw;
  }
}

Result Connection::exec(const char* sql) {
  rethrow_failure();
  if (pending()) return std::move(run({{sql, nullptr, {}}}).front());
  settle();
  return checked(PQexec(connection_.get(), sql), sql);
}

const std::string& Connection::statement_name(const char* sql, bool& known) {
  auto it = prepared_.find(sql);
  known = it != prepared_.end();
  if (!known) it = prepared_.emplace(sql, "rb" + std::to_string(prepared_.size() + 1)).first;
  return it->second;
}

Result Connection::exec(const char* sql, const Params& params) {
  rethrow_failure();
  if (pending()) return std::move(run({{sql, &params, {}}}).front());
  if (!alone_) return exec_prepared(sql, params);
  try {
    return exec_prepared(sql, params);
  } catch (const ConnectionLost&) {
    connect();  // outside a transaction nothing depended on the old session
    return exec_prepared(sql, params);
  }
}

Result Connection::exec_prepared(const char* sql, const Params& params) {
  // Not prepared on this session yet: its Parse travels with its execution (one round trip).
  if (prepared_.count(sql) == 0) return std::move(pipeline({{sql, &params, {}}}).front());
  settle();
  bool known = false;
  const std::string& name = statement_name(sql, known);
  const auto values = params.pointers();
  return checked(PQexecPrepared(connection_.get(), name.c_str(), params.size(), values.data(), nullptr, nullptr, 0),
                 sql);
}

std::vector<Result> Connection::exec_each(const std::vector<std::pair<const char*, const Params*>>& statements) {
  rethrow_failure();
  std::vector<Command> commands;
  for (const auto& [sql, params] : statements) commands.push_back({sql, params, {}});
  return run(std::move(commands));
}

void Connection::queue(const char* sql, Params params, Verify verify, Queue how) {
  rethrow_failure();
  waiting_.queue.push_back({sql, std::move(params), std::move(verify), how == Queue::speculative});
  if (how != Queue::speculative) ++waiting_.required;
  if (how == Queue::checked_before_commit && waiting_.queue.back().verify) ++waiting_.checked_before_commit;
}

void Connection::flush() {
  rethrow_failure();
  if (waiting_.required > 0) run({});
}

void Connection::commit() {
  if (!pending()) {
    exec("COMMIT");
    return;
  }
  rethrow_failure();
  if (waiting_.deferred && waiting_.checked_before_commit > 0) {
    flush();  // then the COMMIT on its own
    exec("COMMIT");
    return;
  }
  drop_speculative();  // nothing could use their answers
  if (waiting_.deferred) revive_if_dropped();
  run({{"COMMIT", nullptr, {}}}, true);
}

void Connection::drop_speculative() {
  std::erase_if(waiting_.queue, [](const Queued& q) { return q.speculative; });
}

void Connection::revive_if_dropped() {
  PGconn* c = connection_.get();
  // A dropped session leaves its socket readable (the server's last message, then EOF);
  // reading it makes libpq see the end. Bounded: each read either gets data or the end.
  for (int reads = 0; reads < 4 && !broken_ && PQstatus(c) == CONNECTION_OK; ++reads) {
    pollfd socket{PQsocket(c), POLLIN, 0};
    if (socket.fd < 0 || ::poll(&socket, 1, 0) <= 0) break;
    if (PQconsumeInput(c) == 0) break;
  }
  if (!broken_ && PQstatus(c) == CONNECTION_OK) return;
  // The new session's setup runs on its own, ahead of what waits to be sent.
  Pending waiting = std::exchange(waiting_, {});
  connect();
  waiting_ = std::move(waiting);
}

std::vector<Result> Connection::run(std::vector<Command> last, bool commits) {
  const Pending sending = std::exchange(waiting_, {});
  const char* first = sending.deferred;
  const std::vector<Queued>& queued = sending.queue;
  std::vector<Command> commands;
  commands.reserve((first ? 1 : 0) + queued.size() + last.size());
  if (first) commands.push_back({first, nullptr, {}});
  for (const Queued& q : queued) commands.push_back({q.sql, &q.params, q.verify});
  for (Command& command : last) commands.push_back(std::move(command));
  std::vector<Result> results = [&] {
    if (!first) return pipeline(commands);
    try {
      return pipeline(commands);
    } catch (const ConnectionLost&) {
      // Nothing of the transaction outlives its session: connect anew and send it all
      // again, unless it carried a COMMIT that may have applied.
      if (commits && !failed_before_last_) throw;
      connect();
      return pipeline(commands);
    }
  }();
  results.erase(results.begin(), results.end() - static_cast<std::ptrdiff_t>(last.size()));
  return results;
}

std::vector<Result> Connection::pipeline(const std::vector<Command>& commands) {
  PGconn* c = connection_.get();
  struct Slot {
    std::size_t command;
    bool prepare;  // the statement's Parse, ahead of its first execution on this session
  };
  std::vector<Slot> slots;
  slots.reserve(commands.size() + 1);
  // An unawaited command still in the pipeline is answered first, ahead of these.
  const bool unawaited = unawaited_;
  unawaited_ = false;
  bool sent = unawaited || PQenterPipelineMode(c) == 1;
  for (std::size_t i = 0; sent && i < commands.size(); ++i) {
    const Command& command = commands[i];
    if (command.params == nullptr) {
      slots.push_back({i, false});
      sent = PQsendQueryParams(c, command.sql, 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
      continue;
    }
    bool known = true;
    const std::string& name = statement_name(command.sql, known);
    if (!known) {
      slots.push_back({i, true});
      if (PQsendPrepare(c, name.c_str(), command.sql, 0, nullptr) != 1) {
        sent = false;
        break;
      }
    }
    const auto values = command.params->pointers();
    slots.push_back({i, false});
    sent = PQsendQueryPrepared(c, name.c_str(), command.params->size(), values.data(), nullptr, nullptr, 0) == 1;
  }
  if (sent) sent = PQpipelineSync(c) == 1;
  // One result per slot (each followed by a null), then the sync point.
  std::vector<Result> got;
  got.reserve(slots.size());
  bool complete = sent && (!unawaited || read_unawaited());
  while (complete && got.size() < slots.size()) {
    PGresult* result = PQgetResult(c);
    if (result == nullptr) {
      complete = false;
      break;
    }
    got.emplace_back(result);
    while (PGresult* extra = PQgetResult(c)) PQclear(extra);
  }
  if (complete) {
    PGresult* sync = PQgetResult(c);
    complete = sync != nullptr && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
  }
  if (!complete || PQexitPipelineMode(c) != 1) broken_ = true;  // a pipeline left half read: not reused
  // In order: the first failure is the one to report (the commands after it are aborted).
  failed_before_last_ = false;
  std::vector<Result> out;
  out.reserve(commands.size());
  for (std::size_t k = 0; k < slots.size(); ++k) {
    const Slot& slot = slots[k];
    const Command& command = commands[slot.command];
    const bool answered = k < got.size();
    const ExecStatusType status = answered ? PQresultStatus(got[k].get()) : PGRES_FATAL_ERROR;
    const bool good = answered && (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK);
    if (!good) {
      for (std::size_t j = k; j < slots.size(); ++j) {
        if (slots[j].prepare) prepared_.erase(commands[slots[j].command].sql);
      }
      if (!answered) checked(nullptr, command.sql);  // lost, or a storage_error naming what libpq says
      // The server's own report (it has a SQLSTATE) that a statement before the last failed:
      // a COMMIT after it cannot have applied.
      failed_before_last_ = slot.command + 1 < commands.size() &&
                            PQresultErrorField(got[k].get(), PG_DIAG_SQLSTATE) != nullptr;
      checked(got[k].release(), command.sql);
    }
    if (slot.prepare) continue;
    if (command.verify) {
      try {
        command.verify(got[k]);
      } catch (...) {
        failure_ = std::current_exception();
        throw;
      }
    }
    out.push_back(std::move(got[k]));
  }
  if (broken_) checked(nullptr, commands.back().sql);
  return out;
}

void Connection::send_unawaited(const char* sql) noexcept {
  settle();
  // In a pipeline of its own, which stays open: the next transaction's first statement
  // joins it without waiting for this answer.
  PGconn* c = connection_.get();
  if (!broken_ && PQenterPipelineMode(c) == 1 &&
      PQsendQueryParams(c, sql, 0, nullptr, nullptr, nullptr, nullptr, 0) == 1 && PQpipelineSync(c) == 1) {
    unawaited_ = true;
  } else {
    broken_ = true;
  }
}

bool Connection::read_unawaited() noexcept {
  PGconn* c = connection_.get();
  PGresult* result = PQgetResult(c);  // the command's answer (ignored: a ROLLBACK cannot fail)
  if (result == nullptr) return false;
  PQclear(result);
  while ((result = PQgetResult(c)) != nullptr) PQclear(result);
  result = PQgetResult(c);  // the sync point
  const bool synced = result != nullptr && PQresultStatus(result) == PGRES_PIPELINE_SYNC;
  PQclear(result);
  return synced;
}

void Connection::settle() noexcept {
  if (!unawaited_) return;
  unawaited_ = false;
  if (!read_unawaited() || PQexitPipelineMode(connection_.get()) != 1) broken_ = true;
}

Result Connection::exec_once(const std::string& sql, const Params& params) {
  flush();
  settle();
  const auto values = params.pointers();
  return checked(PQexecParams(connection_.get(), sql.c_str(), params.size(), nullptr, values.data(), nullptr,
                            nullptr, 0),
               sql);
}

}  // namespace recyclebin::pg
