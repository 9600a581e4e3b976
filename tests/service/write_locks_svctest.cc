// What a hand change of a user's segments waits for, and what it does not:
// it holds the user's row and the segments it names (db/schema.sql,
// migration 7), never the automatic-assignment lock or a segment's row.
// Each test holds a lock from a session of its own and watches the call.
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "service/service_fixture.h"

using namespace std::chrono_literals;
using namespace segments::testing;

namespace {

// Sessions of the test database, other than `except_pid`, waiting for a lock.
int64_t LockWaitersBesides(const std::string& except_pid) {
  return Count(
      "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
      "AND pid <> " +
      except_pid);
}

// A session of its own, in a transaction, holding whatever the test takes.
struct Holder {
  Holder() { session.Exec("BEGIN"); }
  PgSession session;
  const std::string pid = session.Exec("SELECT pg_backend_pid()");
};

// Whether the call finished on its own, or got stuck waiting for a lock:
// one of the two is seen first.
enum class Outcome { kFinished, kWaiting };
Outcome FinishedOrWaiting(AsyncUpdate& call, const std::string& holder_pid) {
  Outcome outcome = Outcome::kWaiting;
  REQUIRE(Eventually(
      [&] {
        if (call.result.wait_for(0ms) == std::future_status::ready) {
          outcome = Outcome::kFinished;
          return true;
        }
        return LockWaitersBesides(holder_pid) > 0;
      },
      absl::Seconds(20)));
  return outcome;
}

using Violations = std::vector<std::pair<std::string, std::string>>;  // (field, description)
Violations ViolationsOf(const grpc::Status& status) {
  Violations out;
  for (const auto& v : FieldViolations(status)) out.emplace_back(v.field(), v.description());
  return out;
}

}  // namespace

TEST_CASE_METHOD(ServiceFixture, "a hand change goes on while a fill holds the automatic-assignment lock",
                 "[service][locks]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("HAND").ok());
  Holder fill;
  fill.session.Exec("SELECT pg_advisory_xact_lock(hashtext('segments.auto_assignment'))");

  std::optional<AsyncUpdate> call;
  call.emplace(*segments, Change(kUser1, {{"HAND"}}), 20000ms);
  CHECK(FinishedOrWaiting(*call, fill.pid) == Outcome::kFinished);
  INFO(Describe(call->result.get()));
  CHECK(call->result.get().ok());
  fill.session.Exec("ROLLBACK");
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"HAND"});
}

TEST_CASE_METHOD(ServiceFixture, "a hand change takes no lock on the segment's row", "[service][locks]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("HOT").ok());
  Holder holder;
  // Conflicts with every row lock, FOR KEY SHARE included.
  holder.session.Exec("SELECT 1 FROM segments WHERE slug = 'HOT' FOR UPDATE");

  for (const auto& change : {Change(kUser1, {{"HOT"}}), Change(kUser1, {}, {"HOT"})}) {
    AsyncUpdate call(*segments, change, 20000ms);
    CHECK(FinishedOrWaiting(call, holder.pid) == Outcome::kFinished);
    CHECK(call.result.get().ok());
  }
  holder.session.Exec("ROLLBACK");
  CHECK(Count("SELECT count(*) FROM history WHERE slug = 'HOT'") == 2);
}

TEST_CASE_METHOD(ServiceFixture, "a hand change waits while its segment is held exclusively, then sees it deleted",
                 "[service][locks]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("GOING").ok());
  REQUIRE(CreateSegment("STAYING").ok());
  Holder deleter;
  // What DeleteSegment holds while it marks the segment and ends its members.
  deleter.session.Exec("SELECT count(*) FROM lock_live_segments(ARRAY['GOING'], true)");

  std::optional<AsyncUpdate> call;
  call.emplace(*segments, Change(kUser1, {{"GOING"}, {"STAYING"}}), 20000ms);
  REQUIRE(FinishedOrWaiting(*call, deleter.pid) == Outcome::kWaiting);
  deleter.session.Exec("UPDATE segments SET deleted_at = now() WHERE slug = 'GOING'");
  deleter.session.Exec("COMMIT");

  const grpc::Status status = call->result.get();
  INFO(Describe(status));
  CHECK(status.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(ViolationsOf(status) == Violations{{"segmentsToAdd[0].segmentSlug", "segment \"GOING\" does not exist"}});
  CHECK(SegmentsOf(kUser1).empty());  // all or nothing: STAYING was not added
  CHECK(Count("SELECT count(*) FROM history") == 0);
}

TEST_CASE_METHOD(ServiceFixture,
                 "a hand add racing another writer's add of the same membership reports it, with one history event",
                 "[service][locks]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("RACE").ok());
  Holder other;
  // As a bulk call or a fill adds it: not yet committed when the hand
  // change checks, committed before the hand change can insert.
  other.session.Exec("WITH m AS (INSERT INTO memberships (user_id, segment_id, added_at) SELECT " + Literal(kUser1) +
                     ", id, now() FROM segments WHERE slug = 'RACE' RETURNING segment_id) "
                     "INSERT INTO history (user_id, segment_id, slug, operation, reason, at) SELECT " +
                     Literal(kUser1) + ", segment_id, 'RACE', 'add', 'manual', now() FROM m");

  std::optional<AsyncUpdate> call;
  call.emplace(*segments, Change(kUser1, {{"RACE"}}), 20000ms);
  REQUIRE(FinishedOrWaiting(*call, other.pid) == Outcome::kWaiting);
  other.session.Exec("COMMIT");

  const grpc::Status status = call->result.get();
  INFO(Describe(status));
  CHECK(status.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(ViolationsOf(status) == Violations{{"segmentsToAdd[0].segmentSlug", "user is already in segment \"RACE\""}});
  CHECK(Count("SELECT count(*) FROM history WHERE slug = 'RACE'") == 1);
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"RACE"});
}
