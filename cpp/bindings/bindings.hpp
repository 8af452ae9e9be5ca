#pragma once
// Shared declarations of the pybind11 module recyclebin._core. Each bind_*.cpp registers
// one concern; module.cpp only calls them in order. Conversions of time values live in
// bind_time.cpp because the CPython datetime C API must be imported per translation unit.

#include <pybind11/pybind11.h>

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

/// Runs `fn` with the GIL released. Arguments must already be C++ values: nothing inside
/// `fn` may touch a Python object. The result is converted by the caller, GIL held again.
template <class Fn>
auto without_gil(Fn&& fn) -> decltype(fn()) {
  py::gil_scoped_release release;
  return std::forward<Fn>(fn)();
}

}  // namespace recyclebin::bindings
