#include "domain/user_use_cases.h"

#include <absl/container/flat_hash_set.h>
#include <fmt/format.h>

#include <vector>

#include "common/status_macros.h"
#include "domain/acting_as.h"
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

}  // namespace

absl::Status UserUseCases::CreateUser(const UserIdInput& user_id) {
  if (auto problem = CheckUserId(user_id)) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, {*problem});
  const UserId& user = user_id.value();
  // One round trip: the user, their automatic segments and the lock that
  // orders them with fills (docs/writes.md). What it writes to history is
  // automatic assignment: the system's, whoever called.
  const ActingAs acting_as{std::string()};
  absl::Status status = store_.InSingleCall(
      [&](Transaction& tx) -> absl::Status { return tx.users().CreateActive(user, Now()).status(); });
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
  std::optional<int> entered;
  // History written here is expiry's and automatic assignment's: the system's.
  const ActingAs acting_as{std::string()};
  RETURN_IF_ERROR(store_.InSingleCall([&](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(entered, tx.users().SetStateAndAssign(user, *state, Now()));
    return absl::OkStatus();
  }));
  if (!entered) return UnknownUser(user);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> UserUseCases::DeleteUser(const UserIdInput& user_id) {
  if (auto problem = CheckUserId(user_id)) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, {*problem});
  const UserId& user = user_id.value();
  std::optional<int64_t> ended;
  RETURN_IF_ERROR(store_.InSingleCall([&](Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(ended, tx.users().DeleteWithMemberships(user, Now()));
    return absl::OkStatus();
  }));
  if (!ended) return UnknownUser(user);
  return *ended;
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
    RETURN_IF_ERROR(tx.memberships().LockAutoAssignment(AutoAssignmentLock::kShared));
    // Locked in id order, so concurrent batches cannot deadlock.
    ASSIGN_OR_RETURN(const auto known, tx.users().LockMany(ids));
    const absl::Time now = Now();

    std::vector<std::pair<UserId, UserState>> created, changed;
    std::vector<UserId> new_active, returning, deleted;
    for (const ObservedUser& observed : users) {
      auto it = known.find(observed.id);
      const std::optional<UserState> current = it == known.end() ? std::nullopt : std::optional<UserState>(it->second);
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
    // What DeleteUser, CreateUser and UpdateUser do, each for all its users
    // at once: a fixed number of statements per batch.
    if (!deleted.empty()) {
      ASSIGN_OR_RETURN(result.memberships_ended, tx.memberships().EndAllOfUsers(deleted, Reason::kUserDeleted, now));
      RETURN_IF_ERROR(tx.users().DeleteMany(deleted));
    }
    RETURN_IF_ERROR(tx.users().InsertMany(created, now));
    RETURN_IF_ERROR(tx.users().SetStates(changed, now));
    RETURN_IF_ERROR(AssignUsersAutomatically(tx, new_active, returning, now));
    result.created = static_cast<int>(created.size());
    result.state_changed = static_cast<int>(changed.size());
    result.deleted = static_cast<int>(deleted.size());
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

}  // namespace segments::domain
