// Use cases of segments and memberships: validation, then one transaction.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "domain/clock.h"
#include "domain/commands.h"
#include "domain/model.h"
#include "domain/repositories/unit_of_work.h"
#include "domain/segment_tasks.h"

namespace segments::domain {

// What a percentage change did.
struct PercentChange {
  int64_t added = 0;
  int64_t removed = 0;
};

class SegmentUseCases {
 public:
  // Changes of a whole segment run in chunks (domain/segment_tasks.h).
  SegmentUseCases(Store& store, const Clock& clock, SegmentTaskOptions task_options = {})
      : store_(store), clock_(clock), tasks_(store, clock, std::move(task_options)) {}

  // INVALID_ARGUMENT for a bad slug, percent, description or option;
  // NOT_FOUND for include or exclude slugs with no live segment;
  // ALREADY_EXISTS when a live segment has the slug. With a percentage above
  // 0, every user automatic assignment takes (MembershipRepository::AssignByPercent)
  // is a member, with history, when it returns: the segment is published
  // first and filled in chunks (domain/segment_tasks.h); with an
  // idempotency key, all in the transaction that stores the outcome.
  absl::StatusOr<Segment> CreateSegment(const CreateSegmentCommand& command);

  // Sets a live segment's percentage: raising it adds the newly covered
  // buckets' users, lowering it removes the automatic members of the
  // uncovered buckets, with history, in chunks as CreateSegment fills. The
  // same percentage is a no-op. A change of the segment still under way
  // finishes first.
  absl::StatusOr<PercentChange> UpdateSegmentPercent(const UpdateSegmentPercentCommand& command);

  // Marks the segment deleted, then ends every membership (reason
  // segment_deleted) in chunks; a fill or percentage change under way
  // stops. NOT_FOUND for an unknown slug; FAILED_PRECONDITION while a live
  // segment names it in its include or exclude options. Returns the
  // memberships ended.
  absl::StatusOr<int64_t> DeleteSegment(const std::string& slug);

  // All of the change or none of it. Problems are reported all at once per
  // stage: request shape (INVALID_ARGUMENT), unknown user or slugs
  // (NOT_FOUND), conflicts with current memberships (FAILED_PRECONDITION).
  absl::Status UpdateUserSegments(const UpdateUserSegmentsCommand& command);

  // The live segment with `slug` and its number of active members.
  // INVALID_ARGUMENT for a malformed slug, NOT_FOUND for an unknown one.
  absl::StatusOr<std::pair<Segment, int64_t>> GetSegment(const std::string& slug);

  // Sorted slugs of the user's unexpired memberships; empty for an unknown
  // user. INVALID_ARGUMENT if `user_id` is not a user id.
  absl::StatusOr<std::vector<std::string>> GetUserSegments(const UserIdInput& user);
  // GetUserSegments when it can answer without I/O (a bad id, or a read
  // model that serves); nullopt otherwise.
  std::optional<absl::StatusOr<std::vector<std::string>>> GetUserSegmentsAtOnce(const UserIdInput& user);

 private:
  // A repeat of a keyed create whose first call published the fill `task_id`
  // and did not answer: the segment as that call created it, once the fill
  // is done.
  absl::StatusOr<Segment> CreatedBy(int64_t task_id);
  absl::Time Now() const { return TruncateToMicros(clock_.Now()); }

  Store& store_;
  const Clock& clock_;
  SegmentTasks tasks_;
};

}  // namespace segments::domain
