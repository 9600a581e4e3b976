#include "domain/validation.h"

#include <absl/strings/ascii.h>
#include <absl/time/civil_time.h>
#include <fmt/format.h>

#include <cmath>

#include "domain/clock.h"

namespace segments::domain {

bool IsValidSlug(std::string_view slug) { return DescribeSlugProblem(slug).empty(); }

std::string DescribeSlugProblem(std::string_view slug) {
  if (slug.empty()) return "is required";
  if (slug.size() > kMaxSlugLength) return fmt::format("must be at most {} characters", kMaxSlugLength);
  if (!absl::ascii_isalnum(static_cast<unsigned char>(slug[0]))) return "must start with a letter or a digit";
  for (char c : slug) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return "may contain only A-Z, a-z, 0-9, '_', '.' and '-'";
    }
  }
  return "";
}

std::string DescribeDescriptionProblem(std::string_view description) {
  size_t characters = 0;
  for (char c : description) {
    if (c == '\0') return "must not contain NUL characters";
    // Count every byte that does not continue a UTF-8 sequence.
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++characters;
  }
  if (characters > kMaxDescriptionLength) {
    return fmt::format("must be at most {} characters", kMaxDescriptionLength);
  }
  return "";
}

std::optional<int32_t> ParsePercent(double percent) {
  if (!std::isfinite(percent) || percent < 0 || percent > 100) return std::nullopt;
  const double hundredths = percent * 100;
  const double rounded = std::round(hundredths);
  // Binary doubles cannot hold 12.34 exactly; accept what is two decimals
  // up to representation error, reject 12.345.
  if (std::abs(hundredths - rounded) > 1e-6) return std::nullopt;
  return static_cast<int32_t>(rounded);
}

absl::Time MaxDeadline(absl::Time now) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::CivilSecond c = absl::ToCivilSecond(now, utc);
  const absl::CivilSecond later(c.year() + 10, c.month(), c.day(), c.hour(), c.minute(), c.second());
  return absl::FromCivil(later, utc) + (now - absl::FromCivil(c, utc));
}

std::optional<absl::Time> ResolveTtl(const std::optional<int64_t>& seconds, const std::optional<absl::Time>& deadline,
                                     absl::Time now, const FieldPath& item, std::vector<FieldViolation>& problems) {
  const absl::Time max_deadline = MaxDeadline(now);
  if (seconds && deadline) {
    problems.push_back({item.Member(Field::kTtlSeconds),
                        Description::Of("give ", Field::kTtlSeconds, " or ", Field::kTtlDeadline, ", not both")});
  } else if (seconds) {
    if (*seconds >= 1 && *seconds <= kMaxTtlSeconds) return now + absl::Seconds(*seconds);
    problems.push_back(
        {item.Member(Field::kTtlSeconds), fmt::format("must be between 1 and {} (3650 days)", kMaxTtlSeconds)});
  } else if (deadline) {
    const absl::Time at = TruncateToMicros(*deadline);
    if (at <= now) {
      problems.push_back({item.Member(Field::kTtlDeadline), "must be in the future"});
    } else if (at > max_deadline) {
      problems.push_back({item.Member(Field::kTtlDeadline), "must be at most 10 years ahead"});
    } else {
      return at;
    }
  }
  return std::nullopt;
}

}  // namespace segments::domain
