#include "domain/membership_changes.h"

#include <algorithm>

#include "common/status_macros.h"

namespace segments::domain {

void MembershipChanges::EndExpired(const std::vector<Membership>& current) {
  std::vector<HistoryEvent> ended;
  for (const Membership& m : current) {
    if (m.ActiveAt(now_)) continue;
    deleted_.push_back(m.segment_id);
    ended.push_back({user_, m.segment_id, m.slug, Operation::kRemove, Reason::kTtl, *m.expires_at});
    if (m.automatic) opted_out_by_ttl_.push_back(m.segment_id);
  }
  std::sort(ended.begin(), ended.end(), [](const HistoryEvent& a, const HistoryEvent& b) { return a.at < b.at; });
  events_.insert(events_.end(), ended.begin(), ended.end());
}

void MembershipChanges::RemoveByHand(const Segment& segment) {
  deleted_.push_back(segment.id);
  events_.push_back({user_, segment.id, segment.slug, Operation::kRemove, Reason::kManual, now_});
  opted_out_by_hand_.push_back(segment.id);
}

void MembershipChanges::Add(const Segment& segment, std::optional<absl::Time> expires_at, bool automatic) {
  inserted_.push_back({segment.id, expires_at, automatic});
  HistoryEvent event{
      user_, segment.id, segment.slug, Operation::kAdd, automatic ? Reason::kAutoPercent : Reason::kManual, now_};
  event.expires_at = expires_at;
  events_.push_back(std::move(event));
}

absl::Status MembershipChanges::Apply(Transaction& tx) { return ApplyAll(tx, {*this}); }

absl::Status MembershipChanges::ApplyAll(Transaction& tx, const std::vector<MembershipChanges>& changes) {
  std::vector<std::pair<UserId, SegmentId>> deleted;
  std::vector<OptOut> opted_out;
  std::vector<std::pair<UserId, NewMembership>> inserted;
  std::vector<HistoryEvent> events;
  for (const MembershipChanges& c : changes) {
    for (SegmentId id : c.deleted_) deleted.emplace_back(c.user_, id);
    for (SegmentId id : c.opted_out_by_hand_) opted_out.push_back({c.user_, id, Reason::kManual});
    for (SegmentId id : c.opted_out_by_ttl_) opted_out.push_back({c.user_, id, Reason::kTtl});
    for (const NewMembership& m : c.inserted_) inserted.emplace_back(c.user_, m);
    events.insert(events.end(), c.events_.begin(), c.events_.end());
  }
  // All changes of one batch share `now`: the callers make them together.
  if (!deleted.empty()) RETURN_IF_ERROR(tx.memberships().DeleteOfUsers(deleted));
  if (!opted_out.empty()) RETURN_IF_ERROR(tx.memberships().RecordOptOutsOfUsers(opted_out, changes.front().now_));
  if (!inserted.empty()) RETURN_IF_ERROR(tx.memberships().Insert(inserted, changes.front().now_));
  return tx.history().Append(events);
}

}  // namespace segments::domain
