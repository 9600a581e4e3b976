// domain::Store on PostgreSQL through libpq.
#pragma once

#include <absl/status/statusor.h>

#include "domain/store.h"
#include "storage/pg_pool.h"

namespace segments::storage {

class PgStore final : public domain::Store {
 public:
  // Runs `work` up to this many times when the database reports a
  // serialization failure or a deadlock.
  static constexpr int kMaxAttempts = 8;

  // `set_statement_timeout` bounds the set-based statements (a segment
  // filled, emptied or changed for many users at once), which may run far
  // longer than the pool's statement timeout allows point queries.
  explicit PgStore(PgPool& pool, absl::Duration set_statement_timeout = absl::Minutes(10))
      : pool_(pool), set_statement_timeout_(set_statement_timeout) {}

  absl::Status InTransaction(absl::FunctionRef<absl::Status(domain::Transaction&)> work) override;
  absl::StatusOr<std::vector<std::string>> ActiveSegmentSlugs(const domain::UserId& user, absl::Time now) override;
  absl::StatusOr<std::optional<std::pair<domain::Segment, int64_t>>> FindSegment(const std::string& slug,
                                                                                 absl::Time now) override;
  absl::StatusOr<std::optional<domain::Segment>> LookupSegment(const std::string& slug) override;
  absl::StatusOr<std::vector<domain::Segment>> ListSegments(const std::string& after_slug, int limit) override;
  absl::StatusOr<std::vector<domain::SegmentMember>> SegmentMembers(domain::SegmentId segment,
                                                                    const domain::UserId& after_user, int limit,
                                                                    absl::Time now) override;
  absl::StatusOr<std::unique_ptr<domain::HistoryCursor>> OpenHistory(const std::optional<domain::UserId>& user,
                                                                     absl::Time from, absl::Time to) override;
  absl::StatusOr<std::vector<domain::HistoryEvent>> UserHistory(const domain::UserHistoryQuery& query) override;
  absl::StatusOr<int64_t> EndExpiredMemberships(absl::Time now, int limit) override;

  // SELECT 1 on a pooled connection: OK when the database answers.
  absl::Status Ping();

 private:
  // Runs `read` on a pooled connection, once more on a fresh one if the
  // pooled connection turns out to have gone stale (a database restart).
  template <typename Read>
  auto WithConnection(Read read) -> decltype(read(std::declval<PgPool::Lease&>()));

  PgPool& pool_;
  absl::Duration set_statement_timeout_;
};

}  // namespace segments::storage
