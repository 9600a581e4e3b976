// Listing segments and a segment's members, a page at a time. Page tokens are
// keyset positions (the last key returned), so rows inserted or deleted
// between pages never shift later pages.
#pragma once

#include <absl/status/statusor.h>

#include <string>
#include <vector>

#include "domain/clock.h"
#include "domain/commands.h"
#include "domain/model.h"
#include "domain/repositories/unit_of_work.h"

namespace segments::domain {

struct SegmentPage {
  std::vector<Segment> segments;
  std::string next_page_token;  // empty on the last page
};

struct MemberPage {
  std::vector<SegmentMember> members;
  std::string next_page_token;  // empty on the last page
};

class ListingUseCases {
 public:
  static constexpr int32_t kDefaultSegmentPageSize = 100;
  static constexpr int32_t kMaxSegmentPageSize = 1000;
  static constexpr int32_t kDefaultMemberPageSize = 1000;
  static constexpr int32_t kMaxMemberPageSize = 10000;

  ListingUseCases(Store& store, const Clock& clock) : store_(store), clock_(clock) {}

  // Live segments by slug. INVALID_ARGUMENT for a bad page size or token.
  absl::StatusOr<SegmentPage> ListSegments(const ListSegmentsCommand& command);

  // Members active now, by user id. INVALID_ARGUMENT for a bad slug, page
  // size or token (one of another segment included); NOT_FOUND for a slug
  // with no live segment.
  absl::StatusOr<MemberPage> ListSegmentMembers(const ListSegmentMembersCommand& command);

 private:
  absl::Time Now() const { return TruncateToMicros(clock_.Now()); }

  Store& store_;
  const Clock& clock_;
};

}  // namespace segments::domain
