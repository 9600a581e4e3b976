// Typed row decoding (PgRow) and parameter binding (PgParams) against the
// real server: every value a column can hold comes back as its type, and a
// value that does not decode is INTERNAL naming the column, never a default.
#include "storage/pg_row.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

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
          "'0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b'::user_id AS id, '9223372036854775807'::user_id AS number");
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
  CHECK(row.User(8).value() == Id("9223372036854775807"));
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

TEST_CASE_METHOD(Fixture, "user ids bind as their canonical text, one and many", "[pg][row]") {
  const UserId a = Id("00112233-4455-6677-8899-AABBCCDDEEFF");
  const UserId b = Id("ffeeddcc-bbaa-9988-7766-554433221100");
  const UserId c = Id("1000");
  const PgResult one = Run("SELECT $1::user_id, pg_typeof($1)", PgParams().User(a));
  CHECK(PgRow(one, 0).Text(0).value() == "00112233-4455-6677-8899-aabbccddeeff");
  CHECK(PgRow(one, 0).Text(1).value() == "user_id");
  const PgResult number = Run("SELECT $1::user_id", PgParams().User(c));
  CHECK(PgRow(number, 0).User(0).value() == c);
  const PgResult many =
      Run("SELECT string_agg(u, ',' ORDER BY n), cardinality($1::user_id[]) FROM unnest($1::user_id[]) "
          "WITH ORDINALITY AS t(u, n)",
          PgParams().Users({b, c, a}));
  CHECK(PgRow(many, 0).Text(0).value() == b.ToString() + ",1000," + a.ToString());
  CHECK(PgRow(many, 0).Int64(1).value() == 3);
  const PgResult none = Run("SELECT cardinality($1::user_id[])", PgParams().Users({}));
  CHECK(PgRow(none, 0).Int64(0).value() == 0);
}

// The database orders ids by the bytes of their text ("C" collation), and
// so must UserId: keyset pages, lock order and reports rely on it.
TEST_CASE_METHOD(Fixture, "the database orders user ids as UserId does", "[pg][row]") {
  std::vector<UserId> ids;
  for (const char* text :
       {"1000", "9", "10", "0", "9223372036854775807", "1002", "00000000-0000-0000-0000-000000001000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff", "9a000000-0000-0000-0000-000000000000", "1004", "99",
        "10020000-0000-0000-0000-000000000000", "1ffff000-0000-0000-0000-000000000000"}) {
    ids.push_back(Id(text));
  }
  const PgResult r = Run("SELECT u FROM unnest($1::user_id[]) AS u ORDER BY u", PgParams().Users(ids));
  std::vector<UserId> ordered;
  for (int i = 0; i < r.Rows(); ++i) ordered.push_back(PgRow(r, i).User(0).value());
  std::sort(ids.begin(), ids.end());
  CHECK(ordered == ids);
}
