// The membership read model (docs/read-model.md) through the real server:
// reads from memory, read-your-writes on the instance that wrote,
// other instances within the freshness bound, exact expiry, set-wise
// changes, a lost connection, the staleness guard, health and the switch.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "service/auto_fixture.h"

using namespace segments::testing;  // NOLINT(google-build-using-namespace)

namespace {

constexpr char kReadModelHealth[] = "segmentation.v1.MembershipReadModel";

using Stats = segments::readmodel::MembershipReadModel::Stats;

Stats StatsOf(const ServiceFixture& f) { return f.app->read_model().stats(); }

void RequireServing(const ServiceFixture& f) {
  REQUIRE(Eventually([&] { return f.app->read_model().Serving(); }, absl::Seconds(10), absl::Milliseconds(5)));
}

// The answer as the database gives it, as the server's own query would.
std::vector<std::string> SqlSegmentsOf(const std::string& user, absl::Time now) {
  std::vector<std::string> out;
  for (const auto& row :
       Query(fmt::format("SELECT s.slug FROM memberships m JOIN segments s ON s.id = m.segment_id WHERE m.user_id = {} "
                         "AND (m.expires_at IS NULL OR m.expires_at > to_timestamp({}::numeric / 1000000)) ORDER BY 1",
                         Literal(user), absl::ToUnixMicros(now)))) {
    out.push_back(row[0]);
  }
  return out;
}

int BackendPidOfReadModels() {
  return std::stoi(
      QueryValue("SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE application_name = 'segments-read-model'"));
}

}  // namespace

TEST_CASE_METHOD(ServiceFixture, "a change is read back at once on the instance that made it, from memory",
                 "[read_model]") {
  RequireServing(*this);
  REQUIRE(CreateUser(kUser1).ok());
  for (const char* slug : {"A", "B", "C"}) REQUIRE(CreateSegment(slug).ok());
  const Stats before = StatsOf(*this);
  for (int round = 0; round < 30; ++round) {
    REQUIRE(Update(Change(kUser1, {{"A"}, {"B", 3600}})).ok());
    CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"A", "B"});
    REQUIRE(Update(Change(kUser1, {{"C"}}, {"A"})).ok());
    CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"B", "C"});
    REQUIRE(Update(Change(kUser1, {}, {"B", "C"})).ok());
    CHECK(SegmentsOf(kUser1).empty());
  }
  const Stats after = StatsOf(*this);
  // Every one of the 90 reads came from memory.
  CHECK(after.memory_reads - before.memory_reads == 90);
  CHECK(after.database_reads == before.database_reads);
}

TEST_CASE("another instance sees a change within a second, typically in milliseconds", "[read_model]") {
  ServiceFixture a;
  ServiceFixture b(TestConfig(), ServiceFixture::Database::kShared);
  RequireServing(a);
  RequireServing(b);
  REQUIRE(a.CreateUser(kUser1).ok());
  REQUIRE(a.CreateSegment("A").ok());
  std::vector<absl::Duration> lags;
  for (int round = 0; round < 20; ++round) {
    const bool add = round % 2 == 0;
    ServiceFixture& writer = round % 4 < 2 ? a : b;
    ServiceFixture& reader = &writer == &a ? b : a;
    const std::vector<std::string> expected = add ? std::vector<std::string>{"A"} : std::vector<std::string>{};
    REQUIRE(writer.Update(add ? Change(kUser1, {{"A"}}) : Change(kUser1, {}, {"A"})).ok());
    const absl::Time written = absl::Now();
    REQUIRE(
        Eventually([&] { return reader.SegmentsOf(kUser1) == expected; }, absl::Seconds(5), absl::Microseconds(200)));
    lags.push_back(absl::Now() - written);
  }
  std::sort(lags.begin(), lags.end());
  INFO("median " << absl::FormatDuration(lags[lags.size() / 2]) << ", max " << absl::FormatDuration(lags.back()));
  CHECK(lags.back() <= absl::Seconds(1));
  // Announced, not found by the periodic look (100 ms).
  CHECK(lags[lags.size() / 2] < absl::Milliseconds(50));
}

TEST_CASE_METHOD(ServiceFixture, "from memory, a membership ends at its deadline to the microsecond", "[read_model]") {
  RequireServing(*this);
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("A").ok());
  REQUIRE(CreateSegment("B").ok());
  const absl::Time deadline = Now() + absl::Seconds(90) + absl::Microseconds(123457);
  AddItem a{"A"};
  a.deadline = deadline;
  REQUIRE(Update(Change(kUser1, {a, {"B"}})).ok());
  const Stats before = StatsOf(*this);
  clock.Set(deadline - absl::Microseconds(1));
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"A", "B"});
  clock.Set(deadline);
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"B"});
  clock.Set(deadline - absl::Nanoseconds(1));  // the clock's µs: still before the deadline's
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"A", "B"});
  CHECK(StatsOf(*this).memory_reads - before.memory_reads == 3);
  // The database agrees at both instants.
  CHECK(SqlSegmentsOf(kUser1, deadline - absl::Microseconds(1)) == std::vector<std::string>{"A", "B"});
  CHECK(SqlSegmentsOf(kUser1, deadline) == std::vector<std::string>{"B"});
}

TEST_CASE("a bulk change of 12,000 users travels as one range note and reaches both instances", "[read_model]") {
  AutoFixture a;
  AutoFixture b(TestConfig(), ServiceFixture::Database::kShared);
  RequireServing(a);
  RequireServing(b);
  const std::vector<std::string> people = a.InsertUsers(12000, "rm");
  REQUIRE(a.CreateSegment("WIDE").ok());
  const int64_t user_notes = Count("SELECT count(*) FROM membership_changes WHERE kind = 'u'");
  REQUIRE(a.BulkAdd("WIDE", people).ok());
  CHECK(Count("SELECT count(*) FROM membership_changes WHERE kind = 'u'") == user_notes);
  // A new segment's members: every row of the segment lies in their range.
  CHECK(Count("SELECT count(*) FROM membership_changes WHERE kind = 'r'") >= 1);
  // Read-your-writes on a; b within the bound.
  for (const std::string& user : {people.front(), people[6000], people.back()}) {
    CHECK(a.SegmentsOf(user) == std::vector<std::string>{"WIDE"});
    CHECK(Eventually([&] { return b.SegmentsOf(user) == std::vector<std::string>{"WIDE"}; }, absl::Seconds(1),
                     absl::Milliseconds(1)));
  }
  // b's reads above may have come from the database (a model further behind
  // than its bound does not serve): its model catches up all the same.
  CHECK(Eventually([&] { return b.app->read_model().stats().memberships >= 12000; }, absl::Seconds(10)));
  REQUIRE(b.DeleteSegment("WIDE").ok());
  CHECK(b.SegmentsOf(people[17]).empty());
  CHECK(Eventually([&] { return a.SegmentsOf(people[17]).empty(); }, absl::Seconds(1), absl::Milliseconds(1)));
  CHECK(Eventually([&] { return a.app->read_model().stats().memberships == 0; }, absl::Seconds(1)));
}

TEST_CASE_METHOD(ServiceFixture, "a lost connection is noticed, and the model catches up with what it missed",
                 "[read_model]") {
  RequireServing(*this);
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("A").ok());
  REQUIRE(CreateSegment("B").ok());
  const int pid = BackendPidOfReadModels();
  REQUIRE(pid != 0);
  const uint64_t loads = StatsOf(*this).full_loads;
  PgSession admin;
  admin.Exec(fmt::format("SELECT pg_terminate_backend({})", pid));
  // Made by hand while the model is away: nobody announces it.
  admin.Exec(
      fmt::format("INSERT INTO memberships (user_id, segment_id, added_at) SELECT {}, id, now() FROM segments "
                  "WHERE slug = 'B'",
                  Literal(kUser1)));
  REQUIRE(
      Eventually([&] { return BackendPidOfReadModels() != 0 && BackendPidOfReadModels() != pid; }, absl::Seconds(10)));
  RequireServing(*this);
  const uint64_t from_memory = StatsOf(*this).memory_reads;
  CHECK(Eventually([&] { return SegmentsOf(kUser1) == std::vector<std::string>{"B"}; }, absl::Seconds(2)));
  CHECK(StatsOf(*this).memory_reads > from_memory);
  // Caught up from the change notes, not by loading everything again.
  CHECK(StatsOf(*this).full_loads == loads);
}

TEST_CASE("a model that cannot look for changes stops answering from memory after max lag", "[read_model]") {
  segments::config::Config config = TestConfig();
  config.read_model_max_lag = absl::Milliseconds(300);
  ServiceFixture f(config);
  RequireServing(f);
  REQUIRE(f.CreateUser(kUser1).ok());
  REQUIRE(f.CreateSegment("A").ok());
  REQUIRE(f.Update(Change(kUser1, {{"A"}})).ok());
  PgSession blocker;
  // The model's next look waits for this lock.
  blocker.Exec("BEGIN");
  blocker.Exec("LOCK TABLE membership_changes IN ACCESS EXCLUSIVE MODE");
  const uint64_t from_db = StatsOf(f).database_reads;
  CHECK(Eventually(
      [&] {
        f.SegmentsOf(kUser1);
        return StatsOf(f).database_reads > from_db;
      },
      absl::Seconds(5)));
  // Still the right answer, from the database.
  CHECK(f.SegmentsOf(kUser1) == std::vector<std::string>{"A"});
  blocker.Exec("COMMIT");
  const uint64_t from_memory = StatsOf(f).memory_reads;
  CHECK(Eventually(
      [&] {
        f.SegmentsOf(kUser1);
        return StatsOf(f).memory_reads > from_memory;
      },
      absl::Seconds(5)));
}

TEST_CASE("health shows the model's readiness; switched off, reads go to the database", "[read_model]") {
  SECTION("on") {
    ServiceFixture f;
    CHECK(Eventually(
        [&] { return CheckHealth(f.channel, std::chrono::milliseconds(2000), kReadModelHealth) == Health::kServing; },
        absl::Seconds(10)));
  }
  SECTION("off") {
    segments::config::Config config = TestConfig();
    config.read_model = false;
    ServiceFixture f(config);
    REQUIRE(f.CreateUser(kUser1).ok());
    REQUIRE(f.CreateSegment("A").ok());
    REQUIRE(f.Update(Change(kUser1, {{"A"}})).ok());
    CHECK(f.SegmentsOf(kUser1) == std::vector<std::string>{"A"});
    CHECK(CheckHealth(f.channel, std::chrono::milliseconds(2000), kReadModelHealth) == Health::kServiceUnknown);
    CHECK(StatsOf(f).memory_reads == 0);
    CHECK_FALSE(f.app->read_model().Serving());
  }
}

TEST_CASE_METHOD(ServiceFixture, "memberships truncated by hand: the model loads everything again on its connection",
                 "[read_model]") {
  RequireServing(*this);
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("A").ok());
  REQUIRE(Update(Change(kUser1, {{"A"}})).ok());
  const int pid = BackendPidOfReadModels();
  const uint64_t loads = StatsOf(*this).full_loads;
  Query("TRUNCATE memberships");
  REQUIRE(Eventually([&] { return StatsOf(*this).full_loads == loads + 1; }, absl::Seconds(5)));
  RequireServing(*this);
  CHECK(SegmentsOf(kUser1).empty());
  CHECK(StatsOf(*this).memberships == 0);
  CHECK(BackendPidOfReadModels() == pid);
  REQUIRE(Update(Change(kUser1, {{"A"}})).ok());
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"A"});
}
