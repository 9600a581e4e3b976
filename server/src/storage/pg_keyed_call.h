// domain::KeyedCall on PostgreSQL (db/schema.sql, migration 8). PgStore's
// unit of work claims the key's row as the first statement of its
// transaction (Claim); when the work succeeds, the transaction stays open on
// its leased connection (Hold) until Settle writes the outcome into the row
// and commits.
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

  // For PgStore's unit of work. StartUnit is false for a second unit (a
  // bug: a keyed call holds one transaction).
  bool StartUnit();
  // In the unit's open transaction on `conn`: true when the key is now
  // claimed; false when an earlier call stored an outcome under it (which
  // Settle answers). ABORTED if the key vanished meanwhile (retry).
  absl::StatusOr<bool> Claim(PgConnection& conn);
  // After the work succeeded: the transaction stays open until Settle.
  void Hold(PgPool::Lease lease, PgTransaction tx, bool read_model_changed);

 private:
  // The outcome stored under the key as answered to this call (KeyReused
  // when its fingerprint is another); nullopt if no row has the key.
  absl::StatusOr<std::optional<absl::StatusOr<domain::CallOutcome>>> Find(PgConnection& conn) const;
  // Stores `outcome` under the key in a statement of its own, unless a row
  // has the key already.
  absl::StatusOr<domain::CallOutcome> Record(const domain::CallOutcome& outcome) const;

  PgPool& pool_;
  const domain::IdempotencyKey key_;
  const absl::Time now_;
  const std::function<void()>& after_commit_;
  bool unit_started_ = false;
  std::optional<absl::StatusOr<domain::CallOutcome>> earlier_;
  // While the claim is held; the transaction ends before the lease returns.
  std::optional<PgPool::Lease> lease_;
  std::optional<PgTransaction> tx_;
  bool read_model_changed_ = false;
};

}  // namespace segments::storage
