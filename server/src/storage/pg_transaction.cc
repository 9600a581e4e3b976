#include "storage/pg_transaction.h"

#include <absl/strings/str_cat.h>

#include "common/status_macros.h"
#include "domain/acting_as.h"
#include "storage/pg_row.h"

namespace segments::storage {

absl::StatusOr<PgTransaction> PgTransaction::Begin(PgConnection& conn, Mode mode) {
  if (mode == Mode::kReadOnly) {
    RETURN_IF_ERROR(conn.ExecuteSimple("BEGIN READ ONLY"));
    return PgTransaction(conn);
  }
  // History rows take their actor from this setting (db/schema.sql,
  // migration 14): set with BEGIN, in the same round trip.
  const std::string& actor = domain::ActingAs::Current();
  if (actor.empty()) {
    RETURN_IF_ERROR(conn.ExecuteSimple("BEGIN"));
  } else {
    const std::string begin = absl::StrCat("BEGIN; SELECT set_config('segments.actor', ", conn.Quote(actor), ", true)");
    RETURN_IF_ERROR(conn.ExecuteSimple(begin.c_str()));
  }
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

absl::Status PgTransactionContext::PrepareSetBased() {
  if (set_based_prepared_) return absl::OkStatus();
  const std::string settings = absl::StrCat(
      "SET LOCAL jit = off; SET LOCAL client_min_messages = warning; SET LOCAL work_mem = '64MB'; "
      "SET LOCAL statement_timeout = ",
      absl::ToInt64Milliseconds(set_statement_timeout_));
  RETURN_IF_ERROR(conn_.ExecuteSimple(settings.c_str()));
  set_based_prepared_ = true;
  return absl::OkStatus();
}

absl::StatusOr<int64_t> PgTransactionContext::CountOf(const Statement& statement, const PgParams& params) {
  ASSIGN_OR_RETURN(PgResult result, conn().Execute(statement, params));
  if (result.Rows() != 1) return absl::InternalError(absl::StrCat(statement.name, ": expected one row with a count"));
  return PgRow(result, 0).Int64(0);
}

}  // namespace segments::storage
