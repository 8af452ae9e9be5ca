#include "recyclebin/error.hpp"

#include <boost/describe/enum_to_string.hpp>

namespace recyclebin {

int http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::workspace_not_found: return 404;
    case ErrorCode::workspace_exists: return 409;
    case ErrorCode::name_reserved: return 409;
    case ErrorCode::invalid_retention: return 400;
    case ErrorCode::operation_not_allowed: return 409;
    case ErrorCode::workspace_not_stopped: return 400;
    case ErrorCode::precondition_failed: return 412;
    case ErrorCode::permission_denied: return 403;
    case ErrorCode::policy_error: return 400;
    case ErrorCode::engine_closed: return 503;
    case ErrorCode::invalid_argument: return 400;
    case ErrorCode::not_found: return 404;
    case ErrorCode::storage_error: return 503;  // unavailable: nothing applied, safe to retry
    case ErrorCode::workspace_held: return 409;
  }
  return 500;
}

std::string code_name(ErrorCode code) { return boost::describe::enum_to_string(code, "unknown"); }

}  // namespace recyclebin
