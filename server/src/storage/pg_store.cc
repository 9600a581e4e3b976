#include "storage/pg_store.h"

#include <absl/random/random.h>
#include <absl/time/clock.h>

#include <algorithm>

#include "common/status_macros.h"
#include "storage/pg_transaction.h"
#include "storage/pg_user_repository.h"
#include "storage/sqlstate.h"

namespace segments::storage {
namespace {

// The repositories of one open transaction.
class PgUnitOfWork final : public domain::Transaction {
 public:
  PgUnitOfWork(PgConnection& conn, absl::Duration set_statement_timeout)
      : context_(conn, set_statement_timeout),
        users_(context_),
        segments_(context_),
        memberships_(context_),
        history_(context_) {}

  domain::UserRepository& users() override { return users_; }
  domain::SegmentRepository& segments() override { return segments_; }
  domain::MembershipRepository& memberships() override { return memberships_; }
  domain::HistoryRepository& history() override { return history_; }
  bool read_model_changed() const { return context_.read_model_changed(); }

 private:
  PgTransactionContext context_;
  PgUserRepository users_;
  PgSegmentRepository segments_;
  PgMembershipRepository memberships_;
  PgHistoryRepository history_;
};

void BackOff(int attempt) {
  // 1, 2, 4 ... ms with jitter, so colliding transactions drift apart.
  static thread_local absl::BitGen gen;
  const double ms = static_cast<double>(1 << std::min(attempt, 6));
  absl::SleepFor(absl::Milliseconds(ms * absl::Uniform(gen, 0.5, 1.5)));
}

}  // namespace

absl::Status PgStore::InTransaction(absl::FunctionRef<absl::Status(domain::Transaction&)> work) {
  bool stale_retry_left = true;
  for (int attempt = 0;; ++attempt) {
    absl::Status status;
    bool read_model_changed = false;
    {
      ASSIGN_OR_RETURN(PgPool::Lease lease, pool_.Acquire());
      auto tx = PgTransaction::Begin(*lease);
      if (!tx.ok()) {
        // A connection that idled through a database restart fails here first.
        if (absl::IsUnavailable(tx.status()) && lease.reused() && stale_retry_left) {
          stale_retry_left = false;
          pool_.DiscardIdle();
          continue;
        }
        return tx.status();
      }
      PgUnitOfWork unit(*lease, set_statement_timeout_);
      status = work(unit);
      if (status.ok()) {
        status = tx->Commit();
      } else {
        tx->Rollback();
      }
      read_model_changed = unit.read_model_changed();
    }  // the connection goes back to the pool before any wait below
    if (IsRetryable(status) && attempt + 1 < kMaxAttempts) {
      BackOff(attempt);
      continue;
    }
    if (status.ok() && read_model_changed && after_read_model_commit_) after_read_model_commit_();
    return status;
  }
}

absl::Status PgStore::Ping() {
  return WithPooledConnection(pool_, [](PgPool::Lease& conn) { return conn->ExecuteSimple("SELECT 1"); }).status();
}

}  // namespace segments::storage
