#include "support/fake_store.h"

#include "domain/bucketing.h"

#include <algorithm>
#include <tuple>

namespace segments::testing {
namespace {

using namespace segments::domain;

class FakeTransaction final : public Transaction {
 public:
  FakeTransaction(FakeState& s, const absl::Status& failure, FakeStore& store)
      : s_(s), failure_(failure), store_(store) {}

  absl::Status LockAutoAssignment(AutoAssignmentLock mode) override {
    if (!failure_.ok()) return failure_;
    ++(mode == AutoAssignmentLock::kShared ? store_.shared_auto_locks : store_.exclusive_auto_locks);
    return absl::OkStatus();
  }

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
  absl::StatusOr<absl::flat_hash_map<UserId, UserState>> LockUsers(const std::vector<UserId>& users) override {
    if (!failure_.ok()) return failure_;
    absl::flat_hash_map<UserId, UserState> known;
    for (const UserId& user : users) {
      if (auto it = s_.users.find(user); it != s_.users.end()) known.emplace(user, it->second);
    }
    return known;
  }
  absl::Status InsertUsers(const std::vector<std::pair<UserId, UserState>>& users, absl::Time now) override {
    for (const auto& [user, state] : users) {
      if (absl::Status st = InsertUser(user, state, now); !st.ok()) return st;
    }
    return absl::OkStatus();
  }
  absl::Status SetUserStates(const std::vector<std::pair<UserId, UserState>>& users, absl::Time now) override {
    for (const auto& [user, state] : users) {
      if (absl::Status st = SetUserState(user, state, now); !st.ok()) return st;
    }
    return absl::OkStatus();
  }
  absl::Status DeleteUser(const UserId& user) override {
    if (!failure_.ok()) return failure_;
    for (const auto& [key, m] : s_.memberships) {
      if (key.first == user) return absl::FailedPreconditionError("memberships still refer to the user");
    }
    s_.users.erase(user);
    std::erase_if(s_.opt_outs, [&](const auto& entry) { return entry.first.second == user; });
    return absl::OkStatus();
  }
  absl::StatusOr<Segment> InsertSegment(const NewSegment& fresh, absl::Time now) override {
    if (!failure_.ok()) return failure_;
    if (FindLive(fresh.slug)) return absl::AlreadyExistsError("slug taken");
    Segment s{s_.next_segment_id++, fresh.slug, fresh.percent_hundredths, fresh.description,
              fresh.salt,           now,        fresh.auto_options};
    s.include_slugs = SlugsOf(s.auto_options.include_ids);
    s.exclude_slugs = SlugsOf(s.auto_options.exclude_ids);
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
  absl::StatusOr<std::vector<std::string>> SegmentsReferring(SegmentId id) override {
    if (!failure_.ok()) return failure_;
    std::vector<std::string> out;
    for (const auto& [other, s] : s_.segments) {
      const auto& o = s.auto_options;
      if (s_.deleted_segments.contains(other)) continue;
      if (std::count(o.include_ids.begin(), o.include_ids.end(), id) +
              std::count(o.exclude_ids.begin(), o.exclude_ids.end(), id) >
          0) {
        out.push_back(s.slug);
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  absl::StatusOr<std::vector<Segment>> AutoSegments() override {
    if (!failure_.ok()) return failure_;
    std::vector<Segment> out;
    for (const auto& [id, s] : s_.segments) {
      if (!s_.deleted_segments.contains(id) && s.percent_hundredths > 0) out.push_back(s);
    }
    return out;
  }
  absl::Status SetSegmentPercent(SegmentId id, int32_t percent) override {
    if (!failure_.ok()) return failure_;
    s_.segments.at(id).percent_hundredths = percent;
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> AssignByPercent(const Segment& segment, int32_t from, absl::Time now) override {
    if (!failure_.ok()) return failure_;
    int64_t added = 0;
    auto active_in = [&](const UserId& user, SegmentId id) {
      auto it = s_.memberships.find({user, id});
      return it != s_.memberships.end() && it->second.ActiveAt(now);
    };
    const AutoOptions& o = segment.auto_options;
    // Expired rows in the way end first (an automatic one opts its user out).
    auto ended = EndWhere(
        [&](const UserId& user, SegmentId id) {
          return id == segment.id && s_.users.at(user) == UserState::kActive &&
                 !s_.memberships.at({user, id}).ActiveAt(now) && Bucket(segment.salt, user) >= from &&
                 InPercent(Bucket(segment.salt, user), segment.percent_hundredths);
        },
        Reason::kAutoPercent, now);
    if (!ended.ok()) return ended.status();
    for (const auto& [user, state] : s_.users) {
      const int32_t bucket = Bucket(segment.salt, user);
      if (state != UserState::kActive || bucket < from || !InPercent(bucket, segment.percent_hundredths)) continue;
      if (s_.memberships.contains({user, segment.id}) || s_.opt_outs.contains({segment.id, user})) continue;
      if (!std::all_of(o.include_ids.begin(), o.include_ids.end(), [&](SegmentId id) { return active_in(user, id); }) ||
          std::any_of(o.exclude_ids.begin(), o.exclude_ids.end(), [&](SegmentId id) { return active_in(user, id); })) {
        continue;
      }
      std::optional<absl::Time> expires_at;
      if (o.ttl_seconds) expires_at = now + absl::Seconds(*o.ttl_seconds);
      s_.memberships[{user, segment.id}] = Membership{segment.id, segment.slug, now, expires_at, true};
      s_.history.push_back({user, segment.id, segment.slug, Operation::kAdd, Reason::kAutoPercent, now});
      ++added;
    }
    return added;
  }
  absl::StatusOr<int64_t> UnassignByPercent(const Segment& segment, int32_t from, absl::Time now) override {
    return EndWhere(
        [&](const UserId& user, SegmentId id) {
          if (id != segment.id || !s_.memberships.at({user, id}).automatic) return false;
          const int32_t bucket = Bucket(segment.salt, user);
          return bucket >= segment.percent_hundredths && bucket < from;
        },
        Reason::kAutoPercent, now);
  }
  absl::StatusOr<std::vector<SegmentId>> OptedOutSegments(const UserId& user) override {
    if (!failure_.ok()) return failure_;
    std::vector<SegmentId> out;
    for (const auto& [key, reason] : s_.opt_outs) {
      if (key.second == user) out.push_back(key.first);
    }
    return out;
  }
  absl::Status RecordOptOuts(const UserId& user, const std::vector<SegmentId>& segments, Reason reason,
                             absl::Time) override {
    if (!failure_.ok()) return failure_;
    for (SegmentId id : segments) s_.opt_outs.emplace(std::pair(id, user), reason);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<UserId>> UnknownUsers(const std::vector<UserId>& users) override {
    if (!failure_.ok()) return failure_;
    std::vector<UserId> out;
    for (const UserId& user : users) {
      if (!s_.users.contains(user)) out.push_back(user);
    }
    return out;
  }
  absl::StatusOr<int64_t> AddMembers(const Segment& segment, const std::vector<UserId>& users,
                                     std::optional<absl::Time> expires_at, absl::Time now) override {
    if (!failure_.ok()) return failure_;
    const std::set<UserId> wanted(users.begin(), users.end());
    auto ended = EndWhere(
        [&](const UserId& user, SegmentId id) {
          return id == segment.id && wanted.contains(user) && !s_.memberships.at({user, id}).ActiveAt(now);
        },
        Reason::kManual, now);
    if (!ended.ok()) return ended.status();
    int64_t added = 0;
    for (const UserId& user : users) {
      if (!s_.memberships.emplace(std::pair(user, segment.id), Membership{segment.id, segment.slug, now, expires_at})
               .second) {
        continue;
      }
      s_.history.push_back({user, segment.id, segment.slug, Operation::kAdd, Reason::kManual, now});
      ++added;
    }
    return added;
  }
  absl::StatusOr<int64_t> RemoveMembers(const Segment& segment, const std::vector<UserId>& users,
                                        absl::Time now) override {
    const std::set<UserId> wanted(users.begin(), users.end());
    for (const UserId& user : users) {
      auto it = s_.memberships.find({user, segment.id});
      if (it != s_.memberships.end() && (it->second.ActiveAt(now) || it->second.automatic)) {
        s_.opt_outs.emplace(std::pair(segment.id, user), it->second.ActiveAt(now) ? Reason::kManual : Reason::kTtl);
      }
    }
    return EndWhere([&](const UserId& user, SegmentId id) { return id == segment.id && wanted.contains(user); },
                    Reason::kManual, now);
  }

  absl::StatusOr<std::vector<Membership>> UserMemberships(const UserId& user) override {
    if (!failure_.ok()) return failure_;
    std::vector<Membership> out;
    for (const auto& [key, m] : s_.memberships) {
      if (key.first == user) out.push_back(m);
    }
    return out;
  }
  absl::Status InsertMembershipsOfUsers(const std::vector<std::pair<UserId, NewMembership>>& rows,
                                        absl::Time now) override {
    if (!failure_.ok()) return failure_;
    for (const auto& [user, m] : rows) {
      auto [it, inserted] = s_.memberships.emplace(
          std::pair(user, m.segment_id),
          Membership{m.segment_id, s_.segments.at(m.segment_id).slug, now, m.expires_at, m.automatic});
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
  std::vector<std::string> SlugsOf(const std::vector<SegmentId>& ids) const {
    std::vector<std::string> slugs;
    for (SegmentId id : ids) slugs.push_back(s_.segments.at(id).slug);
    std::sort(slugs.begin(), slugs.end());
    return slugs;
  }

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
      // An automatic membership ended by TTL is over for good, except when
      // the whole user or segment goes.
      if (expired && m.automatic && reason != Reason::kUserDeleted && reason != Reason::kSegmentDeleted) {
        s_.opt_outs.emplace(std::pair(segment_id, user), Reason::kTtl);
      }
      s_.history.push_back({user, segment_id, m.slug, Operation::kRemove, expired ? Reason::kTtl : reason,
                            expired ? *m.expires_at : now});
      it = s_.memberships.erase(it);
      if (!expired) ++ended;  // expired ones ended earlier, at their deadline
    }
    return ended;
  }

  FakeState& s_;
  const absl::Status& failure_;
  FakeStore& store_;
};

}  // namespace

absl::Status FakeStore::InTransaction(absl::FunctionRef<absl::Status(Transaction&)> work) {
  ++transactions;
  FakeState copy = state;
  FakeTransaction tx(copy, failure, *this);
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

absl::StatusOr<std::optional<Segment>> FakeStore::LookupSegment(const std::string& slug) {
  auto found = FindSegment(slug, absl::UnixEpoch());
  if (!found.ok()) return found.status();
  if (!*found) return std::nullopt;
  return (*found)->first;
}

absl::StatusOr<std::vector<Segment>> FakeStore::ListSegments(const std::string& after_slug, int limit) {
  if (!failure.ok()) return failure;
  std::vector<Segment> out;
  for (const auto& [id, segment] : state.segments) {
    if (!state.deleted_segments.contains(id) && segment.slug > after_slug) out.push_back(segment);
  }
  std::sort(out.begin(), out.end(), [](const Segment& a, const Segment& b) { return a.slug < b.slug; });
  if (out.size() > static_cast<size_t>(limit)) out.resize(static_cast<size_t>(limit));
  return out;
}

absl::StatusOr<std::vector<domain::SegmentMember>> FakeStore::SegmentMembers(SegmentId segment,
                                                                             const UserId& after_user, int limit,
                                                                             absl::Time now) {
  if (!failure.ok()) return failure;
  std::vector<domain::SegmentMember> out;  // the map is ordered by user id
  for (const auto& [key, m] : state.memberships) {
    if (key.second != segment || key.first <= after_user || !m.ActiveAt(now)) continue;
    out.push_back({key.first, m.added_at, m.expires_at, m.automatic});
    if (out.size() == static_cast<size_t>(limit)) break;
  }
  return out;
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
    if (state.memberships[key].automatic) state.opt_outs.emplace(std::pair(key.second, key.first), Reason::kTtl);
    state.history.push_back(
        {key.first, key.second, state.memberships[key].slug, Operation::kRemove, Reason::kTtl, deadline});
    state.memberships.erase(key);
  }
  return static_cast<int64_t>(due.size());
}

}  // namespace segments::testing
