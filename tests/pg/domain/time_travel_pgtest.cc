// Time travel (domain/time_travel_use_cases.h) on the real database. The
// property: random churn of every kind of change under a clock the test
// moves, a snapshot of what the service answered after each change (the
// hot read per user, each segment's members and count), and then every past
// answer of the time-travel reads compared with the snapshot of its instant.
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "domain/bucketing.h"
#include "domain/bulk_membership_use_cases.h"
#include "domain/listing_use_cases.h"
#include "domain/segment_use_cases.h"
#include "domain/time_travel_use_cases.h"
#include "domain/user_use_cases.h"
#include "storage/pg_store.h"
#include "storage/pg_time_travel_queries.h"
#include "support/fake_clock.h"
#include "support/store_testing.h"
#include "support/test_database.h"

using namespace segments::domain;
using segments::storage::PgPool;
using segments::storage::PgPoolOptions;
using segments::storage::PgStore;
using segments::testing::FakeClock;

namespace {

struct Fixture {
  PgPool pool{PgPoolOptions{segments::testing::TestDatabaseUrl(), 4}};
  PgStore store{pool};
  FakeClock clock;
  SegmentUseCases segments{store, clock};
  UserUseCases users{store, clock};
  BulkMembershipUseCases bulk{store, clock};
  ListingUseCases listing{store, clock};
  TimeTravelUseCases travel{store, store.time_travel(), clock};

  Fixture() { segments::testing::ResetDatabase(); }

  // Every member now, through the current listing.
  std::vector<std::string> MembersNow(const std::string& slug) {
    std::vector<std::string> out;
    std::string token;
    do {
      auto page = listing.ListSegmentMembers({slug, 50, token});
      REQUIRE(page.ok());
      for (const SegmentMember& m : page->members) out.push_back(m.user_id.ToString());
      token = page->next_page_token;
    } while (!token.empty());
    return out;
  }

  // Every member at `at`, a few at a time, through the time-travel listing.
  std::vector<std::string> MembersAt(const std::string& slug, absl::Time at) const {
    std::vector<std::string> out;
    std::string token;
    do {
      auto page = travel.MembersAt({slug, token.empty() ? std::optional(at) : std::nullopt, 7, token});
      REQUIRE(page.ok());
      CHECK(page->at == at);
      for (const MembershipAt& m : page->members) out.push_back(m.user_id.ToString());
      token = page->next_page_token;
    } while (!token.empty());
    return out;
  }

  int64_t CountAt(const std::string& slug, absl::Time at) const {
    auto counted = travel.CountMembersAt({slug, at, 0, ""});
    REQUIRE(counted.ok());
    return counted->count;
  }
};

CreateSegmentCommand Manual(const std::string& slug) { return {slug, std::nullopt, "", {}, {}, std::nullopt}; }
CreateSegmentCommand Auto(const std::string& slug, double percent, std::optional<int64_t> ttl = std::nullopt) {
  return {slug, percent, "", {}, {}, ttl};
}

// What the service answered at one instant.
struct Snapshot {
  absl::Time at;
  std::map<std::string, std::vector<std::string>> segments_of_user;  // the hot read
  std::map<std::string, std::vector<std::string>> members;           // live segments only
};

}  // namespace

TEST_CASE_METHOD(Fixture, "every past answer of time travel is what the service answered then", "[pg][time_travel]") {
  std::mt19937 rng(GENERATE(1u, 2u, 3u));
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const std::vector<std::string> slugs{"A", "B", "C", "AUTO_1", "AUTO_2"};
  constexpr int kUsers = 24;
  auto user = [](int i) { return std::to_string(1000 + i); };
  std::set<std::string> known_users, live_segments, ever_segments;

  std::vector<Snapshot> snapshots;
  for (int step = 0; step < 160; ++step) {
    // Odd amounts of time, so that TTLs end between changes and some
    // expired memberships wait for the job.
    clock.Advance(absl::Seconds(1 + pick(900)) + absl::Microseconds(pick(1000000)));
    const std::string& slug = slugs[static_cast<size_t>(pick(static_cast<int>(slugs.size())))];
    const bool automatic = slug.rfind("AUTO", 0) == 0;
    const std::string u = user(pick(kUsers));
    switch (pick(12)) {
      case 0:
        if (users.CreateUser(u).ok()) known_users.insert(u);
        break;
      case 1:
        if (users.DeleteUser(u).ok()) known_users.erase(u);
        break;
      case 2:
        (void)users.UpdateUser(u, pick(2) == 0 ? "excluded" : "active");
        break;
      case 3:
        if (segments
                .CreateSegment(automatic ? Auto(slug, 10.0 * (1 + pick(9)),
                                                pick(2) == 0 ? std::optional<int64_t>(600 + pick(3000)) : std::nullopt)
                                         : Manual(slug))
                .ok()) {
          live_segments.insert(slug);
          ever_segments.insert(slug);
        }
        break;
      case 4:
        if (pick(3) == 0 && segments.DeleteSegment(slug).ok()) live_segments.erase(slug);
        break;
      case 5:
        if (automatic) (void)segments.UpdateSegmentPercent({slug, 5.0 * pick(21)});
        break;
      case 6:
        (void)segments::testing::EndExpiredMemberships(store, TruncateToMicros(clock.Now()), 1000);
        break;
      case 7:
      case 8: {
        TtlInput ttl;
        if (pick(2) == 0) ttl.seconds = 60 + pick(3600);
        (void)segments.UpdateUserSegments({u, {{slug, ttl}}, {}});
        break;
      }
      case 9:
        (void)segments.UpdateUserSegments({u, {}, {slug}});
        break;
      case 10: {
        std::vector<UserIdInput> some;
        for (const std::string& k : known_users) {
          if (pick(3) == 0) some.emplace_back(k);
        }
        if (some.empty()) break;
        TtlInput ttl;
        if (pick(2) == 0) ttl.seconds = 60 + pick(3600);
        if (pick(2) == 0) {
          (void)bulk.AddSegmentToUsers({slug, some, ttl});
        } else {
          (void)bulk.RemoveSegmentFromUsers({slug, some, {}});
        }
        break;
      }
      default:
        break;  // time passes
    }
    Snapshot s{TruncateToMicros(clock.Now()), {}, {}};
    for (int i = 0; i < kUsers; ++i) {
      auto held = segments.GetUserSegments(user(i));
      REQUIRE(held.ok());
      s.segments_of_user[user(i)] = *held;
    }
    for (const std::string& live : live_segments) s.members[live] = MembersNow(live);
    snapshots.push_back(std::move(s));
  }
  clock.Advance(absl::Hours(2));  // the job has not ended everything due: the reads must not care
  REQUIRE(ever_segments.size() >= 3);

  for (const Snapshot& s : snapshots) {
    INFO("at " << absl::FormatTime(s.at));
    for (const auto& [u, expected] : s.segments_of_user) {
      auto found = travel.SegmentsOfUserAt({u, s.at});
      REQUIRE(found.ok());
      std::vector<std::string> slugs_at;
      for (const MembershipAt& m : found->memberships) slugs_at.push_back(m.slug);
      INFO("user " << u);
      CHECK(slugs_at == expected);
    }
    for (const std::string& slug : ever_segments) {
      INFO("segment " << slug);
      const auto it = s.members.find(slug);
      const std::vector<std::string> expected = it == s.members.end() ? std::vector<std::string>{} : it->second;
      CHECK(MembersAt(slug, s.at) == expected);
      CHECK(CountAt(slug, s.at) == static_cast<int64_t>(expected.size()));
    }
  }

  // Size over time: each hour's size is the count at its last microsecond,
  // and the events of the hours add up to the change.
  const absl::Time from = snapshots.front().at - absl::Hours(1);
  for (const std::string& slug : ever_segments) {
    INFO("segment " << slug);
    auto history = travel.SizeOverTime({slug, from, clock.Now(), "hour"});
    REQUIRE(history.ok());
    REQUIRE(history->points.size() >= 2);
    CHECK(history->size_at_start == CountAt(slug, history->points.front().start - absl::Microseconds(1)));
    int64_t size = history->size_at_start;
    for (const SizePoint& p : history->points) {
      for (size_t r = 0; r < EventCounts::kReasons; ++r) size += p.events.added[r] - p.events.removed[r];
      CHECK(p.size == size);
      CHECK(p.size == CountAt(slug, std::min(p.start + absl::Hours(1), clock.Now()) - absl::Microseconds(1)));
    }
  }
}

TEST_CASE_METHOD(Fixture, "a TTL membership ends at its deadline in every answer, before and after the job writes it",
                 "[pg][time_travel]") {
  REQUIRE(users.CreateUser("1").ok());
  REQUIRE(segments.CreateSegment(Manual("T")).ok());
  const absl::Time added = TruncateToMicros(clock.Now());
  TtlInput ttl;
  ttl.seconds = 60;
  REQUIRE(segments.UpdateUserSegments({"1", {{"T", ttl}}, {}}).ok());
  const absl::Time deadline = added + absl::Seconds(60);
  clock.Advance(absl::Minutes(5));

  auto check = [&] {
    auto before = travel.SegmentsOfUserAt({"1", deadline - absl::Microseconds(1)});
    REQUIRE(before.ok());
    REQUIRE(before->memberships.size() == 1);
    CHECK(before->memberships[0].expires_at == deadline);
    auto after = travel.SegmentsOfUserAt({"1", deadline});
    REQUIRE(after.ok());
    CHECK(after->memberships.empty());
    CHECK(CountAt("T", deadline - absl::Microseconds(1)) == 1);
    CHECK(CountAt("T", deadline) == 0);
    auto hours = travel.SizeOverTime({"T", added, clock.Now(), "hour"});
    REQUIRE(hours.ok());
    CHECK(hours->points.back().size == 0);
    CHECK(hours->points.back().events.removed[static_cast<size_t>(Reason::kTtl)] == 1);
  };
  check();  // the expiry job has not run
  REQUIRE(segments::testing::EndExpiredMemberships(store, TruncateToMicros(clock.Now()), 100).value() == 1);
  check();
}

TEST_CASE_METHOD(Fixture, "a deleted and re-created slug answers for the segment that bore it then",
                 "[pg][time_travel]") {
  REQUIRE(users.CreateUser("1").ok());
  REQUIRE(users.CreateUser("2").ok());
  REQUIRE(segments.CreateSegment(Manual("S")).ok());
  REQUIRE(segments.UpdateUserSegments({"1", {{"S", {}}}, {}}).ok());
  const absl::Time first = TruncateToMicros(clock.Now());
  clock.Advance(absl::Minutes(1));
  REQUIRE(segments.DeleteSegment("S").ok());
  CHECK(MembersAt("S", TruncateToMicros(clock.Now())).empty());  // the deletion's instant
  clock.Advance(absl::Minutes(1));
  const absl::Time between = TruncateToMicros(clock.Now());
  clock.Advance(absl::Minutes(1));
  REQUIRE(segments.CreateSegment(Manual("S")).ok());
  REQUIRE(segments.UpdateUserSegments({"2", {{"S", {}}}, {}}).ok());
  clock.Advance(absl::Minutes(1));

  CHECK(MembersAt("S", first) == std::vector<std::string>{"1"});
  CHECK(MembersAt("S", between).empty());
  CHECK(MembersAt("S", TruncateToMicros(clock.Now())) == std::vector<std::string>{"2"});
  auto deleted = travel.SizeOverTime({"S", first - absl::Hours(1), clock.Now(), "day"});
  REQUIRE(deleted.ok());
  CHECK(deleted->points.back().events.removed[static_cast<size_t>(Reason::kSegmentDeleted)] == 1);
  CHECK(deleted->points.back().size == 1);

  // A page token of one instant is refused with another.
  auto page = travel.MembersAt({"S", first, 1, ""});
  REQUIRE(page.ok());
  CHECK(page->next_page_token.empty());
  CHECK(travel.MembersAt({"NEVER", first, 0, ""}).status().code() == absl::StatusCode::kNotFound);
  CHECK(travel.CountMembersAt({"S", clock.Now() + absl::Seconds(1), 0, ""}).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE_METHOD(Fixture, "why a user is or is not in a segment", "[pg][time_travel]") {
  for (const char* u : {"1", "2", "3", "4", "5"}) REQUIRE(users.CreateUser(u).ok());
  REQUIRE(users.UpdateUser("4", "excluded").ok());
  REQUIRE(segments.CreateSegment(Manual("HAND")).ok());
  REQUIRE(segments.CreateSegment(Manual("GATE")).ok());
  TtlInput ttl;
  ttl.seconds = 3600;
  REQUIRE(segments.UpdateUserSegments({"1", {{"HAND", ttl}}, {}}).ok());
  REQUIRE(segments.UpdateUserSegments({"2", {{"HAND", {}}, {"GATE", {}}}, {}}).ok());
  clock.Advance(absl::Minutes(1));
  REQUIRE(segments.UpdateUserSegments({"2", {}, {"HAND"}}).ok());
  REQUIRE(segments.CreateSegment(Auto("ALL", 100)).ok());
  REQUIRE(segments.CreateSegment({"GATED", 100.0, "", {"GATE"}, {}, std::nullopt}).ok());
  REQUIRE(segments.UpdateUserSegments({"3", {}, {"ALL"}}).ok());

  auto explain = [&](const std::string& u, const std::string& slug) {
    auto out = travel.Explain({u, {slug}});
    REQUIRE(out.ok());
    REQUIRE(out->size() == 1);
    return (*out)[0];
  };
  Explanation x = explain("1", "HAND");
  CHECK(x.member);
  CHECK(x.why == "manual");
  CHECK(x.expires_at.has_value());
  CHECK(x.event->actor == "system");
  CHECK(explain("2", "HAND").why == "removed");
  CHECK(explain("3", "HAND").why == "never_added");
  x = explain("1", "ALL");
  CHECK(x.member);
  CHECK(x.why == "auto_percent");
  CHECK(x.bucket == Bucket(segments.GetSegment("ALL")->first.salt, UserId::Parse("1").value()));
  CHECK(x.threshold == 10000);
  CHECK(explain("3", "ALL").why == "opted_out");
  CHECK(explain("4", "ALL").why == "user_excluded");
  x = explain("1", "GATED");
  CHECK(x.why == "filtered");
  CHECK(x.unmet_filters == std::vector<std::string>{"include:GATE"});
  CHECK(explain("2", "GATED").why == "auto_percent");
  CHECK(explain("99", "HAND").why == "unknown_user");

  // A segment at 0.01% leaves out nearly everyone: the bucket says why.
  REQUIRE(segments.CreateSegment(Auto("TINY", 0.01)).ok());
  const std::string salt = segments.GetSegment("TINY")->first.salt;
  for (const char* u : {"1", "2", "5"}) {
    if (Bucket(salt, UserId::Parse(u).value()) == 0) continue;
    x = explain(u, "TINY");
    CHECK(x.why == "outside_percent");
    CHECK(x.threshold == 1);
  }

  clock.Advance(absl::Hours(2));
  x = explain("1", "HAND");
  CHECK_FALSE(x.member);
  CHECK(x.why == "expired");

  // No segments named: every segment held now, by slug.
  auto all = travel.Explain({"2", {}});
  REQUIRE(all.ok());
  std::vector<std::string> held;
  for (const Explanation& e : *all) held.push_back(e.segment);
  CHECK(held == std::vector<std::string>{"ALL", "GATE", "GATED"});
  CHECK(travel.Explain({"2", {"NOPE"}}).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("a page of members at an instant reads the index in order and sorts no events", "[pg][time_travel]") {
  segments::testing::ResetDatabase();
  using segments::testing::Query;
  // 40 segments of 2,500 events over 100 days; planned both ways.
  Query(
      "INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
      "SELECT (1000 + g / 40 % 2000)::text, 1 + g % 40, 'S' || g % 40, "
      "CASE WHEN g < 80000 THEN 'add' ELSE 'remove' END::history_operation, "
      "'manual', timestamptz '2024-01-01Z' + g * interval '1 minute' FROM generate_series(0, 99999) g");
  Query("VACUUM (ANALYZE) history");  // as autovacuum keeps a real table: index-only scans pay
  for (const char* mode : {"force_custom_plan", "force_generic_plan"}) {
    // One connection per Query: the statement is prepared and explained in one.
    std::string plan;
    for (const auto& row :
         Query(std::string("SET plan_cache_mode = ") + mode + "; PREPARE members_at(int8, timestamptz, text, int) AS " +
               segments::storage::MembersAtSql() + "; EXPLAIN EXECUTE members_at(7, '2024-03-01Z', '', 1001)")) {
      plan += row[0] + "\n";
    }
    INFO(mode << ":\n" << plan);
    // The events reach the window straight from the index, unsorted (what
    // joins the page's few rows to their actors is the planner's choice).
    const size_t window = plan.find("WindowAgg");
    const size_t scan = plan.find("Index Only Scan using history_segment_member_idx", window);
    REQUIRE(window != std::string::npos);
    REQUIRE(scan != std::string::npos);
    CHECK(plan.substr(window, scan - window).find("Sort") == std::string::npos);
  }
}
