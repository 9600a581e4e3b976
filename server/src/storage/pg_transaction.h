// RAII transaction on a leased connection: rolls back unless committed.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <absl/time/time.h>

#include <cstdint>

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

// What the repositories of one open transaction share: its connection, and
// the settings of set-based statements, applied at most once. Repositories
// get the connection once per statement they send (conn(), CountOf), which
// counts them.
class PgTransactionContext {
 public:
  PgTransactionContext(PgConnection& conn, absl::Duration set_statement_timeout)
      : conn_(conn), set_statement_timeout_(set_statement_timeout) {}

  PgConnection& conn() {
    ++statements_;
    return conn_;
  }
  int statements() const { return statements_; }

  // Statements over whole segments or all users may outlast the statement
  // timeout of point queries; their plans are costly enough to be
  // JIT-compiled, which costs more than it saves here; they sort up to
  // millions of ids, which should not spill to disk; and the notices of
  // their temporary tables are of no interest. Once per transaction.
  absl::Status PrepareSetBased();

  // Runs a statement whose one row holds one count.
  absl::StatusOr<int64_t> CountOf(const Statement& statement, const PgParams& params);

  // Called by every write of memberships or segments: once committed, a
  // read model on this instance must catch up before the caller answers.
  void NoteReadModelChange() { read_model_changed_ = true; }
  bool read_model_changed() const { return read_model_changed_; }

 private:
  PgConnection& conn_;
  const absl::Duration set_statement_timeout_;
  bool set_based_prepared_ = false;
  bool read_model_changed_ = false;
  int statements_ = 0;
};

}  // namespace segments::storage
