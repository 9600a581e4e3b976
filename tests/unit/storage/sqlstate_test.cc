#include "storage/sqlstate.h"

#include <catch2/catch.hpp>

using segments::storage::CodeForSqlState;

TEST_CASE("SQLSTATEs map to canonical codes", "[storage]") {
  CHECK(CodeForSqlState("23505") == absl::StatusCode::kAlreadyExists);
  CHECK(CodeForSqlState("40001") == absl::StatusCode::kAborted);
  CHECK(CodeForSqlState("40P01") == absl::StatusCode::kAborted);
  CHECK(CodeForSqlState("08006") == absl::StatusCode::kUnavailable);
  CHECK(CodeForSqlState("08001") == absl::StatusCode::kUnavailable);
  CHECK(CodeForSqlState("57P01") == absl::StatusCode::kUnavailable);
  CHECK(CodeForSqlState("53300") == absl::StatusCode::kUnavailable);
  CHECK(CodeForSqlState("57014") == absl::StatusCode::kDeadlineExceeded);
  // Data exceptions and other constraint violations are bugs of ours, never
  // a client's parse or validation error.
  CHECK(CodeForSqlState("23503") == absl::StatusCode::kInternal);
  CHECK(CodeForSqlState("23514") == absl::StatusCode::kInternal);
  CHECK(CodeForSqlState("22P02") == absl::StatusCode::kInternal);
  CHECK(CodeForSqlState("22008") == absl::StatusCode::kInternal);
  CHECK(CodeForSqlState("42P01") == absl::StatusCode::kInternal);
  CHECK(CodeForSqlState("XX000") == absl::StatusCode::kInternal);
}
