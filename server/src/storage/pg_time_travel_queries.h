// domain::TimeTravelQueries on pooled connections: each answer is one
// statement (one snapshot), reading history_segment_member_idx or
// history_user_order_idx (db/schema.sql, migration 15).
#pragma once

#include "domain/repositories/time_travel_queries.h"
#include "storage/pg_pool.h"

namespace segments::storage {

class PgTimeTravelQueries final : public domain::TimeTravelQueries {
 public:
  explicit PgTimeTravelQueries(PgPool& pool) : pool_(pool) {}

  absl::StatusOr<std::vector<domain::MembershipAt>> OfUserAt(const domain::UserId& user, absl::Time at) override;
  absl::StatusOr<std::vector<domain::MembershipAt>> MembersAt(domain::SegmentId segment, absl::Time at,
                                                              const std::optional<domain::UserId>& after_user,
                                                              int limit) override;
  absl::StatusOr<int64_t> CountAt(domain::SegmentId segment, absl::Time at) override;
  absl::StatusOr<domain::SizeEvents> SizeEventsOf(const std::vector<domain::SegmentId>& segments, absl::Time from,
                                                  absl::Time to, absl::Duration step, absl::Time now) override;
  absl::StatusOr<std::vector<SegmentLife>> SegmentsOfSlug(const std::string& slug) override;
  absl::StatusOr<domain::UserFacts> FactsOf(const domain::UserId& user, domain::SegmentId segment) override;
  absl::StatusOr<std::optional<domain::HistoryEvent>> LastEventAt(const domain::UserId& user, domain::SegmentId segment,
                                                                  absl::Time at) override;

 private:
  PgPool& pool_;
};

// The SQL of MembersAt and SizeEventsOf, for the tests that EXPLAIN them.
const std::string& MembersAtSql();
const std::string& SizeEventsSql();

}  // namespace segments::storage
