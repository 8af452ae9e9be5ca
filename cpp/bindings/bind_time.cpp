// Time across the Python edge: Timestamp (int64 microseconds since the epoch, UTC) <->
// timezone-aware datetime.datetime, and the ManualClock that tests and notebooks drive.

#include "bindings.hpp"  // Python.h before datetime.h

#include <datetime.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "recyclebin/error.hpp"
#include "recyclebin/time.hpp"

namespace recyclebin::bindings {
namespace {

constexpr std::int64_t kMicrosPerMinute = 60 * kMicrosPerSecond;
constexpr std::int64_t kMicrosPerHour = 60 * kMicrosPerMinute;

void import_datetime() {
  if (PyDateTimeAPI == nullptr) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == nullptr) throw py::error_already_set();
  }
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

struct CivilDate {
  int year;
  int month;
  int day;
};

// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days).
CivilDate civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = yoe + era * 400;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<int>(m <= 2 ? y + 1 : y), static_cast<int>(m), static_cast<int>(d)};
}

// A proleptic Gregorian date to days since 1970-01-01 (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, std::int64_t m, std::int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

std::int64_t delta_micros(PyObject* delta) {
  return static_cast<std::int64_t>(PyDateTime_DELTA_GET_DAYS(delta)) * kMicrosPerDay +
         static_cast<std::int64_t>(PyDateTime_DELTA_GET_SECONDS(delta)) * kMicrosPerSecond +
         static_cast<std::int64_t>(PyDateTime_DELTA_GET_MICROSECONDS(delta));
}

std::string type_name(py::handle value) {
  return py::str(py::type::handle_of(value).attr("__qualname__")).cast<std::string>();
}

}  // namespace

py::object to_datetime(Timestamp t) {
  import_datetime();
  const std::int64_t days = floor_div(t, kMicrosPerDay);
  const CivilDate date = civil_from_days(days);
  const std::int64_t micros_of_day = t - days * kMicrosPerDay;
  const auto seconds_of_day = static_cast<int>(micros_of_day / kMicrosPerSecond);
  const auto micro = static_cast<int>(micros_of_day % kMicrosPerSecond);
  const int hour = seconds_of_day / 3600;
  const int minute = seconds_of_day / 60 % 60;
  const int second = seconds_of_day % 60;
  PyObject* result = PyDateTimeAPI->DateTime_FromDateAndTime(
      date.year, date.month, date.day, hour, minute, second, micro, PyDateTime_TimeZone_UTC,
      PyDateTimeAPI->DateTimeType);
  if (result == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(result);
}

Timestamp from_datetime(py::handle value, const char* what) {
  import_datetime();
  if (!PyDateTime_Check(value.ptr())) {
    throw py::type_error(std::string(what) + " must be a datetime.datetime, not " +
                         type_name(value));
  }
  py::object offset = value.attr("utcoffset")();
  if (offset.is_none()) {
    throw py::value_error(std::string(what) +
                          " is a naive datetime; pass a timezone-aware one, e.g. "
                          "datetime(..., tzinfo=timezone.utc)");
  }
  if (!PyDelta_Check(offset.ptr())) {
    throw py::type_error(std::string(what) + ": its tzinfo's utcoffset() must be a timedelta");
  }
  // The wall-clock fields minus the offset: astimezone(UTC) would overflow for a time whose
  // UTC value is outside Python's range (year 1 at +14:00, year 9999 at -14:00).
  PyObject* p = value.ptr();
  const std::int64_t days = days_from_civil(PyDateTime_GET_YEAR(p), PyDateTime_GET_MONTH(p),
                                            PyDateTime_GET_DAY(p));
  const Timestamp t = days * kMicrosPerDay +
                      static_cast<std::int64_t>(PyDateTime_DATE_GET_HOUR(p)) * kMicrosPerHour +
                      static_cast<std::int64_t>(PyDateTime_DATE_GET_MINUTE(p)) * kMicrosPerMinute +
                      static_cast<std::int64_t>(PyDateTime_DATE_GET_SECOND(p)) * kMicrosPerSecond +
                      static_cast<std::int64_t>(PyDateTime_DATE_GET_MICROSECOND(p)) -
                      delta_micros(offset.ptr());
  if (t < kMinTimestamp || t > kMaxTimestamp) {
    throw Error(ErrorCode::invalid_argument,
                std::string(what) + " is " + py::str(value).cast<std::string>() +
                    ", which in UTC is outside the times recyclebin can represent "
                    "(0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z)");
  }
  return t;
}

std::int64_t from_timedelta(py::handle value, const char* what) {
  import_datetime();
  if (!PyDelta_Check(value.ptr())) {
    throw py::type_error(std::string(what) + " must be a datetime.timedelta, not " +
                         type_name(value));
  }
  return delta_micros(value.ptr());
}

void bind_time(py::module_& m) {
  import_datetime();

  m.def(
      "format_iso8601", [](py::handle when) { return format_iso8601(from_datetime(when, "when")); },
      py::arg("when"), "ISO 8601 with microseconds and Z, e.g. 2026-01-31T23:59:59.999999Z.");
  m.def(
      "parse_iso8601", [](const std::string& text) { return to_datetime(parse_iso8601(text)); },
      py::arg("text"), "Parses what format_iso8601 writes; Z or +00:00 is required.");

  py::class_<ManualClock, std::shared_ptr<ManualClock>>(
      m, "ManualClock",
      "A clock that moves only when told to. Thread-safe: engines read it while Python "
      "code sets or advances it.")
      .def(py::init([](py::handle start) {
             return std::make_shared<ManualClock>(from_datetime(start, "start"));
           }),
           py::arg("start"))
      .def("now", [](const ManualClock& clock) { return to_datetime(clock.now()); })
      .def("now_micros", &ManualClock::now)
      .def("set", [](ManualClock& clock, py::handle now) { clock.set(from_datetime(now, "now")); },
           py::arg("now"))
      .def(
          "advance",
          [](ManualClock& clock, py::handle delta) {
            const std::int64_t micros = from_timedelta(delta, "delta");
            if (micros < 0) {
              throw py::value_error(
                  "advance() moves the clock forward only; use set() to move it back");
            }
            clock.advance(micros);
          },
          py::arg("delta"));
}

}  // namespace recyclebin::bindings
