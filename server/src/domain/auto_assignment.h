// Automatic assignment of users one by one: the rule of docs/bucketing.md
// applied to a user who was just created or became active again (alone, or
// in a batch of user events). Set-based assignment of a whole segment is
// MembershipRepository::AssignByPercent; both follow the same rule, and tests
// hold them to it.
#pragma once

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <vector>

#include "domain/model.h"
#include "domain/repositories/unit_of_work.h"

namespace segments::domain {

// Puts the active `user` in every automatic segment whose percentage covers
// the user's bucket, whose include and exclude options the user passes, that
// the user is not in yet and has not opted out of; each with an `add` event
// of reason auto_percent, expiring after the segment's automatic TTL.
// Segments are taken in creation order, so a segment may include one that
// this same evaluation just filled. The caller holds the user's row and the
// automatic-assignment lock (shared). Returns how many segments were added.
absl::StatusOr<int> AssignUserAutomatically(Transaction& tx, const UserId& user, absl::Time now);

// The same for a batch of users, all active, with a fixed number of
// statements whatever their number (for user events): `returning` are known
// users, whose memberships and opt-outs are read for all of them at once;
// `created` were created in this transaction, so have neither. The caller
// holds their rows and the lock as above. Returns how many memberships were
// added.
absl::StatusOr<int> AssignUsersAutomatically(Transaction& tx, const std::vector<UserId>& created,
                                             const std::vector<UserId>& returning, absl::Time now);

}  // namespace segments::domain
