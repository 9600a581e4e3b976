// domain::HistoryRepository on one open transaction, and
// domain::HistoryQueries on pooled connections.
#pragma once

#include "domain/repositories/history_repository.h"
#include "storage/pg_pool.h"
#include "storage/pg_transaction.h"

namespace segments::storage {

class PgHistoryRepository final : public domain::HistoryRepository {
 public:
  explicit PgHistoryRepository(PgTransactionContext& tx) : tx_(tx) {}

  absl::Status Append(const std::vector<domain::HistoryEvent>& events) override;

 private:
  PgTransactionContext& tx_;
};

class PgHistoryQueries final : public domain::HistoryQueries {
 public:
  explicit PgHistoryQueries(PgPool& pool) : pool_(pool) {}

  absl::StatusOr<std::unique_ptr<domain::HistoryCursor>> OpenReport(const std::optional<domain::UserId>& user,
                                                                    absl::Time from, absl::Time to) override;
  absl::StatusOr<std::vector<domain::HistoryEvent>> OfUser(const domain::UserHistoryQuery& query) override;

 private:
  PgPool& pool_;
};

// Row `i` of a result whose columns are user_id, segment_id, slug,
// operation, reason, at (µs since the epoch), id and actor, as an event.
absl::StatusOr<domain::HistoryEvent> HistoryEventAt(const PgResult& r, int i);

// The SQL declaring the report cursor, for the tests and the bench that
// EXPLAIN it.
const std::string& ReportCursorSql(bool one_user);

}  // namespace segments::storage
