#include <gtest/gtest.h>

#include "fixtures.hpp"
#include "recyclebin/time.hpp"

namespace recyclebin {
namespace {

using testing::kJan1;

TEST(Time, FormatsIso8601WithMicrosecondsAndZ) {
  EXPECT_EQ(format_iso8601(kJan1), "2026-01-01T00:00:00Z");
  EXPECT_EQ(format_iso8601(kJan1 - 1), "2025-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_iso8601(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_iso8601(kJan1 + 250'000), "2026-01-01T00:00:00.250000Z");
}

TEST(Time, ParsesWhatItFormats) {
  for (Timestamp t : {Timestamp{0}, kJan1, kJan1 - 1, kJan1 + 123'456}) {
    EXPECT_EQ(parse_iso8601(format_iso8601(t)), t);
  }
  EXPECT_EQ(parse_iso8601("2026-01-01T00:00:00Z"), kJan1);
  EXPECT_EQ(parse_iso8601("2026-01-01T00:00:00.5+00:00"), kJan1 + 500'000);
}

TEST(Time, RefusesNonUtcAndGarbage) {
  for (const char* text : {"2026-01-01T00:00:00", "2026-01-01T00:00:00+01:00", "tomorrow",
                           "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z"}) {
    try {
      parse_iso8601(text);
      ADD_FAILURE() << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument) << text;
    }
  }
}

TEST(Time, AddDaysCrossesMonthEndsAndLeapDays) {
  const Timestamp jan31 = parse_iso8601("2026-01-31T12:00:00.000001Z");
  EXPECT_EQ(format_iso8601(add_days(jan31, 1)), "2026-02-01T12:00:00.000001Z");
  EXPECT_EQ(format_iso8601(add_days(jan31, 14)), "2026-02-14T12:00:00.000001Z");
  const Timestamp feb20_2028 = parse_iso8601("2028-02-20T23:59:59.999999Z");
  EXPECT_EQ(format_iso8601(add_days(feb20_2028, 14)), "2028-03-05T23:59:59.999999Z");  // via Feb 29
  const Timestamp dec25 = parse_iso8601("2026-12-25T00:00:00Z");
  EXPECT_EQ(format_iso8601(add_days(dec25, 14)), "2027-01-08T00:00:00Z");
  EXPECT_EQ(add_days(kJan1, -1), kJan1 - kMicrosPerDay);
}

TEST(Time, ManualClockMovesOnlyWhenTold) {
  ManualClock clock(kJan1);
  EXPECT_EQ(clock.now(), kJan1);
  clock.advance(5);
  EXPECT_EQ(clock.now(), kJan1 + 5);
  clock.set(0);
  EXPECT_EQ(clock.now(), 0);
}

TEST(Time, SystemClockIsNearWallTime) {
  SystemClock clock;
  EXPECT_GT(clock.now(), kJan1 - 365 * kMicrosPerDay * 10);
}

TEST(Time, AddDaysRefusesResultsOutsideTheRepresentableRange) {
  EXPECT_EQ(format_iso8601(kMaxTimestamp), "9999-12-31T23:59:59.999999Z");
  EXPECT_EQ(add_days(kMaxTimestamp - kMicrosPerDay, 1), kMaxTimestamp);  // exactly the last microsecond
  EXPECT_EQ(add_days(kMinTimestamp + kMicrosPerDay, -1), kMinTimestamp);
  for (auto [t, days] : {std::pair{kMaxTimestamp - kMicrosPerDay + 1, 1}, std::pair{kMaxTimestamp, 1},
                         std::pair{kMinTimestamp, -1}, std::pair{kJan1, 2'147'483'647},
                         std::pair{kJan1, -2'147'483'647 - 1}, std::pair{kMaxTimestamp + 1, 0}}) {
    try {
      add_days(t, days);
      ADD_FAILURE() << t << " + " << days;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
      EXPECT_NE(std::string(e.what()).find("outside the times recyclebin can represent"), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace recyclebin
