#include "domain/user_use_cases.h"

#include <absl/container/flat_hash_set.h>
#include <fmt/format.h>

#include <vector>

#include "domain/auto_assignment.h"
#include "domain/errors.h"
#include "domain/validation.h"

namespace segments::domain {
namespace {

std::optional<FieldViolation> CheckUserId(const UserIdInput& user) {
  if (user.ok()) return std::nullopt;
  return FieldViolation{Field::kUserId, user.problem()};
}

absl::Status UnknownUser(const UserId& user) {
  return FieldError(absl::StatusCode::kNotFound, Field::kUserId, fmt::format("user \"{}\" does not exist", user));
}

// The steps of each change, inside a transaction that holds the
// automatic-assignment lock (shared) and, for an existing user, their row.
absl::Status CreateIn(Transaction& tx, const UserId& user, UserState state, absl::Time now) {
  if (absl::Status st = tx.users().Insert(user, state, now); !st.ok()) return st;
  if (state == UserState::kActive) return AssignUserAutomatically(tx, user, now).status();
  return absl::OkStatus();
}

absl::Status ChangeStateIn(Transaction& tx, const UserId& user, UserState state, absl::Time now) {
  if (absl::Status st = tx.users().SetState(user, state, now); !st.ok()) return st;
  // A returning user is evaluated like a new one; leaving keeps memberships.
  if (state == UserState::kActive) return AssignUserAutomatically(tx, user, now).status();
  return absl::OkStatus();
}

absl::StatusOr<int64_t> DeleteIn(Transaction& tx, const UserId& user, absl::Time now) {
  auto ended = tx.memberships().EndAllOfUser(user, Reason::kUserDeleted, now);
  if (!ended.ok()) return ended.status();
  if (absl::Status st = tx.users().Delete(user); !st.ok()) return st;
  return *ended;
}

}  // namespace

absl::Status UserUseCases::CreateUser(const UserIdInput& user_id) {
  if (auto problem = CheckUserId(user_id)) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, {*problem});
  const UserId& user = user_id.value();
  absl::Status status = store_.InTransaction([&](Transaction& tx) -> absl::Status {
    if (absl::Status st = tx.memberships().LockAutoAssignment(AutoAssignmentLock::kShared); !st.ok()) return st;
    return CreateIn(tx, user, UserState::kActive, Now());
  });
  if (absl::IsAlreadyExists(status)) {
    return FieldError(absl::StatusCode::kAlreadyExists, Field::kUserId,
                      fmt::format("user \"{}\" already exists", user));
  }
  return status;
}

absl::Status UserUseCases::UpdateUser(const UserIdInput& user_id, const std::string& status) {
  std::vector<FieldViolation> problems;
  if (auto problem = CheckUserId(user_id)) problems.push_back(*problem);
  const std::optional<UserState> state = ParseUserState(status);
  if (!state) {
    problems.push_back({Field::kStatus, status.empty() ? "is required" : "must be \"active\" or \"excluded\""});
  }
  if (!problems.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, problems);
  const UserId& user = user_id.value();
  return store_.InTransaction([&](Transaction& tx) -> absl::Status {
    if (absl::Status st = tx.memberships().LockAutoAssignment(AutoAssignmentLock::kShared); !st.ok()) return st;
    auto current = tx.users().Lock(user);
    if (!current.ok()) return current.status();
    if (!*current) return UnknownUser(user);
    if (**current == *state) return absl::OkStatus();
    return ChangeStateIn(tx, user, *state, Now());
  });
}

absl::StatusOr<int64_t> UserUseCases::DeleteUser(const UserIdInput& user_id) {
  if (auto problem = CheckUserId(user_id)) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, {*problem});
  const UserId& user = user_id.value();
  int64_t ended = 0;
  absl::Status status = store_.InTransaction([&](Transaction& tx) -> absl::Status {
    if (absl::Status st = tx.memberships().LockAutoAssignment(AutoAssignmentLock::kShared); !st.ok()) return st;
    auto current = tx.users().Lock(user);
    if (!current.ok()) return current.status();
    if (!*current) return UnknownUser(user);
    auto count = DeleteIn(tx, user, Now());
    if (!count.ok()) return count.status();
    ended = *count;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return ended;
}

absl::StatusOr<UserSyncResult> UserUseCases::SyncUsers(const std::vector<ObservedUser>& users) {
  std::vector<UserId> ids;
  ids.reserve(users.size());
  absl::flat_hash_set<UserId> distinct;
  for (const ObservedUser& u : users) {
    if (!distinct.insert(u.id).second) return absl::InvalidArgumentError(fmt::format("user \"{}\" twice", u.id));
    ids.push_back(u.id);
  }

  UserSyncResult result;
  absl::Status status = store_.InTransaction([&](Transaction& tx) -> absl::Status {
    result = UserSyncResult{};  // a retried transaction starts over
    if (absl::Status st = tx.memberships().LockAutoAssignment(AutoAssignmentLock::kShared); !st.ok()) return st;
    // Locked in id order, so concurrent batches cannot deadlock.
    auto known = tx.users().LockMany(ids);
    if (!known.ok()) return known.status();
    const absl::Time now = Now();

    std::vector<std::pair<UserId, UserState>> created, changed;
    std::vector<UserId> new_active, returning, deleted;
    for (const ObservedUser& observed : users) {
      auto it = known->find(observed.id);
      const std::optional<UserState> current = it == known->end() ? std::nullopt : std::optional<UserState>(it->second);
      if (current == observed.state) {
        ++result.unchanged;
      } else if (!observed.state) {
        deleted.push_back(observed.id);
      } else if (!current) {
        created.emplace_back(observed.id, *observed.state);
        if (*observed.state == UserState::kActive) new_active.push_back(observed.id);
      } else {
        changed.emplace_back(observed.id, *observed.state);
        if (*observed.state == UserState::kActive) returning.push_back(observed.id);
      }
    }
    for (const UserId& user : deleted) {
      auto ended = DeleteIn(tx, user, now);
      if (!ended.ok()) return ended.status();
      result.memberships_ended += *ended;
    }
    if (absl::Status st = tx.users().InsertMany(created, now); !st.ok()) return st;
    if (absl::Status st = tx.users().SetStates(changed, now); !st.ok()) return st;
    // The same rule as CreateIn and ChangeStateIn: new and returning active
    // users are evaluated; new ones in bulk, as they have nothing yet.
    if (absl::Status st = AssignNewUsersAutomatically(tx, new_active, now).status(); !st.ok()) return st;
    for (const UserId& user : returning) {
      if (absl::Status st = AssignUserAutomatically(tx, user, now).status(); !st.ok()) return st;
    }
    result.created = static_cast<int>(created.size());
    result.state_changed = static_cast<int>(changed.size());
    result.deleted = static_cast<int>(deleted.size());
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

}  // namespace segments::domain
