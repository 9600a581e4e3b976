// SegmentService.UpdateUserSegments: what a successful change writes, and every
// way a change is refused, each leaving the database as it was.
#include <limits>

#include "domain/validation.h"
#include "service/service_fixture.h"

namespace segments::testing {
namespace {

using Catch::Matchers::UnorderedEquals;
using Rows = std::vector<std::vector<std::string>>;

// (slug, added_at micros, expires_at micros or "") of the user's membership rows.
Rows MembershipsOf(const std::string& user) {
  return Query("SELECT s.slug, " + MicrosOf("m.added_at") + ", coalesce(" + MicrosOf("m.expires_at") +
               "::text, '') FROM memberships m JOIN segments s ON s.id = m.segment_id WHERE m.user_id = " +
               Literal(user) + " ORDER BY s.slug");
}

std::string At(absl::Time t) { return std::to_string(Micros(t)); }

// 10 calendar years after the fixture's start (2024-03-01T12:00:00Z).
absl::Time TenYearsAfterStart() {
  return absl::FromCivil(absl::CivilSecond(2034, 3, 1, 12, 0, 0), absl::UTCTimeZone());
}

class UpdateFixture : public ServiceFixture {
 public:
  UpdateFixture() {
    const grpc::Status created = CreateUser(kUser1);
    INFO(Describe(created));  // a CI run once saw this fail; say how
    REQUIRE(created.ok());
    for (const char* slug : {"A", "B", "C", "D"}) REQUIRE(CreateSegment(slug).ok());
  }

  // Expects `request` to fail with `code` and these field paths, and the
  // database to be exactly as before the call.
  void ExpectRefused(const v1::UpdateUserSegmentsRequest& request, grpc::StatusCode code,
                     const std::vector<std::string>& fields) {
    const Rows before = Snapshot();
    clock.Advance(absl::Seconds(1));
    const grpc::Status status = Update(request);
    INFO(Describe(status));
    CHECK(status.error_code() == code);
    CHECK_THAT(ViolationFields(status), UnorderedEquals(fields));
    for (const auto& v : FieldViolations(status)) CHECK_FALSE(v.description().empty());
    CHECK(Snapshot() == before);
  }
};

// --- success

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments adds permanent and TTL memberships with history",
                 "[service][update_user_segments]") {
  const absl::Time t0 = Now();
  const absl::Time deadline = t0 + absl::Hours(48) + absl::Milliseconds(250);
  const grpc::Status status = Update(Change(kUser1, {{"B"}, {"A", 60}, {"C", std::nullopt, deadline}}));
  INFO(Describe(status));
  REQUIRE(status.ok());

  CHECK(MembershipsOf(kUser1) ==
        Rows{{"A", At(t0), At(t0 + absl::Seconds(60))}, {"B", At(t0), ""}, {"C", At(t0), At(deadline)}});
  CHECK(HistoryOf(kUser1) ==
        Rows{Event("A", "add", "manual", t0), Event("B", "add", "manual", t0), Event("C", "add", "manual", t0)});
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"A", "B", "C"});
}

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments removes and adds in one call", "[service][update_user_segments]") {
  const absl::Time t0 = Now();
  REQUIRE(Update(Change(kUser1, {{"A"}, {"B", 600}})).ok());

  clock.Advance(absl::Seconds(5));
  const absl::Time t1 = Now();
  const grpc::Status status = Update(Change(kUser1, {{"C"}}, {"A", "B"}));
  INFO(Describe(status));
  REQUIRE(status.ok());

  CHECK(MembershipsOf(kUser1) == Rows{{"C", At(t1), ""}});
  CHECK(HistoryOf(kUser1) == Rows{Event("A", "add", "manual", t0), Event("B", "add", "manual", t0),
                                  Event("A", "remove", "manual", t1), Event("B", "remove", "manual", t1),
                                  Event("C", "add", "manual", t1)});
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"C"});

  // Removing everything leaves no rows but keeps the history.
  clock.Advance(absl::Seconds(5));
  REQUIRE(Update(Change(kUser1, {}, {"C"})).ok());
  CHECK(MembershipsOf(kUser1).empty());
  CHECK(Count("SELECT count(*) FROM history") == 6);
}

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments accepts TTLs up to exactly 3650 days or 10 years",
                 "[service][update_user_segments][ttl]") {
  const absl::Time limit = TenYearsAfterStart();
  const grpc::Status status =
      Update(Change(kUser1, {{"A", domain::kMaxTtlSeconds}, {"B", std::nullopt, limit}, {"C", 1}}));
  INFO(Describe(status));
  REQUIRE(status.ok());
  CHECK(MembershipsOf(kUser1) == Rows{{"A", At(Now()), At(Now() + absl::Seconds(domain::kMaxTtlSeconds))},
                                      {"B", At(Now()), At(limit)},
                                      {"C", At(Now()), At(Now() + absl::Seconds(1))}});
}

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments does not affect other users", "[service][update_user_segments]") {
  REQUIRE(CreateUser(kUser2).ok());
  REQUIRE(Update(Change(kUser2, {{"A"}, {"B"}})).ok());
  REQUIRE(Update(Change(kUser1, {{"A"}})).ok());
  REQUIRE(Update(Change(kUser1, {}, {"A"})).ok());
  CHECK(SegmentsOf(kUser2) == std::vector<std::string>{"A", "B"});
  CHECK(SegmentsOf(kUser1).empty());
}

// --- INVALID_ARGUMENT

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments rejects a malformed user id", "[service][update_user_segments]") {
  const std::string user =
      GENERATE(std::string(""), std::string("user-1"), std::string("0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5"),
               std::string("0b7f9f5e-1c2d-4e3f-8a9b_0c1d2e3f4a5b"));
  INFO("user '" << user << "'");
  ExpectRefused(Change(user, {{"A"}}), grpc::StatusCode::INVALID_ARGUMENT, {"userID"});
}

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments rejects malformed slugs naming each path",
                 "[service][update_user_segments]") {
  ExpectRefused(Change(kUser1, {{"A"}, {"bad slug"}, {""}}, {"B", "_x"}), grpc::StatusCode::INVALID_ARGUMENT,
                {"segmentsToAdd[1].segmentSlug", "segmentsToAdd[2].segmentSlug", "segmentsToRemove[1].segmentSlug"});
}

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments rejects a slug added twice or both added and removed",
                 "[service][update_user_segments]") {
  SECTION("twice in segmentsToAdd") {
    ExpectRefused(Change(kUser1, {{"A"}, {"B"}, {"A", 60}}), grpc::StatusCode::INVALID_ARGUMENT,
                  {"segmentsToAdd[2].segmentSlug"});
  }
  SECTION("in both lists") {
    REQUIRE(Update(Change(kUser1, {{"B"}})).ok());
    ExpectRefused(Change(kUser1, {{"A"}, {"B"}}, {"C", "B"}), grpc::StatusCode::INVALID_ARGUMENT,
                  {"segmentsToRemove[1].segmentSlug"});
  }
}

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments rejects bad TTLs", "[service][update_user_segments][ttl]") {
  const absl::Time limit = TenYearsAfterStart();
  SECTION("both forms") {
    ExpectRefused(Change(kUser1, {{"A"}, {"B", 60, Now() + absl::Hours(1)}}), grpc::StatusCode::INVALID_ARGUMENT,
                  {"segmentsToAdd[1].secondsToBeInSegment"});
  }
  SECTION("seconds negative (0 means not given)") {
    for (const int64_t seconds : {int64_t{-1}, std::numeric_limits<int64_t>::min()}) {
      INFO("seconds " << seconds);
      ExpectRefused(Change(kUser1, {{"A", seconds}}), grpc::StatusCode::INVALID_ARGUMENT,
                    {"segmentsToAdd[0].secondsToBeInSegment"});
    }
  }
  SECTION("seconds beyond 3650 days") {
    for (const int64_t seconds : {domain::kMaxTtlSeconds + 1, std::numeric_limits<int64_t>::max()}) {
      INFO("seconds " << seconds);
      ExpectRefused(Change(kUser1, {{"A", seconds}}), grpc::StatusCode::INVALID_ARGUMENT,
                    {"segmentsToAdd[0].secondsToBeInSegment"});
    }
  }
  SECTION("deadline not in the future") {
    // ExpectRefused moves the clock 1 s first: the first deadline is "now".
    for (const absl::Duration offset : {absl::Seconds(1), absl::ZeroDuration(), -absl::Hours(24 * 365)}) {
      INFO("offset " << absl::FormatDuration(offset));
      ExpectRefused(Change(kUser1, {{"A", std::nullopt, Now() + offset}}), grpc::StatusCode::INVALID_ARGUMENT,
                    {"segmentsToAdd[0].deadlineForStayingInSegment"});
    }
  }
  SECTION("deadline beyond 10 years") {
    // ExpectRefused moves the clock 1 s first, and the limit with it.
    ExpectRefused(Change(kUser1, {{"A"}, {"B", std::nullopt, limit + absl::Seconds(2)}}),
                  grpc::StatusCode::INVALID_ARGUMENT, {"segmentsToAdd[1].deadlineForStayingInSegment"});
  }
}

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments reports every shape problem at once",
                 "[service][update_user_segments]") {
  ExpectRefused(Change("nobody", {{"A", -1}, {"a b"}, {"A"}}, {"A"}), grpc::StatusCode::INVALID_ARGUMENT,
                {"userID", "segmentsToAdd[0].secondsToBeInSegment", "segmentsToAdd[1].segmentSlug",
                 "segmentsToAdd[2].segmentSlug", "segmentsToRemove[0].segmentSlug"});
}

// --- NOT_FOUND

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments of an unknown user is NOT_FOUND",
                 "[service][update_user_segments]") {
  ExpectRefused(Change(kUser2, {{"A"}}), grpc::StatusCode::NOT_FOUND, {"userID"});
  CHECK(Count("SELECT count(*) FROM users") == 1);
}

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments names every unknown slug", "[service][update_user_segments]") {
  REQUIRE(Update(Change(kUser1, {{"D"}})).ok());
  ExpectRefused(Change(kUser1, {{"X1"}, {"A"}, {"X2"}}, {"D", "X3"}), grpc::StatusCode::NOT_FOUND,
                {"segmentsToAdd[0].segmentSlug", "segmentsToAdd[2].segmentSlug", "segmentsToRemove[1].segmentSlug"});
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"D"});
}

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments treats a deleted segment as unknown",
                 "[service][update_user_segments]") {
  REQUIRE(CreateSegment("GONE").ok());
  REQUIRE(DeleteSegment("GONE").ok());
  ExpectRefused(Change(kUser1, {{"A"}, {"GONE"}}), grpc::StatusCode::NOT_FOUND, {"segmentsToAdd[1].segmentSlug"});
}

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments: slugs are case-sensitive", "[service][update_user_segments]") {
  ExpectRefused(Change(kUser1, {{"a"}}), grpc::StatusCode::NOT_FOUND, {"segmentsToAdd[0].segmentSlug"});
}

// --- FAILED_PRECONDITION

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments refuses to add a segment the user is in",
                 "[service][update_user_segments]") {
  REQUIRE(Update(Change(kUser1, {{"A", 3600}})).ok());
  // Nothing is overwritten: neither the other addition nor the TTL.
  ExpectRefused(Change(kUser1, {{"B"}, {"A"}}), grpc::StatusCode::FAILED_PRECONDITION,
                {"segmentsToAdd[1].segmentSlug"});
  CHECK(MembershipsOf(kUser1) ==
        Rows{{"A", At(Now() - absl::Seconds(1)), At(Now() - absl::Seconds(1) + absl::Seconds(3600))}});
}

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments: removing a segment the user is not in changes nothing",
                 "[service][update_user_segments]") {
  const absl::Time t0 = Now();
  REQUIRE(Update(Change(kUser1, {{"A"}})).ok());
  clock.Advance(absl::Seconds(1));
  const absl::Time t1 = Now();
  // B and D are not held: no event for them; A listed twice ends once.
  const grpc::Status status = Update(Change(kUser1, {{"C"}}, {"A", "B", "D", "A"}));
  INFO(Describe(status));
  REQUIRE(status.ok());
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"C"});
  CHECK(HistoryOf(kUser1) ==
        Rows{Event("A", "add", "manual", t0), Event("A", "remove", "manual", t1), Event("C", "add", "manual", t1)});
  // Opt-outs are kept for real removals only.
  CHECK(Count("SELECT count(*) FROM auto_opt_outs") == 1);
}

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments with nothing to add or remove is a no-op",
                 "[service][update_user_segments]") {
  const Rows before = Snapshot();
  CHECK(Update(Change(kUser1, {})).ok());
  CHECK(Update(Change(kUser2, {})).ok());  // an unknown user: nothing is looked up
  CHECK(Snapshot() == before);
  ExpectRefused(Change("nobody", {}), grpc::StatusCode::INVALID_ARGUMENT, {"userID"});
}

TEST_CASE_METHOD(UpdateFixture, "UpdateUserSegments: zero TTL values mean not given",
                 "[service][update_user_segments][ttl]") {
  // What the original's Go clients send: both fields, at their zero values.
  const absl::Time go_zero_time = absl::FromUnixSeconds(-62135596800);
  const absl::Time t0 = Now();
  const grpc::Status status = Update(
      Change(kUser1, {{"A", 0, go_zero_time}, {"B", 60, go_zero_time}, {"C", 0, t0 + absl::Hours(1)}, {"D", 0}}));
  INFO(Describe(status));
  REQUIRE(status.ok());
  CHECK(MembershipsOf(kUser1) == Rows{{"A", At(t0), ""},
                                      {"B", At(t0), At(t0 + absl::Seconds(60))},
                                      {"C", At(t0), At(t0 + absl::Hours(1))},
                                      {"D", At(t0), ""}});
}

}  // namespace
}  // namespace segments::testing
