// Reads of the past (docs/time-travel.md): the memberships that held at an
// instant, replayed from the history, and the facts that explain a user's
// membership now.
//
// "Held at t" is the rule of the hot read applied to the history: the last
// event of a (user, segment) at or before t is an `add` whose deadline, if
// any, is after t. A membership past its deadline whose `remove` the expiry
// job has not written yet counts as ended at its deadline, as the hot read
// counts it; the job stamps that `remove` at the deadline, so the answer
// about t never changes once given.
#pragma once

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "domain/model.h"

namespace segments::domain {

// A membership as it stood at an instant: its `add` event.
struct MembershipAt {
  UserId user_id;
  SegmentId segment_id = 0;
  std::string slug{};
  Reason reason = Reason::kManual;  // manual or auto_percent
  absl::Time added_at = absl::UnixEpoch();
  std::optional<absl::Time> expires_at = std::nullopt;
  std::string actor{};
};

// Events of one step of a size history, counted by operation and reason.
struct EventCounts {
  static constexpr int kReasons = 5;  // Reason's values
  std::array<int64_t, kReasons> added{};
  std::array<int64_t, kReasons> removed{};
};

// The raw material of a size history: the members at `from`, and the
// events of each step of [from, to) that had any (step starts as keys).
struct SizeEvents {
  int64_t members_at_from = 0;
  std::vector<std::pair<absl::Time, EventCounts>> steps;  // by start, only steps with events
};

// What explains a user's membership of a segment now, besides the history.
struct UserFacts {
  std::optional<UserState> state;   // none: not a known user
  std::optional<Reason> opted_out;  // set if automatic assignment skips them (manual or ttl)
  std::optional<absl::Time> opted_out_at;
};

class TimeTravelQueries {
 public:
  virtual ~TimeTravelQueries() = default;

  // The memberships `user` held at `at` (any segment, deleted ones
  // included), by segment id.
  virtual absl::StatusOr<std::vector<MembershipAt>> OfUserAt(const UserId& user, absl::Time at) = 0;

  // Up to `limit` members of `segment` at `at` with ids after `after_user`
  // (byte order), by user id.
  virtual absl::StatusOr<std::vector<MembershipAt>> MembersAt(SegmentId segment, absl::Time at,
                                                              const std::optional<UserId>& after_user, int limit) = 0;

  // How many members `segment` had at `at`.
  virtual absl::StatusOr<int64_t> CountAt(SegmentId segment, absl::Time at) = 0;

  // The events of `segments` (every segment of one slug) over [from, to) in
  // steps of `step` counted from the Unix epoch, and the members at `from`;
  // TTL ends not yet written (up to `now`) counted at their deadlines. One
  // consistent snapshot.
  virtual absl::StatusOr<SizeEvents> SizeEventsOf(const std::vector<SegmentId>& segments, absl::Time from,
                                                  absl::Time to, absl::Duration step, absl::Time now) = 0;

  // Every segment that ever had `slug`, oldest first, with when it was
  // created and deleted (none: live).
  struct SegmentLife {
    SegmentId id = 0;
    absl::Time created_at;
    std::optional<absl::Time> deleted_at;
  };
  virtual absl::StatusOr<std::vector<SegmentLife>> SegmentsOfSlug(const std::string& slug) = 0;

  // The user's state and opt-out of `segment`.
  virtual absl::StatusOr<UserFacts> FactsOf(const UserId& user, SegmentId segment) = 0;

  // The last event of `user` in `segment` at or before `at`, if any.
  virtual absl::StatusOr<std::optional<HistoryEvent>> LastEventAt(const UserId& user, SegmentId segment,
                                                                  absl::Time at) = 0;
};

}  // namespace segments::domain
