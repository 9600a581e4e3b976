// Time travel (docs/time-travel.md): a user's segments and a segment's
// members at any past instant, a segment's size over time, and why a user
// is or is not in a segment now. Read from the history
// (domain/repositories/time_travel_queries.h says how "held at t" is
// decided), never from today's memberships.
#pragma once

#include <absl/status/statusor.h>

#include <optional>
#include <string>
#include <vector>

#include "domain/clock.h"
#include "domain/commands.h"
#include "domain/errors.h"
#include "domain/repositories/time_travel_queries.h"
#include "domain/repositories/unit_of_work.h"

namespace segments::domain {

struct UserSegmentsAt {
  absl::Time at;
  std::vector<MembershipAt> memberships;  // by slug (byte order)
};

struct MembersAtPage {
  absl::Time at;
  std::vector<MembershipAt> members;  // by user id
  std::string next_page_token;        // empty on the last page
};

struct CountAt {
  absl::Time at;
  int64_t count = 0;
};

struct SizePoint {
  absl::Time start;
  int64_t size = 0;  // members at the end of the step (now, for the step holding now)
  EventCounts events;
};

struct SizeHistory {
  int64_t size_at_start = 0;
  std::vector<SizePoint> points;
};

// Why a user is or is not in a segment now (SegmentExplanation in the proto
// lists the causes).
struct Explanation {
  std::string segment;
  bool member = false;
  std::string why;
  std::string summary;
  std::optional<HistoryEvent> event;  // the `add` held, or the last `remove`
  std::optional<absl::Time> expires_at;
  std::optional<int32_t> bucket;
  std::optional<int32_t> threshold;
  int32_t percent_hundredths = 0;
  std::vector<std::string> unmet_filters;  // "include:SLUG", "exclude:SLUG"
};

class TimeTravelUseCases {
 public:
  static constexpr int32_t kDefaultPageSize = 1000;
  static constexpr int32_t kMaxPageSize = 10000;
  static constexpr int kMaxSteps = 10000;
  static constexpr size_t kMaxExplained = 100;

  TimeTravelUseCases(Store& store, TimeTravelQueries& queries, const Clock& clock)
      : store_(store), queries_(queries), clock_(clock) {}

  // INVALID_ARGUMENT for a bad user id or an instant in the future.
  absl::StatusOr<UserSegmentsAt> SegmentsOfUserAt(const UserSegmentsAtCommand& command) const;

  // INVALID_ARGUMENT for a bad slug, instant, page size or token; NOT_FOUND
  // for a slug no segment ever had.
  absl::StatusOr<MembersAtPage> MembersAt(const SegmentAtCommand& command) const;
  absl::StatusOr<CountAt> CountMembersAt(const SegmentAtCommand& command) const;

  // INVALID_ARGUMENT for a bad slug, range or step; NOT_FOUND as above.
  absl::StatusOr<SizeHistory> SizeOverTime(const SizeHistoryCommand& command) const;

  // INVALID_ARGUMENT for a bad user id or slugs; NOT_FOUND for a slug with
  // no live segment.
  absl::StatusOr<std::vector<Explanation>> Explain(const ExplainCommand& command) const;

 private:
  absl::Time Now() const { return TruncateToMicros(clock_.Now()); }

  // The instant asked about: `at` (to the microsecond below) or now.
  // INVALID_ARGUMENT (into `problems`) for one in the future.
  static absl::Time InstantOf(const std::optional<absl::Time>& at, absl::Time now,
                              std::vector<FieldViolation>& problems);

  // The segment that bore `slug` at `at` (none: before the first, or
  // between a deletion and the next creation); NOT_FOUND if none ever did.
  absl::StatusOr<std::optional<SegmentId>> SegmentAt(const std::string& slug, absl::Time at) const;

  absl::StatusOr<Explanation> ExplainOne(const UserId& user, const Segment& segment,
                                         const std::vector<MembershipAt>& held, absl::Time now) const;

  Store& store_;
  TimeTravelQueries& queries_;
  const Clock& clock_;
};

}  // namespace segments::domain
