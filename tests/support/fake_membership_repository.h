// domain::MembershipRepository and domain::MembershipQueries over a FakeState.
#pragma once

#include "domain/repositories/membership_repository.h"
#include "support/fake_state.h"

namespace segments::testing {

class FakeMembershipRepository final : public domain::MembershipRepository {
 public:
  FakeMembershipRepository(FakeState& state, FakeControls& controls) : s_(state), controls_(controls) {}

  absl::Status LockAutoAssignment(domain::AutoAssignmentLock mode) override;
  absl::StatusOr<domain::UserSegmentsProblems> ChangeUserSegments(const domain::UserSegmentsChange& change) override;
  absl::Status Insert(const std::vector<std::pair<domain::UserId, domain::NewMembership>>& rows,
                      absl::Time now) override;
  absl::StatusOr<int64_t> EndAllOfSegment(const domain::Segment& segment, const domain::UserRange& users,
                                          domain::Reason reason, absl::Time now) override;
  absl::StatusOr<int64_t> EndAllOfUser(const domain::UserId& user, domain::Reason reason, absl::Time now) override;
  absl::StatusOr<int64_t> AddMembers(const domain::Segment& segment, const std::vector<domain::UserId>& users,
                                     std::optional<absl::Time> expires_at, absl::Time now) override;
  absl::StatusOr<int64_t> RemoveMembers(const domain::Segment& segment, const std::vector<domain::UserId>& users,
                                        absl::Time now) override;
  absl::StatusOr<int64_t> AssignByPercent(const domain::Segment& segment, const domain::UserRange& users,
                                          int32_t from_hundredths, absl::Time now) override;
  absl::StatusOr<int64_t> UnassignByPercent(const domain::Segment& segment, const domain::UserRange& users,
                                            int32_t from_hundredths, absl::Time now) override;
  absl::StatusOr<std::optional<std::string>> LastTaskUser(const domain::SegmentTask& task) override;
  absl::StatusOr<std::optional<std::string>> ChunkEnd(const domain::SegmentTask& task, int size) override;
  absl::StatusOr<int64_t> EndExpired(absl::Time now, int limit) override;
  absl::StatusOr<std::optional<absl::Time>> EarliestDeadline() override;
  absl::StatusOr<absl::flat_hash_map<domain::UserId, std::vector<domain::Membership>>> OfUsers(
      const std::vector<domain::UserId>& users) override;
  absl::StatusOr<absl::flat_hash_map<domain::UserId, std::vector<domain::SegmentId>>> OptedOutSegmentsOfUsers(
      const std::vector<domain::UserId>& users) override;
  absl::Status DeleteOfUsers(const std::vector<std::pair<domain::UserId, domain::SegmentId>>& rows) override;
  absl::Status RecordOptOutsOfUsers(const std::vector<domain::OptOut>& opt_outs, absl::Time now) override;
  absl::StatusOr<int64_t> EndAllOfUsers(const std::vector<domain::UserId>& users, domain::Reason reason,
                                        absl::Time now) override;

 private:
  // The users `task` looks at (LastTaskUser).
  std::set<domain::UserId> TaskUsers(const domain::SegmentTask& task) const;
  // Ends the memberships (user, segment) for which `matches` holds, as the
  // set-based statements do: expired ones by TTL at their deadline.
  absl::StatusOr<int64_t> EndWhere(const std::function<bool(const domain::UserId&, domain::SegmentId)>& matches,
                                   domain::Reason reason, absl::Time now);

  FakeState& s_;
  FakeControls& controls_;
};

class FakeMembershipQueries final : public domain::MembershipQueries {
 public:
  FakeMembershipQueries(FakeState& state, FakeControls& controls) : s_(state), controls_(controls) {}

  absl::StatusOr<std::vector<std::string>> ActiveSegmentSlugs(const domain::UserId& user, absl::Time now) override;
  absl::StatusOr<std::vector<domain::SegmentMember>> Members(domain::SegmentId segment,
                                                             const std::optional<domain::UserId>& after_user, int limit,
                                                             absl::Time now) override;

 private:
  FakeState& s_;
  FakeControls& controls_;
};

}  // namespace segments::testing
