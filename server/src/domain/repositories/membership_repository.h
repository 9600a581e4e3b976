// Memberships of users in segments, with the opt-outs of automatic
// assignment and automatic assignment itself: changes inside a transaction
// (MembershipRepository) and reads on their own (MembershipQueries).
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "domain/model.h"

namespace segments::domain {

// The automatic-assignment lock orders set-based assignment against the
// evaluation of single users. Each chunk of a fill or percentage change
// (domain/segment_tasks.h) holds it exclusively, so it sees every user
// committed before it; every transaction that creates, reactivates or
// deletes a user holds it shared, so a user's evaluation and a chunk never
// overlap. Publishing a segment's deletion holds it exclusively too, so no
// user's evaluation still adds to a segment once it is deleted. Taken first in a transaction, before any other
// lock. Hand changes and bulk calls do not take it: they hold the segments
// they name (SegmentRepository::LockLive), which fills, percentage changes
// and deletions hold exclusively. (Memberships have no foreign keys; these
// locks and the row locks of the repositories keep them pointing at
// existing users and live segments: db/schema.sql.)
enum class AutoAssignmentLock { kShared, kExclusive };

// A change of one user's memberships by hand, checked for shape: no slug
// twice, none both added and removed.
struct UserSegmentsChange {
  struct Add {
    std::string slug;
    std::optional<absl::Time> expires_at;
  };
  UserId user;
  std::vector<Add> adds;
  std::vector<std::string> removes;
  absl::Time now;
};

// What stood in the way of a UserSegmentsChange; nothing changed unless it
// is empty. Positions index the change's lists.
struct UserSegmentsProblems {
  bool no_user = false;
  std::vector<size_t> missing_adds;     // no live segment has the slug
  std::vector<size_t> missing_removes;  // no live segment has the slug
  std::vector<size_t> already_in;       // the user is in the segment already

  bool empty() const { return !no_user && missing_adds.empty() && missing_removes.empty() && already_in.empty(); }
};

// A user automatic assignment must skip in a segment, and why (kManual or
// kTtl, as MembershipRepository::RecordOptOutsOfUsers).
struct OptOut {
  UserId user;
  SegmentId segment_id = 0;
  Reason reason = Reason::kManual;
};

class MembershipRepository {
 public:
  virtual ~MembershipRepository() = default;

  virtual absl::Status LockAutoAssignment(AutoAssignmentLock mode) = 0;

  // --- one user
  // Applies a hand change, all or nothing, if nothing stands in the way
  // (then the result is empty; otherwise nothing changed). Takes no
  // automatic-assignment lock: it holds the user and the named segments
  // against concurrent changes. Memberships of the named segments that have
  // expired end first, at their deadlines (reason ttl; an automatic one opts
  // the user out); removals write reason manual and an opt-out each;
  // additions reason manual. A single repository call: it may run as a
  // transaction of its own (Store::InSingleCall).
  virtual absl::StatusOr<UserSegmentsProblems> ChangeUserSegments(const UserSegmentsChange& change) = 0;

  // --- set-based changes, for sizes the client should not load. Each writes
  // its own history in the same statement. A row already expired at `now`
  // ends as reason kTtl at its deadline (it ended then); counts leave those
  // out.

  // Ends every membership of the segment (of its `users`), or of the user,
  // with `reason` at `now`. Returns how many ended at `now`.
  virtual absl::StatusOr<int64_t> EndAllOfSegment(const Segment& segment, const UserRange& users, Reason reason,
                                                  absl::Time now) = 0;
  virtual absl::StatusOr<int64_t> EndAllOfUser(const UserId& user, Reason reason, absl::Time now) = 0;
  // Puts every one of `users` (all known) not yet in `segment` in it by hand,
  // each with an `add` event of reason manual; expired rows in the way end
  // first. Returns how many were added.
  virtual absl::StatusOr<int64_t> AddMembers(const Segment& segment, const std::vector<UserId>& users,
                                             std::optional<absl::Time> expires_at, absl::Time now) = 0;
  // Takes every one of `users` in `segment` out of it by hand: a `remove`
  // event of reason manual and an opt-out each. Returns how many left at `now`.
  virtual absl::StatusOr<int64_t> RemoveMembers(const Segment& segment, const std::vector<UserId>& users,
                                                absl::Time now) = 0;
  // Automatic assignment (domain/bucketing.h): every user of `users` whose bucket for
  // the segment's salt is in [from_hundredths, its percentage), who is
  // active, passes its include and exclude options at `now`, is not in it
  // and has not opted out, becomes an automatic member at `now` (expiring
  // after the options' TTL), each with an `add` event of reason
  // auto_percent. Returns how many were added.
  virtual absl::StatusOr<int64_t> AssignByPercent(const Segment& segment, const UserRange& users,
                                                  int32_t from_hundredths, absl::Time now) = 0;
  // The reverse, for a lowered percentage: every automatic member of `users` whose
  // bucket is in [its percentage, from_hundredths) leaves, with a `remove`
  // event of reason auto_percent. Returns how many left at `now`.
  virtual absl::StatusOr<int64_t> UnassignByPercent(const Segment& segment, const UserRange& users,
                                                    int32_t from_hundredths, absl::Time now) = 0;
  // The last (highest id) of the users `task` looks at: every user for
  // kAssign, the segment's automatic members for kUnassign, its members for
  // kDelete; nullopt if there are none.
  virtual absl::StatusOr<std::optional<std::string>> LastTaskUser(const SegmentTask& task) = 0;
  // The end of the next chunk of `task`: the id of the last of the next
  // `size` of those users after task.after_user and up to task.last_user;
  // nullopt when none is left.
  virtual absl::StatusOr<std::optional<std::string>> ChunkEnd(const SegmentTask& task, int size) = 0;

  // TTL expiry: ends up to `limit` memberships whose deadline is at or
  // before `now`, each with a `remove` event of reason ttl stamped at its
  // deadline (an automatic one opts its user out). Rows another transaction
  // holds are skipped, not waited for, so any number of instances can run
  // this at once without writing an event twice. Returns how many ended.
  virtual absl::StatusOr<int64_t> EndExpired(absl::Time now, int limit) = 0;
  // The earliest deadline of any membership (due or not), or nullopt when
  // none has one: how far behind the expiry job is.
  virtual absl::StatusOr<std::optional<absl::Time>> EarliestDeadline() = 0;

  // --- many users at once, for batches of user events: each one statement
  // for the whole batch. All but EndAllOfUsers leave history to the caller.
  // Every membership row of each of `users`, expired ones included, by user
  // (a user without any is absent), locked so that the expiry job skips
  // them until the transaction ends.
  virtual absl::StatusOr<absl::flat_hash_map<UserId, std::vector<Membership>>> OfUsers(
      const std::vector<UserId>& users) = 0;
  // Inserts these (user, membership) rows, added at `now`.
  virtual absl::Status Insert(const std::vector<std::pair<UserId, NewMembership>>& rows, absl::Time now) = 0;
  // Deletes these (user, segment) rows.
  virtual absl::Status DeleteOfUsers(const std::vector<std::pair<UserId, SegmentId>>& rows) = 0;
  // Opt-outs: the segments automatic assignment never (re)adds each of
  // `users` to, by user (a user without any is absent).
  virtual absl::StatusOr<absl::flat_hash_map<UserId, std::vector<SegmentId>>> OptedOutSegmentsOfUsers(
      const std::vector<UserId>& users) = 0;
  // Records these opt-outs at `now`; one already recorded stays as it was.
  virtual absl::Status RecordOptOutsOfUsers(const std::vector<OptOut>& opt_outs, absl::Time now) = 0;
  // EndAllOfUser for each of `users`. Returns how many ended at `now`.
  virtual absl::StatusOr<int64_t> EndAllOfUsers(const std::vector<UserId>& users, Reason reason, absl::Time now) = 0;
};

// The reads of memberships outside a transaction: the hot read of the
// service and member listing. The seam for a read model kept in memory.
class MembershipQueries {
 public:
  virtual ~MembershipQueries() = default;

  // Slugs of live segments the user is in at `now` (memberships expiring
  // after `now` or never), in any order.
  virtual absl::StatusOr<std::vector<std::string>> ActiveSegmentSlugs(const UserId& user, absl::Time now) = 0;
  // The same answer when it can be given at once, without I/O (a read
  // model in memory); nullopt when it would take a trip to the database.
  // Never blocks, so a caller may answer on the thread that got the request.
  virtual std::optional<std::vector<std::string>> ActiveSegmentSlugsAtOnce(const UserId& /*user*/, absl::Time /*now*/) {
    return std::nullopt;
  }
  // Members of `segment` active at `now` with user ids above `after_user`
  // (from the first if nullopt), by user id.
  virtual absl::StatusOr<std::vector<SegmentMember>> Members(SegmentId segment, const std::optional<UserId>& after_user,
                                                             int limit, absl::Time now) = 0;
};

}  // namespace segments::domain
