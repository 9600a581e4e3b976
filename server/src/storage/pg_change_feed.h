// readmodel::ChangeFeed on PostgreSQL: one dedicated connection, reading the
// change notes the triggers of db/schema.sql (version 6) write, and fetching
// what they point at with binary COPY, each look in one REPEATABLE READ
// snapshot. Instances wake each other with NOTIFY, outside any writer's
// transaction. docs/read-model.md explains the design.
#pragma once

#include <absl/time/time.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "readmodel/change_feed.h"
#include "storage/pg_connection.h"

namespace segments::storage {

// The position of a reader: a snapshot, as pg_current_snapshot() gives it.
// A transaction is visible in it (committed before it was taken) when its
// id is below xmin, or below xmax and not in xip.
struct PgSnapshot {
  uint64_t xmin = 0;
  uint64_t xmax = 0;
  std::vector<uint64_t> xip;

  // "xmin:xmax:xip1,xip2,..."
  static std::optional<PgSnapshot> Parse(std::string_view text);
};

class PgChangeFeed final : public readmodel::ChangeFeed {
 public:
  // The channel instances announce changes on.
  static constexpr char kChannel[] = "segments_membership_changes";

  // `defaults` are the pool's connection settings (PgPool::ConnectionDefaults).
  PgChangeFeed(std::string conninfo, std::vector<std::pair<std::string, std::string>> defaults);

  absl::Status Connect() override;
  void Disconnect() override;
  absl::StatusOr<bool> CanContinue() override;
  absl::StatusOr<readmodel::SegmentCatalog> LoadAll(
      absl::FunctionRef<void(const domain::UserId&, readmodel::HeldMembership)> membership) override;
  absl::StatusOr<readmodel::FeedChanges> Poll() override;
  absl::StatusOr<bool> AwaitAnnouncement(absl::Duration timeout, int wake_fd) override;
  absl::Status Announce() override;
  absl::Status Prune(absl::Duration keep) override;

 private:
  absl::StatusOr<PgConnection*> Connection();
  absl::StatusOr<readmodel::SegmentCatalog> FetchCatalog();
  // Runs COPY (`select`) TO STDOUT in binary; `select` yields (user_id,
  // segment_id, expires_at).
  absl::Status CopyMemberships(const std::string& select,
                               absl::FunctionRef<void(const domain::UserId&, readmodel::HeldMembership)> membership);
  void Remember(const PgSnapshot& snapshot);

  const std::string conninfo_;
  const std::vector<std::pair<std::string, std::string>> defaults_;
  std::unique_ptr<PgConnection> conn_;
  // Where the last look ended, and on which server start.
  std::optional<PgSnapshot> position_;
  std::string server_started_;
  // xmin of past positions with the time they were taken, for Prune.
  std::deque<std::pair<absl::Time, uint64_t>> past_xmins_;
};

}  // namespace segments::storage
