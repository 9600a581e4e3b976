// domain::Store in memory, for unit tests of the domain. A transaction works
// on a copy of the state, which replaces the state only on success, so
// rollback behaves as in the database. Tests read `state` directly.
#pragma once

#include <map>
#include <set>
#include <utility>

#include "domain/store.h"

namespace segments::testing {

struct FakeState {
  std::map<domain::UserId, domain::UserState> users;
  std::map<domain::SegmentId, domain::Segment> segments;
  std::set<domain::SegmentId> deleted_segments;
  std::map<std::pair<domain::UserId, domain::SegmentId>, domain::Membership> memberships;
  // (segment, user) -> why automatic assignment must skip the user
  std::map<std::pair<domain::SegmentId, domain::UserId>, domain::Reason> opt_outs;
  std::vector<domain::HistoryEvent> history;
  domain::SegmentId next_segment_id = 1;
};

// Not final: a test double may derive to count or record some calls.
class FakeStore : public domain::Store {
 public:
  FakeState state;
  // When set, every storage call fails with it (e.g. UNAVAILABLE).
  absl::Status failure;
  int transactions = 0;  // committed or not
  // Automatic-assignment locks taken, by mode.
  int shared_auto_locks = 0;
  int exclusive_auto_locks = 0;

  absl::Status InTransaction(absl::FunctionRef<absl::Status(domain::Transaction&)> work) override;
  absl::StatusOr<std::vector<std::string>> ActiveSegmentSlugs(const domain::UserId& user, absl::Time now) override;
  absl::StatusOr<std::optional<std::pair<domain::Segment, int64_t>>> FindSegment(const std::string& slug,
                                                                                 absl::Time now) override;
  absl::StatusOr<std::optional<domain::Segment>> LookupSegment(const std::string& slug) override;
  absl::StatusOr<std::vector<domain::Segment>> ListSegments(const std::string& after_slug, int limit) override;
  absl::StatusOr<std::vector<domain::SegmentMember>> SegmentMembers(domain::SegmentId segment,
                                                                    const domain::UserId& after_user, int limit,
                                                                    absl::Time now) override;
  absl::StatusOr<std::unique_ptr<domain::HistoryCursor>> OpenHistory(const std::optional<domain::UserId>& user,
                                                                     absl::Time from, absl::Time to) override;
  absl::StatusOr<std::vector<domain::HistoryEvent>> UserHistory(const domain::UserHistoryQuery& query) override;
  absl::StatusOr<int64_t> EndExpiredMemberships(absl::Time now, int limit) override;

  // Cursors from OpenHistory not yet destroyed (each would hold a connection).
  int open_cursors = 0;
  // Calls of EndExpiredMemberships, failed ones included.
  int expiry_batches = 0;

 private:
  // The history with ids: an event's id is its position + 1.
  std::vector<domain::HistoryEvent> NumberedHistory() const;
};

}  // namespace segments::testing
