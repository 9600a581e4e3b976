#include "domain/auto_assignment.h"

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include <vector>

#include "common/status_macros.h"
#include "domain/bucketing.h"
#include "domain/membership_changes.h"

namespace segments::domain {

namespace {

// Collects into `changes` the automatic memberships `segments` (in creation
// order) give a user with these memberships and opt-outs. Returns how many.
int PlanAssignment(const std::vector<Segment>& segments, const std::vector<Membership>& current,
                   const std::vector<SegmentId>& opted_out, const UserId& user, absl::Time now,
                   MembershipChanges& changes) {
  absl::flat_hash_set<SegmentId> member_of;  // active memberships, growing below
  absl::flat_hash_set<SegmentId> skip(opted_out.begin(), opted_out.end());
  for (const Membership& m : current) {
    if (m.ActiveAt(now)) {
      member_of.insert(m.segment_id);
    } else if (m.automatic) {
      skip.insert(m.segment_id);  // expired automatic membership: opted out below
    }
  }
  auto passes_options = [&](const AutoOptions& options) {
    for (SegmentId id : options.include_ids) {
      if (!member_of.contains(id)) return false;
    }
    for (SegmentId id : options.exclude_ids) {
      if (member_of.contains(id)) return false;
    }
    return true;
  };

  changes.EndExpired(current);  // an expired row would stand in the way of a new one
  int added = 0;
  for (const Segment& segment : segments) {
    if (member_of.contains(segment.id) || skip.contains(segment.id)) continue;
    if (!InPercent(Bucket(segment.salt, user), segment.percent_hundredths)) continue;
    if (!passes_options(segment.auto_options)) continue;
    std::optional<absl::Time> expires_at;
    if (segment.auto_options.ttl_seconds) expires_at = now + absl::Seconds(*segment.auto_options.ttl_seconds);
    changes.Add(segment, expires_at, /*automatic=*/true);
    member_of.insert(segment.id);
    ++added;
  }
  return added;
}

}  // namespace

absl::StatusOr<int> AssignUserAutomatically(Transaction& tx, const UserId& user, absl::Time now) {
  return AssignUsersAutomatically(tx, {}, {user}, now);
}

absl::StatusOr<int> AssignUsersAutomatically(Transaction& tx, const std::vector<UserId>& created,
                                             const std::vector<UserId>& returning, absl::Time now) {
  if (created.empty() && returning.empty()) return 0;
  ASSIGN_OR_RETURN(std::vector<Segment> segments, tx.segments().Automatic());
  if (segments.empty()) return 0;
  absl::flat_hash_map<UserId, std::vector<Membership>> current;
  absl::flat_hash_map<UserId, std::vector<SegmentId>> opted_out;
  if (!returning.empty()) {
    ASSIGN_OR_RETURN(current, tx.memberships().OfUsers(returning));
    ASSIGN_OR_RETURN(opted_out, tx.memberships().OptedOutSegmentsOfUsers(returning));
  }

  std::vector<MembershipChanges> changes;
  changes.reserve(created.size() + returning.size());
  int added = 0;
  for (const UserId& user : created) {
    added += PlanAssignment(segments, {}, {}, user, now, changes.emplace_back(user, now));
  }
  const std::vector<Membership> no_memberships;
  const std::vector<SegmentId> no_opt_outs;
  for (const UserId& user : returning) {
    auto m = current.find(user);
    auto o = opted_out.find(user);
    added += PlanAssignment(segments, m == current.end() ? no_memberships : m->second,
                            o == opted_out.end() ? no_opt_outs : o->second, user, now, changes.emplace_back(user, now));
  }
  RETURN_IF_ERROR(MembershipChanges::ApplyAll(tx, changes));
  return added;
}

}  // namespace segments::domain
