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

Connection::Connection(const Target& target) : target_(&target) {
  // connect_timeout first: the URI's own value, later in the list, wins.
  const char* keywords[] = {"connect_timeout", "fallback_application_name", "dbname", nullptr};
  const char* values[] = {"10", "recyclebin", target.url.c_str(), nullptr};
  connection_.reset(PQconnectdbParams(keywords, values, 1));
  if (connection_ == nullptr) throw Error(ErrorCode::storage_error, target.where + ": cannot connect: out of memory");
  if (PQstatus(connection_.get()) != CONNECTION_OK) {
    throw Error(ErrorCode::storage_error,
                target.where + ": cannot connect: " + scrub(trim(PQerrorMessage(connection_.get()))));
  }
  // The server's notices ("relation already exists, skipping") are not errors; libpq would
  // print them on stderr.
  PQsetNoticeProcessor(connection_.get(), [](void*, const char*) {}, nullptr);
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

Result Connection::exec(const char* sql) { return check(PQexec(connection_.get(), sql), sql); }

Result Connection::exec(const char* sql, const Params& params) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = "rb" + std::to_string(prepared_.size() + 1);
    check(PQprepare(connection_.get(), name.c_str(), sql, 0, nullptr), sql);
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  const auto values = params.pointers();
  return check(PQexecPrepared(connection_.get(), it->second.c_str(), params.size(), values.data(), nullptr,
                              nullptr, 0),
               sql);
}

Result Connection::exec_once(const std::string& sql, const Params& params) {
  const auto values = params.pointers();
  return check(PQexecParams(connection_.get(), sql.c_str(), params.size(), nullptr, values.data(), nullptr,
                            nullptr, 0),
               sql);
}

}  // namespace recyclebin::pg
