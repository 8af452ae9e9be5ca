// recyclebin::Error -> one Python exception hierarchy under RecycleBinError. The classes are
// created here, at import, as attributes of this module, with .code and .http_status taken
// from the core (code_name, http_status); the translator finds them there by name, so the
// extension keeps no pointer to them. The package re-exports them (and may give them its
// own __module__).

#include <boost/describe/enum.hpp>
#include <boost/describe/enumerators.hpp>
#include <boost/mp11/algorithm.hpp>

#include <array>
#include <cstring>
#include <exception>
#include <optional>
#include <string>

#include "bindings.hpp"
#include "recyclebin/error.hpp"

namespace recyclebin::bindings {
namespace {

struct ErrorClass {
  ErrorCode code;
  const char* name;
  const char* doc;
  std::optional<ErrorCode> parent = std::nullopt;  // derives from that code's class (made before it)
};

constexpr const char* kBaseName = "RecycleBinError";

constexpr std::array<ErrorClass, boost::mp11::mp_size<boost::describe::describe_enumerators<ErrorCode>>::value>
    kClasses{{
        {ErrorCode::workspace_not_found, "WorkspaceNotFound",
         "No such live workspace (a soft-deleted one is not live), or no such workspace in the "
         "recycle bin."},
        {ErrorCode::workspace_exists, "WorkspaceExists", "A live workspace already holds the name."},
        {ErrorCode::name_reserved, "NameReserved",
         "A soft-deleted workspace holds the name; .reserved_until is when it becomes free."},
        {ErrorCode::invalid_retention, "InvalidRetention",
         "Retention outside the policy's range, or different from a fixed retention."},
        {ErrorCode::operation_not_allowed, "OperationNotAllowed",
         "The operation is not allowed in the workspace's state or by the policy."},
        {ErrorCode::workspace_not_stopped, "WorkspaceNotStopped",
         "The policy requires the workspace to be stopped first."},
        {ErrorCode::precondition_failed, "PreconditionFailed",
         "confirm_name missing or different, or a blocker fact above zero (or unverifiable)."},
        {ErrorCode::permission_denied, "PermissionDenied",
         "The principal lacks a role the policy requires."},
        {ErrorCode::policy_error, "PolicyError", "An invalid policy."},
        {ErrorCode::engine_closed, "EngineClosed", "A call after Engine.close()."},
        {ErrorCode::invalid_argument, "InvalidArgument",
         "An argument the engine refused (also a ValueError)."},
        {ErrorCode::not_found, "NotFound",
         "No such object, e.g. an unknown cleanup task id (also a KeyError)."},
        {ErrorCode::storage_error, "StorageError",
         "The store failed or cannot be reached (disk, corrupt file, database server down, bad "
         "credentials); nothing of the operation was applied, and it is safe to retry."},
        {ErrorCode::workspace_held, "WorkspaceHeld",
         "A legal hold stops the workspace's destruction (permanent delete, purge); the message "
         "names every hold's reason. Also an OperationNotAllowed.",
         ErrorCode::operation_not_allowed},
    }};

/// The builtin exception `spec`'s class also derives from, or nullptr (the builtins are not
/// constant expressions, so kClasses cannot hold them).
PyObject* extra_base(const ErrorClass& spec) {
  if (spec.code == ErrorCode::invalid_argument) return PyExc_ValueError;
  if (spec.code == ErrorCode::not_found) return PyExc_KeyError;
  return nullptr;
}

/// The name of the class raised for `code`.
const char* class_name(ErrorCode code) {
  for (const ErrorClass& spec : kClasses) {
    if (spec.code == code) return spec.name;
  }
  return kBaseName;
}

/// The whole message (what() is a C string: it would end at a NUL byte); bytes that are not
/// UTF-8 are shown as \\xNN escapes rather than failing the translation.
py::str message_of(const Error& error) {
  const std::string& text = error.message();
  PyObject* message = PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()),
                                           "backslashreplace");
  if (message == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(message);
}

/// This module (as imported: the translator has no other way to reach it).
py::object core_module() {
  PyObject* module = PyImport_GetModule(py::str(RECYCLEBIN_CORE_MODULE).ptr());
  if (module == nullptr) {
    if (PyErr_Occurred() == nullptr) {
      PyErr_SetString(PyExc_ImportError, RECYCLEBIN_CORE_MODULE " is not imported");
    }
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(module);
}

void raise_error(const Error& error) {
  const py::object cls = core_module().attr(class_name(error.code()));
  try {
    py::object instance = py::reinterpret_borrow<py::object>(cls)(message_of(error));
    if (error.code() == ErrorCode::name_reserved) {
      const auto until = error.reserved_until();
      instance.attr("reserved_until") = until ? to_datetime(*until) : py::none();
    }
    PyErr_SetObject(cls.ptr(), instance.ptr());
  } catch (py::error_already_set& failure) {
    // Building the exception failed (e.g. a datetime out of range): raise the class anyway.
    failure.discard_as_unraisable("recyclebin: building an exception");
    PyErr_SetString(cls.ptr(), error.what());
  }
}

py::object make_class(const char* name, const char* doc, py::tuple bases, py::dict attributes) {
  const std::string qualified = std::string(RECYCLEBIN_CORE_MODULE ".") + name;
  PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), attributes.ptr());
  if (cls == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(cls);
}

constexpr Py_ssize_t kShownChars = 200;  // of a refused value in a message, as models.py

/// `value` (a str) for a message: its repr, shortened (and marked) when long.
std::string shown(py::handle value) {
  const Py_ssize_t length = PyUnicode_GET_LENGTH(value.ptr());
  if (length <= kShownChars) return py::repr(value).cast<std::string>();
  py::object head = py::reinterpret_steal<py::object>(PyUnicode_Substring(value.ptr(), 0, kShownChars));
  if (!head) throw py::error_already_set();
  return py::repr(head).cast<std::string>() + "... (" + std::to_string(length) + " characters)";
}

[[noreturn]] void refuse_text(py::handle value, const char* what, const std::string& problem) {
  throw Error(ErrorCode::invalid_argument,
              std::string(what) + " " + shown(value) + " " + problem +
                  "; it must be Unicode text without NUL bytes or lone surrogates");
}

}  // namespace

std::string text_from(py::handle value, const char* what) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(value.ptr(), &size);
  if (data == nullptr) {
    // Only a lone surrogate makes a str unencodable as UTF-8: find it for the message.
    PyErr_Clear();
    const Py_ssize_t length = PyUnicode_GET_LENGTH(value.ptr());
    Py_ssize_t at = 0;
    while (at < length) {
      const Py_UCS4 c = PyUnicode_READ_CHAR(value.ptr(), at);
      if (c >= 0xD800 && c <= 0xDFFF) break;
      ++at;
    }
    refuse_text(value, what,
                "contains a lone surrogate (at index " + std::to_string(at) +
                    "), which is not valid Unicode text");
  }
  const auto length = static_cast<std::size_t>(size);
  if (std::memchr(data, '\0', length) != nullptr) {
    refuse_text(value, what, "contains a NUL byte (\\x00), which is not allowed");
  }
  return {data, length};
}

void bind_errors(py::module_& m) {
  py::dict base_attributes;
  base_attributes["code"] = "recyclebin_error";
  base_attributes["http_status"] = 500;
  py::object base = make_class(
      kBaseName,
      "Base of every recyclebin error. .code is a stable snake_case code, .http_status the "
      "status a REST front end answers.",
      py::make_tuple(py::handle(PyExc_Exception)), base_attributes);
  m.attr(kBaseName) = base;

  py::object plain_str = py::module_::import("builtins").attr("BaseException").attr("__str__");
  for (const ErrorClass& spec : kClasses) {
    py::dict attributes;
    attributes["code"] = code_name(spec.code);
    attributes["http_status"] = http_status(spec.code);
    if (spec.code == ErrorCode::name_reserved) attributes["reserved_until"] = py::none();
    py::object first = spec.parent ? py::object(m.attr(class_name(*spec.parent))) : base;
    PyObject* builtin = extra_base(spec);
    py::tuple bases = builtin == nullptr ? py::tuple(py::make_tuple(first))
                                         : py::tuple(py::make_tuple(first, py::handle(builtin)));
    // KeyError's str() quotes its message; these messages are sentences, so keep them plain.
    if (builtin == PyExc_KeyError) attributes["__str__"] = plain_str;
    m.attr(spec.name) = make_class(spec.name, spec.doc, bases, attributes);
  }

  py::register_exception_translator([](std::exception_ptr pointer) {
    if (!pointer) return;
    try {
      std::rethrow_exception(pointer);
    } catch (const Error& error) {
      raise_error(error);
    }
  });
}

}  // namespace recyclebin::bindings
