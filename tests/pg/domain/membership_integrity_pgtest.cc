// Memberships have no foreign keys (db/schema.sql): the use cases' locks keep
// every membership pointing at an existing user and a live segment. These
// tests race the writers against deletions on the real database and then
// look for orphans, which the foreign keys would have refused.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "domain/bulk_membership_use_cases.h"
#include "domain/segment_use_cases.h"
#include "domain/user_use_cases.h"
#include "storage/pg_store.h"
#include "support/domain_testing.h"
#include "support/test_database.h"

using namespace segments::domain;
using segments::storage::PgPool;
using segments::storage::PgPoolOptions;
using segments::storage::PgStore;
using segments::testing::Id;
using segments::testing::QueryValue;

namespace {

std::string UserNo(int g) { return fmt::format("{:08x}-0000-4000-8000-00000000aaaa", g); }

int64_t Count(const std::string& sql) { return std::stoll(QueryValue(sql)); }

int64_t MembershipsOfMissingUsers() {
  return Count("SELECT count(*) FROM memberships m WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = m.user_id)");
}

int64_t MembershipsOfDeletedSegments() {
  return Count(
      "SELECT count(*) FROM memberships m JOIN segments s ON s.id = m.segment_id WHERE s.deleted_at IS NOT NULL");
}

struct Fixture {
  PgPool pool{PgPoolOptions{segments::testing::TestDatabaseUrl(), 8}};
  PgStore store{pool};
  SystemClock clock;
  SegmentUseCases segments{store, clock};
  UserUseCases users{store, clock};
  BulkMembershipUseCases bulk{store, clock};

  Fixture() { segments::testing::ResetDatabase(); }

  void CreateUsers(int from, int to) {
    for (int g = from; g < to; ++g) REQUIRE(users.CreateUser(UserNo(g)).ok());
  }
};

CreateSegmentCommand Auto(const std::string& slug, double percent) { return {slug, percent, "", {}, {}, std::nullopt}; }

}  // namespace

TEST_CASE_METHOD(Fixture, "user deletions racing fills, bulk adds and hand adds leave no orphan memberships",
                 "[pg][integrity]") {
  constexpr int kUsers = 300;
  CreateUsers(0, kUsers);
  REQUIRE(segments.CreateSegment({"MANUAL", std::nullopt, "", {}, {}, std::nullopt}).ok());

  std::atomic<bool> deleting_done{false};
  std::atomic<int> next_deleted{0};
  std::thread deleter([&] {
    // Every other user goes, one by one, while the writers below run.
    for (int g = 0; g < kUsers; g += 2) {
      next_deleted = g;
      (void)users.DeleteUser(UserNo(g));
    }
    deleting_done = true;
  });
  std::thread filler([&] {
    for (int round = 0; !deleting_done; ++round) {
      const std::string slug = fmt::format("FILL_{}", round);
      REQUIRE(segments.CreateSegment(Auto(slug, 100)).ok());
      (void)segments.UpdateSegmentPercent({slug, 50.0});
      (void)segments.UpdateSegmentPercent({slug, 100.0});
    }
  });
  std::thread bulk_adder([&] {
    while (!deleting_done) {
      // The users about to be deleted, added and taken out again: a call
      // either fails (NOT_FOUND) or holds its users until it commits.
      std::vector<std::string> doomed;
      for (int g = next_deleted; g < std::min(kUsers, next_deleted + 8); g += 2) doomed.push_back(UserNo(g));
      if (doomed.empty()) continue;
      (void)bulk.AddSegmentToUsers({"MANUAL", {doomed.begin(), doomed.end()}, {}});
      (void)bulk.RemoveSegmentFromUsers({"MANUAL", {doomed.begin(), doomed.end()}, {}});
    }
  });
  std::thread hand_adder([&] {
    for (int g = 0; !deleting_done; g = (g + 2) % kUsers) {
      (void)segments.UpdateUserSegments({UserNo(g), {{"MANUAL", {}}}, {}});
    }
  });
  deleter.join();
  filler.join();
  bulk_adder.join();
  hand_adder.join();

  CHECK(Count("SELECT count(*) FROM users") == kUsers / 2);
  CHECK(Count("SELECT count(*) FROM segments WHERE slug LIKE 'FILL_%'") > 0);
  CHECK(MembershipsOfMissingUsers() == 0);
  CHECK(Count("SELECT count(*) FROM auto_opt_outs o WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = o.user_id)") ==
        0);
  // The survivors are in every filled segment at 100%.
  CHECK(Count("SELECT count(*) FROM memberships m JOIN segments s ON s.id = m.segment_id "
              "WHERE s.slug LIKE 'FILL_%'") ==
        Count("SELECT count(*) FROM segments WHERE slug LIKE 'FILL_%'") * (kUsers / 2));
}

TEST_CASE_METHOD(Fixture, "segment deletions racing new users' evaluation leave no members in deleted segments",
                 "[pg][integrity]") {
  std::atomic<bool> creating_done{false};
  std::thread creator([&] {
    for (int g = 0; g < 400; ++g) (void)users.CreateUser(UserNo(g));
    creating_done = true;
  });
  int rounds = 0;
  while (!creating_done) {
    const std::string slug = fmt::format("AUTO_{}", rounds++);
    REQUIRE(segments.CreateSegment(Auto(slug, 100)).ok());
    REQUIRE(segments.DeleteSegment(slug).ok());
  }
  creator.join();

  CHECK(rounds > 1);
  CHECK(Count("SELECT count(*) FROM users") == 400);
  CHECK(MembershipsOfDeletedSegments() == 0);
  // Every add to a deleted segment was ended with it, in history.
  CHECK(Count("SELECT count(*) FROM history WHERE operation = 'add'") ==
        Count("SELECT count(*) FROM history WHERE operation = 'remove' AND reason = 'segment_deleted'"));
}
