#include "support/fake_store.h"

#include "domain/bucketing.h"

#include <algorithm>
#include <tuple>

namespace segments::testing {
namespace {

using namespace segments::domain;

class FakeTransaction final : public Transaction {
 public:
  FakeTransaction(FakeState& s, const absl::Status& failure) : s_(s), failure_(failure) {}

  absl::StatusOr<std::optional<UserState>> LockUser(const UserId& user) override {
    if (!failure_.ok()) return failure_;
    auto it = s_.users.find(user);
    if (it == s_.users.end()) return std::nullopt;
    return it->second;
  }
  absl::Status InsertUser(const UserId& user, UserState state, absl::Time) override {
    if (!failure_.ok()) return failure_;
    if (!s_.users.emplace(user, state).second) return absl::AlreadyExistsError("user exists");
    return absl::OkStatus();
  }
  absl::Status SetUserState(const UserId& user, UserState state, absl::Time) override {
    if (!failure_.ok()) return failure_;
    s_.users[user] = state;
    return absl::OkStatus();
  }
  absl::Status DeleteUser(const UserId& user) override {
    if (!failure_.ok()) return failure_;
    for (const auto& [key, m] : s_.memberships) {
      if (key.first == user) return absl::FailedPreconditionError("memberships still refer to the user");
    }
    s_.users.erase(user);
    return absl::OkStatus();
  }
  absl::StatusOr<Segment> InsertSegment(const NewSegment& fresh, absl::Time now) override {
    if (!failure_.ok()) return failure_;
    if (FindLive(fresh.slug)) return absl::AlreadyExistsError("slug taken");
    Segment s{s_.next_segment_id++, fresh.slug, fresh.percent_hundredths, fresh.description, fresh.salt, now};
    s_.segments[s.id] = s;
    return s;
  }
  absl::StatusOr<std::optional<Segment>> MarkSegmentDeleted(const std::string& slug, absl::Time) override {
    if (!failure_.ok()) return failure_;
    const Segment* s = FindLive(slug);
    if (s == nullptr) return std::nullopt;
    s_.deleted_segments.insert(s->id);
    return *s;
  }
  absl::StatusOr<std::vector<Segment>> LockLiveSegments(const std::vector<std::string>& slugs) override {
    if (!failure_.ok()) return failure_;
    std::vector<Segment> out;
    for (const auto& slug : slugs) {
      if (const Segment* s = FindLive(slug)) out.push_back(*s);
    }
    return out;
  }
  absl::StatusOr<int64_t> AssignByPercent(const Segment& segment, absl::Time now) override {
    if (!failure_.ok()) return failure_;
    int64_t added = 0;
    for (const auto& [user, state] : s_.users) {
      if (state != UserState::kActive || !InPercent(Bucket(segment.salt, user), segment.percent_hundredths)) continue;
      s_.memberships[{user, segment.id}] = Membership{segment.id, segment.slug, now, std::nullopt};
      s_.history.push_back({user, segment.id, segment.slug, Operation::kAdd, Reason::kAutoPercent, now});
      ++added;
    }
    return added;
  }

  absl::StatusOr<std::vector<Membership>> UserMemberships(const UserId& user) override {
    if (!failure_.ok()) return failure_;
    std::vector<Membership> out;
    for (const auto& [key, m] : s_.memberships) {
      if (key.first == user) out.push_back(m);
    }
    return out;
  }
  absl::Status InsertMemberships(const UserId& user, const std::vector<NewMembership>& fresh,
                                 absl::Time now) override {
    if (!failure_.ok()) return failure_;
    for (const auto& m : fresh) {
      auto [it, inserted] =
          s_.memberships.emplace(std::pair(user, m.segment_id),
                                 Membership{m.segment_id, s_.segments.at(m.segment_id).slug, now, m.expires_at});
      if (!inserted) return absl::AlreadyExistsError("membership exists");
    }
    return absl::OkStatus();
  }
  absl::Status DeleteMemberships(const UserId& user, const std::vector<SegmentId>& segments) override {
    if (!failure_.ok()) return failure_;
    for (SegmentId id : segments) s_.memberships.erase({user, id});
    return absl::OkStatus();
  }
  absl::Status AppendHistory(const std::vector<HistoryEvent>& events) override {
    if (!failure_.ok()) return failure_;
    s_.history.insert(s_.history.end(), events.begin(), events.end());
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> EndSegmentMemberships(const Segment& segment, Reason reason, absl::Time now) override {
    return EndWhere([&](const UserId&, SegmentId id) { return id == segment.id; }, reason, now);
  }
  absl::StatusOr<int64_t> EndUserMemberships(const UserId& user, Reason reason, absl::Time now) override {
    return EndWhere([&](const UserId& u, SegmentId) { return u == user; }, reason, now);
  }

 private:
  const Segment* FindLive(const std::string& slug) const {
    for (const auto& [id, s] : s_.segments) {
      if (s.slug == slug && !s_.deleted_segments.contains(id)) return &s;
    }
    return nullptr;
  }

  template <typename Pred>
  absl::StatusOr<int64_t> EndWhere(Pred matches, Reason reason, absl::Time now) {
    if (!failure_.ok()) return failure_;
    int64_t ended = 0;
    for (auto it = s_.memberships.begin(); it != s_.memberships.end();) {
      const auto& [user, segment_id] = it->first;
      if (!matches(user, segment_id)) {
        ++it;
        continue;
      }
      const Membership& m = it->second;
      const bool expired = !m.ActiveAt(now);
      s_.history.push_back({user, segment_id, m.slug, Operation::kRemove, expired ? Reason::kTtl : reason,
                            expired ? *m.expires_at : now});
      it = s_.memberships.erase(it);
      if (!expired) ++ended;  // expired ones ended earlier, at their deadline
    }
    return ended;
  }

  FakeState& s_;
  const absl::Status& failure_;
};

}  // namespace

absl::Status FakeStore::InTransaction(absl::FunctionRef<absl::Status(Transaction&)> work) {
  ++transactions;
  FakeState copy = state;
  FakeTransaction tx(copy, failure);
  absl::Status status = work(tx);
  if (status.ok()) state = std::move(copy);
  return status;
}

absl::StatusOr<std::vector<std::string>> FakeStore::ActiveSegmentSlugs(const UserId& user, absl::Time now) {
  if (!failure.ok()) return failure;
  std::vector<std::string> out;
  for (const auto& [key, m] : state.memberships) {
    if (key.first == user && m.ActiveAt(now)) out.push_back(m.slug);
  }
  return out;
}

namespace {

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

absl::StatusOr<std::optional<std::pair<Segment, int64_t>>> FakeStore::FindSegment(const std::string& slug,
                                                                                   absl::Time now) {
  if (!failure.ok()) return failure;
  for (const auto& [id, segment] : state.segments) {
    if (segment.slug != slug || state.deleted_segments.count(id) > 0) continue;
    int64_t members = 0;
    for (const auto& [key, m] : state.memberships) members += key.second == id && m.ActiveAt(now) ? 1 : 0;
    return std::make_pair(segment, members);
  }
  return std::nullopt;
}

std::vector<HistoryEvent> FakeStore::NumberedHistory() const {
  std::vector<HistoryEvent> events = state.history;
  for (size_t i = 0; i < events.size(); ++i) events[i].id = static_cast<int64_t>(i + 1);
  return events;
}

absl::StatusOr<std::unique_ptr<domain::HistoryCursor>> FakeStore::OpenHistory(const std::optional<UserId>& user,
                                                                             absl::Time from, absl::Time to) {
  if (!failure.ok()) return failure;
  std::vector<HistoryEvent> events;
  for (const HistoryEvent& e : NumberedHistory()) {
    if (e.at >= from && e.at < to && (!user || e.user_id == *user)) events.push_back(e);
  }
  std::sort(events.begin(), events.end(), [](const HistoryEvent& a, const HistoryEvent& b) {
    return std::tie(a.at, a.user_id, a.slug, a.id) < std::tie(b.at, b.user_id, b.slug, b.id);
  });
  return std::unique_ptr<domain::HistoryCursor>(new FakeCursor(std::move(events), open_cursors));
}

absl::StatusOr<std::vector<HistoryEvent>> FakeStore::UserHistory(const domain::UserHistoryQuery& query) {
  if (!failure.ok()) return failure;
  std::vector<HistoryEvent> events;
  for (const HistoryEvent& e : NumberedHistory()) {
    if (e.user_id != query.user || (query.slug && e.slug != *query.slug)) continue;
    if ((query.from && e.at < *query.from) || (query.to && e.at >= *query.to)) continue;
    if (query.after && std::tie(e.at, e.id) >= std::tie(query.after->at, query.after->id)) continue;
    events.push_back(e);
  }
  std::sort(events.begin(), events.end(),
            [](const HistoryEvent& a, const HistoryEvent& b) { return std::tie(a.at, a.id) > std::tie(b.at, b.id); });
  if (events.size() > static_cast<size_t>(query.limit)) events.resize(static_cast<size_t>(query.limit));
  return events;
}

absl::StatusOr<int64_t> FakeStore::EndExpiredMemberships(absl::Time now, int limit) {
  ++expiry_batches;
  if (!failure.ok()) return failure;
  std::vector<std::pair<absl::Time, std::pair<UserId, domain::SegmentId>>> due;
  for (const auto& [key, m] : state.memberships) {
    if (m.expires_at && *m.expires_at <= now) due.push_back({*m.expires_at, key});
  }
  std::sort(due.begin(), due.end());
  if (due.size() > static_cast<size_t>(limit)) due.resize(static_cast<size_t>(limit));
  for (const auto& [deadline, key] : due) {
    state.history.push_back({key.first, key.second, state.memberships[key].slug, Operation::kRemove, Reason::kTtl,
                             deadline});
    state.memberships.erase(key);
  }
  return static_cast<int64_t>(due.size());
}

}  // namespace segments::testing
