// Store calls that tests make as the service's jobs make them.
#pragma once

#include <utility>
#include <vector>

#include "common/status_macros.h"
#include "domain/repositories/unit_of_work.h"

namespace segments::testing {

// One batch of TTL expiry in a transaction of its own, as the expiry job
// runs it (MembershipRepository::EndExpired).
inline absl::StatusOr<int64_t> EndExpiredMemberships(domain::Store& store, absl::Time now, int limit) {
  int64_t ended = 0;
  RETURN_IF_ERROR(store.InTransaction([&](domain::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(ended, tx.memberships().EndExpired(now, limit));
    return absl::OkStatus();
  }));
  return ended;
}

// Puts one user in segments directly, added at `now`, in a transaction of
// its own (MembershipRepository::Insert): no history, no checks.
inline absl::Status InsertMemberships(domain::Store& store, const domain::UserId& user,
                                      const std::vector<domain::NewMembership>& memberships, absl::Time now) {
  std::vector<std::pair<domain::UserId, domain::NewMembership>> rows;
  rows.reserve(memberships.size());
  for (const domain::NewMembership& m : memberships) rows.emplace_back(user, m);
  return store.InTransaction([&](domain::Transaction& tx) { return tx.memberships().Insert(rows, now); });
}

}  // namespace segments::testing
