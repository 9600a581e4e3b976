// domain::HistoryRepository and domain::HistoryQueries over a FakeState.
// An event's id is its position in the history + 1.
#pragma once

#include "domain/repositories/history_repository.h"
#include "support/fake_state.h"

namespace segments::testing {

class FakeHistoryRepository final : public domain::HistoryRepository {
 public:
  FakeHistoryRepository(FakeState& state, FakeControls& controls) : s_(state), controls_(controls) {}

  absl::Status Append(const std::vector<domain::HistoryEvent>& events) override;

 private:
  FakeState& s_;
  FakeControls& controls_;
};

class FakeHistoryQueries final : public domain::HistoryQueries {
 public:
  FakeHistoryQueries(FakeState& state, FakeControls& controls) : s_(state), controls_(controls) {}

  absl::StatusOr<std::unique_ptr<domain::HistoryCursor>> OpenReport(const std::optional<domain::UserId>& user,
                                                                    absl::Time from, absl::Time to) override;
  absl::StatusOr<std::vector<domain::HistoryEvent>> OfUser(const domain::UserHistoryQuery& query) override;

 private:
  std::vector<domain::HistoryEvent> NumberedHistory() const;

  FakeState& s_;
  FakeControls& controls_;
};

}  // namespace segments::testing
