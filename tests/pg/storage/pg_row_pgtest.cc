// Typed row decoding (PgRow) and parameter binding (PgParams) against the
// real server: every value a column can hold comes back as its type, and a
// value that does not decode is INTERNAL naming the column, never a default.
#include "storage/pg_row.h"

#include <catch2/catch.hpp>

#include "storage/pg_pool.h"
#include "support/domain_testing.h"
#include "support/test_database.h"

using segments::domain::ParseUserState;
using segments::domain::UserId;
using segments::domain::UserState;
using segments::storage::PgParams;
using segments::storage::PgPool;
using segments::storage::PgPoolOptions;
using segments::storage::PgResult;
using segments::storage::PgRow;
using segments::storage::Statement;
using segments::testing::Id;

namespace {

struct Fixture {
  PgPool pool{PgPoolOptions{segments::testing::TestDatabaseUrl(), 1}};

  PgResult Run(const std::string& sql, const PgParams& params = {}) {
    auto lease = pool.Acquire();
    REQUIRE(lease.ok());
    auto result = (*lease)->Execute(Statement{"row_test", sql, /*plan_per_call=*/true}, params);
    REQUIRE(result.ok());
    return std::move(*result);
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "a row's columns decode as their types", "[pg][row]") {
  const PgResult r =
      Run("SELECT 'active'::text AS state, 42::int8 AS n, NULL::int8 AS none, true AS yes, "
          "1700000000000001::int8 AS micros, '1,2,3' AS ids, '' AS empty, "
          "'0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B'::uuid AS id");
  const PgRow row(r, 0);
  CHECK(row.Enum(0, &ParseUserState).value() == UserState::kActive);
  CHECK(row.Int64(1).value() == 42);
  CHECK(row.Int32(1).value() == 42);
  CHECK_FALSE(row.OptionalInt64(2).value().has_value());
  CHECK(row.Bool(3).value());
  CHECK(row.Micros(4).value() == absl::FromUnixMicros(1700000000000001));
  CHECK(row.Int64List(5).value() == std::vector<int64_t>{1, 2, 3});
  CHECK(row.TextList(6).value().empty());
  CHECK(row.User(7).value() == Id("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b"));
}

TEST_CASE_METHOD(Fixture, "a value that does not decode is INTERNAL and names its column", "[pg][row]") {
  const PgResult r =
      Run("SELECT 'banned'::text AS state, 'x1' AS count, NULL::int8 AS added_at, 'maybe' AS auto, "
          "'1,x' AS include_ids, 'not-a-uuid' AS user_id, 4294967296::int8 AS big");
  const PgRow row(r, 0);
  auto expect_internal = [](const absl::Status& status, const std::string& column) {
    INFO(status.ToString());
    CHECK(status.code() == absl::StatusCode::kInternal);
    CHECK(std::string(status.message()).find("\"" + column + "\"") != std::string::npos);
  };
  expect_internal(row.Enum(0, &ParseUserState).status(), "state");
  expect_internal(row.Int64(1).status(), "count");
  expect_internal(row.Micros(2).status(), "added_at");
  expect_internal(row.Bool(3).status(), "auto");
  expect_internal(row.Int64List(4).status(), "include_ids");
  expect_internal(row.User(5).status(), "user_id");
  expect_internal(row.Int32(6).status(), "big");
}

TEST_CASE_METHOD(Fixture, "user ids bind in binary, one and many", "[pg][row]") {
  const UserId a = Id("00112233-4455-6677-8899-aabbccddeeff");
  const UserId b = Id("ffeeddcc-bbaa-9988-7766-554433221100");
  const PgResult one = Run("SELECT $1::uuid::text", PgParams().User(a));
  CHECK(PgRow(one, 0).Text(0).value() == a.ToString());
  const PgResult many =
      Run("SELECT string_agg(u::text, ',' ORDER BY n), cardinality($1::uuid[]) FROM unnest($1::uuid[]) "
          "WITH ORDINALITY AS t(u, n)",
          PgParams().Users({b, a}));
  CHECK(PgRow(many, 0).Text(0).value() == b.ToString() + "," + a.ToString());
  const PgResult none = Run("SELECT cardinality($1::uuid[])", PgParams().Users({}));
  CHECK(PgRow(none, 0).Int64(0).value() == 0);
}
