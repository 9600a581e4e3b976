#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "support/test_database.h"

using segments::testing::Query;
using segments::testing::QueryValue;

namespace {
std::string SchemaText() {
  std::ifstream file(SEGMENTS_SCHEMA_PATH);
  REQUIRE(file.good());
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}
}  // namespace

TEST_CASE("the schema applies again without error or change", "[pg][schema]") {
  const std::string schema = SchemaText();
  const std::string before = QueryValue("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace");
  Query(schema);
  Query(schema);
  CHECK(QueryValue("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace") == before);
  CHECK(QueryValue("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations") == "1,2,3,4");
}

TEST_CASE("the database itself refuses rows the domain would never write", "[pg][schema]") {
  segments::testing::ResetDatabase();
  CHECK_THROWS(Query("INSERT INTO segments (slug, salt, created_at) VALUES ('bad slug', 's', now())"));
  CHECK_THROWS(Query("INSERT INTO segments (slug, salt, percent_to_fill, created_at) VALUES ('A', 's', 100.5, now())"));
  Query("INSERT INTO segments (slug, salt, created_at) VALUES ('A', 's', now())");
  CHECK_THROWS(Query("INSERT INTO segments (slug, salt, created_at) VALUES ('A', 's', now())"));
  // A membership ending before it began. (Memberships have no foreign keys
  // since migration 4: the store's locks keep them pointing at existing
  // users and live segments; tests/pg/domain/membership_integrity_pgtest.cc.)
  CHECK_THROWS(
      Query("INSERT INTO memberships (user_id, segment_id, added_at, expires_at) "
            "VALUES ('11111111-1111-1111-1111-111111111111', 1, now(), now())"));
}

TEST_CASE("the per-user read and the per-month scan use indexes", "[pg][schema]") {
  segments::testing::ResetDatabase();
  Query("SET enable_seqscan = off");  // tables are tiny here; ask what the planner can use
  const auto plan = Query(
      "EXPLAIN SELECT s.slug FROM memberships m JOIN segments s ON s.id = m.segment_id "
      "WHERE m.user_id = '11111111-1111-1111-1111-111111111111' AND (m.expires_at IS NULL OR m.expires_at > now())");
  std::string text;
  for (const auto& row : plan) text += row[0] + "\n";
  CHECK_THAT(text, Catch::Contains("memberships_pkey"));
}
