// Automatic assignment in SQL (PgStore): AssignByPercent / UnassignByPercent
// against domain::Bucket on thousands of users, include/exclude options,
// opt-outs, automatic TTLs, the expiry job's opt-outs, and the bulk
// statements (UnknownUsers, AddMembers, RemoveMembers), each with its history.
#include <absl/strings/str_join.h>
#include <fmt/format.h>

#include <absl/synchronization/notification.h>

#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <thread>

#include "common/status_macros.h"
#include "domain/auto_assignment.h"
#include "domain/bucketing.h"
#include "storage/pg_store.h"
#include "support/domain_testing.h"
#include "support/store_testing.h"
#include "support/test_database.h"

using namespace segments::domain;
using segments::storage::PgPool;
using segments::storage::PgPoolOptions;
using segments::storage::PgStore;
using segments::testing::Id;
using segments::testing::Ids;
using segments::testing::Query;
using segments::testing::QueryValue;
using Rows = std::vector<std::vector<std::string>>;
using Users = std::set<std::string>;

namespace {

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 1, 12, 0, 0), absl::UTCTimeZone());

std::string Rfc3339(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone()); }
std::string Micros(absl::Time t) { return std::to_string(absl::ToUnixMicros(t)); }
std::string MicrosOf(const std::string& column) { return "(extract(epoch FROM " + column + ") * 1000000)::int8"; }

// The id of user number g (1-based), as the SQL below makes it.
std::string UserNo(int g) { return fmt::format("{:08x}-0000-4000-8000-000000000000", g); }

int64_t Count(const std::string& sql) { return std::stoll(QueryValue(sql)); }

Users Set(const Rows& rows) {
  Users out;
  for (const auto& row : rows) out.insert(row.at(0));
  return out;
}

struct Fixture {
  PgPool pool{PgPoolOptions{segments::testing::TestDatabaseUrl(), 4}};
  PgStore store{pool};

  Fixture() { segments::testing::ResetDatabase(); }

  // Users 1..n; every `excluded_every`-th one excluded (0: none).
  void InsertUsers(int n, int excluded_every = 0) {
    Query(
        fmt::format("INSERT INTO users (id, state, created_at, updated_at) "
                    "SELECT format('%s-0000-4000-8000-000000000000', lpad(to_hex(g), 8, '0'))::uuid, "
                    "CASE WHEN {0} > 0 AND g % greatest({0}, 1) = 0 THEN 'excluded' ELSE 'active' END::user_state, "
                    "'2024-01-01Z', '2024-01-01Z' FROM generate_series(1, {1}) AS g",
                    excluded_every, n));
  }

  Users ActiveUsers() { return Set(Query("SELECT id::text FROM users WHERE state = 'active'")); }

  template <typename F>
  void Tx(F f) {
    absl::Status status = store.InTransaction([&](Transaction& tx) -> absl::Status { return f(tx); });
    INFO(status);
    REQUIRE(status.ok());
  }

  Segment NewSegment(const std::string& slug, int32_t percent, AutoOptions options = {}) {
    Segment out;
    Tx([&](Transaction& tx) -> absl::Status {
      auto s = tx.segments().Insert({slug, percent, "", "salt-" + slug, options}, kT0);
      if (!s.ok()) return s.status();
      out = *s;
      return absl::OkStatus();
    });
    return out;
  }

  int64_t Assign(const Segment& s, int32_t from, absl::Time now) {
    int64_t n = -1;
    Tx([&](Transaction& tx) -> absl::Status {
      if (auto st = tx.segments().SetPercent(s.id, s.percent_hundredths); !st.ok()) return st;
      auto r = tx.memberships().AssignByPercent(s, UserRange{}, from, now);
      if (!r.ok()) return r.status();
      n = *r;
      return absl::OkStatus();
    });
    return n;
  }

  int64_t Unassign(const Segment& s, int32_t from, absl::Time now) {
    int64_t n = -1;
    Tx([&](Transaction& tx) -> absl::Status {
      if (auto st = tx.segments().SetPercent(s.id, s.percent_hundredths); !st.ok()) return st;
      auto r = tx.memberships().UnassignByPercent(s, UserRange{}, from, now);
      if (!r.ok()) return r.status();
      n = *r;
      return absl::OkStatus();
    });
    return n;
  }

  void Insert(const std::string& user, const std::vector<NewMembership>& memberships, absl::Time now = kT0) {
    const absl::Status status = segments::testing::InsertMemberships(store, Id(user), memberships, now);
    INFO(status);
    REQUIRE(status.ok());
  }

  // Rows of `s` for the users g in [from, to] where `where` (SQL over g)
  // holds, expiring at `expires` (SQL over g; NULL: never).
  void InsertRows(const Segment& s, int from, int to, const std::string& where, const std::string& expires,
                  bool automatic) {
    Query(
        fmt::format("INSERT INTO memberships (user_id, segment_id, added_at, expires_at, auto) "
                    "SELECT format('%s-0000-4000-8000-000000000000', lpad(to_hex(g), 8, '0'))::uuid, {}, '{}', {}, {} "
                    "FROM generate_series({}, {}) AS g WHERE {}",
                    s.id, Rfc3339(kT0), expires, automatic, from, to, where));
  }

  Users Members(const Segment& s, const std::string& condition = "true") {
    return Set(
        Query(fmt::format("SELECT user_id::text FROM memberships WHERE segment_id = {} AND {}", s.id, condition)));
  }

  // Of `users`, those whose bucket for `s` is in [from, to).
  static Users Covered(const Segment& s, const Users& users, int32_t from, int32_t to) {
    Users out;
    for (const auto& u : users) {
      const int32_t b = Bucket(s.salt, u);
      if (b >= from && b < to) out.insert(u);
    }
    return out;
  }

  int64_t Events(const Segment& s, const std::string& operation, const std::string& reason, absl::Time at) {
    return Count(fmt::format(
        "SELECT count(*) FROM history WHERE segment_id = {} AND operation = '{}' AND reason = '{}' AND at = '{}'", s.id,
        operation, reason, Rfc3339(at)));
  }
};

Users Minus(const Users& a, const Users& b) {
  Users out;
  for (const auto& x : a) {
    if (!b.contains(x)) out.insert(x);
  }
  return out;
}

}  // namespace

TEST_CASE_METHOD(Fixture, "AssignByPercent adds exactly the active users domain::Bucket puts below the percentage",
                 "[pg][auto]") {
  InsertUsers(3000, 10);
  const Segment s = NewSegment("TEN", 1000);
  const Users expected = Covered(s, ActiveUsers(), 0, 1000);
  REQUIRE(expected.size() > 200);
  const absl::Time now = kT0 + absl::Minutes(1) + absl::Microseconds(7);
  CHECK(Assign(s, 0, now) == static_cast<int64_t>(expected.size()));
  CHECK(Members(s) == expected);
  CHECK(Members(s, "auto AND expires_at IS NULL AND added_at = '" + Rfc3339(now) + "'") == expected);
  CHECK(Events(s, "add", "auto_percent", now) == static_cast<int64_t>(expected.size()));
  CHECK(Count("SELECT count(*) FROM history") == static_cast<int64_t>(expected.size()));
  CHECK(Set(Query("SELECT user_id::text FROM history")) == expected);
  CHECK(QueryValue("SELECT DISTINCT slug FROM history") == "TEN");
  // Nothing more the second time: everyone covered is in already.
  CHECK(Assign(s, 0, now + absl::Seconds(1)) == 0);
}

TEST_CASE_METHOD(Fixture, "raising acts on [from, to) only; 10 -> 30 -> 10 -> 30 gives the same sets", "[pg][auto]") {
  InsertUsers(3000);
  Segment s = NewSegment("S", 1000);
  const Users all = ActiveUsers();
  const Users at10 = Covered(s, all, 0, 1000);
  const Users at30 = Covered(s, all, 0, 3000);
  REQUIRE(at30.size() > at10.size() + 300);

  const absl::Time t1 = kT0 + absl::Minutes(1);
  REQUIRE(Assign(s, 0, t1) == static_cast<int64_t>(at10.size()));
  // A user of the first buckets taken out behind the store's back: raising
  // from 10 % must not look at buckets below 10 % again.
  const std::string gone = *at10.begin();
  Query("DELETE FROM memberships WHERE user_id = '" + gone + "'");

  s.percent_hundredths = 3000;
  const absl::Time t2 = kT0 + absl::Minutes(2);
  CHECK(Assign(s, 1000, t2) == static_cast<int64_t>(at30.size() - at10.size()));
  Users expected = at30;
  expected.erase(gone);
  CHECK(Members(s) == expected);
  CHECK(Events(s, "add", "auto_percent", t2) == static_cast<int64_t>(at30.size() - at10.size()));
  Query(fmt::format("INSERT INTO memberships (user_id, segment_id, added_at, auto) VALUES ('{}', {}, '{}', true)", gone,
                    s.id, Rfc3339(t1)));

  s.percent_hundredths = 1000;
  const absl::Time t3 = kT0 + absl::Minutes(3);
  CHECK(Unassign(s, 3000, t3) == static_cast<int64_t>(at30.size() - at10.size()));
  CHECK(Members(s) == at10);
  CHECK(Events(s, "remove", "auto_percent", t3) == static_cast<int64_t>(at30.size() - at10.size()));
  CHECK(Set(Query(fmt::format("SELECT user_id::text FROM history WHERE at = '{}'", Rfc3339(t3)))) == Minus(at30, at10));
  CHECK(Count("SELECT count(*) FROM auto_opt_outs") == 0);  // lowering is no opt-out

  s.percent_hundredths = 3000;
  CHECK(Assign(s, 1000, kT0 + absl::Minutes(4)) == static_cast<int64_t>(at30.size() - at10.size()));
  CHECK(Members(s) == at30);

  s.percent_hundredths = 0;
  CHECK(Unassign(s, 3000, kT0 + absl::Minutes(5)) == static_cast<int64_t>(at30.size()));
  CHECK(Members(s).empty());
  CHECK(QueryValue(fmt::format("SELECT percent_to_fill IS NULL FROM segments WHERE id = {}", s.id)) == "t");
}

TEST_CASE_METHOD(Fixture, "hand members are neither duplicated by raising nor removed by lowering", "[pg][auto]") {
  InsertUsers(2000);
  Segment s = NewSegment("S", 0);
  const Users all = ActiveUsers();
  // Every 3rd user in by hand, half of them with a TTL still running.
  InsertRows(s, 1, 2000, "g % 3 = 1",
             fmt::format("CASE WHEN g % 2 = 0 THEN '{}'::timestamptz END", Rfc3339(kT0 + absl::Hours(10))), false);
  const Users hand = Members(s);
  REQUIRE(hand.size() == 667);
  s.percent_hundredths = 5000;
  const Users covered = Covered(s, all, 0, 5000);
  CHECK(Assign(s, 0, kT0 + absl::Minutes(1)) == static_cast<int64_t>(Minus(covered, hand).size()));
  CHECK(Members(s, "NOT auto") == hand);
  CHECK(Members(s, "auto") == Minus(covered, hand));

  s.percent_hundredths = 0;
  CHECK(Unassign(s, 5000, kT0 + absl::Minutes(2)) == static_cast<int64_t>(Minus(covered, hand).size()));
  CHECK(Members(s) == hand);
  CHECK(Count(fmt::format("SELECT count(*) FROM history WHERE operation = 'remove' AND user_id IN ({})",
                          "'" + absl::StrJoin(hand, "','") + "'")) == 0);
}

TEST_CASE_METHOD(Fixture, "AssignByPercent skips excluded users and opt-outs of this segment only", "[pg][auto]") {
  InsertUsers(1500, 4);
  const Segment s = NewSegment("S", 10000);
  const Segment other = NewSegment("OTHER", 10000);
  const Users active = ActiveUsers();
  Users opted;
  std::vector<OptOut> opt_outs;
  int i = 0;
  for (const auto& u : active) {
    if (i++ % 9 != 0) continue;
    opted.insert(u);
    opt_outs.push_back({Id(u), s.id, Reason::kManual});
  }
  Tx([&](Transaction& tx) { return tx.memberships().RecordOptOutsOfUsers(opt_outs, kT0); });
  CHECK(Assign(s, 0, kT0) == static_cast<int64_t>(active.size() - opted.size()));
  CHECK(Members(s) == Minus(active, opted));
  CHECK(Assign(other, 0, kT0) == static_cast<int64_t>(active.size()));
  CHECK(Members(other) == active);

  // The store reports and keeps the first reason of an opt-out.
  const std::string u = *opted.begin();
  Tx([&](Transaction& tx) -> absl::Status {
    if (auto st = tx.memberships().RecordOptOutsOfUsers({{Id(u), s.id, Reason::kTtl}, {Id(u), other.id, Reason::kTtl}},
                                                        kT0 + absl::Hours(1));
        !st.ok())
      return st;
    auto by_user = tx.memberships().OptedOutSegmentsOfUsers({Id(u)});
    if (!by_user.ok()) return by_user.status();
    REQUIRE(by_user->size() == 1);
    const std::vector<SegmentId>& ids = by_user->at(Id(u));
    CHECK(std::set<SegmentId>(ids.begin(), ids.end()) == std::set<SegmentId>{s.id, other.id});
    return absl::OkStatus();
  });
  CHECK(Query(fmt::format("SELECT segment_id, reason FROM auto_opt_outs WHERE user_id = '{}' ORDER BY 1", u)) ==
        Rows{{std::to_string(s.id), "manual"}, {std::to_string(other.id), "ttl"}});
}

TEST_CASE_METHOD(Fixture, "include and exclude count the memberships active at the assignment's now", "[pg][auto]") {
  InsertUsers(1600);
  const Segment inc = NewSegment("INC", 0);
  const Segment inc2 = NewSegment("INC2", 0);
  const Segment exc = NewSegment("EXC", 0);
  const absl::Time now = kT0 + absl::Hours(1);
  const absl::Time lapsed = kT0 + absl::Minutes(1);
  const std::string lapsed_sql = "'" + Rfc3339(lapsed) + "'::timestamptz";
  InsertRows(inc, 1, 1000, "true", "CASE WHEN g % 5 = 0 THEN " + lapsed_sql + " END", false);
  InsertRows(inc2, 1, 1600, "g % 2 = 0", "'" + Rfc3339(now + absl::Seconds(1)) + "'", true);  // running at now
  InsertRows(exc, 500, 1499, "true", "CASE WHEN g % 7 = 0 THEN " + lapsed_sql + " END", false);
  Users in_inc, in_inc2, in_exc;
  for (int g = 1; g <= 1600; ++g) {
    if (g <= 1000 && g % 5 != 0) in_inc.insert(UserNo(g));
    if (g % 2 == 0) in_inc2.insert(UserNo(g));
    if (g >= 500 && g < 1500 && g % 7 != 0) in_exc.insert(UserNo(g));
  }
  const Segment s = NewSegment("S", 10000, AutoOptions{{inc.id}, {exc.id}, std::nullopt});
  CHECK(Assign(s, 0, now) >= 0);
  CHECK(Members(s) == Minus(in_inc, in_exc));

  const Segment both = NewSegment("BOTH", 6000, AutoOptions{{inc.id, inc2.id}, {}, std::nullopt});
  Users expected;
  for (const auto& u : Covered(both, in_inc, 0, 6000)) {
    if (in_inc2.contains(u)) expected.insert(u);
  }
  REQUIRE(expected.size() > 100);
  CHECK(Assign(both, 0, now) == static_cast<int64_t>(expected.size()));
  CHECK(Members(both) == expected);

  const Segment none_of = NewSegment("NONE_OF", 10000, AutoOptions{{}, {inc.id, exc.id}, std::nullopt});
  Users outside = ActiveUsers();
  outside = Minus(Minus(outside, in_inc), in_exc);
  CHECK(Assign(none_of, 0, now) == static_cast<int64_t>(outside.size()));
  CHECK(Members(none_of) == outside);
}

TEST_CASE_METHOD(Fixture, "segment options round-trip: ids, sorted slugs and the automatic TTL", "[pg][auto]") {
  const Segment b = NewSegment("b", 0);
  const Segment a = NewSegment("A", 0);
  const Segment c = NewSegment("C", 0);
  const Segment s = NewSegment("S", 1234, AutoOptions{{b.id, a.id}, {c.id}, 3600});
  CHECK(s.percent_hundredths == 1234);
  CHECK(s.auto_options.include_ids == std::vector<SegmentId>{b.id, a.id});
  CHECK(s.auto_options.exclude_ids == std::vector<SegmentId>{c.id});
  CHECK(s.auto_options.ttl_seconds == 3600);
  CHECK(s.include_slugs == std::vector<std::string>{"A", "b"});
  CHECK(s.exclude_slugs == std::vector<std::string>{"C"});
  auto looked = store.segments().Find("S");
  REQUIRE(looked.ok());
  REQUIRE(looked->has_value());
  CHECK((*looked)->auto_options.include_ids == s.auto_options.include_ids);
  CHECK((*looked)->include_slugs == s.include_slugs);
  CHECK((*looked)->auto_options.ttl_seconds == 3600);
  CHECK_FALSE(a.auto_options.ttl_seconds.has_value());
  CHECK(store.segments().Find("nope")->has_value() == false);
}

TEST_CASE_METHOD(Fixture, "an automatic TTL gives every automatic row its deadline", "[pg][auto][ttl]") {
  InsertUsers(500);
  const Segment s = NewSegment("S", 10000, AutoOptions{{}, {}, 90});
  const absl::Time now = kT0 + absl::Microseconds(250);
  CHECK(Assign(s, 0, now) == 500);
  CHECK(Count(fmt::format("SELECT count(*) FROM memberships WHERE auto AND expires_at = '{}'",
                          Rfc3339(now + absl::Seconds(90)))) == 500);
}

TEST_CASE_METHOD(Fixture, "UnassignByPercent ends expired automatic rows as ttl at their deadline, opting out",
                 "[pg][auto][ttl]") {
  InsertUsers(1000);
  Segment s = NewSegment("S", 5000, AutoOptions{{}, {}, 60});
  const Users all = ActiveUsers();
  const Users first = Covered(s, all, 0, 5000);
  REQUIRE(Assign(s, 0, kT0) == static_cast<int64_t>(first.size()));
  const absl::Time later = kT0 + absl::Hours(1);
  s.percent_hundredths = 10000;
  REQUIRE(Assign(s, 5000, later) == static_cast<int64_t>(all.size() - first.size()));

  s.percent_hundredths = 0;
  const absl::Time now = later + absl::Seconds(1);
  CHECK(Unassign(s, 10000, now) == static_cast<int64_t>(all.size() - first.size()));  // the expired not counted
  CHECK(Members(s).empty());
  CHECK(Events(s, "remove", "ttl", kT0 + absl::Seconds(60)) == static_cast<int64_t>(first.size()));
  CHECK(Events(s, "remove", "auto_percent", now) == static_cast<int64_t>(all.size() - first.size()));
  CHECK(Set(Query("SELECT user_id::text FROM auto_opt_outs WHERE reason = 'ttl'")) == first);
  CHECK(Count("SELECT count(*) FROM auto_opt_outs") == static_cast<int64_t>(first.size()));

  // Raising again takes back only those who left by percentage.
  s.percent_hundredths = 10000;
  CHECK(Assign(s, 0, now + absl::Seconds(1)) == static_cast<int64_t>(all.size() - first.size()));
  CHECK(Members(s) == Minus(all, first));
}

TEST_CASE_METHOD(Fixture, "EndExpiredMemberships opts out users of expired automatic rows only", "[pg][auto][ttl]") {
  InsertUsers(400);
  const Segment s = NewSegment("S", 10000, AutoOptions{{}, {}, 60});
  const Segment hand = NewSegment("HAND", 0);
  REQUIRE(Assign(s, 0, kT0) == 400);
  InsertRows(hand, 1, 100, "true", "'" + Rfc3339(kT0 + absl::Seconds(30)) + "'", false);
  InsertRows(hand, 101, 150, "true", "NULL", false);

  auto ended = segments::testing::EndExpiredMemberships(store, kT0 + absl::Hours(1), 100000);
  REQUIRE(ended.ok());
  CHECK(*ended == 500);
  CHECK(Count("SELECT count(*) FROM memberships") == 50);
  CHECK(Events(s, "remove", "ttl", kT0 + absl::Seconds(60)) == 400);
  CHECK(Events(hand, "remove", "ttl", kT0 + absl::Seconds(30)) == 100);
  CHECK(Count(fmt::format("SELECT count(*) FROM auto_opt_outs WHERE segment_id = {} AND reason = 'ttl'", s.id)) == 400);
  CHECK(Count(fmt::format("SELECT count(*) FROM auto_opt_outs WHERE segment_id = {}", hand.id)) == 0);
  // And they stay out of the segment.
  CHECK(Assign(s, 0, kT0 + absl::Hours(2)) == 0);
}

TEST_CASE_METHOD(Fixture, "UnknownUsers names exactly the ids with no user row", "[pg][bulk]") {
  InsertUsers(10);
  Tx([&](Transaction& tx) -> absl::Status {
    auto none = tx.users().Unknown(Ids({UserNo(1), UserNo(10)}));
    if (!none.ok()) return none.status();
    CHECK(none->empty());
    auto some = tx.users().Unknown(Ids({UserNo(11), UserNo(3), UserNo(500), UserNo(10)}));
    if (!some.ok()) return some.status();
    CHECK(std::set<UserId>(some->begin(), some->end()) == std::set<UserId>{Id(UserNo(11)), Id(UserNo(500))});
    return absl::OkStatus();
  });
}

TEST_CASE_METHOD(Fixture, "AddMembers ends expired rows first, keeps existing ones, adds the rest by hand",
                 "[pg][bulk]") {
  InsertUsers(5);
  const Segment s = NewSegment("S", 0);
  const std::string expired_auto = UserNo(1), running = UserNo(2), fresh = UserNo(3), opted = UserNo(4),
                    expired_hand = UserNo(5);
  Insert(expired_auto, {{s.id, kT0 + absl::Seconds(10), true}});
  Insert(running, {{s.id, kT0 + absl::Hours(2), false}});
  Insert(expired_hand, {{s.id, kT0 + absl::Seconds(20), false}});
  Tx([&](Transaction& tx) { return tx.memberships().RecordOptOutsOfUsers({{Id(opted), s.id, Reason::kManual}}, kT0); });

  const absl::Time now = kT0 + absl::Hours(1);
  const absl::Time until = now + absl::Minutes(30);
  int64_t added = -1;
  Tx([&](Transaction& tx) -> absl::Status {
    auto n = tx.memberships().AddMembers(s, Ids({expired_auto, running, fresh, opted, expired_hand}), until, now);
    if (!n.ok()) return n.status();
    added = *n;
    return absl::OkStatus();
  });
  CHECK(added == 4);
  CHECK(Query(fmt::format("SELECT user_id::text, auto::text, {}, {} FROM memberships ORDER BY user_id",
                          MicrosOf("added_at"), MicrosOf("expires_at"))) ==
        Rows{{expired_auto, "false", Micros(now), Micros(until)},
             {running, "false", Micros(kT0), Micros(kT0 + absl::Hours(2))},
             {fresh, "false", Micros(now), Micros(until)},
             {opted, "false", Micros(now), Micros(until)},
             {expired_hand, "false", Micros(now), Micros(until)}});
  CHECK(Query(fmt::format("SELECT user_id::text, operation::text, reason::text, {} FROM history ORDER BY at, user_id",
                          MicrosOf("at"))) == Rows{{expired_auto, "remove", "ttl", Micros(kT0 + absl::Seconds(10))},
                                                   {expired_hand, "remove", "ttl", Micros(kT0 + absl::Seconds(20))},
                                                   {expired_auto, "add", "manual", Micros(now)},
                                                   {fresh, "add", "manual", Micros(now)},
                                                   {opted, "add", "manual", Micros(now)},
                                                   {expired_hand, "add", "manual", Micros(now)}});
  // The automatic row that ran out opts its user out; the hand one does not.
  CHECK(Query("SELECT user_id::text, reason::text FROM auto_opt_outs ORDER BY user_id") ==
        Rows{{expired_auto, "ttl"}, {opted, "manual"}});
}

TEST_CASE_METHOD(Fixture, "RemoveMembers records history and opt-outs per kind of row", "[pg][bulk]") {
  InsertUsers(6);
  const Segment s = NewSegment("S", 0);
  const Segment other = NewSegment("OTHER", 0);
  const std::string hand = UserNo(1), automatic = UserNo(2), expired_auto = UserNo(3), expired_hand = UserNo(4),
                    outsider = UserNo(5), elsewhere = UserNo(6);
  Insert(hand, {{s.id, std::nullopt, false}});
  Insert(automatic, {{s.id, kT0 + absl::Hours(5), true}});
  Insert(expired_auto, {{s.id, kT0 + absl::Seconds(10), true}});
  Insert(expired_hand, {{s.id, kT0 + absl::Seconds(20), false}});
  Insert(elsewhere, {{other.id, std::nullopt, false}});

  const absl::Time now = kT0 + absl::Hours(1);
  int64_t removed = -1;
  Tx([&](Transaction& tx) -> absl::Status {
    auto n =
        tx.memberships().RemoveMembers(s, Ids({hand, automatic, expired_auto, expired_hand, outsider, elsewhere}), now);
    if (!n.ok()) return n.status();
    removed = *n;
    return absl::OkStatus();
  });
  CHECK(removed == 2);
  CHECK(Query("SELECT user_id::text FROM memberships") == Rows{{elsewhere}});
  CHECK(Query(fmt::format("SELECT user_id::text, operation::text, reason::text, {}, slug FROM history "
                          "ORDER BY user_id",
                          MicrosOf("at"))) ==
        Rows{{hand, "remove", "manual", Micros(now), "S"},
             {automatic, "remove", "manual", Micros(now), "S"},
             {expired_auto, "remove", "ttl", Micros(kT0 + absl::Seconds(10)), "S"},
             {expired_hand, "remove", "ttl", Micros(kT0 + absl::Seconds(20)), "S"}});
  CHECK(Query("SELECT user_id::text, segment_id::text, reason::text FROM auto_opt_outs ORDER BY user_id") ==
        Rows{{hand, std::to_string(s.id), "manual"},
             {automatic, std::to_string(s.id), "manual"},
             {expired_auto, std::to_string(s.id), "ttl"}});
}

TEST_CASE_METHOD(Fixture, "ListSegments pages live segments in byte order of their slugs", "[pg][listing]") {
  for (const char* slug : {"b", "A", "a", "Z_1", "Z-1", "Z.1", "0", "B", "GONE"}) NewSegment(slug, 0);
  Tx([&](Transaction& tx) { return tx.segments().MarkDeleted("GONE", kT0).status(); });
  std::vector<std::string> all;
  std::string after;
  for (int pages = 0;; ++pages) {
    REQUIRE(pages < 10);
    auto page = store.segments().List(after, 3);
    REQUIRE(page.ok());
    if (page->empty()) break;
    for (const auto& s : *page) all.push_back(s.slug);
    after = page->back().slug;
  }
  CHECK(all == std::vector<std::string>{"0", "A", "B", "Z-1", "Z.1", "Z_1", "a", "b"});
  auto tail = store.segments().List("Z.1", 100);
  REQUIRE(tail.ok());
  REQUIRE(tail->size() == 3);
  CHECK(tail->front().slug == "Z_1");
}

TEST_CASE_METHOD(Fixture, "AutoSegments: live ones above 0 % in creation order; SegmentsReferring", "[pg][auto]") {
  const Segment base = NewSegment("BASE", 0);
  const Segment z = NewSegment("Z", 100);
  NewSegment("A", 5000, AutoOptions{{base.id}, {}, std::nullopt});
  NewSegment("M", 1, AutoOptions{{}, {base.id}, std::nullopt});
  NewSegment("C", 10000, AutoOptions{{z.id}, {}, std::nullopt});
  NewSegment("X", 0, AutoOptions{{base.id}, {base.id}, std::nullopt});
  Tx([&](Transaction& tx) { return tx.segments().MarkDeleted("C", kT0).status(); });
  Tx([&](Transaction& tx) -> absl::Status {
    auto autos = tx.segments().Automatic();
    if (!autos.ok()) return autos.status();
    std::vector<std::string> slugs;
    for (const auto& s : *autos) slugs.push_back(s.slug);
    CHECK(slugs == std::vector<std::string>{"Z", "A", "M"});
    auto referring = tx.segments().Referring(base.id);
    if (!referring.ok()) return referring.status();
    CHECK(*referring == std::vector<std::string>{"A", "M", "X"});
    auto none = tx.segments().Referring(z.id);  // only the deleted C named it
    if (!none.ok()) return none.status();
    CHECK(none->empty());
    return absl::OkStatus();
  });
}

TEST_CASE_METHOD(Fixture, "SegmentMembers: active members by user id, keyset pages", "[pg][listing]") {
  Query(
      "INSERT INTO users (id, state, created_at, updated_at) VALUES "
      "('f0000000-0000-4000-8000-000000000000', 'active', now(), now()), "
      "('0f000000-0000-4000-8000-000000000000', 'active', now(), now()), "
      "('a0000000-0000-4000-8000-000000000000', 'excluded', now(), now()), "
      "('0a000000-0000-4000-8000-000000000000', 'active', now(), now()), "
      "('00000000-0000-4000-8000-0000000000ff', 'active', now(), now())");
  const Segment s = NewSegment("S", 0);
  const Segment other = NewSegment("OTHER", 0);
  const absl::Time now = kT0 + absl::Hours(1);
  Insert("f0000000-0000-4000-8000-000000000000", {{s.id, std::nullopt, true}});
  Insert("0f000000-0000-4000-8000-000000000000", {{s.id, now + absl::Microseconds(1), false}});
  Insert("a0000000-0000-4000-8000-000000000000", {{s.id, std::nullopt, false}});
  Insert("0a000000-0000-4000-8000-000000000000", {{s.id, now, false}});  // ends exactly at now
  Insert("00000000-0000-4000-8000-0000000000ff", {{other.id, std::nullopt, false}});

  auto all = store.memberships().Members(s.id, std::nullopt, 10, now);
  REQUIRE(all.ok());
  std::vector<std::string> ids;
  for (const auto& m : *all) ids.push_back(m.user_id.ToString());
  CHECK(ids == std::vector<std::string>{"0f000000-0000-4000-8000-000000000000", "a0000000-0000-4000-8000-000000000000",
                                        "f0000000-0000-4000-8000-000000000000"});
  REQUIRE(all->size() == 3);
  CHECK((*all)[0].expires_at == now + absl::Microseconds(1));
  CHECK_FALSE((*all)[0].automatic);
  CHECK((*all)[2].automatic);
  CHECK((*all)[2].added_at == kT0);
  CHECK_FALSE((*all)[2].expires_at.has_value());

  auto first = store.memberships().Members(s.id, std::nullopt, 1, now);
  REQUIRE(first.ok());
  REQUIRE(first->size() == 1);
  auto next = store.memberships().Members(s.id, first->front().user_id, 1, now);
  REQUIRE(next.ok());
  REQUIRE(next->size() == 1);
  CHECK(next->front().user_id.ToString() == "a0000000-0000-4000-8000-000000000000");
  auto last = store.memberships().Members(s.id, Id("f0000000-0000-4000-8000-000000000000"), 5, now);
  REQUIRE(last.ok());
  CHECK(last->empty());
}

// An expired hand-made row that no job has removed yet is no membership:
// AssignByPercent ends it (ttl at its deadline, no opt-out, as it was made
// by hand) and takes the user, as the expiry job followed by the same raise
// would, and as AssignUserAutomatically does.
TEST_CASE_METHOD(Fixture, "AssignByPercent takes a user whose hand-made membership has expired", "[pg][auto][ttl]") {
  InsertUsers(1);
  Segment s = NewSegment("S", 0);
  Insert(UserNo(1), {{s.id, kT0 + absl::Minutes(1), false}});
  s.percent_hundredths = 10000;
  const absl::Time now = kT0 + absl::Hours(1);
  CHECK(Assign(s, 0, now) == 1);
  CHECK(Members(s, "auto AND expires_at IS NULL") == Users{UserNo(1)});
  CHECK(store.memberships().ActiveSegmentSlugs(Id(UserNo(1)), now)->size() == 1);
  CHECK(Query(fmt::format("SELECT operation::text, reason::text, {} FROM history ORDER BY at", MicrosOf("at"))) ==
        Rows{{"remove", "ttl", Micros(kT0 + absl::Minutes(1))}, {"add", "auto_percent", Micros(now)}});
  CHECK(Count("SELECT count(*) FROM auto_opt_outs") == 0);
}

// Memberships have no foreign keys: the users a bulk change found must stay
// until it commits (domain/store.h: UnknownUsers locks them).
TEST_CASE_METHOD(Fixture, "UnknownUsers keeps the known users from being deleted until the transaction ends",
                 "[pg][bulk]") {
  InsertUsers(2);
  absl::Notification locked, checked;
  absl::Status bulk_status;
  std::thread bulk([&] {
    bulk_status = store.InTransaction([&](Transaction& tx) -> absl::Status {
      auto unknown = tx.users().Unknown(Ids({UserNo(1), UserNo(9)}));
      if (!unknown.ok()) return unknown.status();
      if (!locked.HasBeenNotified()) locked.Notify();
      checked.WaitForNotification();
      return absl::OkStatus();
    });
    if (!locked.HasBeenNotified()) locked.Notify();
  });
  locked.WaitForNotification();
  const std::string try_lock = "SET lock_timeout = '300ms'; SELECT 1 FROM users WHERE id = '";
  CHECK_THROWS(Query(try_lock + UserNo(1) + "' FOR UPDATE"));
  CHECK_NOTHROW(Query(try_lock + UserNo(2) + "' FOR UPDATE"));
  checked.Notify();
  bulk.join();
  CHECK(bulk_status.ok());
  CHECK_NOTHROW(Query(try_lock + UserNo(1) + "' FOR UPDATE"));
}

TEST_CASE_METHOD(Fixture, "DeleteUser deletes the user's opt-outs, and only theirs", "[pg][auto]") {
  InsertUsers(2);
  const Segment a = NewSegment("A", 0);
  const Segment b = NewSegment("B", 0);
  Tx([&](Transaction& tx) {
    return tx.memberships().RecordOptOutsOfUsers(
        {{Id(UserNo(1)), a.id, Reason::kManual}, {Id(UserNo(1)), b.id, Reason::kManual}}, kT0);
  });
  Tx([&](Transaction& tx) {
    return tx.memberships().RecordOptOutsOfUsers({{Id(UserNo(2)), a.id, Reason::kTtl}}, kT0);
  });
  Tx([&](Transaction& tx) { return tx.users().Delete(Id(UserNo(1))); });
  CHECK(Query("SELECT user_id::text, reason::text FROM auto_opt_outs") == Rows{{UserNo(2), "ttl"}});
  CHECK(Count("SELECT count(*) FROM users") == 1);
}

// CreateActive (one call of the SQL function create_user, for CreateUser)
// and AssignUsersAutomatically for a created user (the batch path of user
// events) are two implementations of one rule: each user gets the same
// memberships, deadlines and events from both, over percentages, chained
// include and exclude options, automatic TTLs, a manual and a deleted
// segment.
TEST_CASE_METHOD(Fixture, "CreateActive assigns a new user as AssignUsersAutomatically assigns a created one",
                 "[pg][auto]") {
  const Segment base = NewSegment("BASE", 5000);
  const Segment ttl = NewSegment("TTL", 7000, {{}, {}, 3600});
  const Segment inc = NewSegment("INC", 6000, {{base.id}, {}, std::nullopt});
  const Segment exc = NewSegment("EXC", 8000, {{}, {base.id}, std::nullopt});
  const Segment chain = NewSegment("CHAIN", 9000, {{inc.id, ttl.id}, {exc.id}, 60});
  NewSegment("HAND", 0);
  NewSegment("GONE", 10000);
  Tx([&](Transaction& tx) { return tx.segments().MarkDeleted("GONE", kT0).status(); });
  const absl::Time now = kT0 + absl::Hours(1);
  auto rows_of = [&](const std::string& user) {
    return Query(fmt::format(
        "SELECT 'm', segment_id::text, coalesce({}::text, 'never'), auto::text FROM memberships WHERE user_id = '{}' "
        "UNION ALL SELECT 'h', string_agg(concat_ws(' ', segment_id, slug, operation, reason, {}), ', ' ORDER BY id), "
        "'', '' FROM history WHERE user_id = '{}' ORDER BY 1, 2",
        MicrosOf("expires_at"), user, MicrosOf("at"), user));
  };
  std::set<Rows> kinds;
  for (int g = 1; g <= 300; ++g) {
    const std::string user = UserNo(g);
    int entered = -1;
    Tx([&](Transaction& tx) -> absl::Status {
      ASSIGN_OR_RETURN(entered, tx.users().CreateActive(Id(user), now));
      return absl::OkStatus();
    });
    const Rows by_function = rows_of(user);
    CHECK(Count(fmt::format("SELECT count(*) FROM memberships WHERE user_id = '{}'", user)) == entered);
    Query(
        fmt::format("DELETE FROM memberships WHERE user_id = '{0}'; DELETE FROM history WHERE user_id = '{0}'; "
                    "DELETE FROM users WHERE id = '{0}'",
                    user));
    Tx([&](Transaction& tx) -> absl::Status {
      RETURN_IF_ERROR(tx.users().Insert(Id(user), UserState::kActive, now));
      return AssignUsersAutomatically(tx, {Id(user)}, {}, now).status();
    });
    INFO(user);
    CHECK(rows_of(user) == by_function);
    kinds.insert(by_function);
  }
  // The options and percentages split the users many ways.
  CHECK(kinds.size() >= 8);
  CHECK(Count(fmt::format("SELECT count(*) FROM memberships WHERE segment_id = {}", chain.id)) > 0);

  // A known user: ALREADY_EXISTS, and nothing changes.
  const int64_t rows = Count("SELECT count(*) FROM memberships") + Count("SELECT count(*) FROM history");
  const absl::Status again = store.InSingleCall(
      [&](Transaction& tx) { return tx.users().CreateActive(Id(UserNo(1)), now + absl::Hours(1)).status(); });
  CHECK(again.code() == absl::StatusCode::kAlreadyExists);
  CHECK(Count("SELECT count(*) FROM memberships") + Count("SELECT count(*) FROM history") == rows);
}

TEST_CASE_METHOD(Fixture, "DeleteWithMemberships ends every membership, forgets opt-outs and the user, in one call",
                 "[pg][auto]") {
  InsertUsers(2);
  const Segment a = NewSegment("A", 0);
  const Segment b = NewSegment("B", 0);
  Insert(UserNo(1), {{a.id, std::nullopt, false}, {b.id, kT0 + absl::Minutes(1), true}});
  Insert(UserNo(2), {{a.id, std::nullopt, false}});
  Tx([&](Transaction& tx) {
    return tx.memberships().RecordOptOutsOfUsers(
        {{Id(UserNo(1)), a.id, Reason::kManual}, {Id(UserNo(2)), b.id, Reason::kManual}}, kT0);
  });
  const absl::Time now = kT0 + absl::Hours(1);
  auto delete_user = [&](const std::string& user) {
    std::optional<int64_t> ended = -1;
    const absl::Status status = store.InSingleCall([&](Transaction& tx) -> absl::Status {
      ASSIGN_OR_RETURN(ended, tx.users().DeleteWithMemberships(Id(user), now));
      return absl::OkStatus();
    });
    INFO(status);
    REQUIRE(status.ok());
    return ended;
  };
  // B had expired: it ends at its deadline, and is not counted.
  CHECK(delete_user(UserNo(1)) == std::optional<int64_t>(1));
  CHECK(Query(fmt::format("SELECT user_id::text, slug, reason::text, {} FROM history WHERE operation = 'remove' "
                          "ORDER BY slug",
                          MicrosOf("at"))) ==
        Rows{{UserNo(1), "A", "user_deleted", Micros(now)}, {UserNo(1), "B", "ttl", Micros(kT0 + absl::Minutes(1))}});
  CHECK(Query("SELECT user_id::text FROM memberships") == Rows{{UserNo(2)}});
  CHECK(Query("SELECT user_id::text FROM auto_opt_outs") == Rows{{UserNo(2)}});
  CHECK(Query("SELECT id::text FROM users") == Rows{{UserNo(2)}});
  // An unknown user: nothing to delete, nothing changed.
  const int64_t events = Count("SELECT count(*) FROM history");
  CHECK(delete_user(UserNo(1)) == std::nullopt);
  CHECK(Count("SELECT count(*) FROM history") == events);
}

// SetStateAndAssign (the SQL function set_user_state, for UpdateUser) and
// the transaction it replaced (SetState, then AssignUserAutomatically) give
// a user coming back the same rows and events, whatever they had: active
// and expired memberships by hand and automatic ones, opt-outs.
TEST_CASE_METHOD(Fixture, "SetStateAndAssign brings a user back as AssignUserAutomatically does", "[pg][auto]") {
  std::vector<Segment> all = {NewSegment("BASE", 5000), NewSegment("TTL", 7000, {{}, {}, 3600})};
  all.push_back(NewSegment("INC", 6000, {{all[0].id}, {}, std::nullopt}));
  all.push_back(NewSegment("EXC", 8000, {{}, {all[0].id}, std::nullopt}));
  all.push_back(NewSegment("CHAIN", 9000, {{all[2].id, all[1].id}, {all[3].id}, 60}));
  all.push_back(NewSegment("HAND", 0));
  const absl::Time now = kT0 + absl::Hours(1);
  const std::string added = Rfc3339(kT0);
  const std::string expired = Rfc3339(kT0 + absl::Minutes(1));
  // User g, excluded, with what the kind of each segment gives them.
  auto set_up = [&](int g) {
    const std::string user = UserNo(g);
    Query(
        fmt::format("DELETE FROM memberships WHERE user_id = '{0}'; DELETE FROM history WHERE user_id = '{0}'; "
                    "DELETE FROM auto_opt_outs WHERE user_id = '{0}'; DELETE FROM users WHERE id = '{0}'; "
                    "INSERT INTO users (id, state, created_at, updated_at) VALUES ('{0}', 'excluded', '{1}', '{1}')",
                    user, added));
    for (size_t i = 0; i < all.size(); ++i) {
      const auto row = [&](const std::string& expires, bool automatic) {
        Query(
            fmt::format("INSERT INTO memberships (user_id, segment_id, added_at, expires_at, auto) "
                        "VALUES ('{}', {}, '{}', {}, {})",
                        user, all[i].id, added, expires, automatic));
      };
      switch ((g * 7 + static_cast<int>(i) * 13 + g / 5) % 6) {
        case 1:
          row("NULL", false);
          break;
        case 2:
          row("'" + expired + "'", false);
          break;
        case 3:
          row("'" + expired + "'", true);
          break;
        case 4:
          row("NULL", true);
          break;
        case 5:
          Query(
              fmt::format("INSERT INTO auto_opt_outs (segment_id, user_id, reason, at) VALUES ({}, '{}', "
                          "'manual', '{}')",
                          all[i].id, user, added));
          break;
        default:
          break;
      }
    }
  };
  auto rows_of = [&](const std::string& user) {
    return Query(fmt::format(
        "SELECT 'm', segment_id::text, coalesce({0}::text, 'never'), auto::text FROM memberships "
        "WHERE user_id = '{1}' "
        "UNION ALL SELECT 'h', concat_ws(' ', segment_id, slug, operation, reason, {2}), '', '' FROM history "
        "WHERE user_id = '{1}' "
        "UNION ALL SELECT 'o', segment_id::text, reason::text, '' FROM auto_opt_outs WHERE user_id = '{1}' "
        "UNION ALL SELECT 'u', state::text, '', '' FROM users WHERE id = '{1}' ORDER BY 1, 2, 3",
        MicrosOf("expires_at"), user, MicrosOf("at")));
  };
  std::set<Rows> kinds;
  for (int g = 1; g <= 120; ++g) {
    const std::string user = UserNo(g);
    set_up(g);
    std::optional<int> entered;
    REQUIRE(store
                .InSingleCall([&](Transaction& tx) -> absl::Status {
                  ASSIGN_OR_RETURN(entered, tx.users().SetStateAndAssign(Id(user), UserState::kActive, now));
                  return absl::OkStatus();
                })
                .ok());
    const Rows by_function = rows_of(user);
    set_up(g);
    int by_hand = -1;
    Tx([&](Transaction& tx) -> absl::Status {
      RETURN_IF_ERROR(tx.users().SetState(Id(user), UserState::kActive, now));
      ASSIGN_OR_RETURN(by_hand, AssignUserAutomatically(tx, Id(user), now));
      return absl::OkStatus();
    });
    INFO(user);
    CHECK(rows_of(user) == by_function);
    CHECK(entered == std::optional<int>(by_hand));
    kinds.insert(by_function);
  }
  CHECK(kinds.size() >= 8);

  // The same state changes nothing; an unknown user is nullopt.
  const int64_t events = Count("SELECT count(*) FROM history");
  for (const auto& [user, expected] : std::vector<std::pair<std::string, std::optional<int>>>{
           {UserNo(1), 0}, {"99999999-0000-4000-8000-000000000000", std::nullopt}}) {
    std::optional<int> entered = -1;
    REQUIRE(store
                .InSingleCall([&](Transaction& tx) -> absl::Status {
                  ASSIGN_OR_RETURN(entered, tx.users().SetStateAndAssign(Id(user), UserState::kActive, now));
                  return absl::OkStatus();
                })
                .ok());
    CHECK(entered == expected);
  }
  CHECK(Count("SELECT count(*) FROM history") == events);
}
