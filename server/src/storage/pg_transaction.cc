#include "storage/pg_transaction.h"

namespace segments::storage {

absl::StatusOr<PgTransaction> PgTransaction::Begin(PgConnection& conn, Mode mode) {
  auto begun = conn.ExecuteSimple(mode == Mode::kReadOnly ? "BEGIN READ ONLY" : "BEGIN");
  if (!begun.ok()) return begun.status();
  return PgTransaction(conn);
}

absl::Status PgTransaction::Commit() {
  PgConnection* conn = conn_;
  conn_ = nullptr;
  return conn->ExecuteSimple("COMMIT").status();
}

void PgTransaction::Rollback() {
  if (conn_ == nullptr) return;
  PgConnection* conn = conn_;
  conn_ = nullptr;
  if (!conn->Broken()) conn->ExecuteSimple("ROLLBACK").IgnoreError();
}

}  // namespace segments::storage
