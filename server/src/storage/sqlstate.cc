#include "storage/sqlstate.h"

namespace segments::storage {

absl::StatusCode CodeForSqlState(std::string_view sqlstate) {
  if (sqlstate == "23505") return absl::StatusCode::kAlreadyExists;
  if (sqlstate == "40001" || sqlstate == "40P01") return absl::StatusCode::kAborted;
  if (sqlstate.starts_with("08") || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03" ||
      sqlstate == "53300") {
    return absl::StatusCode::kUnavailable;
  }
  if (sqlstate == "57014") return absl::StatusCode::kDeadlineExceeded;
  // Every other error is ours, never the client's: requests are validated
  // before any statement runs, so a data exception (class 22) or a violated
  // constraint (class 23) means a bug, and must not reach the client as a
  // parse or validation error.
  return absl::StatusCode::kInternal;
}

}  // namespace segments::storage
