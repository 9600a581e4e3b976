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

  explicit PgStore(PgPool& pool) : pool_(pool) {}

  absl::Status InTransaction(absl::FunctionRef<absl::Status(domain::Transaction&)> work) override;
  absl::StatusOr<std::vector<std::string>> ActiveSegmentSlugs(const domain::UserId& user, absl::Time now) override;

  // SELECT 1 on a pooled connection: OK when the database answers.
  absl::Status Ping();

 private:
  PgPool& pool_;
};

}  // namespace segments::storage
