#include "domain/user_use_cases.h"

#include <catch2/catch.hpp>

#include "domain/errors.h"
#include "domain/segment_use_cases.h"
#include "support/domain_testing.h"
#include "support/fake_clock.h"
#include "support/fake_store.h"

using namespace segments::domain;
using segments::testing::FakeClock;
using segments::testing::FakeStore;
using segments::testing::Id;
using segments::testing::ViolationsOf;

namespace {
constexpr const char* kUser = "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b";

struct Fixture {
  FakeStore store;
  FakeClock clock;
  UserUseCases users{store, clock};
  SegmentUseCases segments{store, clock};

  // Segment ALL at 100 %: every active user is in it.
  void FillAll() {
    CreateSegmentCommand all;
    all.slug = "ALL";
    all.percent_to_fill = 100.0;
    REQUIRE(segments.CreateSegment(all).ok());
  }
};
}  // namespace

TEST_CASE_METHOD(Fixture, "create stores an active user under the canonical id", "[users]") {
  REQUIRE(users.CreateUser("0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B").ok());
  CHECK(store.state.users.at(Id(kUser)) == UserState::kActive);
  auto again = users.CreateUser(kUser);
  CHECK(again.code() == absl::StatusCode::kAlreadyExists);
  CHECK(ViolationsOf(again).at(0).field == "userID");
  CHECK(users.CreateUser("x").code() == absl::StatusCode::kInvalidArgument);
  CHECK(users.CreateUser("").code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE_METHOD(Fixture, "a new user is evaluated without reading memberships; a returning one with theirs",
                 "[users]") {
  FillAll();
  REQUIRE(users.CreateUser(kUser).ok());
  CHECK(store.user_membership_reads == 0);
  CHECK(store.state.memberships.size() == 1);
  REQUIRE(users.UpdateUser(kUser, "excluded").ok());
  REQUIRE(users.UpdateUser(kUser, "active").ok());
  // Memberships and opt-outs, one read each.
  CHECK(store.user_membership_reads == 2);
  CHECK(store.state.memberships.size() == 1);
}

TEST_CASE_METHOD(Fixture, "update sets the state; unknown users and bad values are reported", "[users]") {
  REQUIRE(users.CreateUser(kUser).ok());
  REQUIRE(users.UpdateUser(kUser, "excluded").ok());
  CHECK(store.state.users.at(Id(kUser)) == UserState::kExcluded);
  CHECK(users.UpdateUser(kUser, "excluded").ok());  // same state: no-op
  CHECK(users.UpdateUser("44444444-4444-4444-4444-444444444444", "active").code() == absl::StatusCode::kNotFound);

  auto both = users.UpdateUser("bad", "banned");
  CHECK(both.code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(ViolationsOf(both).size() == 2);
  CHECK(ViolationsOf(both)[1].field == "status");
  CHECK(users.UpdateUser(kUser, "ACTIVE").code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE_METHOD(Fixture, "delete ends memberships with user_deleted and keeps history", "[users]") {
  REQUIRE(users.CreateUser(kUser).ok());
  REQUIRE(segments.CreateSegment({"A", std::nullopt, "", {}, {}, std::nullopt}).ok());
  REQUIRE(segments.UpdateUserSegments({kUser, {{"A", std::nullopt, std::nullopt}}, {}}).ok());
  clock.Advance(absl::Seconds(1));

  auto ended = users.DeleteUser(kUser);
  REQUIRE(ended.ok());
  CHECK(*ended == 1);
  CHECK(store.state.users.empty());
  REQUIRE(store.state.history.size() == 2);
  CHECK(store.state.history[1].reason == Reason::kUserDeleted);
  CHECK(store.state.history[1].at == clock.Now());
  CHECK(users.DeleteUser(kUser).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE_METHOD(Fixture, "sync creates, changes and deletes users to match what the user service says",
                 "[users][sync]") {
  FillAll();
  const UserId kept = Id("11111111-1111-4111-8111-111111111111");
  const UserId leaving = Id("22222222-2222-4222-8222-222222222222");
  const UserId deleted = Id("33333333-3333-4333-8333-333333333333");
  const UserId new_active = Id("44444444-4444-4444-8444-444444444444");
  const UserId new_excluded = Id("55555555-5555-4555-8555-555555555555");
  const UserId never_seen = Id("66666666-6666-4666-8666-666666666666");
  for (const UserId& u : {kept, leaving, deleted}) REQUIRE(users.CreateUser(u).ok());
  const size_t history_before = store.state.history.size();

  const std::vector<ObservedUser> observed = {
      {new_excluded, UserState::kExcluded}, {kept, UserState::kActive}, {deleted, std::nullopt},
      {leaving, UserState::kExcluded},      {never_seen, std::nullopt}, {new_active, UserState::kActive}};
  auto result = users.SyncUsers(observed);
  REQUIRE(result.ok());
  CHECK(result->created == 2);
  CHECK(result->state_changed == 1);
  CHECK(result->deleted == 1);
  CHECK(result->unchanged == 2);  // kept, never_seen
  CHECK(result->memberships_ended == 1);
  CHECK(store.state.users.at(kept) == UserState::kActive);
  CHECK(store.state.users.at(leaving) == UserState::kExcluded);
  CHECK(store.state.users.at(new_excluded) == UserState::kExcluded);
  CHECK(store.state.users.at(new_active) == UserState::kActive);
  CHECK_FALSE(store.state.users.contains(deleted));
  CHECK_FALSE(store.state.users.contains(never_seen));
  // The new active user entered ALL; the excluded one did not; the deleted
  // one left it with history.
  CHECK(store.state.memberships.contains({new_active, 1}));
  CHECK_FALSE(store.state.memberships.contains({new_excluded, 1}));
  CHECK(store.state.history.size() == history_before + 2);
  const HistoryEvent& removal = store.state.history[history_before];  // users are applied in id order
  CHECK(removal.user_id == deleted);
  CHECK(removal.reason == Reason::kUserDeleted);

  // The same observation again changes nothing.
  auto again = users.SyncUsers(observed);
  REQUIRE(again.ok());
  CHECK(again->unchanged == 6);
  CHECK(again->created + again->state_changed + again->deleted == 0);
  CHECK(store.state.history.size() == history_before + 2);
}

TEST_CASE_METHOD(Fixture, "sync is one transaction: a failure applies nothing", "[users][sync]") {
  store.failure = absl::UnavailableError("database is down");
  auto result = users.SyncUsers({{Id(kUser), UserState::kActive}});
  CHECK(result.status().code() == absl::StatusCode::kUnavailable);
  store.failure = absl::OkStatus();
  CHECK(store.state.users.empty());
}

TEST_CASE_METHOD(Fixture, "sync refuses a user named twice", "[users][sync]") {
  auto result = users.SyncUsers({{Id(kUser), UserState::kActive}, {Id(kUser), std::nullopt}});
  CHECK(result.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(store.state.users.empty());
}
