#pragma once
// Time in recyclebin: UTC only, microsecond precision. A Timestamp is a count of
// microseconds since the Unix epoch; Boost.Date_Time does the calendar work.

#include <atomic>
#include <cstdint>
#include <string>

namespace recyclebin {

/// Microseconds since 1970-01-01T00:00:00Z.
using Timestamp = std::int64_t;

inline constexpr std::int64_t kMicrosPerSecond = 1'000'000;
inline constexpr std::int64_t kMicrosPerDay = 86'400 * kMicrosPerSecond;

/// The times recyclebin can represent (Python's datetime.min and datetime.max, in UTC):
/// 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z.
inline constexpr Timestamp kMinTimestamp = -62'135'596'800 * kMicrosPerSecond;
inline constexpr Timestamp kMaxTimestamp = 253'402'300'800 * kMicrosPerSecond - 1;

/// `t` plus `days` calendar days in UTC (Boost.Date_Time arithmetic). A result outside
/// kMinTimestamp..kMaxTimestamp throws Error(invalid_argument): callers compute times before
/// they write, so an operation whose dates cannot be represented changes nothing.
Timestamp add_days(Timestamp t, int days);

/// ISO 8601 in UTC with `Z`, microseconds when not zero (as Python's isoformat):
/// "2026-01-31T23:59:59.999999Z", "2026-02-01T00:00:00Z".
std::string format_iso8601(Timestamp t);

/// Parses what format_iso8601 writes (fraction optional, `Z` or `+00:00` required).
/// Throws Error(invalid_argument) on anything else.
Timestamp parse_iso8601(const std::string& text);

/// Where the engine reads "now" from. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Timestamp now() const = 0;
};

/// The system's UTC clock.
class SystemClock final : public Clock {
 public:
  Timestamp now() const override;
};

/// A clock that moves only when told to: for tests, simulations and notebooks.
/// Thread-safe: set/advance may race with now() from engine threads.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Timestamp start) : now_(start) {}
  Timestamp now() const override { return now_.load(std::memory_order_acquire); }
  void set(Timestamp t) { now_.store(t, std::memory_order_release); }
  void advance(std::int64_t micros) { now_.fetch_add(micros, std::memory_order_acq_rel); }

 private:
  std::atomic<Timestamp> now_;
};

}  // namespace recyclebin
