// domain::UserRepository over a FakeState.
#pragma once

#include "domain/repositories/user_repository.h"
#include "support/fake_state.h"

namespace segments::testing {

class FakeUserRepository final : public domain::UserRepository {
 public:
  FakeUserRepository(FakeState& state, FakeControls& controls) : s_(state), controls_(controls) {}

  absl::StatusOr<std::optional<domain::UserState>> Lock(const domain::UserId& user) override;
  absl::Status Insert(const domain::UserId& user, domain::UserState state, absl::Time now) override;
  // Insert, then AssignUsersAutomatically over the same transaction's state.
  absl::StatusOr<int> CreateActive(const domain::UserId& user, absl::Time now) override;
  // Lock, SetState and AssignUserAutomatically over the same transaction's
  // state.
  absl::StatusOr<std::optional<int>> SetStateAndAssign(const domain::UserId& user, domain::UserState state,
                                                       absl::Time now) override;
  // Lock, EndAllOfUser and Delete over the same transaction's state.
  absl::StatusOr<std::optional<int64_t>> DeleteWithMemberships(const domain::UserId& user, absl::Time now) override;
  absl::Status SetState(const domain::UserId& user, domain::UserState state, absl::Time now) override;
  absl::Status Delete(const domain::UserId& user) override;
  absl::StatusOr<absl::flat_hash_map<domain::UserId, domain::UserState>> LockMany(
      const std::vector<domain::UserId>& users) override;
  absl::Status InsertMany(const std::vector<std::pair<domain::UserId, domain::UserState>>& users,
                          absl::Time now) override;
  absl::Status SetStates(const std::vector<std::pair<domain::UserId, domain::UserState>>& users,
                         absl::Time now) override;
  absl::Status DeleteMany(const std::vector<domain::UserId>& users) override;
  absl::StatusOr<std::vector<domain::UserId>> Unknown(const std::vector<domain::UserId>& users) override;

 private:
  FakeState& s_;
  FakeControls& controls_;
};

}  // namespace segments::testing
