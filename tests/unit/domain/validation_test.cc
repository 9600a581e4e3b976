#include "domain/validation.h"
#include "domain/clock.h"

#include <catch2/catch.hpp>

#include <string>

using namespace segments::domain;

TEST_CASE("slugs follow the contract's alphabet and length", "[validation]") {
  CHECK(IsValidSlug("AVITO_VOICE_MESSAGES"));
  CHECK(IsValidSlug("a"));
  CHECK(IsValidSlug("9lives.v2-beta_x"));
  CHECK(IsValidSlug(std::string(128, 'A')));

  CHECK_FALSE(IsValidSlug(""));
  CHECK_FALSE(IsValidSlug(std::string(129, 'A')));
  CHECK_FALSE(IsValidSlug("_leading_underscore"));
  CHECK_FALSE(IsValidSlug("-dash"));
  CHECK_FALSE(IsValidSlug("with space"));
  CHECK_FALSE(IsValidSlug("ДИСКОНТ"));
  CHECK_FALSE(IsValidSlug("semi;colon"));
  CHECK(DescribeSlugProblem("") == "is required");
  CHECK(DescribeSlugProblem(std::string(129, 'A')) == "must be at most 128 characters");
}

TEST_CASE("percent has at most two decimals within 0..100", "[validation]") {
  CHECK(ParsePercent(0) == 0);
  CHECK(ParsePercent(100) == 10000);
  CHECK(ParsePercent(12.34) == 1234);
  CHECK(ParsePercent(0.01) == 1);
  CHECK(ParsePercent(33.3) == 3330);
  CHECK_FALSE(ParsePercent(12.345));
  CHECK_FALSE(ParsePercent(-0.01));
  CHECK_FALSE(ParsePercent(100.01));
  CHECK_FALSE(ParsePercent(std::nan("")));
  CHECK_FALSE(ParsePercent(std::numeric_limits<double>::infinity()));
}

TEST_CASE("a TTL reaches at most ten calendar years ahead", "[validation]") {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::Time now = absl::FromCivil(absl::CivilSecond(2024, 3, 1, 12, 0, 0), utc) + absl::Microseconds(7);
  CHECK(MaxDeadline(now) == absl::FromCivil(absl::CivilSecond(2034, 3, 1, 12, 0, 0), utc) + absl::Microseconds(7));
  // Feb 29 has no twin ten years later; it rolls over to Mar 1.
  const absl::Time leap = absl::FromCivil(absl::CivilSecond(2024, 2, 29, 0, 0, 0), utc);
  CHECK(MaxDeadline(leap) == absl::FromCivil(absl::CivilSecond(2034, 3, 1, 0, 0, 0), utc));
}

TEST_CASE("descriptions count characters, not bytes, and refuse NUL", "[validation]") {
  std::string cyrillic;
  for (int i = 0; i < 1000; ++i) cyrillic += "д";  // 2 bytes each
  CHECK(DescribeDescriptionProblem(cyrillic).empty());
  CHECK(DescribeDescriptionProblem(cyrillic + "x") == "must be at most 1000 characters");
  CHECK(DescribeDescriptionProblem(std::string("before\0after", 12)) == "must not contain NUL characters");
  CHECK(DescribeDescriptionProblem("").empty());
}

TEST_CASE("times are truncated to the microsecond the database keeps", "[validation]") {
  const absl::Time t = absl::FromUnixMicros(1'700'000'000'123'456);
  CHECK(segments::domain::TruncateToMicros(t + absl::Nanoseconds(999)) == t);
  CHECK(segments::domain::TruncateToMicros(t) == t);
  CHECK(segments::domain::TruncateToMicros(absl::FromUnixMicros(-1) - absl::Nanoseconds(1)) ==
        absl::FromUnixMicros(-2));
}
