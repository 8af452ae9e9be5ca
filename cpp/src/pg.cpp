#include "pg.hpp"

#include <charconv>
#include <cstring>

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

Params& Params::add_array(const std::vector<bool>& items) {
  std::string literal = "{";
  for (const bool item : items) {
    if (literal.size() > 1) literal += ',';
    literal += item ? 't' : 'f';
  }
  return add_text(literal + "}");
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
    throw ConnectionLost(where() + ": the connection was lost (" + message + "); nothing of the transaction was applied");
  }
  if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "55P03") {
    throw Conflict(ErrorCode::storage_error, where() + ": " + message);
  }
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

Result Connection::exec(const char* sql) {
  if (deferred_) return exec_deferred(sql, nullptr);
  settle();
  return check(PQexec(connection_.get(), sql), sql);
}

const std::string& Connection::statement_name(const char* sql, bool& known) {
  auto it = prepared_.find(sql);
  known = it != prepared_.end();
  if (!known) it = prepared_.emplace(sql, "rb" + std::to_string(prepared_.size() + 1)).first;
  return it->second;
}

Result Connection::exec(const char* sql, const Params& params) {
  if (deferred_) return exec_deferred(sql, &params);
  settle();
  bool known = false;
  const std::string& name = statement_name(sql, known);
  if (!known) {
    try {
      check(PQprepare(connection_.get(), name.c_str(), sql, 0, nullptr), sql);
    } catch (...) {
      prepared_.erase(sql);
      throw;
    }
  }
  const auto values = params.pointers();
  return check(PQexecPrepared(connection_.get(), name.c_str(), params.size(), values.data(), nullptr, nullptr, 0),
               sql);
}

Result Connection::exec_deferred(const char* sql, const Params* params) {
  const char* first = deferred_;
  deferred_ = nullptr;
  try {
    return pipeline(first, sql, params);
  } catch (const ConnectionLost&) {
    // Nothing of the transaction outlives its session: connect anew and send both again.
    connect();
    return pipeline(first, sql, params);
  }
}

Result Connection::pipeline(const char* first, const char* sql, const Params* params) {
  PGconn* c = connection_.get();
  bool known = true;
  const std::string* name = params ? &statement_name(sql, known) : nullptr;
  const auto values = params ? params->pointers() : std::vector<const char*>();
  // An unawaited command still in the pipeline is answered first, ahead of these.
  const bool queued = unawaited_;
  unawaited_ = false;
  bool sent = (queued || PQenterPipelineMode(c) == 1) &&
              PQsendQueryParams(c, first, 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
  if (sent && !known) sent = PQsendPrepare(c, name->c_str(), sql, 0, nullptr) == 1;
  if (sent) {
    sent = params ? PQsendQueryPrepared(c, name->c_str(), params->size(), values.data(), nullptr, nullptr, 0) == 1
                  : PQsendQueryParams(c, sql, 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
  }
  if (sent) sent = PQpipelineSync(c) == 1;
  // One result per command (each followed by a null), then the sync point.
  std::vector<Result> results;
  const std::size_t commands = known ? 2 : 3;
  bool complete = sent && (!queued || read_unawaited());
  while (complete && results.size() < commands) {
    PGresult* result = PQgetResult(c);
    if (result == nullptr) {
      complete = false;
      break;
    }
    results.emplace_back(result);
    while (PGresult* extra = PQgetResult(c)) PQclear(extra);
  }
  if (complete) {
    PGresult* sync = PQgetResult(c);
    complete = sync != nullptr && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
  }
  if (!complete || PQexitPipelineMode(c) != 1) {
    broken_ = true;  // a pipeline left half read: the session is not reused
    if (!known) prepared_.erase(sql);
    check(nullptr, sql);  // lost, or a storage_error naming what libpq says
  }
  // The first failure is the one to report (the commands after it are aborted).
  for (std::size_t i = 0; i + 1 < results.size(); ++i) {
    const ExecStatusType status = PQresultStatus(results[i].get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      if (!known) prepared_.erase(sql);
      check(results[i].release(), i == 0 ? std::string_view(first) : std::string_view(sql));
    }
  }
  return check(results.back().release(), sql);
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
  settle();
  const auto values = params.pointers();
  return check(PQexecParams(connection_.get(), sql.c_str(), params.size(), nullptr, values.data(), nullptr,
                            nullptr, 0),
               sql);
}

}  // namespace recyclebin::pg
