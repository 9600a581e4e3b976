// Users of the local replica, inside a transaction (unit_of_work.h).
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <optional>
#include <utility>
#include <vector>

#include "domain/model.h"

namespace segments::domain {

class UserRepository {
 public:
  virtual ~UserRepository() = default;

  // The user's state, locking the user against concurrent changes until the
  // transaction ends; nullopt if unknown.
  virtual absl::StatusOr<std::optional<UserState>> Lock(const UserId& user) = 0;
  // ALREADY_EXISTS if the user is known.
  virtual absl::Status Insert(const UserId& user, UserState state, absl::Time now) = 0;
  // Creates `user`, active, and assigns them automatically as
  // AssignUsersAutomatically does a created user, holding the
  // automatic-assignment lock shared; in one call (Store::InSingleCall).
  // Returns how many segments the user entered; ALREADY_EXISTS if the user
  // is known (nothing changed).
  virtual absl::StatusOr<int> CreateActive(const UserId& user, absl::Time now) = 0;
  // Sets the state of `user` as UpdateUser does, in one call
  // (Store::InSingleCall): holding the automatic-assignment lock shared and
  // the user's row; a user who becomes active is assigned automatically as
  // AssignUserAutomatically does (their expired memberships end first).
  // Returns the segments the user entered (0 for the same state); nullopt
  // for an unknown user (nothing changed).
  virtual absl::StatusOr<std::optional<int>> SetStateAndAssign(const UserId& user, UserState state, absl::Time now) = 0;
  // Deletes `user` as DeleteUser does, in one call (Store::InSingleCall):
  // holding the automatic-assignment lock shared and the user's row, ends
  // every membership (MembershipRepository::EndAllOfUser, user_deleted),
  // then Delete. Returns the memberships that were active; nullopt for an
  // unknown user (nothing changed).
  virtual absl::StatusOr<std::optional<int64_t>> DeleteWithMemberships(const UserId& user, absl::Time now) = 0;
  virtual absl::Status SetState(const UserId& user, UserState state, absl::Time now) = 0;
  // Deletes the user row and its opt-outs; its memberships must have been
  // ended before.
  virtual absl::Status Delete(const UserId& user) = 0;

  // Many users at once, for batches of user events: the known ones among
  // `users` with their states, locked as Lock does (in id order); inserting
  // users that must all be new (ALREADY_EXISTS otherwise); setting the
  // states of known users; and deleting known users.
  virtual absl::StatusOr<absl::flat_hash_map<UserId, UserState>> LockMany(const std::vector<UserId>& users) = 0;
  virtual absl::Status InsertMany(const std::vector<std::pair<UserId, UserState>>& users, absl::Time now) = 0;
  virtual absl::Status SetStates(const std::vector<std::pair<UserId, UserState>>& users, absl::Time now) = 0;
  virtual absl::Status DeleteMany(const std::vector<UserId>& users) = 0;

  // Those of `users` that are not known users; the known ones are locked
  // against deletion (not against changes of state), in id order, until the
  // transaction ends.
  virtual absl::StatusOr<std::vector<UserId>> Unknown(const std::vector<UserId>& users) = 0;
};

}  // namespace segments::domain
