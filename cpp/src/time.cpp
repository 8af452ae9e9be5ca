#include "recyclebin/time.hpp"

#include <boost/date_time/gregorian/gregorian.hpp>
#include <boost/date_time/posix_time/posix_time.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <regex>

#include "recyclebin/error.hpp"

namespace recyclebin {
namespace {

namespace pt = boost::posix_time;
namespace gd = boost::gregorian;

const pt::ptime kEpoch(gd::date(1970, 1, 1));

pt::ptime to_ptime(Timestamp t) { return kEpoch + pt::microseconds(t); }

Timestamp from_ptime(const pt::ptime& p) { return (p - kEpoch).total_microseconds(); }

}  // namespace

Timestamp add_days(Timestamp t, int days) {
  constexpr Timestamp kBoostCalendarStart = -17'987'443'200 * kMicrosPerSecond;  // 1400-01-01
  // Every UTC day has 86,400 s (Boost.Date_Time counts no leap seconds), so the bounds check
  // is exact; checked before Boost, whose dates end with the year 9999.
  constexpr std::int64_t kSpanDays = (kMaxTimestamp - kMinTimestamp) / kMicrosPerDay + 1;
  const std::int64_t shift = std::clamp<std::int64_t>(days, -kSpanDays, kSpanDays) * kMicrosPerDay;
  if (t < kMinTimestamp || t > kMaxTimestamp || (shift > 0 && t > kMaxTimestamp - shift) ||
      (shift < 0 && t < kMinTimestamp - shift)) {
    throw Error(ErrorCode::invalid_argument,
                std::to_string(days) + " days from " +
                    // Boost's calendar starts in 1400: earlier times are shown as numbers.
                    (t < kBoostCalendarStart || t > kMaxTimestamp ? std::to_string(t) + " microseconds"
                                                                  : format_iso8601(t)) +
                    " is outside the times recyclebin can represent (0001-01-01T00:00:00Z to "
                    "9999-12-31T23:59:59.999999Z)");
  }
  return from_ptime(to_ptime(t) + gd::days(days));
}

std::string format_iso8601(Timestamp t) {
  const pt::ptime p = to_ptime(t);
  const gd::date d = p.date();
  const pt::time_duration tod = p.time_of_day();
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d", static_cast<int>(d.year()),
                static_cast<int>(d.month()), static_cast<int>(d.day()), static_cast<int>(tod.hours()),
                static_cast<int>(tod.minutes()), static_cast<int>(tod.seconds()));
  std::string text = buffer;
  // Like Python's isoformat(): the fraction only when there is one, then always six digits.
  if (const auto micros = tod.fractional_seconds(); micros != 0) {
    std::snprintf(buffer, sizeof buffer, ".%06lld", static_cast<long long>(micros));
    text += buffer;
  }
  return text + "Z";
}

Timestamp parse_iso8601(const std::string& text) {
  static const std::regex pattern(
      R"((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|\+00:00))");
  std::smatch m;
  if (!std::regex_match(text, m, pattern)) {
    throw Error(ErrorCode::invalid_argument,
                "'" + text + "' is not a UTC time; expected ISO 8601 like 2026-01-31T23:59:59Z or 2026-01-31T23:59:59.250000Z");
  }
  try {
    const gd::date d(static_cast<unsigned short>(std::stoi(m[1])),
                     static_cast<unsigned short>(std::stoi(m[2])),
                     static_cast<unsigned short>(std::stoi(m[3])));
    std::string fraction = m[7].matched ? m[7].str() : "0";
    fraction.resize(6, '0');
    const int hours = std::stoi(m[4]), minutes = std::stoi(m[5]), seconds = std::stoi(m[6]);
    if (hours > 23 || minutes > 59 || seconds > 59) throw std::out_of_range("time of day");
    const pt::ptime p(d, pt::hours(hours) + pt::minutes(minutes) + pt::seconds(seconds) +
                             pt::microseconds(std::stoll(fraction)));
    return from_ptime(p);
  } catch (const std::exception&) {
    throw Error(ErrorCode::invalid_argument, "'" + text + "' is not a valid calendar time");
  }
}

Timestamp SystemClock::now() const {
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration_cast<std::chrono::microseconds>(since_epoch).count();
}

}  // namespace recyclebin
