// domain::KeyedCall on PostgreSQL (db/schema.sql, migrations 8 and 12).
// PgStore's unit of work claims the key's row as the first statement of its
// transaction (Claim); when the work succeeds, the transaction stays open on
// its leased connection (Hold) until Settle writes the outcome into the row
// and commits, or, when the work published a segment task, commits at once
// with the row pending on the task (MarkPending) and Settle writes the
// outcome into the row later, unless a repeat did first.
#pragma once

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <functional>
#include <optional>

#include "domain/repositories/idempotency_store.h"
#include "storage/pg_connection.h"
#include "storage/pg_pool.h"
#include "storage/pg_transaction.h"

namespace segments::storage {

class PgKeyedCall final : public domain::KeyedCall {
 public:
  // `after_commit` runs after a commit of work that changed memberships or
  // segments (PgStore::AttachReadModel); it must outlive the call.
  PgKeyedCall(PgPool& pool, domain::IdempotencyKey key, absl::Time now, const std::function<void()>& after_commit)
      : pool_(pool), key_(std::move(key)), now_(now), after_commit_(after_commit) {}
  ~PgKeyedCall() override { Abandon(); }
  PgKeyedCall(const PgKeyedCall&) = delete;
  PgKeyedCall& operator=(const PgKeyedCall&) = delete;

  absl::StatusOr<domain::CallOutcome> Settle(const domain::CallOutcome& outcome) override;
  void Abandon() override;
  bool answered_earlier() const override { return earlier_.has_value(); }
  void AnswerAfterTask(int64_t task) override { answer_after_task_ = task; }
  std::optional<int64_t> pending_task() const override { return found_pending_task_; }

  // For PgStore's unit of work. False once a unit has kept the claim (held
  // it, committed it pending, or found the key answered or pending): a
  // second unit of the call is a bug.
  bool CanStartUnit() const;
  // In the unit's open transaction on `conn`: true when the key is now
  // claimed; false when an earlier call stored an outcome under it (which
  // Settle answers) or left it pending on a task (pending_task). ABORTED if
  // the key vanished meanwhile (retry).
  absl::StatusOr<bool> Claim(PgConnection& conn);
  // After the work succeeded, when it called AnswerAfterTask: stores the
  // task in the claimed row, in the unit's transaction, which the unit then
  // commits (PendingCommitted once it has).
  bool answers_after_task() const { return answer_after_task_.has_value(); }
  absl::Status MarkPending(PgConnection& conn);
  void PendingCommitted() { pending_committed_ = true; }
  // After the work succeeded otherwise: the transaction stays open until
  // Settle.
  void Hold(PgPool::Lease lease, PgTransaction tx, bool read_model_changed);

 private:
  // A row found under the key: its outcome as answered to this call
  // (KeyReused when its fingerprint is another), or the task it is pending
  // on.
  struct Found {
    absl::StatusOr<domain::CallOutcome> answer = domain::CallOutcome{};
    std::optional<int64_t> pending_task;
  };
  // nullopt if no row has the key.
  absl::StatusOr<std::optional<Found>> Find(PgConnection& conn) const;
  // Stores `outcome` in the row pending on a task, unless another call
  // stored one first (then answers that one).
  absl::StatusOr<domain::CallOutcome> SettlePending(const domain::CallOutcome& outcome) const;
  // Stores `outcome` under the key in a statement of its own, unless a row
  // has the key already.
  absl::StatusOr<domain::CallOutcome> Record(const domain::CallOutcome& outcome) const;

  PgPool& pool_;
  const domain::IdempotencyKey key_;
  const absl::Time now_;
  const std::function<void()>& after_commit_;
  std::optional<absl::StatusOr<domain::CallOutcome>> earlier_;
  std::optional<int64_t> found_pending_task_;
  std::optional<int64_t> answer_after_task_;  // set by the current unit's work
  bool pending_committed_ = false;
  // While the claim is held; the transaction ends before the lease returns.
  std::optional<PgPool::Lease> lease_;
  std::optional<PgTransaction> tx_;
  bool read_model_changed_ = false;
};

}  // namespace segments::storage
