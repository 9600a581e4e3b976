// storage::PgChangeFeed against the real database: the change notes the
// triggers of migration 6 write, and what a look makes of them.
#include <absl/time/civil_time.h>
#include <libpq-fe.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <set>
#include <stdexcept>

#include "storage/pg_change_feed.h"
#include "support/test_database.h"

using segments::domain::UserId;
using segments::readmodel::FeedChanges;
using segments::readmodel::HeldMembership;
using segments::readmodel::kNeverExpires;
using segments::storage::PgChangeFeed;
using segments::storage::PgSnapshot;
using segments::testing::Query;
using segments::testing::QueryValue;
using segments::testing::ResetDatabase;
using segments::testing::TestDatabaseUrl;

namespace {

// A session of its own, to hold a transaction open across looks.
class Session {
 public:
  Session() : conn_(PQconnectdb(TestDatabaseUrl().c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(conn_));
  }
  ~Session() { PQfinish(conn_); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  void Exec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    const std::string message = PQresultErrorMessage(r);
    PQclear(r);
    if (!ok) throw std::runtime_error(sql + ": " + message);
  }

 private:
  PGconn* conn_;
};

void AddSegments() {
  Query("INSERT INTO segments (slug, salt, created_at) VALUES ('A', 'a', now()), ('B', 'b', now())");
}

void AddMembership(const std::string& user, int segment, const std::string& expires = "NULL") {
  Query("INSERT INTO memberships (user_id, segment_id, added_at, expires_at) VALUES ('" + user + "', " +
        std::to_string(segment) + ", '2024-01-01', " + expires + ")");
}

UserId Id(const std::string& text) { return *UserId::Parse(text); }

std::set<std::string> UsersOf(const FeedChanges& changes) {
  std::set<std::string> out;
  for (const UserId& u : changes.users) out.insert(u.ToString());
  return out;
}

struct Loaded {
  std::vector<std::pair<UserId, HeldMembership>> rows;
  segments::readmodel::SegmentCatalog catalog;
};

Loaded Load(PgChangeFeed& feed) {
  REQUIRE(feed.Connect().ok());
  Loaded loaded;
  auto catalog = feed.LoadAll([&](const UserId& user, HeldMembership m) { loaded.rows.emplace_back(user, m); });
  REQUIRE(catalog.ok());
  loaded.catalog = *catalog;
  return loaded;
}

FeedChanges Look(PgChangeFeed& feed) {
  auto changes = feed.Poll();
  INFO(changes.status().ToString());
  REQUIRE(changes.ok());
  return *std::move(changes);
}

}  // namespace

TEST_CASE("a snapshot's text is parsed", "[pg][change_feed]") {
  auto s = PgSnapshot::Parse("10:20:12,15");
  REQUIRE(s);
  CHECK(s->xmin == 10);
  CHECK(s->xmax == 20);
  CHECK(s->xip == std::vector<uint64_t>{12, 15});
  CHECK(PgSnapshot::Parse("7:7:")->xip.empty());
  CHECK_FALSE(PgSnapshot::Parse("7:7"));
  CHECK_FALSE(PgSnapshot::Parse("a:7:"));
}

TEST_CASE("loading everything, then looking finds exactly the users a statement changed", "[pg][change_feed]") {
  ResetDatabase();
  AddSegments();
  AddMembership("1", 1);
  AddMembership("1", 2, "'2030-01-01 00:00:00.123456+00'");
  AddMembership("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b", 1, "'infinity'");
  PgChangeFeed feed(TestDatabaseUrl(), {});
  const Loaded loaded = Load(feed);
  REQUIRE(loaded.rows.size() == 3);
  // By user id, in the database's order; deadlines to the microsecond.
  CHECK(loaded.rows[0].first == Id("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b"));
  CHECK(loaded.rows[0].second.expires_us == kNeverExpires);
  CHECK(loaded.rows[1].first == Id("1"));
  const absl::Time deadline = absl::FromCivil(absl::CivilSecond(2030, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  for (size_t i = 1; i <= 2; ++i) {
    if (loaded.rows[i].second.segment_id == 2) {
      CHECK(loaded.rows[i].second.expires_us == absl::ToUnixMicros(deadline) + 123456);
    } else {
      CHECK(loaded.rows[i].second.expires_us == kNeverExpires);
    }
  }
  CHECK(loaded.catalog.size() == 2);

  CHECK(Look(feed).empty());
  AddMembership("2", 2);
  Query("DELETE FROM memberships WHERE user_id = '1' AND segment_id = 1");
  FeedChanges changes = Look(feed);
  CHECK(UsersOf(changes) == std::set<std::string>{"1", "2"});
  CHECK_FALSE(changes.catalog);
  CHECK(changes.segments.empty());
  // Each user's memberships as they are now, whole.
  REQUIRE(changes.user_rows.size() == 2);
  CHECK(changes.user_rows[0].first == Id("1"));
  CHECK(changes.user_rows[0].second.segment_id == 2);
  CHECK(changes.user_rows[1].first == Id("2"));
  // Seen once.
  CHECK(Look(feed).empty());
}

TEST_CASE("a transaction open during a look is found by a later look once it commits", "[pg][change_feed]") {
  ResetDatabase();
  AddSegments();
  PgChangeFeed feed(TestDatabaseUrl(), {});
  Load(feed);
  Session early, late;
  // `early` has its id before the next look's snapshot, `late` after it.
  early.Exec("BEGIN");
  early.Exec("INSERT INTO memberships (user_id, segment_id, added_at) VALUES ('10', 1, now())");
  CHECK(Look(feed).empty());
  late.Exec("BEGIN");
  late.Exec("INSERT INTO memberships (user_id, segment_id, added_at) VALUES ('20', 1, now())");
  late.Exec("COMMIT");
  CHECK(UsersOf(Look(feed)) == std::set<std::string>{"20"});
  early.Exec("COMMIT");
  CHECK(UsersOf(Look(feed)) == std::set<std::string>{"10"});
  // A rolled back change leaves nothing to find.
  early.Exec("BEGIN");
  early.Exec("INSERT INTO memberships (user_id, segment_id, added_at) VALUES ('30', 1, now())");
  early.Exec("ROLLBACK");
  CHECK(Look(feed).empty());
}

TEST_CASE("many additions to one segment close in id order are noted as a range and fetched by it",
          "[pg][change_feed]") {
  ResetDatabase();
  AddSegments();
  AddMembership("1", 2);
  AddMembership("150", 2);
  PgChangeFeed feed(TestDatabaseUrl(), {});
  Load(feed);
  const int notes_before = std::stoi(QueryValue("SELECT count(*) FROM membership_changes"));
  // A chunk of a fill: users 100..10100 (in byte order '100' to '9999').
  Query(
      "INSERT INTO memberships (user_id, segment_id, added_at) SELECT g::text, 1, now() FROM generate_series(100, "
      "10100) g");
  CHECK(std::stoi(QueryValue("SELECT count(*) FROM membership_changes")) - notes_before == 1);
  CHECK(QueryValue(
            "SELECT kind::text || ' ' || segment_id || ' ' || user_id || ' ' || last_user_id FROM membership_changes "
            "ORDER BY xid DESC LIMIT 1") == "r 1 100 9999");
  FeedChanges changes = Look(feed);
  CHECK(changes.users.empty());
  CHECK(changes.segments.empty());
  CHECK(changes.has_ranges);
  CHECK(!changes.empty());
  // The segment's rows in the range, and no other segment's.
  REQUIRE(changes.range_rows.size() == 10001);
  for (const auto& [user, m] : changes.range_rows) CHECK(m.segment_id == 1);

  // 64 additions or fewer are noted per user.
  Query(
      "INSERT INTO memberships (user_id, segment_id, added_at) SELECT g::text, 2, now() FROM generate_series(200, 263) "
      "g");
  changes = Look(feed);
  CHECK(changes.users.size() == 64);
  CHECK(!changes.has_ranges);
}

TEST_CASE("additions spread among a segment's members are noted per user, or per segment over 10,000 rows",
          "[pg][change_feed]") {
  ResetDatabase();
  AddSegments();
  // Users 300000..349999 but every fourth are in segment 1 already.
  Query(
      "INSERT INTO memberships (user_id, segment_id, added_at) SELECT g::text, 1, now() FROM generate_series(300000, "
      "349999) g WHERE g % 4 <> 0");
  PgChangeFeed feed(TestDatabaseUrl(), {});
  Load(feed);
  // Every fourth comes: 12,500 rows in a range of 50,000, more than twice.
  Query(
      "INSERT INTO memberships (user_id, segment_id, added_at) SELECT g::text, 1, now() FROM generate_series(300000, "
      "349999) g WHERE g % 4 = 0");
  FeedChanges changes = Look(feed);
  CHECK(changes.users.empty());
  CHECK(!changes.has_ranges);
  CHECK(changes.segments == std::vector<uint32_t>{1});
  CHECK(changes.segment_rows.size() == 50000);
  // 10,000 rows are still noted per user.
  Query("DELETE FROM memberships WHERE segment_id = 1 AND user_id::int8 < 310000");
  changes = Look(feed);
  CHECK(changes.users.size() == 10000);
  CHECK(changes.segments.empty());
  CHECK(changes.user_rows.empty());
}

TEST_CASE("segment changes bring the catalog; a truncate asks for everything", "[pg][change_feed]") {
  ResetDatabase();
  AddSegments();
  PgChangeFeed feed(TestDatabaseUrl(), {});
  Load(feed);
  Query("UPDATE segments SET deleted_at = now() WHERE slug = 'A'");
  Query("INSERT INTO segments (slug, salt, created_at) VALUES ('C', 'c', now())");
  FeedChanges changes = Look(feed);
  REQUIRE(changes.catalog);
  std::set<std::string> slugs;
  for (const auto& [id, slug] : *changes.catalog) slugs.insert(slug);
  CHECK(slugs == std::set<std::string>{"B", "C"});
  Query("TRUNCATE memberships");
  changes = Look(feed);
  CHECK(changes.reload_all);
  CHECK(changes.users.empty());
}

TEST_CASE("a feed continues only from a position on the same server; pruning keeps what readers need",
          "[pg][change_feed]") {
  ResetDatabase();
  AddSegments();
  AddMembership("1", 1);  // a note from before the load
  PgChangeFeed feed(TestDatabaseUrl(), {});
  PgChangeFeed fresh(TestDatabaseUrl(), {});
  REQUIRE(fresh.Connect().ok());
  CHECK_FALSE(*fresh.CanContinue());  // no position yet
  Load(feed);
  feed.Disconnect();
  REQUIRE(feed.Connect().ok());
  CHECK(*feed.CanContinue());
  AddMembership("2", 1);
  const std::string xmin = QueryValue("SELECT min(xid)::text FROM membership_changes WHERE user_id = '2'");
  // Notes older than the load's position go; the newer one stays.
  REQUIRE(feed.Prune(absl::ZeroDuration()).ok());
  CHECK(QueryValue("SELECT count(*) FROM membership_changes WHERE kind = 'u' AND user_id = '1'") == "0");
  CHECK(QueryValue("SELECT count(*) FROM membership_changes WHERE xid = '" + xmin + "'") == "1");
  CHECK(UsersOf(Look(feed)) == std::set<std::string>{"2"});
}

TEST_CASE("an announcement wakes the other feeds, not the one that sent it", "[pg][change_feed]") {
  PgChangeFeed a(TestDatabaseUrl(), {});
  PgChangeFeed b(TestDatabaseUrl(), {});
  REQUIRE(a.Connect().ok());
  REQUIRE(b.Connect().ok());
  const int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  REQUIRE(b.Announce().ok());
  CHECK(*a.AwaitAnnouncement(absl::Seconds(5), wake));
  // b's own announcement: only the timeout ends the wait.
  CHECK_FALSE(*b.AwaitAnnouncement(absl::Milliseconds(200), wake));
  // The wake-up descriptor ends it too, without an announcement.
  const uint64_t one = 1;
  REQUIRE(write(wake, &one, sizeof one) == sizeof one);
  CHECK_FALSE(*a.AwaitAnnouncement(absl::Seconds(5), wake));
  close(wake);
}
