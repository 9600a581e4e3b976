#include "domain/user_use_cases.h"

#include <fmt/format.h>

#include <vector>

#include "domain/auto_assignment.h"
#include "domain/errors.h"
#include "domain/validation.h"

namespace segments::domain {
namespace {

std::optional<FieldViolation> CheckUserId(const std::string& user_id) {
  std::string why = DescribeUserIdProblem(user_id);
  if (why.empty()) return std::nullopt;
  return FieldViolation{std::string(kUserIdField), std::move(why)};
}

absl::Status UnknownUser(const UserId& user) {
  return FieldError(absl::StatusCode::kNotFound, std::string(kUserIdField),
                    fmt::format("user \"{}\" does not exist", user));
}

}  // namespace

absl::Status UserUseCases::CreateUser(const std::string& user_id) {
  if (auto problem = CheckUserId(user_id)) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, {*problem});
  const UserId user = *ParseUserId(user_id);
  absl::Status status = store_.InTransaction([&](Transaction& tx) -> absl::Status {
    if (absl::Status st = tx.LockAutoAssignment(AutoAssignmentLock::kShared); !st.ok()) return st;
    const absl::Time now = Now();
    if (absl::Status st = tx.InsertUser(user, UserState::kActive, now); !st.ok()) return st;
    return AssignUserAutomatically(tx, user, now).status();
  });
  if (absl::IsAlreadyExists(status)) {
    return FieldError(absl::StatusCode::kAlreadyExists, std::string(kUserIdField),
                      fmt::format("user \"{}\" already exists", user));
  }
  return status;
}

absl::Status UserUseCases::UpdateUser(const std::string& user_id, const std::string& status) {
  std::vector<FieldViolation> problems;
  if (auto problem = CheckUserId(user_id)) problems.push_back(*problem);
  const std::optional<UserState> state = ParseUserState(status);
  if (!state) {
    problems.push_back({"status", status.empty() ? "is required" : "must be \"active\" or \"excluded\""});
  }
  if (!problems.empty()) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, problems);
  const UserId user = *ParseUserId(user_id);
  return store_.InTransaction([&](Transaction& tx) -> absl::Status {
    if (absl::Status st = tx.LockAutoAssignment(AutoAssignmentLock::kShared); !st.ok()) return st;
    auto current = tx.LockUser(user);
    if (!current.ok()) return current.status();
    if (!*current) return UnknownUser(user);
    if (**current == *state) return absl::OkStatus();
    const absl::Time now = Now();
    if (absl::Status st = tx.SetUserState(user, *state, now); !st.ok()) return st;
    // A returning user is evaluated like a new one; leaving keeps memberships.
    if (*state == UserState::kActive) return AssignUserAutomatically(tx, user, now).status();
    return absl::OkStatus();
  });
}

absl::StatusOr<int64_t> UserUseCases::DeleteUser(const std::string& user_id) {
  if (auto problem = CheckUserId(user_id)) return ErrorWithViolations(absl::StatusCode::kInvalidArgument, {*problem});
  const UserId user = *ParseUserId(user_id);
  int64_t ended = 0;
  absl::Status status = store_.InTransaction([&](Transaction& tx) -> absl::Status {
    if (absl::Status st = tx.LockAutoAssignment(AutoAssignmentLock::kShared); !st.ok()) return st;
    auto current = tx.LockUser(user);
    if (!current.ok()) return current.status();
    if (!*current) return UnknownUser(user);
    auto count = tx.EndUserMemberships(user, Reason::kUserDeleted, Now());
    if (!count.ok()) return count.status();
    ended = *count;
    return tx.DeleteUser(user);
  });
  if (!status.ok()) return status;
  return ended;
}

}  // namespace segments::domain
