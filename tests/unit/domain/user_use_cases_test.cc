#include "domain/user_use_cases.h"

#include <catch2/catch.hpp>

#include "domain/errors.h"
#include "domain/segment_use_cases.h"
#include "support/fake_clock.h"
#include "support/fake_store.h"

using namespace segments::domain;
using segments::testing::FakeClock;
using segments::testing::FakeStore;

namespace {
constexpr const char* kUser = "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b";

struct Fixture {
  FakeStore store;
  FakeClock clock;
  UserUseCases users{store, clock};
  SegmentUseCases segments{store, clock};
};
}  // namespace

TEST_CASE_METHOD(Fixture, "create stores an active user under the canonical id", "[users]") {
  REQUIRE(users.CreateUser("0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B").ok());
  CHECK(store.state.users.at(kUser) == UserState::kActive);
  auto again = users.CreateUser(kUser);
  CHECK(again.code() == absl::StatusCode::kAlreadyExists);
  CHECK(ViolationsOf(again).at(0).field == "userID");
  CHECK(users.CreateUser("x").code() == absl::StatusCode::kInvalidArgument);
  CHECK(users.CreateUser("").code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE_METHOD(Fixture, "update sets the state; unknown users and bad values are reported", "[users]") {
  REQUIRE(users.CreateUser(kUser).ok());
  REQUIRE(users.UpdateUser(kUser, "excluded").ok());
  CHECK(store.state.users.at(kUser) == UserState::kExcluded);
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
