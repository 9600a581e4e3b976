// Integer user ids beside UUIDs, through the use cases on the real
// database: the integer 1000 and the UUID 00000000-0000-0000-0000-000000001000
// are two users, with their own rows, memberships and history; ids of both
// kinds go through every statement that binds them (one, or arrays), and
// the database's order of ids is UserId's (keyset pages, reports).
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "domain/bucketing.h"
#include "domain/bulk_membership_use_cases.h"
#include "domain/history_report.h"
#include "domain/history_use_cases.h"
#include "domain/listing_use_cases.h"
#include "domain/segment_use_cases.h"
#include "domain/user_use_cases.h"
#include "storage/pg_store.h"
#include "support/domain_testing.h"
#include "support/fake_clock.h"
#include "support/test_database.h"

using namespace segments::domain;
using segments::storage::PgPool;
using segments::storage::PgPoolOptions;
using segments::storage::PgStore;
using segments::testing::ClientMessage;
using segments::testing::Id;
using segments::testing::Query;
using segments::testing::QueryValue;
using Rows = std::vector<std::vector<std::string>>;

namespace {

constexpr const char* kUuid1000 = "00000000-0000-0000-0000-000000001000";
const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 1, 12, 0, 0), absl::UTCTimeZone());

std::string At(int second) { return fmt::format("2024-03-01T12:00:{:02}.000000Z", second); }

struct Fixture {
  PgPool pool{PgPoolOptions{segments::testing::TestDatabaseUrl(), 4}};
  PgStore store{pool};
  segments::testing::FakeClock clock{kT0};
  SegmentUseCases segments{store, clock};
  UserUseCases users{store, clock};
  BulkMembershipUseCases bulk{store, clock};
  ListingUseCases listing{store, clock};
  ReportLinkSigner signer =
      ReportLinkSigner::Create({{"k1", std::string(ReportLinkSigner::kMinSecretLength, 's')}}, absl::Hours(1)).value();
  HistoryUseCases history{store, clock, signer};

  Fixture() { segments::testing::ResetDatabase(); }

  // Each step at the next whole second, so events order by time first.
  void Tick(int second) { clock.Set(kT0 + absl::Seconds(second)); }

  void Require(const absl::Status& status) {
    INFO(status.ToString());
    REQUIRE(status.ok());
  }

  std::vector<std::string> SegmentsOf(const std::string& user) {
    auto slugs = segments.GetUserSegments(user);
    INFO(slugs.status().ToString());
    REQUIRE(slugs.ok());
    return *slugs;
  }

  std::string Report(const std::optional<std::string>& user) {
    auto link = history.CreateReportLink({user ? UserIdInput(*user) : UserIdInput(""), 3, 2024});
    REQUIRE(link.ok());
    auto report = history.OpenReport(*link);
    INFO(report.status().ToString());
    REQUIRE(report.ok());
    std::string out;
    for (;;) {
      auto chunk = (*report)->NextChunk();
      REQUIRE(chunk.ok());
      if (chunk->empty()) return out;
      out += *chunk;
    }
  }

  std::vector<std::string> HistoryOf(const std::string& user) {
    auto page = history.ListUserHistory({user, "", std::nullopt, std::nullopt, 100, ""});
    INFO(page.status().ToString());
    REQUIRE(page.ok());
    std::vector<std::string> out;
    for (const HistoryEvent& e : page->events) {
      out.push_back(fmt::format("{};{};{};{}", e.user_id, e.slug, ToString(e.operation), ToString(e.reason)));
    }
    return out;
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "the integer 1000 and the UUID ...1000 are two users with their own segments and history",
                 "[pg][user-id]") {
  Require(users.CreateUser("1000"));
  Require(users.CreateUser(kUuid1000));
  CHECK(users.CreateUser("1000").code() == absl::StatusCode::kAlreadyExists);
  CHECK(users.CreateUser(kUuid1000).code() == absl::StatusCode::kAlreadyExists);
  const absl::Status leading_zero = users.CreateUser("01000");
  CHECK(leading_zero.code() == absl::StatusCode::kInvalidArgument);
  CHECK(ClientMessage(leading_zero) == "userID: must be a UUID or a decimal integer 0..9223372036854775807");
  CHECK(Query("SELECT id FROM users ORDER BY id") == Rows{{kUuid1000}, {"1000"}});

  for (const char* slug : {"A", "B"})
    Require(segments.CreateSegment({slug, std::nullopt, "", {}, {}, std::nullopt}).status());
  Tick(1);
  Require(segments.UpdateUserSegments({"1000", {{"A", {}}}, {}}));
  Tick(2);
  Require(segments.UpdateUserSegments({kUuid1000, {{"B", {}}}, {}}));
  CHECK(SegmentsOf("1000") == std::vector<std::string>{"A"});
  CHECK(SegmentsOf(kUuid1000) == std::vector<std::string>{"B"});
  CHECK(Query("SELECT m.user_id, s.slug FROM memberships m JOIN segments s ON s.id = m.segment_id ORDER BY 1") ==
        Rows{{kUuid1000, "B"}, {"1000", "A"}});

  // Removing one changes nothing of the other.
  Tick(3);
  Require(users.DeleteUser("1000").status());
  CHECK(SegmentsOf("1000").empty());
  CHECK(SegmentsOf(kUuid1000) == std::vector<std::string>{"B"});
  CHECK(HistoryOf("1000") == std::vector<std::string>{"1000;A;remove;user_deleted", "1000;A;add;manual"});
  CHECK(HistoryOf(kUuid1000) == std::vector<std::string>{std::string(kUuid1000) + ";B;add;manual"});
  CHECK(Report("1000") == std::string(kCsvHeader) + "1000;A;add;" + At(1) + "\n1000;A;remove;" + At(3) + "\n");
  CHECK(Report(kUuid1000) == std::string(kCsvHeader) + kUuid1000 + ";B;add;" + At(2) + "\n");
}

TEST_CASE_METHOD(Fixture, "ids of both kinds in bulk changes, listing pages, reports and user events",
                 "[pg][user-id]") {
  // In the database's order of ids, which is UserId's.
  const std::vector<std::string> ids = {
      kUuid1000, "1000", "1002", "1004", "9", "9223372036854775807", "c0ffee00-0000-4000-8000-000000000000"};
  for (const std::string& id : ids) Require(users.CreateUser(id));
  std::vector<UserId> sorted;
  for (const std::string& id : ids) sorted.push_back(Id(id));
  REQUIRE(std::is_sorted(sorted.begin(), sorted.end()));

  Require(segments.CreateSegment({"BULK", std::nullopt, "", {}, {}, std::nullopt}).status());
  Tick(1);
  std::vector<UserIdInput> reversed(ids.rbegin(), ids.rend());
  auto added = bulk.AddSegmentToUsers({"BULK", reversed, {}});
  INFO(added.status().ToString());
  REQUIRE(added.ok());
  CHECK(added->added == static_cast<int64_t>(ids.size()));

  // Pages of two, each continuing after the last id of the one before.
  std::vector<std::string> listed;
  std::string token;
  do {
    auto page = listing.ListSegmentMembers({"BULK", 2, token});
    INFO(page.status().ToString());
    REQUIRE(page.ok());
    for (const SegmentMember& m : page->members) listed.push_back(m.user_id.ToString());
    token = page->next_page_token;
  } while (!token.empty());
  CHECK(listed == ids);

  // One instant: the report orders by user, as the database does.
  std::string expected(kCsvHeader);
  for (const std::string& id : ids) expected += id + ";BULK;add;" + At(1) + "\n";
  CHECK(Report(std::nullopt) == expected);

  // Removing in bulk, then the user-event path (many ids locked at once).
  Tick(2);
  auto removed = bulk.RemoveSegmentFromUsers({"BULK", {"1002", kUuid1000}, {}});
  REQUIRE(removed.ok());
  CHECK(removed->removed == 2);
  auto synced = users.SyncUsers({{Id("1004"), UserState::kExcluded},
                                 {Id(kUuid1000), std::nullopt},
                                 {Id("1000"), UserState::kActive},
                                 {Id("77"), UserState::kActive}});
  INFO(synced.status().ToString());
  REQUIRE(synced.ok());
  CHECK(synced->created == 1);
  CHECK(synced->state_changed == 1);
  CHECK(synced->deleted == 1);
  CHECK(synced->unchanged == 1);
  CHECK(Query("SELECT id, state FROM users WHERE id IN ('1000', '1004', '77', '" + std::string(kUuid1000) +
              "') ORDER BY id") == Rows{{"1000", "active"}, {"1004", "excluded"}, {"77", "active"}});
}

TEST_CASE_METHOD(Fixture, "automatic assignment buckets integer ids as domain::Bucket does", "[pg][user-id][auto]") {
  std::vector<std::string> ids = {kUuid1000};
  for (int i = 0; i < 200; ++i) ids.push_back(std::to_string(1000 + 7 * i));
  for (const std::string& id : ids) Require(users.CreateUser(id));
  auto created = segments.CreateSegment({"HALF", 50.0, "", {}, {}, std::nullopt});
  REQUIRE(created.ok());
  std::vector<std::string> expected;
  for (const std::string& id : ids) {
    if (InPercent(Bucket(created->salt, Id(id)), 5000)) expected.push_back(id);
  }
  std::sort(expected.begin(), expected.end());
  REQUIRE(expected.size() > 50);
  REQUIRE(expected.size() < 150);
  std::vector<std::string> members;
  for (const auto& row : Query("SELECT m.user_id FROM memberships m JOIN segments s ON s.id = m.segment_id "
                               "WHERE s.slug = 'HALF' AND m.auto ORDER BY 1")) {
    members.push_back(row[0]);
  }
  CHECK(members == expected);
  // A user created afterwards is evaluated in C++: the same rule.
  Require(users.CreateUser("424242"));
  const bool in = InPercent(Bucket(created->salt, Id("424242")), 5000);
  CHECK(SegmentsOf("424242") == (in ? std::vector<std::string>{"HALF"} : std::vector<std::string>{}));
}
