// Use cases of the user replica. The Kafka consumer (ingest) will call the
// same ones as UserAdminService.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <string>

#include "domain/clock.h"
#include "domain/store.h"

namespace segments::domain {

class UserUseCases {
 public:
  UserUseCases(Store& store, const Clock& clock) : store_(store), clock_(clock) {}

  // Adds an active user and puts them in the automatic segments that take
  // them (domain/auto_assignment.h), in one transaction. INVALID_ARGUMENT for
  // a bad UUID, ALREADY_EXISTS if known.
  absl::Status CreateUser(const std::string& user_id);

  // Sets the user's state ("active" or "excluded"). A user becoming active
  // is evaluated against the automatic segments as a new one is; a user
  // becoming excluded keeps their memberships. NOT_FOUND if unknown; the
  // same state again is a successful no-op.
  absl::Status UpdateUser(const std::string& user_id, const std::string& status);

  // Deletes the user, ending every membership with reason user_deleted.
  // NOT_FOUND if unknown. Returns the memberships ended.
  absl::StatusOr<int64_t> DeleteUser(const std::string& user_id);

 private:
  absl::Time Now() const { return TruncateToMicros(clock_.Now()); }

  Store& store_;
  const Clock& clock_;
};

}  // namespace segments::domain
