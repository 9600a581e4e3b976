// domain::Store in memory, for unit tests of the domain. A transaction works
// on a copy of the state, which replaces the state only on success, so
// rollback behaves as in the database. Tests read `state` directly and set
// or read the controls (fake_state.h).
#pragma once

#include <memory>

#include "domain/repositories/unit_of_work.h"
#include "support/fake_history_repository.h"
#include "support/fake_membership_repository.h"
#include "support/fake_segment_repository.h"
#include "support/fake_state.h"
#include "support/fake_user_repository.h"

namespace segments::testing {

// Not final: a test double may derive to hook some calls.
class FakeStore : public domain::Store, public FakeControls {
 public:
  FakeState state;

  FakeStore() : segments_(state, *this), memberships_(state, *this), history_(state, *this) {}
  FakeStore(const FakeStore&) = delete;
  FakeStore& operator=(const FakeStore&) = delete;

  absl::Status InTransaction(absl::FunctionRef<absl::Status(domain::Transaction&)> work) override;
  domain::SegmentQueries& segments() override { return segments_; }
  domain::MembershipQueries& memberships() override { return memberships_; }
  domain::HistoryQueries& history() override { return history_; }

 private:
  FakeSegmentQueries segments_;
  FakeMembershipQueries memberships_;
  FakeHistoryQueries history_;
};

// The fake repositories over `state` (a transaction's copy of a store's).
std::unique_ptr<domain::Transaction> NewFakeTransaction(FakeState& state, FakeControls& controls);

}  // namespace segments::testing
