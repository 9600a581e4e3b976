// Where a membership read model learns what the database holds: a full load,
// then the changes committed since the last look. Implemented on PostgreSQL
// by storage::PgChangeFeed (docs/read-model.md says how it works and why).
#pragma once

#include <absl/functional/function_ref.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "domain/user_id.h"
#include "readmodel/membership_table.h"

namespace segments::readmodel {

// Live segments: id and slug.
using SegmentCatalog = std::vector<std::pair<uint32_t, std::string>>;

// Everything that committed between two looks, as it stands at the second,
// for the users and segments that changed. Fetched in one snapshot, so the
// parts agree with each other.
struct FeedChanges {
  // Memberships were truncated (or the feed cannot tell what changed): load
  // everything again. The other fields are then empty.
  bool reload_all = false;
  // Set when the segments table changed: every live segment.
  std::optional<SegmentCatalog> catalog;
  // Segments changed set-wise, and all their memberships now.
  std::vector<uint32_t> segments;
  std::vector<std::pair<domain::UserId, HeldMembership>> segment_rows;
  // Users whose memberships changed one by one, and all their memberships
  // now, grouped by user (a user with none has no row).
  std::vector<domain::UserId> users;
  std::vector<std::pair<domain::UserId, HeldMembership>> user_rows;
  // Memberships added to a segment for a range of users (a chunk of a fill),
  // and the segment's memberships in those ranges now. Only additions come
  // so: the rows are put, and whatever left is among `users` or `segments`.
  std::vector<std::pair<domain::UserId, HeldMembership>> range_rows;
  bool has_ranges = false;

  bool empty() const { return !reload_all && !catalog && segments.empty() && users.empty() && !has_ranges; }
};

class ChangeFeed {
 public:
  virtual ~ChangeFeed() = default;

  // Connects and starts listening for other instances' announcements.
  // UNAVAILABLE if the database cannot be reached.
  virtual absl::Status Connect() = 0;
  virtual void Disconnect() = 0;
  // Whether the database is the one the feed's position belongs to (same
  // server, not restarted), so Poll() can continue from it after a new
  // Connect(); false calls for LoadAll().
  virtual absl::StatusOr<bool> CanContinue() = 0;

  // Every membership and the catalog, in one snapshot, which becomes the
  // feed's position. `membership` is called for each row, grouped by user.
  virtual absl::StatusOr<SegmentCatalog> LoadAll(
      absl::FunctionRef<void(const domain::UserId&, HeldMembership)> membership) = 0;
  // What committed since the position, which moves to now.
  virtual absl::StatusOr<FeedChanges> Poll() = 0;

  // Waits up to `timeout` for an announcement from another instance, or
  // for `wake_fd` to become readable (not read here). Returns whether an
  // announcement came.
  virtual absl::StatusOr<bool> AwaitAnnouncement(absl::Duration timeout, int wake_fd) = 0;
  // Tells the other instances that something committed: they poll at once
  // instead of at their next period.
  virtual absl::Status Announce() = 0;
  // Drops change notes older than every reader can still need (older than
  // `keep`); any instance may do it.
  virtual absl::Status Prune(absl::Duration keep) = 0;
};

}  // namespace segments::readmodel
