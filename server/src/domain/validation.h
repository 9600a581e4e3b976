// Pure checks of request fields: no I/O, no clock of their own.
#pragma once

#include <absl/time/time.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/errors.h"
#include "domain/model.h"

namespace segments::domain {

inline constexpr size_t kMaxSlugLength = 128;
inline constexpr size_t kMaxDescriptionLength = 1000;

// The longest TTL given in seconds: 3650 days. A fixed number rather than
// "10 calendar years from now" (3652 or 3653 days, by the leap days ahead),
// so that the API document can state it; it never reaches past MaxDeadline.
inline constexpr int64_t kMaxTtlSeconds = int64_t{3650} * 24 * 60 * 60;

// 1..128 chars of [A-Za-z0-9_.-], first one a letter or a digit.
bool IsValidSlug(std::string_view slug);

// A percentage 0..100 with at most two decimals → hundredths (0..10000).
std::optional<int32_t> ParsePercent(double percent);

// The latest deadline a TTL may reach when set at `now`: 10 calendar years.
absl::Time MaxDeadline(absl::Time now);

// The deadline of a TTL given as seconds from `now` (1 .. kMaxTtlSeconds) or
// as an instant (after `now`, at most MaxDeadline(now)), at most one of
// them; nullopt with no problem when
// neither is given (permanent). Problems are appended, naming the
// Field::kTtlSeconds or Field::kTtlDeadline member of `item` (the whole
// request or an item of a list).
std::optional<absl::Time> ResolveTtl(const std::optional<int64_t>& seconds, const std::optional<absl::Time>& deadline,
                                     absl::Time now, const FieldPath& item, std::vector<FieldViolation>& problems);

// Why a slug is rejected, for error messages; empty if it is valid.
std::string DescribeSlugProblem(std::string_view slug);

// Why a description (UTF-8, as protobuf guarantees) is rejected: more than
// kMaxDescriptionLength characters, or a NUL, which PostgreSQL text cannot
// hold. Empty if it is valid.
std::string DescribeDescriptionProblem(std::string_view description);

}  // namespace segments::domain
