// Memberships with a time to live, driven by the fake clock: expired ones are
// never returned although their rows stay until something ends them, and
// their end is recorded at the deadline.
#include "service/service_fixture.h"

namespace segments::testing {
namespace {

using Rows = std::vector<std::vector<std::string>>;

class TtlFixture : public ServiceFixture {
 public:
  TtlFixture() {
    REQUIRE(CreateUser(kUser1).ok());
    REQUIRE(CreateSegment("TTL").ok());
    REQUIRE(CreateSegment("PERMANENT").ok());
  }
  int64_t MembershipRows() { return Count("SELECT count(*) FROM memberships"); }
};

TEST_CASE_METHOD(TtlFixture, "secondsToBeInSegment: the membership ends after exactly that many seconds",
                 "[service][ttl]") {
  const absl::Time t0 = Now();
  REQUIRE(Update(Change(kUser1, {{"TTL", 60}, {"PERMANENT"}})).ok());
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"PERMANENT", "TTL"});

  clock.Set(t0 + absl::Seconds(59));
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"PERMANENT", "TTL"});
  clock.Set(t0 + absl::Seconds(60));
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"PERMANENT"});
  clock.Set(t0 + absl::Hours(24 * 400));
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"PERMANENT"});
  // Nothing removed the row: reads just never return it.
  CHECK(MembershipRows() == 2);
}

TEST_CASE_METHOD(TtlFixture, "Re-adding after expiry succeeds; history has the TTL end at the deadline",
                 "[service][ttl]") {
  const absl::Time t0 = Now();
  REQUIRE(Update(Change(kUser1, {{"TTL", 60}})).ok());

  clock.Set(t0 + absl::Seconds(120));
  const absl::Time t1 = Now();
  const grpc::Status status = Update(Change(kUser1, {{"TTL"}}));
  INFO(Describe(status));
  REQUIRE(status.ok());

  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"TTL"});
  CHECK(HistoryOf(kUser1) == Rows{Event("TTL", "add", "manual", t0),
                                  Event("TTL", "remove", "ttl", t0 + absl::Seconds(60)),
                                  Event("TTL", "add", "manual", t1)});
  // One row, the new permanent one.
  CHECK(Query("SELECT " + MicrosOf("added_at") + ", expires_at IS NULL FROM memberships") ==
        Rows{{std::to_string(Micros(t1)), "t"}});
  // Permanent now: still there much later.
  clock.Advance(absl::Hours(24 * 365));
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"TTL"});
}

TEST_CASE_METHOD(TtlFixture, "deadlineForStayingInSegment: the membership ends at the deadline", "[service][ttl]") {
  const absl::Time t0 = Now();
  const absl::Time deadline = t0 + absl::Hours(1);
  REQUIRE(Update(Change(kUser1, {{"TTL", std::nullopt, deadline}})).ok());
  CHECK(QueryValue("SELECT " + MicrosOf("expires_at") + " FROM memberships") == std::to_string(Micros(deadline)));

  clock.Set(deadline - absl::Seconds(1));
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"TTL"});
  clock.Set(deadline - absl::Milliseconds(1));
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"TTL"});
  clock.Set(deadline);
  CHECK(SegmentsOf(kUser1).empty());
  CHECK(MembershipRows() == 1);

  clock.Set(deadline + absl::Minutes(30));
  const absl::Time t1 = Now();
  REQUIRE(Update(Change(kUser1, {{"TTL", 10}})).ok());
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"TTL"});
  CHECK(HistoryOf(kUser1) == Rows{Event("TTL", "add", "manual", t0), Event("TTL", "remove", "ttl", deadline),
                                  Event("TTL", "add", "manual", t1)});
  clock.Advance(absl::Seconds(10));
  CHECK(SegmentsOf(kUser1).empty());
}

TEST_CASE_METHOD(TtlFixture, "Removing an expired membership by hand records only its TTL exit", "[service][ttl]") {
  const absl::Time t0 = Now();
  REQUIRE(Update(Change(kUser1, {{"TTL", 60}})).ok());
  clock.Advance(absl::Seconds(90));
  const grpc::Status status = Update(Change(kUser1, {}, {"TTL"}));
  INFO(Describe(status));
  REQUIRE(status.ok());
  // The user was not in it any more: no manual removal, only the exit at the deadline.
  CHECK(HistoryOf(kUser1) ==
        Rows{Event("TTL", "add", "manual", t0), Event("TTL", "remove", "ttl", t0 + absl::Seconds(60))});
  CHECK(Count("SELECT count(*) FROM memberships") == 0);
}

TEST_CASE_METHOD(TtlFixture, "A membership still running can be removed before its deadline", "[service][ttl]") {
  const absl::Time t0 = Now();
  REQUIRE(Update(Change(kUser1, {{"TTL", 60}})).ok());
  clock.Advance(absl::Seconds(30));
  REQUIRE(Update(Change(kUser1, {}, {"TTL"})).ok());
  CHECK(HistoryOf(kUser1) ==
        Rows{Event("TTL", "add", "manual", t0), Event("TTL", "remove", "manual", t0 + absl::Seconds(30))});
  // No TTL event later: the membership ended by hand.
  clock.Advance(absl::Seconds(60));
  REQUIRE(Update(Change(kUser1, {{"PERMANENT"}})).ok());
  CHECK(Count("SELECT count(*) FROM history WHERE reason = 'ttl'") == 0);
}

TEST_CASE_METHOD(TtlFixture, "Deleting a segment records an already expired membership as ended by TTL",
                 "[service][ttl][delete_segment]") {
  const absl::Time t0 = Now();
  REQUIRE(Update(Change(kUser1, {{"TTL", 60}})).ok());
  clock.Advance(absl::Seconds(600));
  REQUIRE(DeleteSegment("TTL").ok());
  CHECK(HistoryOf(kUser1) ==
        Rows{Event("TTL", "add", "manual", t0), Event("TTL", "remove", "ttl", t0 + absl::Seconds(60))});
  CHECK(MembershipRows() == 0);
}

// A Timestamp has nanoseconds, the database microseconds. A deadline in the
// future by less than a microsecond must still get a clean answer: accepted,
// or refused naming the field; never a storage error without one.
TEST_CASE_METHOD(TtlFixture, "A deadline less than a microsecond ahead gets a clean answer", "[service][ttl]") {
  const absl::Time deadline = Now() + absl::Nanoseconds(500);
  const grpc::Status status = Update(Change(kUser1, {{"TTL", std::nullopt, deadline}}));
  INFO(Describe(status));
  if (status.ok()) {
    CHECK(Count("SELECT count(*) FROM memberships") == 1);
    CHECK(Count("SELECT count(*) FROM history") == 1);
  } else {
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(ViolationFields(status) == std::vector<std::string>{"segmentsToAdd[0].deadlineForStayingInSegment"});
    CHECK(Count("SELECT count(*) FROM memberships") == 0);
  }
}

// DeleteSegmentResponse.memberships_ended is "how many memberships ended with
// the segment"; one that had run out before (its end is recorded as `ttl` at
// its deadline) did not end with the segment.
TEST_CASE_METHOD(TtlFixture, "DeleteSegment does not count a membership that had already expired",
                 "[service][ttl][delete_segment]") {
  REQUIRE(CreateUser(kUser2).ok());
  REQUIRE(Update(Change(kUser1, {{"TTL", 60}})).ok());
  REQUIRE(Update(Change(kUser2, {{"TTL"}})).ok());
  clock.Advance(absl::Seconds(600));
  v1::DeleteSegmentResponse response;
  REQUIRE(DeleteSegment("TTL", &response).ok());
  CHECK(Count("SELECT count(*) FROM history WHERE reason = 'segment_deleted'") == 1);
  CHECK(response.memberships_ended() == 1);
}

TEST_CASE_METHOD(TtlFixture, "DeleteUser does not count a membership that had already expired",
                 "[service][ttl][users]") {
  REQUIRE(Update(Change(kUser1, {{"TTL", 60}, {"PERMANENT"}})).ok());
  clock.Advance(absl::Seconds(600));
  v1::DeleteUserResponse response;
  REQUIRE(DeleteUser(kUser1, &response).ok());
  CHECK(Count("SELECT count(*) FROM history WHERE reason = 'user_deleted'") == 1);
  CHECK(response.memberships_ended() == 1);
}

}  // namespace
}  // namespace segments::testing
