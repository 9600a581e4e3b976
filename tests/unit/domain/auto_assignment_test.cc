// Automatic assignment of one user (domain/auto_assignment.h), as UserUseCases
// runs it when a user is created or becomes active again.
#include "domain/auto_assignment.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <set>

#include "domain/bucketing.h"
#include "domain/segment_use_cases.h"
#include "domain/user_use_cases.h"
#include "support/domain_testing.h"
#include "support/fake_clock.h"
#include "support/fake_store.h"

using namespace segments::domain;
using segments::testing::FakeClock;
using segments::testing::FakeStore;
using segments::testing::UserNo;

namespace {

struct Fixture {
  FakeStore store;
  FakeClock clock;
  SegmentUseCases segments{store, clock};
  UserUseCases users{store, clock};

  Segment Create(const std::string& slug, std::optional<double> percent, std::vector<std::string> include = {},
                 std::vector<std::string> exclude = {}, std::optional<int64_t> ttl = std::nullopt) {
    auto created = segments.CreateSegment({slug, percent, "", std::move(include), std::move(exclude), ttl});
    INFO(created.status());
    REQUIRE(created.ok());
    return *created;
  }

  // Slugs of the user's rows (expired ones included), sorted.
  std::set<std::string> RowsOf(const UserId& user) {
    std::set<std::string> out;
    for (const auto& [key, m] : store.state.memberships) {
      if (key.first == user) out.insert(m.slug);
    }
    return out;
  }

  std::vector<HistoryEvent> EventsOf(const UserId& user) {
    std::vector<HistoryEvent> out;
    for (const auto& e : store.state.history) {
      if (e.user_id == user) out.push_back(e);
    }
    return out;
  }

  void Hand(const UserId& user, std::vector<SegmentToAdd> add, std::vector<std::string> remove = {}) {
    auto status = segments.UpdateUserSegments({user, std::move(add), std::move(remove)});
    INFO(status);
    REQUIRE(status.ok());
  }
};

SegmentToAdd Add(std::string slug, std::optional<int64_t> seconds = std::nullopt) {
  return {std::move(slug), {seconds, std::nullopt}};
}

}  // namespace

TEST_CASE_METHOD(Fixture, "a new user joins exactly the automatic segments whose buckets cover them",
                 "[auto_assignment]") {
  const std::vector<Segment> autos = {Create("P1", 1.0), Create("P10", 10.0), Create("P50", 50.0),
                                      Create("P75_25", 75.25), Create("P100", 100.0)};
  Create("MANUAL", std::nullopt);
  Create("ZERO", 0.0);
  const Segment deleted = Create("DELETED", 100.0);
  REQUIRE(segments.DeleteSegment("DELETED").ok());

  size_t in_p50 = 0;
  for (int i = 0; i < 300; ++i) {
    const UserId user = UserNo(i);
    REQUIRE(users.CreateUser(user).ok());
    std::set<std::string> expected;
    for (const Segment& s : autos) {
      if (Bucket(s.salt, user) < s.percent_hundredths) expected.insert(s.slug);
    }
    INFO(user);
    CHECK(RowsOf(user) == expected);
    in_p50 += expected.count("P50");
    for (const HistoryEvent& e : EventsOf(user)) {
      CHECK(e.operation == Operation::kAdd);
      CHECK(e.reason == Reason::kAutoPercent);
      CHECK(e.at == clock.Now());
    }
    CHECK(EventsOf(user).size() == expected.size());
  }
  CHECK(in_p50 > 100);
  CHECK(in_p50 < 200);
  for (const auto& [key, m] : store.state.memberships) {
    CHECK(m.automatic);
    CHECK_FALSE(m.expires_at.has_value());
    CHECK(key.second != deleted.id);
  }
}

TEST_CASE_METHOD(Fixture, "a user excluded when the segment was filled joins it on becoming active",
                 "[auto_assignment]") {
  const UserId user = UserNo(7);
  store.state.users[user] = UserState::kExcluded;
  const Segment s = Create("ALL", 100.0, {}, {}, 600);
  CHECK(RowsOf(user).empty());

  clock.Advance(absl::Minutes(1));
  REQUIRE(users.UpdateUser(user, "active").ok());
  CHECK(RowsOf(user) == std::set<std::string>{"ALL"});
  const Membership& m = store.state.memberships.at({user, s.id});
  CHECK(m.automatic);
  CHECK(m.added_at == clock.Now());
  CHECK(m.expires_at == clock.Now() + absl::Minutes(10));

  // Becoming excluded keeps the membership; active again adds nothing twice.
  REQUIRE(users.UpdateUser(user, "excluded").ok());
  REQUIRE(users.UpdateUser(user, "active").ok());
  CHECK(EventsOf(user).size() == 1);
}

TEST_CASE_METHOD(Fixture, "evaluation honours include and exclude against the user's active memberships",
                 "[auto_assignment]") {
  Create("BASE", std::nullopt);
  Create("INC", 100.0, {"BASE"}, {});
  Create("EXC", 100.0, {}, {"BASE"});

  const UserId outsider = UserNo(1);
  REQUIRE(users.CreateUser(outsider).ok());
  CHECK(RowsOf(outsider) == std::set<std::string>{"EXC"});

  // In BASE by hand while excluded, then active: INC, not EXC.
  const UserId insider = UserNo(2);
  store.state.users[insider] = UserState::kExcluded;
  Hand(insider, {Add("BASE")});
  REQUIRE(users.UpdateUser(insider, "active").ok());
  CHECK(RowsOf(insider) == std::set<std::string>{"BASE", "INC"});

  // A BASE membership that has expired counts as not in BASE.
  const UserId lapsed = UserNo(3);
  store.state.users[lapsed] = UserState::kExcluded;
  Hand(lapsed, {Add("BASE", 30)});
  clock.Advance(absl::Minutes(1));
  REQUIRE(users.UpdateUser(lapsed, "active").ok());
  CHECK(RowsOf(lapsed) == std::set<std::string>{"EXC"});
  // ... and its expired row was ended on the way, at its deadline.
  const auto events = EventsOf(lapsed);
  REQUIRE(events.size() == 3);
  CHECK(events[1].slug == "BASE");
  CHECK(events[1].operation == Operation::kRemove);
  CHECK(events[1].reason == Reason::kTtl);
  CHECK(events[1].at == clock.Now() - absl::Seconds(30));
  CHECK(events[2].slug == "EXC");
  CHECK(store.state.opt_outs.empty());  // a hand membership ending is no opt-out
}

TEST_CASE_METHOD(Fixture, "segments are evaluated in creation order, so a later one may include an earlier one",
                 "[auto_assignment]") {
  Create("FIRST", 100.0);
  Create("SECOND", 100.0, {"FIRST"}, {});
  Create("THIRD", 100.0, {}, {"SECOND"});
  Create("FOURTH", 100.0, {"FIRST", "SECOND"}, {});
  const UserId user = UserNo(1);
  REQUIRE(users.CreateUser(user).ok());
  CHECK(RowsOf(user) == std::set<std::string>{"FIRST", "FOURTH", "SECOND"});
}

TEST_CASE_METHOD(Fixture, "a user removed by hand is never put back by evaluation", "[auto_assignment]") {
  const Segment s = Create("ALL", 100.0);
  const UserId user = UserNo(1);
  REQUIRE(users.CreateUser(user).ok());
  REQUIRE(RowsOf(user) == std::set<std::string>{"ALL"});
  Hand(user, {}, {"ALL"});
  CHECK(store.state.opt_outs.at({s.id, user}) == Reason::kManual);

  REQUIRE(users.UpdateUser(user, "excluded").ok());
  REQUIRE(users.UpdateUser(user, "active").ok());
  CHECK(RowsOf(user).empty());
  // Raising again does not take them either.
  REQUIRE(segments.UpdateSegmentPercent({"ALL", 50.0}).ok());
  REQUIRE(segments.UpdateSegmentPercent({"ALL", 100.0}).ok());
  CHECK(RowsOf(user).empty());
  // By hand still works.
  Hand(user, {Add("ALL")});
  CHECK(RowsOf(user) == std::set<std::string>{"ALL"});
  CHECK_FALSE(store.state.memberships.at({user, s.id}).automatic);
}

TEST_CASE_METHOD(Fixture, "an opt-out recorded in the store is skipped by evaluation", "[auto_assignment]") {
  const Segment a = Create("A", 100.0);
  Create("B", 100.0);
  const UserId user = UserNo(1);
  store.state.users[user] = UserState::kExcluded;
  store.state.opt_outs[{a.id, user}] = Reason::kTtl;
  REQUIRE(users.UpdateUser(user, "active").ok());
  CHECK(RowsOf(user) == std::set<std::string>{"B"});
}

TEST_CASE_METHOD(Fixture, "an expired automatic membership is not renewed, and opts the user out",
                 "[auto_assignment][ttl]") {
  const Segment s = Create("TTL", 100.0, {}, {}, 60);
  const UserId user = UserNo(1);
  const absl::Time start = clock.Now();
  REQUIRE(users.CreateUser(user).ok());
  REQUIRE(store.state.memberships.at({user, s.id}).expires_at == start + absl::Seconds(60));

  REQUIRE(users.UpdateUser(user, "excluded").ok());
  clock.Advance(absl::Minutes(5));
  REQUIRE(users.UpdateUser(user, "active").ok());
  CHECK(RowsOf(user).empty());  // the expired row ended, and no new one
  CHECK(store.state.opt_outs.at({s.id, user}) == Reason::kTtl);
  const auto events = EventsOf(user);
  REQUIRE(events.size() == 2);
  CHECK(events[1].operation == Operation::kRemove);
  CHECK(events[1].reason == Reason::kTtl);
  CHECK(events[1].at == start + absl::Seconds(60));

  // Still not after the opt-out exists on its own.
  REQUIRE(users.UpdateUser(user, "excluded").ok());
  REQUIRE(users.UpdateUser(user, "active").ok());
  CHECK(RowsOf(user).empty());
  CHECK(EventsOf(user).size() == 2);
}

TEST_CASE_METHOD(Fixture, "AssignUserAutomatically returns how many segments it added", "[auto_assignment]") {
  Create("A", 100.0);
  Create("B", 100.0, {}, {"A"});
  Create("C", 100.0, {"A"}, {});
  const UserId user = UserNo(1);
  store.state.users[user] = UserState::kActive;
  int added = -1;
  REQUIRE(store
              .InTransaction([&](Transaction& tx) -> absl::Status {
                auto n = AssignUserAutomatically(tx, user, clock.Now());
                if (!n.ok()) return n.status();
                added = *n;
                return absl::OkStatus();
              })
              .ok());
  CHECK(added == 2);  // A and C; B excludes A
  CHECK(RowsOf(user) == std::set<std::string>{"A", "C"});
  // Nothing more to do the second time.
  REQUIRE(store
              .InTransaction([&](Transaction& tx) -> absl::Status {
                auto n = AssignUserAutomatically(tx, user, clock.Now());
                if (!n.ok()) return n.status();
                added = *n;
                return absl::OkStatus();
              })
              .ok());
  CHECK(added == 0);
}

TEST_CASE_METHOD(Fixture, "deleting a user forgets their opt-outs: the same id created again is evaluated afresh",
                 "[auto_assignment]") {
  const Segment s = Create("ALL", 100.0);
  const UserId user = UserNo(1), other = UserNo(2);
  REQUIRE(users.CreateUser(user).ok());
  REQUIRE(users.CreateUser(other).ok());
  Hand(user, {}, {"ALL"});
  Hand(other, {}, {"ALL"});
  REQUIRE(store.state.opt_outs.size() == 2);
  REQUIRE(users.DeleteUser(user).ok());
  CHECK(store.state.opt_outs.size() == 1);
  CHECK(store.state.opt_outs.contains({s.id, other}));
  REQUIRE(users.CreateUser(user).ok());
  CHECK(RowsOf(user) == std::set<std::string>{"ALL"});
}
