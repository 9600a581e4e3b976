#include "storage/pg_store.h"

#include <absl/random/random.h>
#include <absl/time/clock.h>

#include <algorithm>
#include <optional>

#include "common/log.h"
#include "common/status_macros.h"
#include "storage/pg_keyed_call.h"
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
  int statements() const { return context_.statements(); }

 private:
  PgTransactionContext context_;
  PgUserRepository users_;
  PgSegmentRepository segments_;
  PgMembershipRepository memberships_;
  PgHistoryRepository history_;
};

// Oldest first, skipping rows another instance is deleting.
const Statement kDeleteOldKeys{"delete_old_idempotency_keys",
                               "DELETE FROM idempotency_keys WHERE (scope, key) IN (SELECT scope, key FROM "
                               "idempotency_keys WHERE created_at < $1::timestamptz ORDER BY created_at LIMIT $2 "
                               "FOR UPDATE SKIP LOCKED)"};

void BackOff(int attempt) {
  // 1, 2, 4 ... ms with jitter, so colliding transactions drift apart.
  static thread_local absl::BitGen gen;
  const double ms = static_cast<double>(1 << std::min(attempt, 6));
  absl::SleepFor(absl::Milliseconds(ms * absl::Uniform(gen, 0.5, 1.5)));
}

}  // namespace

absl::Status PgStore::InTransaction(absl::FunctionRef<absl::Status(domain::Transaction&)> work) {
  return RunUnit(work, UnitMode::kTransaction);
}

absl::Status PgStore::InSingleCall(absl::FunctionRef<absl::Status(domain::Transaction&)> work) {
  return RunUnit(work, UnitMode::kSingleStatement);
}

absl::Status PgStore::RunUnit(absl::FunctionRef<absl::Status(domain::Transaction&)> work, UnitMode mode) {
  auto* keyed = dynamic_cast<PgKeyedCall*>(domain::KeyedCall::Current());
  if (keyed != nullptr) {
    if (!keyed->CanStartUnit()) return absl::InternalError("a keyed call ran a second unit of work");
    mode = UnitMode::kTransaction;  // the claim and the work commit together
  }
  bool stale_retry_left = true;
  for (int attempt = 0;; ++attempt) {
    absl::Status status;
    bool read_model_changed = false;
    {
      ASSIGN_OR_RETURN(PgPool::Lease lease, pool_.Acquire());
      // A connection that idled through a database restart is replaced
      // before anything is sent on it: it fails BEGIN, or, for a single
      // statement, is seen closed.
      const bool stale_suspect = lease.reused() && stale_retry_left;
      std::optional<PgTransaction> tx;
      if (mode == UnitMode::kTransaction) {
        auto begun = PgTransaction::Begin(*lease);
        if (!begun.ok()) {
          if (absl::IsUnavailable(begun.status()) && stale_suspect) {
            stale_retry_left = false;
            pool_.DiscardIdle();
            continue;
          }
          return begun.status();
        }
        tx.emplace(*std::move(begun));
      } else if (stale_suspect && lease->ClosedByServer()) {
        stale_retry_left = false;
        pool_.DiscardIdle();
        continue;
      }
      absl::StatusOr<bool> claimed = true;
      if (keyed != nullptr) {
        claimed = keyed->Claim(*lease);
        // An earlier call's outcome answers this one, or its task does:
        // nothing to do here.
        if (claimed.ok() && !*claimed) return absl::CancelledError("answered by an earlier call with the key");
      }
      PgUnitOfWork unit(*lease, set_statement_timeout_);
      status = claimed.ok() ? work(unit) : claimed.status();
      read_model_changed = unit.read_model_changed();
      if (tx) {
        if (status.ok() && keyed != nullptr && !keyed->answers_after_task()) {
          // Committed with the outcome, once the caller has it.
          keyed->Hold(std::move(lease), *std::move(tx), read_model_changed);
          return absl::OkStatus();
        }
        // Or the work published a task: committed now, the key pending on it.
        if (status.ok() && keyed != nullptr) status = keyed->MarkPending(*lease);
        if (status.ok()) {
          status = tx->Commit();
          if (status.ok() && keyed != nullptr) keyed->PendingCommitted();
        } else {
          tx->Rollback();
        }
      } else if (unit.statements() > 1) {
        // Each statement committed on its own: a bug in the caller.
        log::Error("a single-call unit of work sent {} statements", unit.statements());
        status = absl::InternalError("a single-call unit of work sent more than one statement");
      }
    }  // the connection goes back to the pool before any wait below
    if (IsRetryable(status) && attempt + 1 < kMaxAttempts) {
      BackOff(attempt);
      continue;
    }
    if (status.ok() && read_model_changed && after_read_model_commit_) after_read_model_commit_();
    return status;
  }
}

std::unique_ptr<domain::KeyedCall> PgStore::StartKeyedCall(domain::IdempotencyKey key, absl::Time now) {
  return std::make_unique<PgKeyedCall>(pool_, std::move(key), now, after_read_model_commit_);
}

absl::StatusOr<int64_t> PgStore::DeleteKeysMadeBefore(absl::Time cutoff, int limit) {
  return WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<int64_t> {
    ASSIGN_OR_RETURN(PgResult deleted, conn->Execute(kDeleteOldKeys, PgParams().Time(cutoff).Int(limit)));
    return deleted.AffectedRows();
  });
}

absl::Status PgStore::Ping() {
  return WithPooledConnection(pool_, [](PgPool::Lease& conn) { return conn->ExecuteSimple("SELECT 1"); }).status();
}

}  // namespace segments::storage
