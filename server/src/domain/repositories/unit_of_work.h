// What the domain needs from persistence: a unit of work that hands out one
// repository per aggregate, all in one transaction, and the reads that need
// none. Implemented by storage::PgStore and, in tests, by an in-memory fake.
// Methods report storage failures as absl::Status: UNAVAILABLE (database
// down), ABORTED (conflict; InTransaction retries those itself), INTERNAL
// (anything else).
#pragma once

#include <absl/functional/function_ref.h>
#include <absl/status/status.h>

#include "domain/repositories/history_repository.h"
#include "domain/repositories/membership_repository.h"
#include "domain/repositories/segment_repository.h"
#include "domain/repositories/user_repository.h"

namespace segments::domain {

// Everything done through one Transaction's repositories commits together
// or not at all.
class Transaction {
 public:
  virtual ~Transaction() = default;

  virtual UserRepository& users() = 0;
  virtual SegmentRepository& segments() = 0;
  virtual MembershipRepository& memberships() = 0;
  virtual HistoryRepository& history() = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Runs `work` in one transaction and commits if it returns OK; rolls back
  // otherwise. On a serialization failure or deadlock the store rolls back
  // and runs `work` again (a bounded number of times), so `work` must not
  // have effects outside the transaction.
  virtual absl::Status InTransaction(absl::FunctionRef<absl::Status(Transaction&)> work) = 0;
  // The same for `work` that makes exactly one repository call, which is
  // then all the transaction does: a store may run it without BEGIN and
  // COMMIT, in one round trip to the database. Making a second call is a
  // bug; the store reports it as INTERNAL.
  virtual absl::Status InSingleCall(absl::FunctionRef<absl::Status(Transaction&)> work) { return InTransaction(work); }

  // Reads outside a transaction, each statement on its own.
  virtual SegmentQueries& segments() = 0;
  virtual MembershipQueries& memberships() = 0;
  virtual HistoryQueries& history() = 0;
};

}  // namespace segments::domain
