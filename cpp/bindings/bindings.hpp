#pragma once
// Shared declarations of the pybind11 module recyclebin._core. Each bind_*.cpp registers
// one concern; module.cpp only calls them in order. Conversions of time values live in
// bind_time.cpp because the CPython datetime C API must be imported per translation unit.

#include <pybind11/pybind11.h>

#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include "recyclebin/time.hpp"

namespace recyclebin::bindings {

namespace py = pybind11;

void bind_errors(py::module_& m);
void bind_time(py::module_& m);
void bind_policy(py::module_& m);
void bind_engine(py::module_& m);

/// A timezone-aware UTC datetime.datetime for `t`. Needs the GIL.
py::object to_datetime(Timestamp t);
/// Microseconds since the epoch of an aware datetime (any zone; converted to UTC).
/// Naive datetimes raise ValueError, anything else TypeError. Needs the GIL.
Timestamp from_datetime(py::handle value, const char* what);
/// Microseconds of a datetime.timedelta. Needs the GIL.
std::int64_t from_timedelta(py::handle value, const char* what);

/// The UTF-8 of a str that names something (a name, id, subscription, group, kind, ref,
/// principal, path): raises InvalidArgument, showing the value escaped and naming `what`,
/// for a NUL byte or a lone surrogate (text the engine could neither store nor show whole).
/// `value` must be a str. Needs the GIL.
std::string text_from(py::handle value, const char* what);

/// An argument's name, as a template argument (Text<"subscription_id">).
template <std::size_t N>
struct ArgName {
  char text[N]{};
  constexpr ArgName(const char (&name)[N]) {  // NOLINT: implicit on purpose
    for (std::size_t i = 0; i < N; ++i) text[i] = name[i];
  }
};

/// A str argument converted by text_from, which names it `Name` in its refusals. A non-str
/// is not converted (pybind11's TypeError, as for std::string).
template <ArgName Name>
struct Text {
  std::string value;
  operator const std::string&() const noexcept { return value; }  // NOLINT: implicit on purpose
};

template <ArgName Name>
std::optional<std::string> optional_text(const std::optional<Text<Name>>& text) {
  if (!text) return std::nullopt;
  return text->value;
}

/// Runs `fn` with the GIL released. Arguments must already be C++ values: nothing inside
/// `fn` may touch a Python object. The result is converted by the caller, GIL held again.
template <class Fn>
auto without_gil(Fn&& fn) -> decltype(fn()) {
  py::gil_scoped_release release;
  return std::forward<Fn>(fn)();
}

}  // namespace recyclebin::bindings

namespace pybind11::detail {

template <recyclebin::bindings::ArgName Name>
struct type_caster<recyclebin::bindings::Text<Name>> {
  PYBIND11_TYPE_CASTER(recyclebin::bindings::Text<Name>, const_name("str"));

  bool load(handle source, bool /*convert*/) {
    if (!source || !PyUnicode_Check(source.ptr())) return false;
    value.value = recyclebin::bindings::text_from(source, Name.text);
    return true;
  }

  static handle cast(const recyclebin::bindings::Text<Name>& text, return_value_policy /*policy*/,
                     handle /*parent*/) {
    return PyUnicode_DecodeUTF8(text.value.data(), static_cast<Py_ssize_t>(text.value.size()),
                                "strict");
  }
};

}  // namespace pybind11::detail
