// UserAdminService: CreateUser, UpdateUser and DeleteUser against the real
// database.
#include "service/service_fixture.h"

namespace segments::testing {
namespace {

using Catch::Matchers::Equals;
using Catch::Matchers::UnorderedEquals;
using Rows = std::vector<std::vector<std::string>>;

// (state, created_at micros, updated_at micros) of a user, or nothing.
Rows UserRow(const std::string& user) {
  return Query("SELECT state::text, " + MicrosOf("created_at") + ", " + MicrosOf("updated_at") +
               " FROM users WHERE id = " + Literal(user));
}

std::string At(absl::Time t) { return std::to_string(Micros(t)); }

const std::vector<std::string> kMalformedIds = {"",
                                                "x",
                                                "0b7f9f5e1c2d4e3f8a9b0c1d2e3f4a5b",
                                                "{0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b}",
                                                "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5",
                                                "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5bb",
                                                "zb7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b",
                                                "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5 "};

// --- CreateUser

TEST_CASE_METHOD(ServiceFixture, "CreateUser adds an active user", "[service][users]") {
  const grpc::Status status = CreateUser(kUser1);
  INFO(Describe(status));
  REQUIRE(status.ok());
  CHECK(Query("SELECT id::text FROM users") == Rows{{kUser1}});
  CHECK(UserRow(kUser1) == Rows{{"active", At(Now()), At(Now())}});
}

TEST_CASE_METHOD(ServiceFixture, "CreateUser rejects a malformed id", "[service][users]") {
  const std::string user = GENERATE(from_range(kMalformedIds));
  INFO("user '" << user << "'");
  const grpc::Status status = CreateUser(user);
  INFO(Describe(status));
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"userID"}));
  CHECK(Count("SELECT count(*) FROM users") == 0);
}

TEST_CASE_METHOD(ServiceFixture, "CreateUser of a known id is ALREADY_EXISTS and changes nothing", "[service][users]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(UpdateUser(kUser1, "excluded").ok());
  const auto before = Snapshot();
  clock.Advance(absl::Minutes(1));
  for (const std::string& id : {kUser1, std::string("0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B")}) {
    const grpc::Status status = CreateUser(id);
    INFO(Describe(status));
    CHECK(status.error_code() == grpc::StatusCode::ALREADY_EXISTS);
    CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"userID"}));
  }
  CHECK(Snapshot() == before);
}

// --- UpdateUser

TEST_CASE_METHOD(ServiceFixture, "UpdateUser sets the state; the same state is a no-op; memberships stay",
                 "[service][users]") {
  const absl::Time t0 = Now();
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("S").ok());
  REQUIRE(Update(Change(kUser1, {{"S"}})).ok());

  clock.Advance(absl::Seconds(10));
  const absl::Time t1 = Now();
  REQUIRE(UpdateUser(kUser1, "excluded").ok());
  CHECK(UserRow(kUser1) == Rows{{"excluded", At(t0), At(t1)}});
  CHECK(Count("SELECT count(*) FROM memberships") == 1);

  clock.Advance(absl::Seconds(10));
  const auto before = Snapshot();
  REQUIRE(UpdateUser(kUser1, "excluded").ok());
  CHECK(Snapshot() == before);

  clock.Advance(absl::Seconds(10));
  const absl::Time t3 = Now();
  REQUIRE(UpdateUser(kUser1, "active").ok());
  CHECK(UserRow(kUser1) == Rows{{"active", At(t0), At(t3)}});
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"S"});
  // State changes are not membership changes: no history.
  CHECK(Count("SELECT count(*) FROM history") == 1);
}

TEST_CASE_METHOD(ServiceFixture, "UpdateUser accepts an id in any case", "[service][users]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(UpdateUser("0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B", "excluded").ok());
  CHECK(UserRow(kUser1)[0][0] == "excluded");
}

TEST_CASE_METHOD(ServiceFixture, "UpdateUser of an unknown user is NOT_FOUND", "[service][users]") {
  REQUIRE(CreateUser(kUser1).ok());
  const auto before = Snapshot();
  const grpc::Status status = UpdateUser(kUser2, "excluded");
  INFO(Describe(status));
  CHECK(status.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"userID"}));
  CHECK(Snapshot() == before);
}

TEST_CASE_METHOD(ServiceFixture, "UpdateUser rejects a bad status or id and lists both", "[service][users]") {
  REQUIRE(CreateUser(kUser1).ok());
  const auto before = Snapshot();
  SECTION("bad status") {
    const std::string state = GENERATE(std::string(""), std::string("banned"), std::string("ACTIVE"),
                                       std::string("Excluded"), std::string("active "));
    INFO("status '" << state << "'");
    const grpc::Status status = UpdateUser(kUser1, state);
    INFO(Describe(status));
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"status"}));
  }
  SECTION("bad id") {
    const grpc::Status status = UpdateUser("nope", "active");
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"userID"}));
  }
  SECTION("both") {
    const grpc::Status status = UpdateUser("", "gone");
    INFO(Describe(status));
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(ViolationFields(status), UnorderedEquals(std::vector<std::string>{"userID", "status"}));
  }
  CHECK(Snapshot() == before);
}

// --- DeleteUser

TEST_CASE_METHOD(ServiceFixture, "DeleteUser ends memberships with user_deleted events; history stays",
                 "[service][users]") {
  const absl::Time t0 = Now();
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateUser(kUser2).ok());
  REQUIRE(CreateSegment("A").ok());
  REQUIRE(CreateSegment("B").ok());
  REQUIRE(Update(Change(kUser1, {{"A"}, {"B", 3600}})).ok());
  REQUIRE(Update(Change(kUser2, {{"A"}})).ok());

  clock.Advance(absl::Seconds(20));
  const absl::Time t1 = Now();
  v1::DeleteUserResponse response;
  const grpc::Status status = DeleteUser(kUser1, &response);
  INFO(Describe(status));
  REQUIRE(status.ok());
  CHECK(response.memberships_ended() == 2);

  CHECK(UserRow(kUser1).empty());
  CHECK(Count("SELECT count(*) FROM memberships WHERE user_id = " + Literal(kUser1)) == 0);
  CHECK(HistoryOf(kUser1) == Rows{Event("A", "add", "manual", t0), Event("B", "add", "manual", t0),
                                  Event("A", "remove", "user_deleted", t1), Event("B", "remove", "user_deleted", t1)});
  CHECK(SegmentsOf(kUser1).empty());
  // The other user is untouched.
  CHECK(SegmentsOf(kUser2) == std::vector<std::string>{"A"});
  CHECK(HistoryOf(kUser2) == Rows{Event("A", "add", "manual", t0)});

  // The user may come back, in no segment, with the old history kept.
  clock.Advance(absl::Seconds(20));
  REQUIRE(CreateUser(kUser1).ok());
  CHECK(SegmentsOf(kUser1).empty());
  CHECK(UserRow(kUser1) == Rows{{"active", At(Now()), At(Now())}});
  CHECK(HistoryOf(kUser1).size() == 4);
}

TEST_CASE_METHOD(ServiceFixture, "DeleteUser records an already expired membership as ended by TTL",
                 "[service][users][ttl]") {
  const absl::Time t0 = Now();
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("SHORT").ok());
  REQUIRE(CreateSegment("LONG").ok());
  REQUIRE(Update(Change(kUser1, {{"SHORT", 5}, {"LONG"}})).ok());
  clock.Advance(absl::Seconds(100));
  const absl::Time t1 = Now();
  REQUIRE(DeleteUser(kUser1).ok());
  CHECK(HistoryOf(kUser1) == Rows{Event("LONG", "add", "manual", t0), Event("SHORT", "add", "manual", t0),
                                  Event("SHORT", "remove", "ttl", t0 + absl::Seconds(5)),
                                  Event("LONG", "remove", "user_deleted", t1)});
}

TEST_CASE_METHOD(ServiceFixture, "DeleteUser of an unknown user is NOT_FOUND", "[service][users]") {
  REQUIRE(CreateUser(kUser1).ok());
  SECTION("never created") {
    const grpc::Status status = DeleteUser(kUser2);
    INFO(Describe(status));
    CHECK(status.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"userID"}));
    CHECK(Count("SELECT count(*) FROM users") == 1);
  }
  SECTION("deleted twice") {
    REQUIRE(DeleteUser(kUser1).ok());
    const grpc::Status status = DeleteUser(kUser1);
    CHECK(status.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"userID"}));
  }
}

TEST_CASE_METHOD(ServiceFixture, "DeleteUser rejects a malformed id", "[service][users]") {
  REQUIRE(CreateUser(kUser1).ok());
  const std::string user = GENERATE(from_range(kMalformedIds));
  INFO("user '" << user << "'");
  const grpc::Status status = DeleteUser(user);
  INFO(Describe(status));
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(ViolationFields(status), Equals(std::vector<std::string>{"userID"}));
  CHECK(Count("SELECT count(*) FROM users") == 1);
}

}  // namespace
}  // namespace segments::testing
