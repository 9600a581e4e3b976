#include "storage/pg_store.h"

#include <catch2/catch.hpp>

#include <absl/synchronization/barrier.h>
#include <absl/time/clock.h>

#include <atomic>
#include <thread>

#include "support/domain_testing.h"
#include "support/test_database.h"

using namespace segments::domain;
using segments::storage::PgPool;
using segments::storage::PgPoolOptions;
using segments::storage::PgStore;
using segments::testing::Id;
using segments::testing::Query;
using segments::testing::QueryValue;

namespace {

constexpr const char* kAlice = "11111111-1111-1111-1111-111111111111";
constexpr const char* kBob = "22222222-2222-2222-2222-222222222222";

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 1, 12, 0, 0), absl::UTCTimeZone());

struct Fixture {
  PgPool pool{PgPoolOptions{segments::testing::TestDatabaseUrl(), 4}};
  PgStore store{pool};

  Fixture() { segments::testing::ResetDatabase(); }

  Segment NewSegmentNamed(const std::string& slug) {
    Segment out;
    REQUIRE(store
                .InTransaction([&](Transaction& tx) -> absl::Status {
                  auto s = tx.segments().Insert({slug, 0, "d", "salt", {}}, kT0);
                  if (!s.ok()) return s.status();
                  out = *s;
                  return absl::OkStatus();
                })
                .ok());
    return out;
  }

  void NewUser(const std::string& id) {
    REQUIRE(
        store.InTransaction([&](Transaction& tx) { return tx.users().Insert(Id(id), UserState::kActive, kT0); }).ok());
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "a transaction commits all of its work or none of it", "[pg]") {
  absl::Status failed = store.InTransaction([&](Transaction& tx) -> absl::Status {
    if (auto st = tx.users().Insert(Id(kAlice), UserState::kActive, kT0); !st.ok()) return st;
    return absl::FailedPreconditionError("changed my mind");
  });
  CHECK(failed.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(QueryValue("SELECT count(*) FROM users") == "0");

  NewUser(kAlice);
  CHECK(QueryValue("SELECT state FROM users") == "active");
  auto again =
      store.InTransaction([&](Transaction& tx) { return tx.users().Insert(Id(kAlice), UserState::kActive, kT0); });
  CHECK(again.code() == absl::StatusCode::kAlreadyExists);
}

TEST_CASE_METHOD(Fixture, "a slug is unique among live segments only", "[pg]") {
  const Segment first = NewSegmentNamed("A");
  CHECK(first.created_at == kT0);
  CHECK(first.description == "d");
  auto taken = store.InTransaction([&](Transaction& tx) {
    return tx.segments().Insert({"A", 0, "", "s", {}}, kT0).status();
  });
  CHECK(taken.code() == absl::StatusCode::kAlreadyExists);

  REQUIRE(store
              .InTransaction([&](Transaction& tx) -> absl::Status {
                auto deleted = tx.segments().MarkDeleted("A", kT0);
                if (!deleted.ok()) return deleted.status();
                CHECK(deleted->has_value());
                return absl::OkStatus();
              })
              .ok());
  const Segment second = NewSegmentNamed("A");
  CHECK(second.id != first.id);
  CHECK(QueryValue("SELECT count(*) FROM segments WHERE slug = 'A'") == "2");
}

TEST_CASE_METHOD(Fixture, "memberships, expiry at read time and microsecond timestamps", "[pg]") {
  NewUser(kAlice);
  const Segment a = NewSegmentNamed("A");
  const Segment b = NewSegmentNamed("B");
  const absl::Time deadline = kT0 + absl::Seconds(60) + absl::Microseconds(123456);
  REQUIRE(
      store
          .InTransaction([&](Transaction& tx) {
            return tx.memberships().Insert({{Id(kAlice), {a.id, deadline}}, {Id(kAlice), {b.id, std::nullopt}}}, kT0);
          })
          .ok());

  auto before = store.memberships().ActiveSegmentSlugs(Id(kAlice), deadline - absl::Microseconds(1));
  REQUIRE(before.ok());
  CHECK(before->size() == 2);
  auto at = store.memberships().ActiveSegmentSlugs(Id(kAlice), deadline);
  REQUIRE(at.ok());
  CHECK(*at == std::vector<std::string>{"B"});

  REQUIRE(store
              .InTransaction([&](Transaction& tx) -> absl::Status {
                auto by_user = tx.memberships().OfUsers({Id(kAlice)});
                if (!by_user.ok()) return by_user.status();
                REQUIRE(by_user->size() == 1);
                const std::vector<Membership>& rows = by_user->at(Id(kAlice));
                REQUIRE(rows.size() == 2);
                for (const auto& m : rows) {
                  CHECK(m.added_at == kT0);
                  if (m.slug == "A") CHECK(m.expires_at == deadline);
                  if (m.slug == "B") CHECK_FALSE(m.expires_at.has_value());
                }
                return absl::OkStatus();
              })
              .ok());
  CHECK(store.memberships().ActiveSegmentSlugs(Id(kBob), kT0)->empty());
}

TEST_CASE_METHOD(Fixture, "history rows keep every field", "[pg]") {
  const Segment a = NewSegmentNamed("A");
  const absl::Time at = kT0 + absl::Microseconds(1);
  REQUIRE(store
              .InTransaction([&](Transaction& tx) {
                return tx.history().Append({{Id(kAlice), a.id, "A", Operation::kAdd, Reason::kManual, kT0},
                                            {Id(kAlice), a.id, "A", Operation::kRemove, Reason::kTtl, at}});
              })
              .ok());
  const auto rows = Query(
      "SELECT user_id, segment_id, slug, operation, reason, to_char(at AT TIME ZONE 'UTC', "
      "'YYYY-MM-DD\"T\"HH24:MI:SS.US') FROM history ORDER BY id");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0] ==
        std::vector<std::string>{kAlice, std::to_string(a.id), "A", "add", "manual", "2024-03-01T12:00:00.000000"});
  CHECK(rows[1] ==
        std::vector<std::string>{kAlice, std::to_string(a.id), "A", "remove", "ttl", "2024-03-01T12:00:00.000001"});
}

TEST_CASE_METHOD(Fixture, "set-based ends stamp expired rows as ttl at their deadline", "[pg]") {
  NewUser(kAlice);
  NewUser(kBob);
  const Segment a = NewSegmentNamed("A");
  const Segment b = NewSegmentNamed("B");
  const absl::Time now = kT0 + absl::Hours(1);
  REQUIRE(store
              .InTransaction([&](Transaction& tx) {
                return tx.memberships().Insert({{Id(kAlice), {a.id, kT0 + absl::Minutes(5)}},
                                                {Id(kAlice), {b.id, std::nullopt}},
                                                {Id(kBob), {a.id, std::nullopt}}},
                                               kT0);
              })
              .ok());

  int64_t ended = 0;
  REQUIRE(store
              .InTransaction([&](Transaction& tx) -> absl::Status {
                auto n = tx.memberships().EndAllOfSegment(a, UserRange{}, Reason::kSegmentDeleted, now);
                if (!n.ok()) return n.status();
                ended = *n;
                return absl::OkStatus();
              })
              .ok());
  CHECK(ended == 1);  // Alice's membership had expired: recorded, not counted
  CHECK(Query("SELECT user_id::text, reason::text, at = '2024-03-01T12:05:00Z' FROM history ORDER BY user_id") ==
        std::vector<std::vector<std::string>>{{kAlice, "ttl", "t"}, {kBob, "segment_deleted", "f"}});

  REQUIRE(store
              .InTransaction([&](Transaction& tx) -> absl::Status {
                auto n = tx.memberships().EndAllOfUser(Id(kAlice), Reason::kUserDeleted, now);
                if (!n.ok()) return n.status();
                CHECK(*n == 1);
                return tx.users().Delete(Id(kAlice));
              })
              .ok());
  CHECK(QueryValue("SELECT slug || ':' || reason FROM history WHERE reason = 'user_deleted'") == "B:user_deleted");
  CHECK(QueryValue("SELECT count(*) FROM memberships") == "0");
}

TEST_CASE_METHOD(Fixture, "a deadlock is retried inside the store until both transactions succeed", "[pg]") {
  NewUser(kAlice);
  NewUser(kBob);
  std::atomic<int> attempts{0};
  absl::Barrier* both_locked_first = new absl::Barrier(2);
  auto lock_in_order = [&](const char* first, const char* second) {
    bool first_attempt = true;
    return store.InTransaction([&](Transaction& tx) -> absl::Status {
      attempts.fetch_add(1);
      if (auto st = tx.users().Lock(Id(first)).status(); !st.ok()) return st;
      if (first_attempt) {
        first_attempt = false;
        if (both_locked_first->Block()) delete both_locked_first;
      }
      return tx.users().Lock(Id(second)).status();
    });
  };
  absl::Status left, right;
  std::thread t1([&] { left = lock_in_order(kAlice, kBob); });
  std::thread t2([&] { right = lock_in_order(kBob, kAlice); });
  t1.join();
  t2.join();
  CHECK(left.ok());
  CHECK(right.ok());
  CHECK(attempts.load() == 3);  // the deadlock victim ran once more
}

TEST_CASE("an unreachable database fails fast with UNAVAILABLE", "[pg]") {
  PgPool pool{PgPoolOptions{"postgresql://postgres@127.0.0.1:1/segments", 2}};
  PgStore store{pool};
  const absl::Time start = absl::Now();
  auto slugs = store.memberships().ActiveSegmentSlugs(Id(kAlice), kT0);
  CHECK(slugs.status().code() == absl::StatusCode::kUnavailable);
  CHECK(store.InTransaction([](Transaction&) { return absl::OkStatus(); }).code() == absl::StatusCode::kUnavailable);
  CHECK(absl::Now() - start < absl::Seconds(1));
  CHECK(std::string(slugs.status().message()).find("127.0.0.1") == std::string::npos);  // no connection details
}
