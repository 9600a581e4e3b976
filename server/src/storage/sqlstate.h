// The one place that turns PostgreSQL errors into absl::Status codes.
#pragma once

#include <absl/status/status.h>

#include <string_view>

namespace segments::storage {

// Canonical code for a SQLSTATE: 23505 → ALREADY_EXISTS; 40001, 40P01 →
// ABORTED (retried by PgStore); class 08, 57P0x, 53300 → UNAVAILABLE;
// 57014 → DEADLINE_EXCEEDED; anything else → INTERNAL (including data
// exceptions and other constraint violations: inputs are validated before
// any statement runs, so those are bugs, never the client's error).
absl::StatusCode CodeForSqlState(std::string_view sqlstate);

// True for codes worth running the whole transaction again.
inline bool IsRetryable(const absl::Status& status) { return absl::IsAborted(status); }

}  // namespace segments::storage
