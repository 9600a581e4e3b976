#include "support/fake_membership_repository.h"

#include <algorithm>
#include <set>

#include "common/status_macros.h"
#include "domain/bucketing.h"

namespace segments::testing {

using namespace segments::domain;

absl::Status FakeMembershipRepository::LockAutoAssignment(AutoAssignmentLock mode) {
  RETURN_IF_ERROR(controls_.failure);
  ++(mode == AutoAssignmentLock::kShared ? controls_.shared_auto_locks : controls_.exclusive_auto_locks);
  return absl::OkStatus();
}

absl::StatusOr<UserSegmentsProblems> FakeMembershipRepository::ChangeUserSegments(const UserSegmentsChange& change) {
  RETURN_IF_ERROR(controls_.failure);
  UserSegmentsProblems problems;
  if (!s_.users.contains(change.user)) {
    problems.no_user = true;
    return problems;
  }
  auto membership = [&](const Segment& segment) -> Membership* {
    auto it = s_.memberships.find({change.user, segment.id});
    return it == s_.memberships.end() ? nullptr : &it->second;
  };
  for (size_t i = 0; i < change.adds.size(); ++i) {
    const Segment* segment = s_.FindLive(change.adds[i].slug);
    if (segment == nullptr) {
      problems.missing_adds.push_back(i);
    } else if (const Membership* m = membership(*segment); m != nullptr && m->ActiveAt(change.now)) {
      problems.already_in.push_back(i);
    }
  }
  for (size_t i = 0; i < change.removes.size(); ++i) {
    if (s_.FindLive(change.removes[i]) == nullptr) problems.missing_removes.push_back(i);
  }
  if (!problems.empty()) return problems;

  // As the database does: expired memberships of the named segments end at
  // their deadlines, then the removals, then the additions.
  std::vector<const Segment*> named;
  for (const auto& add : change.adds) named.push_back(s_.FindLive(add.slug));
  for (const auto& slug : change.removes) named.push_back(s_.FindLive(slug));
  controls_.shared_segment_locks += static_cast<int>(named.size());
  std::vector<HistoryEvent> expired;
  for (const Segment* segment : named) {
    const Membership* m = membership(*segment);
    if (m == nullptr || m->ActiveAt(change.now)) continue;
    expired.push_back({change.user, segment->id, segment->slug, Operation::kRemove, Reason::kTtl, *m->expires_at});
    if (m->automatic) s_.opt_outs.emplace(std::pair(segment->id, change.user), Reason::kTtl);
    s_.memberships.erase({change.user, segment->id});
  }
  std::stable_sort(expired.begin(), expired.end(),
                   [](const HistoryEvent& a, const HistoryEvent& b) { return a.at < b.at; });
  s_.history.insert(s_.history.end(), expired.begin(), expired.end());
  for (const auto& slug : change.removes) {
    const Segment& segment = *s_.FindLive(slug);
    if (s_.memberships.erase({change.user, segment.id}) == 0) continue;
    s_.opt_outs.emplace(std::pair(segment.id, change.user), Reason::kManual);
    s_.history.push_back({change.user, segment.id, segment.slug, Operation::kRemove, Reason::kManual, change.now});
  }
  for (const auto& add : change.adds) {
    const Segment& segment = *s_.FindLive(add.slug);
    s_.memberships.emplace(std::pair(change.user, segment.id),
                           Membership{segment.id, segment.slug, change.now, add.expires_at, false});
    s_.history.push_back({change.user, segment.id, segment.slug, Operation::kAdd, Reason::kManual, change.now});
  }
  return problems;
}

absl::Status FakeMembershipRepository::Insert(const std::vector<std::pair<UserId, NewMembership>>& rows,
                                              absl::Time now) {
  RETURN_IF_ERROR(controls_.failure);
  for (const auto& [user, m] : rows) {
    auto [it, inserted] = s_.memberships.emplace(
        std::pair(user, m.segment_id),
        Membership{m.segment_id, s_.segments.at(m.segment_id).slug, now, m.expires_at, m.automatic});
    if (!inserted) return absl::AlreadyExistsError("membership exists");
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> FakeMembershipRepository::EndAllOfSegment(const Segment& segment, const UserRange& users,
                                                                  Reason reason, absl::Time now) {
  return EndWhere([&](const UserId& user, SegmentId id) { return id == segment.id && users.Contains(user); }, reason,
                  now);
}

absl::StatusOr<int64_t> FakeMembershipRepository::EndAllOfUser(const UserId& user, Reason reason, absl::Time now) {
  return EndWhere([&](const UserId& u, SegmentId) { return u == user; }, reason, now);
}

absl::StatusOr<int64_t> FakeMembershipRepository::AddMembers(const Segment& segment, const std::vector<UserId>& users,
                                                             std::optional<absl::Time> expires_at, absl::Time now) {
  RETURN_IF_ERROR(controls_.failure);
  const std::set<UserId> wanted(users.begin(), users.end());
  RETURN_IF_ERROR(EndWhere(
      [&](const UserId& user, SegmentId id) {
        return id == segment.id && wanted.contains(user) && !s_.memberships.at({user, id}).ActiveAt(now);
      },
      Reason::kManual, now));
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

absl::StatusOr<int64_t> FakeMembershipRepository::RemoveMembers(const Segment& segment,
                                                                const std::vector<UserId>& users, absl::Time now) {
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

absl::StatusOr<int64_t> FakeMembershipRepository::AssignByPercent(const Segment& segment, const UserRange& users,
                                                                  int32_t from, absl::Time now) {
  RETURN_IF_ERROR(controls_.failure);
  int64_t added = 0;
  auto active_in = [&](const UserId& user, SegmentId id) {
    auto it = s_.memberships.find({user, id});
    return it != s_.memberships.end() && it->second.ActiveAt(now);
  };
  const AutoOptions& o = segment.auto_options;
  // Expired rows in the way end first (an automatic one opts its user out).
  RETURN_IF_ERROR(EndWhere(
      [&](const UserId& user, SegmentId id) {
        return id == segment.id && users.Contains(user) && s_.users.at(user) == UserState::kActive &&
               !s_.memberships.at({user, id}).ActiveAt(now) && Bucket(segment.salt, user) >= from &&
               InPercent(Bucket(segment.salt, user), segment.percent_hundredths);
      },
      Reason::kAutoPercent, now));
  for (const auto& [user, state] : s_.users) {
    const int32_t bucket = Bucket(segment.salt, user);
    if (state != UserState::kActive || !users.Contains(user) || bucket < from ||
        !InPercent(bucket, segment.percent_hundredths)) {
      continue;
    }
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

absl::StatusOr<int64_t> FakeMembershipRepository::UnassignByPercent(const Segment& segment, const UserRange& users,
                                                                    int32_t from, absl::Time now) {
  return EndWhere(
      [&](const UserId& user, SegmentId id) {
        if (id != segment.id || !users.Contains(user) || !s_.memberships.at({user, id}).automatic) return false;
        const int32_t bucket = Bucket(segment.salt, user);
        return bucket >= segment.percent_hundredths && bucket < from;
      },
      Reason::kAutoPercent, now);
}

std::set<UserId> FakeMembershipRepository::TaskUsers(const SegmentTask& task) const {
  std::set<UserId> candidates;
  if (task.kind == SegmentTaskKind::kAssign) {
    for (const auto& [user, state] : s_.users) candidates.insert(user);
  } else {
    for (const auto& [key, m] : s_.memberships) {
      if (key.second == task.segment_id && (task.kind == SegmentTaskKind::kDelete || m.automatic)) {
        candidates.insert(key.first);
      }
    }
  }
  return candidates;
}

absl::StatusOr<std::optional<std::string>> FakeMembershipRepository::LastTaskUser(const SegmentTask& task) {
  RETURN_IF_ERROR(controls_.failure);
  const std::set<UserId> candidates = TaskUsers(task);
  if (candidates.empty()) return std::nullopt;
  return candidates.rbegin()->ToString();
}

absl::StatusOr<std::optional<std::string>> FakeMembershipRepository::ChunkEnd(const SegmentTask& task, int size) {
  RETURN_IF_ERROR(controls_.failure);
  if (!task.last_user) return std::nullopt;
  std::optional<std::string> last;
  int taken = 0;
  for (const UserId& user : TaskUsers(task)) {
    const std::string id = user.ToString();
    if (taken == size || id > *task.last_user) break;
    if (id <= task.after_user) continue;
    last = id;
    ++taken;
  }
  return last;
}

absl::StatusOr<std::optional<absl::Time>> FakeMembershipRepository::EarliestDeadline() {
  RETURN_IF_ERROR(controls_.failure);
  std::optional<absl::Time> earliest;
  for (const auto& [key, m] : s_.memberships) {
    if (m.expires_at && (!earliest || *m.expires_at < *earliest)) earliest = m.expires_at;
  }
  return earliest;
}

absl::StatusOr<int64_t> FakeMembershipRepository::EndExpired(absl::Time now, int limit) {
  ++controls_.expiry_batches;
  if (controls_.on_end_expired) controls_.on_end_expired(now, limit);
  RETURN_IF_ERROR(controls_.failure);
  std::vector<std::pair<absl::Time, std::pair<UserId, SegmentId>>> due;
  for (const auto& [key, m] : s_.memberships) {
    if (m.expires_at && *m.expires_at <= now) due.push_back({*m.expires_at, key});
  }
  std::sort(due.begin(), due.end());
  if (due.size() > static_cast<size_t>(limit)) due.erase(due.begin() + limit, due.end());
  for (const auto& [deadline, key] : due) {
    if (s_.memberships.at(key).automatic) s_.opt_outs.emplace(std::pair(key.second, key.first), Reason::kTtl);
    s_.history.push_back(
        {key.first, key.second, s_.memberships.at(key).slug, Operation::kRemove, Reason::kTtl, deadline});
    s_.memberships.erase(key);
  }
  return static_cast<int64_t>(due.size());
}

absl::StatusOr<absl::flat_hash_map<UserId, std::vector<Membership>>> FakeMembershipRepository::OfUsers(
    const std::vector<UserId>& users) {
  absl::flat_hash_map<UserId, std::vector<Membership>> out;
  if (users.empty()) return out;
  RETURN_IF_ERROR(controls_.failure);
  ++controls_.user_membership_reads;
  const std::set<UserId> wanted(users.begin(), users.end());
  for (const auto& [key, m] : s_.memberships) {
    if (wanted.contains(key.first)) out[key.first].push_back(m);
  }
  return out;
}

absl::StatusOr<absl::flat_hash_map<UserId, std::vector<SegmentId>>> FakeMembershipRepository::OptedOutSegmentsOfUsers(
    const std::vector<UserId>& users) {
  absl::flat_hash_map<UserId, std::vector<SegmentId>> out;
  if (users.empty()) return out;
  RETURN_IF_ERROR(controls_.failure);
  ++controls_.user_membership_reads;
  const std::set<UserId> wanted(users.begin(), users.end());
  for (const auto& [key, reason] : s_.opt_outs) {
    if (wanted.contains(key.second)) out[key.second].push_back(key.first);
  }
  return out;
}

absl::Status FakeMembershipRepository::DeleteOfUsers(const std::vector<std::pair<UserId, SegmentId>>& rows) {
  if (rows.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(controls_.failure);
  for (const auto& [user, id] : rows) s_.memberships.erase({user, id});
  return absl::OkStatus();
}

absl::Status FakeMembershipRepository::RecordOptOutsOfUsers(const std::vector<OptOut>& opt_outs, absl::Time) {
  if (opt_outs.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(controls_.failure);
  for (const OptOut& o : opt_outs) s_.opt_outs.emplace(std::pair(o.segment_id, o.user), o.reason);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> FakeMembershipRepository::EndAllOfUsers(const std::vector<UserId>& users, Reason reason,
                                                                absl::Time now) {
  const std::set<UserId> wanted(users.begin(), users.end());
  return EndWhere([&](const UserId& user, SegmentId) { return wanted.contains(user); }, reason, now);
}

absl::StatusOr<int64_t> FakeMembershipRepository::EndWhere(const std::function<bool(const UserId&, SegmentId)>& matches,
                                                           Reason reason, absl::Time now) {
  RETURN_IF_ERROR(controls_.failure);
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
    s_.history.push_back(
        {user, segment_id, m.slug, Operation::kRemove, expired ? Reason::kTtl : reason, expired ? *m.expires_at : now});
    it = s_.memberships.erase(it);
    if (!expired) ++ended;  // expired ones ended earlier, at their deadline
  }
  return ended;
}

absl::StatusOr<std::vector<std::string>> FakeMembershipQueries::ActiveSegmentSlugs(const UserId& user, absl::Time now) {
  RETURN_IF_ERROR(controls_.failure);
  std::vector<std::string> out;
  for (const auto& [key, m] : s_.memberships) {
    if (key.first == user && m.ActiveAt(now) && !s_.deleted_segments.contains(key.second)) out.push_back(m.slug);
  }
  return out;
}

absl::StatusOr<std::vector<SegmentMember>> FakeMembershipQueries::Members(SegmentId segment,
                                                                          const std::optional<UserId>& after_user,
                                                                          int limit, absl::Time now) {
  RETURN_IF_ERROR(controls_.failure);
  std::vector<SegmentMember> out;  // the map is ordered by user id
  for (const auto& [key, m] : s_.memberships) {
    if (key.second != segment || (after_user && key.first <= *after_user) || !m.ActiveAt(now)) continue;
    out.push_back({key.first, m.added_at, m.expires_at, m.automatic});
    if (out.size() == static_cast<size_t>(limit)) break;
  }
  return out;
}

}  // namespace segments::testing
