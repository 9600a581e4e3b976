// domain::Store on PostgreSQL through libpq: transactions on pooled
// connections, each handing out the Pg repositories, and the reads that need
// no transaction.
#pragma once

#include <absl/status/statusor.h>

#include <functional>

#include "domain/repositories/idempotency_store.h"
#include "domain/repositories/unit_of_work.h"
#include "storage/pg_history_repository.h"
#include "storage/pg_membership_repository.h"
#include "storage/pg_pool.h"
#include "storage/pg_segment_repository.h"
#include "storage/pg_time_travel_queries.h"

namespace segments::storage {

class PgStore final : public domain::Store, public domain::IdempotencyStore {
 public:
  // Runs `work` up to this many times when the database reports a
  // serialization failure or a deadlock.
  static constexpr int kMaxAttempts = 8;

  // `set_statement_timeout` bounds the set-based statements (a segment
  // filled, emptied or changed for many users at once), which may run far
  // longer than the pool's statement timeout allows point queries.
  explicit PgStore(PgPool& pool, absl::Duration set_statement_timeout = absl::Minutes(10))
      : pool_(pool),
        set_statement_timeout_(set_statement_timeout),
        segments_(pool),
        memberships_(pool),
        history_(pool),
        time_travel_(pool) {}

  absl::Status InTransaction(absl::FunctionRef<absl::Status(domain::Transaction&)> work) override;
  // Runs the one statement without BEGIN and COMMIT: PostgreSQL makes it a
  // transaction of its own.
  absl::Status InSingleCall(absl::FunctionRef<absl::Status(domain::Transaction&)> work) override;
  domain::SegmentQueries& segments() override { return segments_; }
  domain::MembershipQueries& memberships() override { return *membership_reads_; }
  domain::HistoryQueries& history() override { return history_; }
  // Reads of the past (domain/time_travel_use_cases.h).
  domain::TimeTravelQueries& time_travel() { return time_travel_; }

  // Keyed calls (storage/pg_keyed_call.h): while one is current, the unit
  // of work claims its key first and always runs as a transaction.
  std::unique_ptr<domain::KeyedCall> StartKeyedCall(domain::IdempotencyKey key, absl::Time now) override;
  absl::StatusOr<int64_t> DeleteKeysMadeBefore(absl::Time cutoff, int limit) override;

  // Where a read model (readmodel::MembershipReadModel) plugs in: reads of
  // memberships go through `reads`, and `after_commit` runs after every
  // committed transaction that changed memberships or segments, before
  // InTransaction returns. Set before the store is used.
  void AttachReadModel(domain::MembershipQueries& reads, std::function<void()> after_commit) {
    membership_reads_ = &reads;
    after_read_model_commit_ = std::move(after_commit);
  }
  // The memberships as the database answers, whatever is attached.
  domain::MembershipQueries& database_memberships() { return memberships_; }

  // SELECT 1 on a pooled connection: OK when the database answers.
  absl::Status Ping();

 private:
  enum class UnitMode { kTransaction, kSingleStatement };
  absl::Status RunUnit(absl::FunctionRef<absl::Status(domain::Transaction&)> work, UnitMode mode);

  PgPool& pool_;
  const absl::Duration set_statement_timeout_;
  PgSegmentQueries segments_;
  PgMembershipQueries memberships_;
  PgHistoryQueries history_;
  PgTimeTravelQueries time_travel_;
  domain::MembershipQueries* membership_reads_ = &memberships_;
  std::function<void()> after_read_model_commit_;
};

}  // namespace segments::storage
