// What the domain needs from persistence. Implemented by storage::PgStore and,
// in tests, by an in-memory fake. Methods report storage failures as
// absl::Status: UNAVAILABLE (database down), ABORTED (conflict; the store
// retries those itself), INTERNAL (anything else).
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/functional/function_ref.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "domain/model.h"

namespace segments::domain {

// The automatic-assignment lock orders set-based assignment against changes
// of single users. Statements that assign many users at once (a segment
// created with a percentage, a percentage changed) hold it exclusively, so
// they see every user committed before them; every transaction that creates,
// reactivates or deletes a user, or changes memberships by hand, holds it
// shared, so it waits for such a statement and then sees its segment.
// Deleting a segment holds it exclusively too, so no user's evaluation adds
// to a segment being deleted. Taken first in a transaction, before any other
// lock. (Memberships have no foreign keys; this lock and the row locks below
// keep them pointing at existing users and live segments: db/schema.sql.)
enum class AutoAssignmentLock { kShared, kExclusive };

// Everything done through one Transaction commits together or not at all.
class Transaction {
 public:
  virtual ~Transaction() = default;

  virtual absl::Status LockAutoAssignment(AutoAssignmentLock mode) = 0;

  // --- users
  // The user's state, locking the user against concurrent changes until the
  // transaction ends; nullopt if unknown.
  virtual absl::StatusOr<std::optional<UserState>> LockUser(const UserId& user) = 0;
  // ALREADY_EXISTS if the user is known.
  virtual absl::Status InsertUser(const UserId& user, UserState state, absl::Time now) = 0;
  virtual absl::Status SetUserState(const UserId& user, UserState state, absl::Time now) = 0;
  // Deletes the user row and its opt-outs; its memberships must have been
  // ended before.
  virtual absl::Status DeleteUser(const UserId& user) = 0;
  // Many users at once, for batches of user events: the known ones among
  // `users` with their states, locked as LockUser does (in id order);
  // inserting users that must all be new (ALREADY_EXISTS otherwise); and
  // setting the states of known users.
  virtual absl::StatusOr<absl::flat_hash_map<UserId, UserState>> LockUsers(const std::vector<UserId>& users) = 0;
  virtual absl::Status InsertUsers(const std::vector<std::pair<UserId, UserState>>& users, absl::Time now) = 0;
  virtual absl::Status SetUserStates(const std::vector<std::pair<UserId, UserState>>& users, absl::Time now) = 0;

  // --- segments
  // ALREADY_EXISTS if a live segment has the slug.
  virtual absl::StatusOr<Segment> InsertSegment(const NewSegment& segment, absl::Time now) = 0;
  // Marks the live segment with `slug` deleted; nullopt if there is none.
  virtual absl::StatusOr<std::optional<Segment>> MarkSegmentDeleted(const std::string& slug, absl::Time now) = 0;
  // The live segments among `slugs` (any order), protected against
  // concurrent deletion until the transaction ends.
  virtual absl::StatusOr<std::vector<Segment>> LockLiveSegments(const std::vector<std::string>& slugs) = 0;
  // Live segments naming `segment` in their include or exclude options.
  virtual absl::StatusOr<std::vector<std::string>> SegmentsReferring(SegmentId segment) = 0;
  // Live segments with a percentage above 0, in creation order.
  virtual absl::StatusOr<std::vector<Segment>> AutoSegments() = 0;
  virtual absl::Status SetSegmentPercent(SegmentId segment, int32_t percent_hundredths) = 0;

  // Automatic assignment, set-based (domain/bucketing.h): every user whose
  // bucket for the segment's salt is in [from_hundredths, its percentage),
  // who is active, passes its include and exclude options at `now`, is not
  // in it and has not opted out (RecordOptOuts), becomes an automatic member
  // at `now` (expiring after the options' TTL), each with an `add` event of
  // reason auto_percent. Returns how many were added.
  virtual absl::StatusOr<int64_t> AssignByPercent(const Segment& segment, int32_t from_hundredths, absl::Time now) = 0;
  // The reverse, for a lowered percentage: every automatic member whose
  // bucket is in [its percentage, from_hundredths) leaves, with a `remove`
  // event of reason auto_percent (one already expired: ttl at its deadline).
  // Returns how many left at `now`.
  virtual absl::StatusOr<int64_t> UnassignByPercent(const Segment& segment, int32_t from_hundredths,
                                                    absl::Time now) = 0;

  // --- opt-outs: users automatic assignment never (re)adds to a segment
  virtual absl::StatusOr<std::vector<SegmentId>> OptedOutSegments(const UserId& user) = 0;
  // `reason` is kManual (removed by hand) or kTtl (automatic membership expired).
  virtual absl::Status RecordOptOuts(const UserId& user, const std::vector<SegmentId>& segments, Reason reason,
                                     absl::Time now) = 0;

  // --- memberships and history
  // Every membership row of the user, expired ones included.
  virtual absl::StatusOr<std::vector<Membership>> UserMemberships(const UserId& user) = 0;
  virtual absl::Status InsertMembershipsOfUsers(const std::vector<std::pair<UserId, NewMembership>>& rows,
                                                absl::Time now) = 0;
  absl::Status InsertMemberships(const UserId& user, const std::vector<NewMembership>& memberships, absl::Time now) {
    std::vector<std::pair<UserId, NewMembership>> rows;
    for (const NewMembership& m : memberships) rows.emplace_back(user, m);
    return InsertMembershipsOfUsers(rows, now);
  }
  virtual absl::Status DeleteMemberships(const UserId& user, const std::vector<SegmentId>& segments) = 0;
  virtual absl::Status AppendHistory(const std::vector<HistoryEvent>& events) = 0;

  // Set-based ends, for sizes the client should not load: delete every
  // membership of a segment (or of a user) and write one `remove` event per
  // row in the same statement. A row already expired at `now` is recorded as
  // reason kTtl at its deadline (it ended then); others as `reason` at `now`.
  // Returns how many memberships ended at `now` (the expired ones not counted).
  virtual absl::StatusOr<int64_t> EndSegmentMemberships(const Segment& segment, Reason reason, absl::Time now) = 0;
  virtual absl::StatusOr<int64_t> EndUserMemberships(const UserId& user, Reason reason, absl::Time now) = 0;

  // --- bulk membership of one segment
  // Those of `users` that are not known users; the known ones are locked
  // against deletion, in id order, until the transaction ends.
  virtual absl::StatusOr<std::vector<UserId>> UnknownUsers(const std::vector<UserId>& users) = 0;
  // Puts every one of `users` (all known) not yet in `segment` in it by hand,
  // each with an `add` event of reason manual; expired rows in the way end
  // first (ttl at their deadline). Returns how many were added.
  virtual absl::StatusOr<int64_t> AddMembers(const Segment& segment, const std::vector<UserId>& users,
                                             std::optional<absl::Time> expires_at, absl::Time now) = 0;
  // Takes every one of `users` in `segment` out of it by hand: a `remove`
  // event of reason manual and an opt-out each (a row already expired: ttl
  // at its deadline). Returns how many left at `now`.
  virtual absl::StatusOr<int64_t> RemoveMembers(const Segment& segment, const std::vector<UserId>& users,
                                                absl::Time now) = 0;
};

// Where a page of a user's history starts: events strictly older than this.
struct HistoryPosition {
  absl::Time at;
  int64_t id = 0;
};

// A user's events, newest first (by time, then id).
struct UserHistoryQuery {
  UserId user;
  std::optional<std::string> slug;
  std::optional<absl::Time> from;  // inclusive
  std::optional<absl::Time> to;    // exclusive
  std::optional<HistoryPosition> after;
  int limit = 100;
};

// A report's events in order (time, user, slug, id), read in batches from
// one consistent snapshot. Holds a database connection until destroyed.
class HistoryCursor {
 public:
  virtual ~HistoryCursor() = default;
  // The next at most `max_rows` events; empty once all were read.
  virtual absl::StatusOr<std::vector<HistoryEvent>> Next(int max_rows) = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Runs `work` in one transaction and commits if it returns OK; rolls back
  // otherwise. On a serialization failure or deadlock the store rolls back
  // and runs `work` again (a bounded number of times), so `work` must not
  // have effects outside the transaction.
  virtual absl::Status InTransaction(absl::FunctionRef<absl::Status(Transaction&)> work) = 0;

  // The hot read: slugs of live segments the user is in at `now` (memberships
  // expiring after `now` or never), in any order.
  virtual absl::StatusOr<std::vector<std::string>> ActiveSegmentSlugs(const UserId& user, absl::Time now) = 0;

  // The live segment with `slug` and how many memberships it has that are
  // active at `now`; nullopt if there is none.
  virtual absl::StatusOr<std::optional<std::pair<Segment, int64_t>>> FindSegment(const std::string& slug,
                                                                                 absl::Time now) = 0;

  // The live segment with `slug`, without counting; nullopt if there is none.
  virtual absl::StatusOr<std::optional<Segment>> LookupSegment(const std::string& slug) = 0;
  // Live segments with slugs above `after_slug` (all if empty), in byte
  // order of their slugs.
  virtual absl::StatusOr<std::vector<Segment>> ListSegments(const std::string& after_slug, int limit) = 0;
  // Members of `segment` active at `now` with user ids above `after_user`
  // (all if empty), by user id.
  virtual absl::StatusOr<std::vector<SegmentMember>> SegmentMembers(SegmentId segment, const UserId& after_user,
                                                                    int limit, absl::Time now) = 0;

  // --- history
  // Events at [from, to), of `user` only if given, for a report.
  virtual absl::StatusOr<std::unique_ptr<HistoryCursor>> OpenHistory(const std::optional<UserId>& user, absl::Time from,
                                                                     absl::Time to) = 0;
  virtual absl::StatusOr<std::vector<HistoryEvent>> UserHistory(const UserHistoryQuery& query) = 0;

  // --- TTL expiry
  // In one transaction, ends up to `limit` memberships whose deadline is at
  // or before `now`, each with a `remove` event of reason ttl stamped at its
  // deadline. Rows another transaction holds are skipped, not waited for, so
  // any number of instances can run this at once without writing an event
  // twice. Returns how many ended.
  virtual absl::StatusOr<int64_t> EndExpiredMemberships(absl::Time now, int limit) = 0;
};

}  // namespace segments::domain
