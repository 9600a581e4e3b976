// The in-memory data of the fake store (fake_store.h), and the knobs and
// counters tests set and read on it. The fake repositories work on a
// FakeState: the store's own, or a transaction's copy of it.
#pragma once

#include <absl/status/status.h>
#include <absl/time/time.h>

#include <functional>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "domain/model.h"

namespace segments::testing {

struct FakeState {
  std::map<domain::UserId, domain::UserState> users;
  std::map<domain::SegmentId, domain::Segment> segments;
  std::set<domain::SegmentId> deleted_segments;
  std::map<std::pair<domain::UserId, domain::SegmentId>, domain::Membership> memberships;
  // (segment, user) -> why automatic assignment must skip the user
  std::map<std::pair<domain::SegmentId, domain::UserId>, domain::Reason> opt_outs;
  std::vector<domain::HistoryEvent> history;
  domain::SegmentId next_segment_id = 1;
  // Segment tasks by id, and when a chunk of each last ran.
  std::map<int64_t, domain::SegmentTask> tasks;
  std::map<int64_t, absl::Time> task_heartbeats;
  int64_t next_task_id = 1;

  // The live segment with `slug`, or null.
  const domain::Segment* FindLive(const std::string& slug) const;
};

struct FakeControls {
  // When set, every storage call fails with it (e.g. UNAVAILABLE).
  absl::Status failure;
  int transactions = 0;  // committed or not
  // Automatic-assignment locks taken, by mode.
  int shared_auto_locks = 0;
  int exclusive_auto_locks = 0;
  // Holds of single segments (SegmentRepository::LockLive and
  // LockLiveExclusively, and those of a hand change), by mode, one per
  // segment held.
  int shared_segment_locks = 0;
  int exclusive_segment_locks = 0;
  // Cursors from OpenReport not yet destroyed (each would hold a connection).
  int open_cursors = 0;
  // Calls of the history reads, rejected ones included.
  int open_history_calls = 0;
  int user_history_calls = 0;
  // Calls of MembershipRepository::EndExpired, failed ones included, and a
  // hook called first by each.
  int expiry_batches = 0;
  // Chunks of segment tasks run (SegmentRepository::LockTask calls: one each).
  int task_chunks = 0;
  // Reads of users' memberships or opt-outs (MembershipRepository::OfUsers,
  // OptedOutSegmentsOfUsers) that named at least one user.
  int user_membership_reads = 0;
  std::function<void(absl::Time now, int limit)> on_end_expired;
};

}  // namespace segments::testing
