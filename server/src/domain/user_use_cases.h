// Use cases of the user replica: UserAdminService calls the single-user ones,
// the user-event consumer (ingest/) calls SyncUsers; both run the same steps.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <optional>
#include <string>
#include <vector>

#include "domain/clock.h"
#include "domain/repositories/unit_of_work.h"

namespace segments::domain {

// A user as the user service reports it: `state` is nullopt when the user
// service does not know the id (deleted, or never created).
struct ObservedUser {
  UserId id;
  std::optional<UserState> state;
};

// What SyncUsers changed.
struct UserSyncResult {
  int created = 0;
  int state_changed = 0;
  int deleted = 0;
  int unchanged = 0;
  int64_t memberships_ended = 0;  // by deletions
};

class UserUseCases {
 public:
  UserUseCases(Store& store, const Clock& clock) : store_(store), clock_(clock) {}

  // Adds an active user and puts them in the automatic segments that take
  // them (domain/auto_assignment.h), in one transaction. INVALID_ARGUMENT for
  // a malformed id, ALREADY_EXISTS if known.
  absl::Status CreateUser(const UserIdInput& user_id);

  // Sets the user's state ("active" or "excluded"). A user becoming active
  // is evaluated against the automatic segments as a new one is; a user
  // becoming excluded keeps their memberships. NOT_FOUND if unknown; the
  // same state again is a successful no-op.
  absl::Status UpdateUser(const UserIdInput& user_id, const std::string& status);

  // Deletes the user, ending every membership with reason user_deleted.
  // NOT_FOUND if unknown. Returns the memberships ended.
  absl::StatusOr<int64_t> DeleteUser(const UserIdInput& user_id);

  // Makes the replica agree with the user service about these users, in one
  // transaction: an unknown user who exists there is created in their state
  // (an active one with automatic assignment), a known one gets its state (a
  // returning user is evaluated), a known one it does not know is deleted.
  // Users already in agreement are left alone, so applying the same
  // observation twice changes nothing. Ids must be distinct
  // (INVALID_ARGUMENT otherwise). Each step runs once for all the users it
  // concerns, so the number of statements does not grow with the batch.
  absl::StatusOr<UserSyncResult> SyncUsers(const std::vector<ObservedUser>& users);

 private:
  absl::Time Now() const { return TruncateToMicros(clock_.Now()); }

  Store& store_;
  const Clock& clock_;
};

}  // namespace segments::domain
