// One segment added to, or removed from, many users at once.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>

#include "domain/clock.h"
#include "domain/commands.h"
#include "domain/repositories/unit_of_work.h"

namespace segments::domain {

struct BulkAddResult {
  int64_t added = 0;
  int64_t already_members = 0;
};

struct BulkRemoveResult {
  int64_t removed = 0;
  int64_t not_members = 0;
};

class BulkMembershipUseCases {
 public:
  static constexpr size_t kMaxUsers = 100'000;
  // Problems listed one by one before the rest are summed up in one entry.
  // The list travels twice in the status trailers (message and details),
  // which gRPC clients bound to 8-16 KiB by default: 20 ids stay well below.
  static constexpr size_t kMaxListedProblems = 20;

  BulkMembershipUseCases(Store& store, const Clock& clock) : store_(store), clock_(clock) {}

  // All or nothing, in one transaction with history. INVALID_ARGUMENT for a
  // bad slug, TTL or user id list (empty, too long, malformed or repeated
  // ids); NOT_FOUND naming the unknown user ids, or for an unknown slug.
  absl::StatusOr<BulkAddResult> AddSegmentToUsers(const SegmentUsersCommand& command);
  // As AddSegmentToUsers; every user taken out by hand is opted out of
  // automatic assignment to the segment.
  absl::StatusOr<BulkRemoveResult> RemoveSegmentFromUsers(const SegmentUsersCommand& command);

 private:
  absl::Time Now() const { return TruncateToMicros(clock_.Now()); }

  // Runs `change` on the live segment after checking every user is known.
  absl::StatusOr<int64_t> Change(const SegmentUsersCommand& command, const std::vector<UserId>& users,
                                 absl::FunctionRef<absl::StatusOr<int64_t>(Transaction&, const Segment&)> change);

  Store& store_;
  const Clock& clock_;
};

}  // namespace segments::domain
