#include "support/fake_user_repository.h"

#include <memory>

#include "common/status_macros.h"
#include "domain/auto_assignment.h"
#include "support/fake_store.h"

namespace segments::testing {

using domain::UserId;
using domain::UserState;

absl::StatusOr<std::optional<UserState>> FakeUserRepository::Lock(const UserId& user) {
  RETURN_IF_ERROR(controls_.failure);
  auto it = s_.users.find(user);
  if (it == s_.users.end()) return std::nullopt;
  return it->second;
}

absl::Status FakeUserRepository::Insert(const UserId& user, UserState state, absl::Time) {
  RETURN_IF_ERROR(controls_.failure);
  if (!s_.users.emplace(user, state).second) return absl::AlreadyExistsError("user exists");
  return absl::OkStatus();
}

absl::StatusOr<int> FakeUserRepository::CreateActive(const UserId& user, absl::Time now) {
  ++controls_.shared_auto_locks;
  RETURN_IF_ERROR(Insert(user, UserState::kActive, now));
  const std::unique_ptr<domain::Transaction> tx = NewFakeTransaction(s_, controls_);
  return domain::AssignUsersAutomatically(*tx, {user}, {}, now);
}

absl::StatusOr<std::optional<int>> FakeUserRepository::SetStateAndAssign(const UserId& user, UserState state,
                                                                         absl::Time now) {
  ++controls_.shared_auto_locks;
  ASSIGN_OR_RETURN(const std::optional<UserState> current, Lock(user));
  if (!current) return std::nullopt;
  if (*current == state) return 0;
  RETURN_IF_ERROR(SetState(user, state, now));
  if (state != UserState::kActive) return 0;
  const std::unique_ptr<domain::Transaction> tx = NewFakeTransaction(s_, controls_);
  return domain::AssignUserAutomatically(*tx, user, now);
}

absl::StatusOr<std::optional<int64_t>> FakeUserRepository::DeleteWithMemberships(const UserId& user, absl::Time now) {
  ++controls_.shared_auto_locks;
  ASSIGN_OR_RETURN(const std::optional<UserState> current, Lock(user));
  if (!current) return std::nullopt;
  const std::unique_ptr<domain::Transaction> tx = NewFakeTransaction(s_, controls_);
  ASSIGN_OR_RETURN(const int64_t ended, tx->memberships().EndAllOfUser(user, domain::Reason::kUserDeleted, now));
  RETURN_IF_ERROR(Delete(user));
  return ended;
}

absl::Status FakeUserRepository::SetState(const UserId& user, UserState state, absl::Time) {
  RETURN_IF_ERROR(controls_.failure);
  s_.users[user] = state;
  return absl::OkStatus();
}

absl::Status FakeUserRepository::Delete(const UserId& user) {
  RETURN_IF_ERROR(controls_.failure);
  for (const auto& [key, m] : s_.memberships) {
    if (key.first == user) return absl::FailedPreconditionError("memberships still refer to the user");
  }
  s_.users.erase(user);
  std::erase_if(s_.opt_outs, [&](const auto& entry) { return entry.first.second == user; });
  return absl::OkStatus();
}

absl::StatusOr<absl::flat_hash_map<UserId, UserState>> FakeUserRepository::LockMany(const std::vector<UserId>& users) {
  RETURN_IF_ERROR(controls_.failure);
  absl::flat_hash_map<UserId, UserState> known;
  for (const UserId& user : users) {
    if (auto it = s_.users.find(user); it != s_.users.end()) known.emplace(user, it->second);
  }
  return known;
}

absl::Status FakeUserRepository::InsertMany(const std::vector<std::pair<UserId, UserState>>& users, absl::Time now) {
  for (const auto& [user, state] : users) RETURN_IF_ERROR(Insert(user, state, now));
  return absl::OkStatus();
}

absl::Status FakeUserRepository::SetStates(const std::vector<std::pair<UserId, UserState>>& users, absl::Time now) {
  for (const auto& [user, state] : users) RETURN_IF_ERROR(SetState(user, state, now));
  return absl::OkStatus();
}

absl::Status FakeUserRepository::DeleteMany(const std::vector<UserId>& users) {
  for (const UserId& user : users) RETURN_IF_ERROR(Delete(user));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<UserId>> FakeUserRepository::Unknown(const std::vector<UserId>& users) {
  RETURN_IF_ERROR(controls_.failure);
  std::vector<UserId> out;
  for (const UserId& user : users) {
    if (!s_.users.contains(user)) out.push_back(user);
  }
  return out;
}

}  // namespace segments::testing
