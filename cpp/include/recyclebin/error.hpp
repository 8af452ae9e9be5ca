#pragma once
// The one error type of the core. Every refusal carries a stable snake_case code (the
// same codes the Python exceptions and the REST plugin expose) and a message that says
// what was wrong and what would be allowed.

#include <boost/describe/enum.hpp>

#include <optional>
#include <stdexcept>
#include <string>

#include "recyclebin/time.hpp"

namespace recyclebin {

BOOST_DEFINE_ENUM_CLASS(ErrorCode,
                        workspace_not_found,
                        workspace_exists,
                        name_reserved,
                        invalid_retention,
                        operation_not_allowed,
                        workspace_not_stopped,
                        precondition_failed,
                        permission_denied,
                        policy_error,
                        engine_closed,
                        invalid_argument,
                        not_found,
                        storage_error,
                        workspace_held)  // an operation_not_allowed: a legal hold stops it

/// The HTTP status that a REST front end answers for `code`.
int http_status(ErrorCode code);

/// The snake_case name of `code`, e.g. "name_reserved".
std::string code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message,
        std::optional<Timestamp> reserved_until = std::nullopt)
      : std::runtime_error(message), code_(code), message_(message),
        reserved_until_(reserved_until) {}

  ErrorCode code() const noexcept { return code_; }
  /// The whole message, with its length (what() ends at the first NUL byte).
  const std::string& message() const noexcept { return message_; }
  /// For name_reserved: when the name becomes free.
  std::optional<Timestamp> reserved_until() const noexcept { return reserved_until_; }

 private:
  ErrorCode code_;
  std::string message_;
  std::optional<Timestamp> reserved_until_;
};

}  // namespace recyclebin
