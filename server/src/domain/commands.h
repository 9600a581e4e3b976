// Inputs of the use cases, already out of the wire format but not yet
// validated. Field paths in errors use the JSON names of the HTTP contract.
#pragma once

#include <absl/time/time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "domain/user_id.h"

namespace segments::domain {

struct CreateSegmentCommand {
  std::string slug;
  std::optional<double> percent_to_fill;
  std::string description;
  std::vector<std::string> include_segments;
  std::vector<std::string> exclude_segments;
  std::optional<int64_t> auto_seconds_to_be_in_segment;
};

struct UpdateSegmentPercentCommand {
  std::string slug;
  std::optional<double> percent_to_fill;
};

// A time to live as the API takes it: seconds from now or a deadline.
struct TtlInput {
  std::optional<int64_t> seconds;
  std::optional<absl::Time> deadline;
};

// Bulk membership of one segment.
struct SegmentUsersCommand {
  std::string slug;
  std::vector<UserIdInput> user_ids;
  TtlInput ttl;  // adding only
};

struct ListSegmentsCommand {
  int32_t page_size = 0;  // 0: the default
  std::string page_token;
};

struct ListSegmentMembersCommand {
  std::string slug;
  int32_t page_size = 0;  // 0: the default
  std::string page_token;
};

struct SegmentToAdd {
  std::string slug;
  TtlInput ttl;
};

struct UpdateUserSegmentsCommand {
  UserIdInput user_id;
  std::vector<SegmentToAdd> to_add;
  std::vector<std::string> to_remove;
};

struct ReportLinkCommand {
  UserIdInput user_id;  // empty: all users
  int32_t month = 0;
  int32_t year = 0;
};

struct UserHistoryCommand {
  UserIdInput user_id;
  std::string segment;  // empty: every segment
  std::optional<absl::Time> from;
  std::optional<absl::Time> to;
  int32_t page_size = 0;  // 0: the default
  std::string page_token;
};

// Time travel (domain/time_travel_use_cases.h). `at` absent: now.
struct UserSegmentsAtCommand {
  UserIdInput user_id;
  std::optional<absl::Time> at;
};

struct SegmentAtCommand {
  std::string slug;
  std::optional<absl::Time> at;
  int32_t page_size = 0;  // 0: the default
  std::string page_token;
};

struct SizeHistoryCommand {
  std::string slug;
  std::optional<absl::Time> from;
  std::optional<absl::Time> to;
  std::string step;  // "hour" or "day"; empty: day
};

struct ExplainCommand {
  UserIdInput user_id;
  std::vector<std::string> segments;  // empty: the user's segments now
};

}  // namespace segments::domain
