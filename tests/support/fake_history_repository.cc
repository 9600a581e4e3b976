#include "support/fake_history_repository.h"

#include <algorithm>
#include <tuple>

#include "common/status_macros.h"
#include "domain/acting_as.h"

namespace segments::testing {
namespace {

using domain::HistoryEvent;

class FakeCursor final : public domain::HistoryCursor {
 public:
  FakeCursor(std::vector<HistoryEvent> events, int& open) : events_(std::move(events)), open_(open) { ++open_; }
  ~FakeCursor() override { --open_; }

  absl::StatusOr<std::vector<HistoryEvent>> Next(int max_rows) override {
    std::vector<HistoryEvent> batch;
    while (next_ < events_.size() && batch.size() < static_cast<size_t>(max_rows)) batch.push_back(events_[next_++]);
    return batch;
  }

 private:
  std::vector<HistoryEvent> events_;
  size_t next_ = 0;
  int& open_;
};

}  // namespace

absl::Status FakeHistoryRepository::Append(const std::vector<HistoryEvent>& events) {
  RETURN_IF_ERROR(controls_.failure);
  // As the history table's default: the actor of the work (domain/acting_as.h).
  const std::string& actor = domain::ActingAs::Current();
  for (HistoryEvent event : events) {
    event.actor = actor.empty() ? domain::kSystemActor : actor;
    s_.history.push_back(std::move(event));
  }
  return absl::OkStatus();
}

std::vector<HistoryEvent> FakeHistoryQueries::NumberedHistory() const {
  std::vector<HistoryEvent> events = s_.history;
  for (size_t i = 0; i < events.size(); ++i) events[i].id = static_cast<int64_t>(i + 1);
  return events;
}

absl::StatusOr<std::unique_ptr<domain::HistoryCursor>> FakeHistoryQueries::OpenReport(
    const std::optional<domain::UserId>& user, absl::Time from, absl::Time to) {
  ++controls_.open_history_calls;
  RETURN_IF_ERROR(controls_.failure);
  std::vector<HistoryEvent> events;
  for (const HistoryEvent& e : NumberedHistory()) {
    if (e.at >= from && e.at < to && (!user || e.user_id == *user)) events.push_back(e);
  }
  std::sort(events.begin(), events.end(), [](const HistoryEvent& a, const HistoryEvent& b) {
    return std::tie(a.at, a.user_id, a.slug, a.id) < std::tie(b.at, b.user_id, b.slug, b.id);
  });
  return std::unique_ptr<domain::HistoryCursor>(new FakeCursor(std::move(events), controls_.open_cursors));
}

absl::StatusOr<std::vector<HistoryEvent>> FakeHistoryQueries::OfUser(const domain::UserHistoryQuery& query) {
  ++controls_.user_history_calls;
  RETURN_IF_ERROR(controls_.failure);
  std::vector<HistoryEvent> events;
  for (const HistoryEvent& e : NumberedHistory()) {
    if (e.user_id != query.user || (query.slug && e.slug != *query.slug)) continue;
    if ((query.from && e.at < *query.from) || (query.to && e.at >= *query.to)) continue;
    if (query.after && std::tie(e.at, e.id) >= std::tie(query.after->at, query.after->id)) continue;
    events.push_back(e);
  }
  std::sort(events.begin(), events.end(),
            [](const HistoryEvent& a, const HistoryEvent& b) { return std::tie(a.at, a.id) > std::tie(b.at, b.id); });
  if (events.size() > static_cast<size_t>(query.limit)) events.erase(events.begin() + query.limit, events.end());
  return events;
}

}  // namespace segments::testing
