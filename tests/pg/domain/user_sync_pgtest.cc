// UserUseCases::SyncUsers on the real database: a batch of user events
// deletes and re-evaluates many users with a fixed number of statements
// (MembershipRepository::EndAllOfUsers, OfUsers, ...), and must leave exactly
// what the one-user use cases (DeleteUser, UpdateUser, CreateUser) leave, one
// call per user: the same memberships, opt-outs and history, event by event.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

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
using segments::testing::Id;
using segments::testing::Query;
using segments::testing::QueryValue;
using Rows = std::vector<std::vector<std::string>>;

namespace {

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 1, 12, 0, 0), absl::UTCTimeZone());
const absl::Time kSyncAt = kT0 + absl::Minutes(10);
constexpr int kUsers = 48;
constexpr int kNewUsers = 4;

std::string UserNo(int g) { return fmt::format("{:08x}-0000-4000-8000-00000000bbbb", g); }
std::string NewUserNo(int g) { return std::to_string(5000 + g); }

// What the user service says of user g at the sync: gone, still excluded, or
// active again.
enum class Fate { kDeleted, kExcluded, kReturning };
Fate FateOf(int g) {
  if (g % 8 == 7) return Fate::kDeleted;
  if (g % 8 == 6) return Fate::kExcluded;
  return Fate::kReturning;
}

std::string Micros(const std::string& column) { return "(extract(epoch FROM " + column + ") * 1000000)::int8"; }

// Everything the sync may change, by slugs (segment ids are the same in
// both runs, but slugs read better), in a stable order.
struct Snapshot {
  Rows users, memberships, opt_outs, history;
};

Snapshot Take() {
  return {
      Query("SELECT id, state FROM users ORDER BY id"),
      Query("SELECT m.user_id, s.slug, " + Micros("m.added_at") + ", coalesce(" + Micros("m.expires_at") +
            "::text, '-'), m.auto FROM memberships m JOIN segments s ON s.id = m.segment_id ORDER BY 1, 2"),
      Query("SELECT o.user_id, s.slug, o.reason, " + Micros("o.at") +
            " FROM auto_opt_outs o JOIN segments s ON s.id = o.segment_id ORDER BY 1, 2"),
      Query("SELECT user_id, slug, operation, reason, " + Micros("at") + " FROM history ORDER BY 1, 5, 2, 3, 4"),
  };
}

struct Fixture {
  PgPool pool{PgPoolOptions{segments::testing::TestDatabaseUrl(), 4}};
  PgStore store{pool};
  segments::testing::FakeClock clock{kT0};
  SegmentUseCases segments{store, clock};
  UserUseCases users{store, clock};

  void Require(const absl::Status& status) {
    INFO(status.ToString());
    REQUIRE(status.ok());
  }

  void CreateSegment(CreateSegmentCommand command) { Require(segments.CreateSegment(command).status()); }

  // Users with automatic and hand-made memberships, some expired and not
  // yet removed (no expiry job runs here), some opted out, all excluded
  // since before the automatic segments that will take them back exist.
  void Setup() {
    segments::testing::ResetDatabase();
    clock.Set(kT0);
    CreateSegment({"EARLY", 100.0, "", {}, {}, /*auto_seconds=*/60});
    CreateSegment({"MANUAL", std::nullopt, "", {}, {}, std::nullopt});
    CreateSegment({"MANUAL2", std::nullopt, "", {}, {}, std::nullopt});
    clock.Set(kT0 + absl::Seconds(1));
    for (int g = 0; g < kUsers; ++g) Require(users.CreateUser(UserNo(g)));  // each joins EARLY until +61 s

    clock.Set(kT0 + absl::Seconds(2));
    const TtlInput thirty_seconds{30, std::nullopt};
    for (int g = 0; g < kUsers; ++g) {
      switch (g % 6) {
        case 1:  // a hand-made membership that expires before the sync
          Require(segments.UpdateUserSegments({UserNo(g), {{"MANUAL", thirty_seconds}}, {}}));
          break;
        case 2:  // keeps them out of EXCLUDING
          Require(segments.UpdateUserSegments({UserNo(g), {{"MANUAL", {}}}, {}}));
          break;
        case 3:  // an opt-out by hand
          Require(segments.UpdateUserSegments({UserNo(g), {}, {"EARLY"}}));
          break;
        case 4:
          Require(segments.UpdateUserSegments({UserNo(g), {{"MANUAL2", {}}}, {}}));
          break;
        case 5:
          Require(segments.UpdateUserSegments({UserNo(g), {{"MANUAL", {}}, {"MANUAL2", thirty_seconds}}, {}}));
          break;
        default:
          break;
      }
    }
    clock.Set(kT0 + absl::Seconds(3));
    for (int g = 0; g < kUsers; ++g) Require(users.UpdateUser(UserNo(g), "excluded"));

    // No active user: these start empty. Later ones may include earlier ones.
    clock.Set(kT0 + absl::Seconds(4));
    CreateSegment({"ALL", 100.0, "", {}, {}, std::nullopt});
    CreateSegment({"HALF", 50.0, "", {}, {}, std::nullopt});
    Query("UPDATE segments SET salt = 'fixed-salt' WHERE slug = 'HALF'");  // the same buckets in both runs
    CreateSegment({"INCLUDING", 100.0, "", {"ALL"}, {}, std::nullopt});
    CreateSegment({"EXCLUDING", 100.0, "", {}, {"MANUAL"}, std::nullopt});
    CreateSegment({"SHORT", 100.0, "", {}, {}, /*auto_seconds=*/30});
    REQUIRE(QueryValue("SELECT count(*) FROM memberships m JOIN segments s ON s.id = m.segment_id "
                       "WHERE s.slug IN ('ALL', 'HALF', 'INCLUDING', 'EXCLUDING', 'SHORT')") == "0");
    clock.Set(kSyncAt);
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "a batch of user events leaves exactly what one call per user leaves", "[pg][users][sync]") {
  // One call per user, as UserAdminService makes them.
  Setup();
  int64_t ended_one_by_one = 0;
  for (int g = 0; g < kUsers; ++g) {
    if (FateOf(g) == Fate::kDeleted) {
      auto ended = users.DeleteUser(UserNo(g));
      REQUIRE(ended.ok());
      ended_one_by_one += *ended;
    } else if (FateOf(g) == Fate::kReturning) {
      Require(users.UpdateUser(UserNo(g), "active"));
    }
  }
  for (int g = 0; g < kNewUsers; ++g) Require(users.CreateUser(NewUserNo(g)));
  const Snapshot one_by_one = Take();

  // The same as one batch, in no particular order.
  Setup();
  std::vector<ObservedUser> observed;
  for (int g = kUsers - 1; g >= 0; --g) {
    std::optional<UserState> state;
    if (FateOf(g) == Fate::kExcluded) state = UserState::kExcluded;
    if (FateOf(g) == Fate::kReturning) state = UserState::kActive;
    observed.push_back({Id(UserNo(g)), state});
  }
  for (int g = 0; g < kNewUsers; ++g) observed.push_back({Id(NewUserNo(g)), UserState::kActive});
  auto result = users.SyncUsers(observed);
  INFO(result.status().ToString());
  REQUIRE(result.ok());
  const Snapshot batch = Take();

  CHECK(result->created == kNewUsers);
  CHECK(result->deleted == kUsers / 8);
  CHECK(result->unchanged == kUsers / 8);
  CHECK(result->state_changed == kUsers - 2 * kUsers / 8);
  CHECK(result->memberships_ended == ended_one_by_one);
  CHECK(batch.users == one_by_one.users);
  CHECK(batch.memberships == one_by_one.memberships);
  CHECK(batch.opt_outs == one_by_one.opt_outs);
  CHECK(batch.history == one_by_one.history);

  // And what that is. A deleted user's memberships all ended: the live ones
  // with user_deleted now, the expired ones by TTL at their deadlines.
  const std::string deleted = UserNo(7);        // 7 % 6 == 1: EARLY and MANUAL expired, nothing live
  const std::string deleted_live = UserNo(23);  // 23 % 6 == 5: MANUAL live, MANUAL2 and EARLY expired
  const std::string sync_micros = std::to_string(absl::ToUnixMicros(kSyncAt));
  const std::string early_end = std::to_string(absl::ToUnixMicros(kT0 + absl::Seconds(61)));
  const std::string hand_end = std::to_string(absl::ToUnixMicros(kT0 + absl::Seconds(32)));
  const std::string removals = "SELECT slug, reason, " + Micros("at") +
                               " FROM history WHERE operation = 'remove' AND user_id = '{}' ORDER BY slug";
  CHECK(Query(fmt::format(fmt::runtime(removals), deleted)) ==
        Rows{{"EARLY", "ttl", early_end}, {"MANUAL", "ttl", hand_end}});
  CHECK(Query(fmt::format(fmt::runtime(removals), deleted_live)) ==
        Rows{{"EARLY", "ttl", early_end}, {"MANUAL", "user_deleted", sync_micros}, {"MANUAL2", "ttl", hand_end}});
  CHECK(QueryValue("SELECT count(*) FROM history WHERE reason = 'user_deleted'") ==
        std::to_string(result->memberships_ended));
  CHECK(QueryValue("SELECT count(*) FROM memberships m WHERE NOT EXISTS "
                   "(SELECT 1 FROM users u WHERE u.id = m.user_id)") == "0");
  CHECK(QueryValue("SELECT count(*) FROM auto_opt_outs o WHERE NOT EXISTS "
                   "(SELECT 1 FROM users u WHERE u.id = o.user_id)") == "0");

  // A returning user's expired automatic membership ended by TTL and opted
  // them out, as a hand removal did; their expired hand-made one ended
  // without an opt-out; the automatic segments took them in creation order.
  const std::string returning = UserNo(1);  // EARLY and MANUAL expired
  CHECK(Query(fmt::format(fmt::runtime(removals), returning)) ==
        Rows{{"EARLY", "ttl", early_end}, {"MANUAL", "ttl", hand_end}});
  CHECK(Query("SELECT o.user_id, o.reason FROM auto_opt_outs o JOIN segments s ON s.id = o.segment_id "
              "WHERE s.slug = 'EARLY' AND o.user_id IN ('" +
              UserNo(1) + "', '" + UserNo(3) + "') ORDER BY 1") == Rows{{UserNo(1), "ttl"}, {UserNo(3), "manual"}});
  // In EARLY, of the active users, are only the new ones.
  CHECK(QueryValue("SELECT count(*) FROM memberships m JOIN segments s ON s.id = m.segment_id "
                   "JOIN users u ON u.id = m.user_id WHERE s.slug = 'EARLY' AND u.state = 'active'") ==
        std::to_string(kNewUsers));
  CHECK(Query("SELECT s.slug FROM memberships m JOIN segments s ON s.id = m.segment_id WHERE m.auto AND m.user_id = '" +
              UserNo(2) + "' AND s.slug <> 'HALF' ORDER BY 1") == Rows{{"ALL"}, {"INCLUDING"}, {"SHORT"}});
  CHECK(Query("SELECT s.slug FROM memberships m JOIN segments s ON s.id = m.segment_id WHERE m.auto AND m.user_id = '" +
              UserNo(0) + "' AND s.slug <> 'HALF' ORDER BY 1") ==
        Rows{{"ALL"}, {"EXCLUDING"}, {"INCLUDING"}, {"SHORT"}});
  // Nobody excluded at the sync was evaluated.
  CHECK(QueryValue("SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id JOIN segments s ON "
                   "s.id = m.segment_id WHERE u.state = 'excluded' AND s.slug IN ('ALL', 'HALF', 'SHORT')") == "0");
}
