#include "support/fake_store.h"

namespace segments::testing {
namespace {

// The fake repositories over one transaction's copy of the state.
class FakeTransaction final : public domain::Transaction {
 public:
  FakeTransaction(FakeState& state, FakeControls& controls)
      : users_(state, controls), segments_(state, controls), memberships_(state, controls), history_(state, controls) {}

  domain::UserRepository& users() override { return users_; }
  domain::SegmentRepository& segments() override { return segments_; }
  domain::MembershipRepository& memberships() override { return memberships_; }
  domain::HistoryRepository& history() override { return history_; }

 private:
  FakeUserRepository users_;
  FakeSegmentRepository segments_;
  FakeMembershipRepository memberships_;
  FakeHistoryRepository history_;
};

}  // namespace

std::unique_ptr<domain::Transaction> NewFakeTransaction(FakeState& state, FakeControls& controls) {
  return std::make_unique<FakeTransaction>(state, controls);
}

absl::Status FakeStore::InTransaction(absl::FunctionRef<absl::Status(domain::Transaction&)> work) {
  ++transactions;
  FakeState copy = state;
  FakeTransaction tx(copy, *this);
  absl::Status status = work(tx);
  if (status.ok()) state = std::move(copy);
  return status;
}

}  // namespace segments::testing
