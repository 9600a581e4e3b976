#include "storage/pg_keyed_call.h"

#include "common/status_macros.h"
#include "domain/idempotency.h"
#include "storage/pg_row.h"

namespace segments::storage {
namespace {

// $1 scope, $2 key, $3 fingerprint, $4 created_at; the outcome, when given:
// $5 code, $6 message, $7 details, $8 response.
const Statement kClaimKey{"claim_idempotency_key",
                          "INSERT INTO idempotency_keys (scope, key, fingerprint, created_at) "
                          "VALUES ($1, $2, $3::bytea, $4::timestamptz) ON CONFLICT (scope, key) DO NOTHING"};
const Statement kRecordKey{"record_idempotency_key",
                           "INSERT INTO idempotency_keys "
                           "(scope, key, fingerprint, created_at, code, message, details, response) "
                           "VALUES ($1, $2, $3::bytea, $4::timestamptz, $5, $6, $7::bytea, $8::bytea) "
                           "ON CONFLICT (scope, key) DO NOTHING"};
// The outcome into a claimed row that has none yet: the row this call's held
// transaction inserted, or one pending on a task (whichever call stores an
// outcome first, wins).
const Statement kStoreOutcome{"store_idempotency_outcome",
                              "UPDATE idempotency_keys SET code = $3, message = $4, details = $5::bytea, "
                              "response = $6::bytea WHERE scope = $1 AND key = $2 AND code IS NULL"};
// $1 scope, $2 key, $3 task.
const Statement kMarkKeyPending{"mark_idempotency_key_pending",
                                "UPDATE idempotency_keys SET task_id = $3 WHERE scope = $1 AND key = $2"};
// A statement of its own after the insert that found the key taken: it
// sees the row that insert waited for, committed meanwhile.
const Statement kFindKey{"find_idempotency_key",
                         "SELECT fingerprint, code, message, details, response, task_id FROM idempotency_keys "
                         "WHERE scope = $1 AND key = $2"};

PgParams& AddOutcome(PgParams& params, const domain::CallOutcome& outcome) {
  return params.Int(outcome.code).Text(outcome.message).Bytes(outcome.details).Bytes(outcome.response);
}

// Tries before Record gives up on a key that keeps vanishing between its
// insert and its read (deleted by the cleanup each time).
constexpr int kRecordAttempts = 3;

}  // namespace

bool PgKeyedCall::CanStartUnit() const { return !tx_ && !pending_committed_ && !earlier_ && !found_pending_task_; }

absl::StatusOr<bool> PgKeyedCall::Claim(PgConnection& conn) {
  answer_after_task_.reset();  // the work runs again
  ASSIGN_OR_RETURN(
      PgResult claimed,
      conn.Execute(kClaimKey, PgParams().Text(key_.scope).Text(key_.key).Bytes(key_.fingerprint).Time(now_)));
  if (claimed.AffectedRows() == 1) return true;
  ASSIGN_OR_RETURN(std::optional<Found> found, Find(conn));
  if (!found) return absl::AbortedError("an idempotency key was deleted while it was claimed");
  if (found->answer.ok() && found->pending_task) {
    found_pending_task_ = found->pending_task;
  } else {
    earlier_ = std::move(found->answer);
  }
  return false;
}

absl::Status PgKeyedCall::MarkPending(PgConnection& conn) {
  return conn.Execute(kMarkKeyPending, PgParams().Text(key_.scope).Text(key_.key).Int(*answer_after_task_)).status();
}

void PgKeyedCall::Hold(PgPool::Lease lease, PgTransaction tx, bool read_model_changed) {
  lease_.emplace(std::move(lease));
  tx_.emplace(std::move(tx));
  read_model_changed_ = read_model_changed;
}

absl::StatusOr<domain::CallOutcome> PgKeyedCall::Settle(const domain::CallOutcome& outcome) {
  if (earlier_) {
    Abandon();
    return *earlier_;
  }
  if (pending_committed_ || found_pending_task_) return SettlePending(outcome);
  if (!tx_) return Record(outcome);
  PgParams params;
  params.Text(key_.scope).Text(key_.key);
  absl::Status status = (*lease_)->Execute(kStoreOutcome, AddOutcome(params, outcome)).status();
  if (status.ok()) {
    status = tx_->Commit();
  } else {
    tx_->Rollback();
  }
  tx_.reset();
  lease_.reset();  // back to the pool before any wait for the read model
  // Whether a failed COMMIT took effect is unknown to us: a retry finds the
  // outcome stored, or does the work.
  RETURN_IF_ERROR(status);
  if (read_model_changed_ && after_commit_) after_commit_();
  return outcome;
}

void PgKeyedCall::Abandon() {
  tx_.reset();  // rolls back
  lease_.reset();
}

absl::StatusOr<std::optional<PgKeyedCall::Found>> PgKeyedCall::Find(PgConnection& conn) const {
  ASSIGN_OR_RETURN(PgResult r, conn.Execute(kFindKey, PgParams().Text(key_.scope).Text(key_.key)));
  if (r.Rows() == 0) return std::nullopt;
  const PgRow row(r, 0);
  ASSIGN_OR_RETURN(const std::string fingerprint, row.Bytes(0));
  Found found;
  if (fingerprint != key_.fingerprint) {
    found.answer = domain::KeyReused(key_.key);
    return found;
  }
  if (row.IsNull(1)) {
    // Claimed by a transaction that has not committed cannot be seen here:
    // a row without an outcome is pending on its task.
    if (row.IsNull(5)) return absl::AbortedError("an idempotency key has neither an outcome nor a task");
    ASSIGN_OR_RETURN(found.pending_task, row.Int64(5));
    return found;
  }
  domain::CallOutcome stored;
  ASSIGN_OR_RETURN(stored.code, row.Int32(1));
  ASSIGN_OR_RETURN(stored.message, row.Text(2));
  ASSIGN_OR_RETURN(stored.details, row.Bytes(3));
  ASSIGN_OR_RETURN(stored.response, row.Bytes(4));
  found.answer = std::move(stored);
  return found;
}

absl::StatusOr<domain::CallOutcome> PgKeyedCall::SettlePending(const domain::CallOutcome& outcome) const {
  return WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<domain::CallOutcome> {
    PgParams params;
    params.Text(key_.scope).Text(key_.key);
    ASSIGN_OR_RETURN(PgResult settled, conn->Execute(kStoreOutcome, AddOutcome(params, outcome)));
    if (settled.AffectedRows() == 1) return outcome;
    ASSIGN_OR_RETURN(std::optional<Found> found, Find(*conn));
    // Deleted as too old meanwhile: nothing to answer but this.
    if (!found || found->pending_task) return outcome;
    return found->answer;
  });
}

absl::StatusOr<domain::CallOutcome> PgKeyedCall::Record(const domain::CallOutcome& outcome) const {
  for (int attempt = 0; attempt < kRecordAttempts; ++attempt) {
    ASSIGN_OR_RETURN(auto found, WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> decltype(Find(*conn)) {
                       PgParams params;
                       params.Text(key_.scope).Text(key_.key).Bytes(key_.fingerprint).Time(now_);
                       ASSIGN_OR_RETURN(PgResult inserted, conn->Execute(kRecordKey, AddOutcome(params, outcome)));
                       if (inserted.AffectedRows() == 1) {
                         return std::optional<Found>(Found{outcome, std::nullopt});
                       }
                       return Find(*conn);
                     }));
    // A key pending on a task is another call's: this call did no work.
    if (found && found->pending_task) return absl::AbortedError("the idempotency key is pending on another call");
    if (found) return std::move(found->answer);
  }
  return absl::AbortedError("an idempotency key was deleted while it was recorded");
}

}  // namespace segments::storage
