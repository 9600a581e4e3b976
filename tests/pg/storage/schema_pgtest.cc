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
  CHECK(QueryValue("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations") ==
        "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16");
}

TEST_CASE("migration 15 gives the adds of memberships still held their deadline", "[pg][schema]") {
  segments::testing::ResetDatabase();
  // A database as migration 14 left it: a held TTL membership, a held
  // permanent one, and one ended by its TTL, none with a deadline on its add.
  Query("INSERT INTO users (id, state, created_at, updated_at) VALUES ('7', 'active', now(), now())");
  Query("INSERT INTO segments (slug, salt, created_at) VALUES ('T', 's', now()), ('P', 's', now())");
  Query(
      "INSERT INTO memberships (user_id, segment_id, added_at, expires_at, auto) SELECT '7', id, "
      "'2026-01-01Z', CASE WHEN slug = 'T' THEN timestamptz '2030-01-01Z' END, false FROM segments");
  Query(
      "INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
      "SELECT '7', id, slug, 'add'::history_operation, 'manual'::history_reason, timestamptz '2026-01-01Z' "
      "FROM segments UNION ALL "
      "SELECT '7', id, slug, 'add', 'manual', '2025-01-01Z' FROM segments WHERE slug = 'T' UNION ALL "
      "SELECT '7', id, slug, 'remove', 'ttl', '2025-02-01Z' FROM segments WHERE slug = 'T'");
  Query("DELETE FROM schema_migrations WHERE version = 15");
  Query(SchemaText());
  CHECK(QueryValue("SELECT string_agg(slug || ':' || to_char(at, 'YYYY') || ':' || "
                   "coalesce(to_char(expires_at AT TIME ZONE 'UTC', 'YYYY'), '-'), ',' ORDER BY slug, at) "
                   "FROM history WHERE operation = 'add'") == "P:2026:-,T:2025:-,T:2026:2030");
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

TEST_CASE("every user id column holds canonical ids of either kind, in byte order", "[pg][schema]") {
  segments::testing::ResetDatabase();
  // No uuid column is left, and each user id column is of the domain, whose
  // collation is "C" (UserId's order).
  CHECK(QueryValue("SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                   "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.atttypid = 'uuid'::regtype "
                   "AND NOT a.attisdropped") == "0");
  CHECK(QueryValue("SELECT string_agg(c.relname || '.' || a.attname || ':' || a.atttypid::regtype || ':' || "
                   "co.collname, ',' ORDER BY c.relname) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                   "JOIN pg_collation co ON co.oid = a.attcollation "
                   "WHERE c.relname IN ('users', 'memberships', 'history', 'auto_opt_outs') "
                   "AND a.attname IN ('id', 'user_id') AND a.atttypid <> 'bigint'::regtype") ==
        "auto_opt_outs.user_id:user_id:C,history.user_id:user_id:C,memberships.user_id:user_id:C,users.id:user_id:C");

  // The UUID ...1000 and the integer 1000 are two rows.
  Query(
      "INSERT INTO users (id, state, created_at, updated_at) VALUES "
      "('00000000-0000-0000-0000-000000001000', 'active', now(), now()), ('1000', 'active', now(), now()), "
      "('0', 'active', now(), now()), ('9223372036854775807', 'active', now(), now())");
  CHECK(QueryValue("SELECT string_agg(id, ',' ORDER BY id) FROM users") ==
        "0,00000000-0000-0000-0000-000000001000,1000,9223372036854775807");
  // Any other spelling is refused, so no id is stored twice under two texts.
  for (const char* bad : {"01000", "+1000", "-1", "1.0", "1e3", " 1000", "9223372036854775808", "",
                          "00000000-0000-0000-0000-00000000100A", "{00000000-0000-0000-0000-000000001000}",
                          "000000000000000000000000000001000"}) {
    INFO(bad);
    CHECK_THROWS_WITH(Query(std::string("INSERT INTO users (id, state, created_at, updated_at) VALUES ('") + bad +
                            "', 'active', now(), now())"),
                      Catch::Contains("violates check constraint \"user_id_check\""));
    CHECK_THROWS_WITH(Query(std::string("INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
                                        "VALUES ('") +
                            bad + "', 1, 'A', 'add', 'manual', now())"),
                      Catch::Contains("violates check constraint \"user_id_check\""));
  }
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
