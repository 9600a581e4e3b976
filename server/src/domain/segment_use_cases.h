// Use cases of segments and memberships: validation, then one transaction.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <optional>
#include <string>
#include <vector>

#include "domain/clock.h"
#include "domain/commands.h"
#include "domain/model.h"
#include "domain/repositories/unit_of_work.h"

namespace segments::domain {

// What a percentage change did.
struct PercentChange {
  int64_t added = 0;
  int64_t removed = 0;
};

class SegmentUseCases {
 public:
  SegmentUseCases(Store& store, const Clock& clock) : store_(store), clock_(clock) {}

  // INVALID_ARGUMENT for a bad slug, percent, description or option;
  // NOT_FOUND for include or exclude slugs with no live segment;
  // ALREADY_EXISTS when a live segment has the slug. With a percentage above
  // 0, every user automatic assignment takes (MembershipRepository::AssignByPercent)
  // becomes a member in the same transaction, with history.
  absl::StatusOr<Segment> CreateSegment(const CreateSegmentCommand& command);

  // Sets a live segment's percentage: raising it adds the newly covered
  // buckets' users, lowering it removes the automatic members of the
  // uncovered buckets, with history. The same percentage is a no-op.
  absl::StatusOr<PercentChange> UpdateSegmentPercent(const UpdateSegmentPercentCommand& command);

  // Ends every membership (reason segment_deleted) and marks the segment
  // deleted. NOT_FOUND for an unknown slug; FAILED_PRECONDITION while a live
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
  absl::Time Now() const { return TruncateToMicros(clock_.Now()); }

  Store& store_;
  const Clock& clock_;
};

}  // namespace segments::domain
