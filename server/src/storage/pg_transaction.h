// RAII transaction on a leased connection: rolls back unless committed.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include "storage/pg_connection.h"

namespace segments::storage {

class PgTransaction {
 public:
  enum class Mode { kReadWrite, kReadOnly };
  static absl::StatusOr<PgTransaction> Begin(PgConnection& conn, Mode mode = Mode::kReadWrite);
  PgTransaction(PgTransaction&& other) noexcept : conn_(other.conn_) { other.conn_ = nullptr; }
  PgTransaction& operator=(PgTransaction&&) = delete;
  ~PgTransaction() { Rollback(); }

  absl::Status Commit();
  // Idempotent; a no-op after Commit.
  void Rollback();

 private:
  explicit PgTransaction(PgConnection& conn) : conn_(&conn) {}
  PgConnection* conn_;  // null once finished
};

}  // namespace segments::storage
