// The SQL side of bucketing (db/schema.sql: segment_bucket and the pieces the
// fill statement uses) against docs/bucketing.md and against domain::Bucket.
#include <absl/strings/str_format.h>

#include <catch2/catch.hpp>
#include <string>

#include "domain/bucketing.h"
#include "support/bucketing_vectors.h"
#include "support/test_database.h"

namespace segments::testing {
namespace {

std::string Quote(const std::string& text) { return "'" + text + "'"; }

TEST_CASE("segment_bucket matches every vector of docs/bucketing.md", "[pg][bucketing]") {
  ResetDatabase();
  const auto vectors = DocumentedBucketVectors();
  REQUIRE(vectors.size() >= 10);
  for (const auto& v : vectors) {
    INFO(v.salt << " " << v.user_id);
    CHECK(QueryValue("SELECT encode(substring(segment_digest(" + Quote(v.salt) + ", " + Quote(v.user_id) +
                     ") FROM 1 FOR 8), 'hex')") == v.digest_prefix);
    CHECK(QueryValue("SELECT segment_bucket(" + Quote(v.salt) + ", " + Quote(v.user_id) + ")") ==
          std::to_string(v.bucket));
  }
}

TEST_CASE("segment_bucket agrees with domain::Bucket on many users and salts", "[pg][bucketing]") {
  ResetDatabase();
  // Digests whose first bytes are 0xff..., 0x80... and 0x00... all occur among
  // 3,000 users, so both halves' high bits and the unsigned reading are
  // exercised.
  // The integer ids are small ones and some near 2^63.
  for (const std::string salt : {"5f2c9a1be3d04718", "ffffffffffffffff", "x"}) {
    const auto rows =
        Query("SELECT u, segment_bucket(" + Quote(salt) +
              ", u) FROM (SELECT format('%s-0000-4000-8000-000000000000', lpad(to_hex(g), 8, '0'))::user_id AS u "
              "FROM generate_series(1, 3000) AS g UNION ALL SELECT g::text::user_id FROM generate_series(0, 2999) AS g "
              "UNION ALL SELECT (9223372036854775807 - g)::text::user_id FROM generate_series(0, 999) AS g) AS users");
    REQUIRE(rows.size() == 7000);
    for (const auto& row : rows) {
      INFO(salt << " " << row[0]);
      REQUIRE(std::to_string(domain::Bucket(salt, domain::UserId::Parse(row[0]).value())) == row[1]);
    }
  }
}

TEST_CASE("the bucketing functions are IMMUTABLE and hash the UTF-8 bytes of any salt", "[pg][bucketing]") {
  ResetDatabase();
  // Immutable, so statements on every shard of a table distributed by user
  // id may use them (docs/scaling.md); inlined all the same.
  CHECK(QueryValue("SELECT string_agg(DISTINCT provolatile::text, ',') FROM pg_proc "
                   "WHERE proname IN ('segment_digest', 'segment_bucket', 'segment_bucket_of_digest')") == "i");
  // Backslashes (which decode's escape format would read as escapes if not
  // doubled), an escape-like sequence, non-ASCII letters, a quote: the same
  // bytes as convert_to (plain literals: standard_conforming_strings is on).
  for (const std::string salt : {"plain", R"(back\slash)", R"(\\x41)", R"(\)", "café", "Zürich ünd ☃", "o''k"}) {
    INFO(salt);
    CHECK(QueryValue("SELECT segment_digest('" + salt + "', '1000') = sha256(convert_to('" + salt +
                     "' || ':1000', 'UTF8'))") == "t");
  }
  CHECK(QueryValue("SELECT segment_bucket('café', '00000000-0000-4000-8000-000000000001') = "
                   "segment_bucket_of_digest(sha256(convert_to('café:00000000-0000-4000-8000-000000000001', "
                   "'UTF8')))") == "t");
}

TEST_CASE("segment_bucket takes only canonical user ids", "[pg][bucketing]") {
  ResetDatabase();
  CHECK(QueryValue("SELECT segment_bucket('9f86d081884c7d65', '1000')") == "6151");
  CHECK(QueryValue("SELECT segment_bucket('9f86d081884c7d65', '00000000-0000-0000-0000-000000001000')") == "2853");
  // Another spelling of the same id would hash to another bucket: refused.
  for (const char* bad : {"01000", "+1000", "00000000-0000-0000-0000-00000000100A", "9223372036854775808", " 1"}) {
    INFO(bad);
    CHECK_THROWS_WITH(QueryValue(std::string("SELECT segment_bucket('s', '") + bad + "')"),
                      Catch::Contains("violates check constraint \"user_id_check\""));
  }
}

}  // namespace
}  // namespace segments::testing
