// domain::UserRepository on one open transaction.
#pragma once

#include "domain/repositories/user_repository.h"
#include "storage/pg_transaction.h"

namespace segments::storage {

class PgUserRepository final : public domain::UserRepository {
 public:
  explicit PgUserRepository(PgTransactionContext& tx) : tx_(tx) {}

  absl::StatusOr<std::optional<domain::UserState>> Lock(const domain::UserId& user) override;
  absl::Status Insert(const domain::UserId& user, domain::UserState state, absl::Time now) override;
  absl::StatusOr<int> CreateActive(const domain::UserId& user, absl::Time now) override;
  absl::StatusOr<std::optional<int>> SetStateAndAssign(const domain::UserId& user, domain::UserState state,
                                                       absl::Time now) override;
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
  PgTransactionContext& tx_;
};

}  // namespace segments::storage
