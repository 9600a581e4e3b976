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
  for (const std::string salt : {"5f2c9a1be3d04718", "ffffffffffffffff", "x"}) {
    const auto rows =
        Query("SELECT u::text, segment_bucket(" + Quote(salt) +
              ", u) FROM (SELECT format('%s-0000-4000-8000-000000000000', lpad(to_hex(g), 8, '0'))::uuid AS u "
              "FROM generate_series(1, 3000) AS g) AS users");
    REQUIRE(rows.size() == 3000);
    for (const auto& row : rows) {
      INFO(salt << " " << row[0]);
      REQUIRE(std::to_string(domain::Bucket(salt, row[0])) == row[1]);
    }
  }
}

}  // namespace
}  // namespace segments::testing
