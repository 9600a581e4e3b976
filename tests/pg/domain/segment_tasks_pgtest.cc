// Changes of a whole segment in chunks (domain/segment_tasks.h) on the real
// database: a fill paused between two chunks holds no one, and the users
// created, changed or deleted meanwhile end up exactly as if the fill had
// run alone before or after them; lowered percentages and deletions in
// chunks; a task a stopped instance left is finished by another.
#include <absl/synchronization/notification.h>
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <thread>

#include "domain/bucketing.h"
#include "domain/segment_tasks.h"
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
using segments::testing::FakeClock;
using segments::testing::Query;
using segments::testing::QueryValue;
using Users = std::set<std::string>;

namespace {

std::string UserNo(int g) { return fmt::format("{:08x}-0000-4000-8000-00000000bbbb", g); }

int64_t Count(const std::string& sql) { return std::stoll(QueryValue(sql)); }

CreateSegmentCommand Auto(const std::string& slug, double percent) { return {slug, percent, "", {}, {}, std::nullopt}; }

// Pauses a task after its first chunk until Resume().
class FirstChunkPause {
 public:
  SegmentTaskOptions Options(int chunk_users) {
    return {chunk_users, [this](const SegmentTask&) {
              if (paused_.HasBeenNotified()) return;
              paused_.Notify();
              resume_.WaitForNotification();
            }};
  }
  // True once a task is paused (within a generous minute).
  bool WaitUntilPaused() { return paused_.WaitForNotificationWithTimeout(absl::Minutes(1)); }
  void Resume() { resume_.Notify(); }

 private:
  absl::Notification paused_;
  absl::Notification resume_;
};

struct Fixture {
  PgPool pool{PgPoolOptions{segments::testing::TestDatabaseUrl(), 8}};
  PgStore store{pool};
  FakeClock clock;
  SegmentUseCases segments{store, clock};
  UserUseCases users{store, clock};

  Fixture() { segments::testing::ResetDatabase(); }

  void CreateUsers(int from, int to) {
    for (int g = from; g < to; ++g) REQUIRE(users.CreateUser(UserNo(g)).ok());
  }

  Users Members(const std::string& slug) {
    Users out;
    for (const auto& row : Query(fmt::format("SELECT m.user_id FROM memberships m JOIN segments s ON s.id = "
                                             "m.segment_id WHERE s.slug = '{}' AND s.deleted_at IS NULL",
                                             slug))) {
      out.insert(row[0]);
    }
    return out;
  }

  // The active users whose bucket for the segment's salt is below `percent`.
  Users InBuckets(const std::string& slug, int32_t percent_hundredths) {
    const std::string salt = QueryValue(fmt::format("SELECT salt FROM segments WHERE slug = '{}'", slug));
    Users out;
    for (const auto& row : Query("SELECT id FROM users WHERE state = 'active'")) {
      if (InPercent(Bucket(salt, row[0]), percent_hundredths)) out.insert(row[0]);
    }
    return out;
  }

  // Users with other than exactly one `operation` event of the segment.
  int64_t UsersWithoutOneEvent(const std::string& slug, const std::string& operation) {
    return Count(fmt::format(
        "SELECT count(*) FROM (SELECT user_id FROM history WHERE slug = '{0}' AND operation = '{1}' GROUP BY user_id "
        "HAVING count(*) <> 1) x",
        slug, operation));
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "a fill paused between chunks holds no one; users changed meanwhile get one membership each",
                 "[pg][tasks]") {
  CreateUsers(0, 200);
  REQUIRE(segments.CreateSegment({"MANUAL", std::nullopt, "", {}, {}, std::nullopt}).ok());
  FirstChunkPause pause;
  SegmentUseCases filling{store, clock, pause.Options(40)};
  absl::Status fill_status = absl::UnknownError("not run");
  std::thread filler([&] { fill_status = filling.CreateSegment(Auto("HALF", 50)).status(); });
  REQUIRE(pause.WaitUntilPaused());

  // The segment is published: reads see it, and every write goes through
  // while the fill waits between chunks.
  CHECK(Count("SELECT count(*) FROM segment_tasks WHERE finished_at IS NULL") == 1);
  CHECK(users.CreateUser(UserNo(1000)).ok());
  CHECK(users.CreateUser(UserNo(1001)).ok());
  CHECK(users.CreateUser(UserNo(1002)).ok());
  CHECK(users.UpdateUser(UserNo(170), "excluded").ok());
  CHECK(users.DeleteUser(UserNo(180)).ok());
  // A user the fill has not reached yet, added by hand: the fill leaves them be.
  CHECK(segments.UpdateUserSegments({UserNo(150), {{"HALF", {}}, {"MANUAL", {}}}, {}}).ok());
  CHECK(segments.UpdateUserSegments({UserNo(1), {{"MANUAL", {}}}, {}}).ok());

  pause.Resume();
  filler.join();
  REQUIRE(fill_status.ok());
  CHECK(Count("SELECT count(*) FROM segment_tasks WHERE finished_at IS NULL") == 0);
  // The task walked the users there were at its first chunk, not those
  // created since, which their own transactions evaluated.
  CHECK(QueryValue("SELECT last_user || ' ' || after_user FROM segment_tasks") == UserNo(199) + " " + UserNo(199));

  Users expected = InBuckets("HALF", 5000);
  expected.insert(UserNo(150));
  CHECK(expected.contains(UserNo(1000)) + expected.contains(UserNo(1001)) + expected.contains(UserNo(1002)) > 0);
  CHECK(Members("HALF") == expected);
  CHECK(UsersWithoutOneEvent("HALF", "add") == 0);
  CHECK(Count("SELECT count(*) FROM history WHERE slug = 'HALF' AND operation = 'add'") ==
        static_cast<int64_t>(expected.size()));
  CHECK(Count("SELECT count(*) FROM history WHERE slug = 'HALF' AND operation = 'remove'") == 0);
}

TEST_CASE_METHOD(Fixture, "lowering and raising a percentage in chunks moves exactly the dropped and added buckets",
                 "[pg][tasks]") {
  CreateUsers(0, 150);
  SegmentUseCases chunked{store, clock, SegmentTaskOptions{.chunk_users = 25}};
  REQUIRE(chunked.CreateSegment(Auto("S", 100)).ok());
  CHECK(Members("S").size() == 150);

  clock.Advance(absl::Minutes(1));
  auto lowered = chunked.UpdateSegmentPercent({"S", 30.0});
  REQUIRE(lowered.ok());
  CHECK(Members("S") == InBuckets("S", 3000));
  CHECK(lowered->removed == 150 - static_cast<int64_t>(InBuckets("S", 3000).size()));
  CHECK(lowered->added == 0);
  CHECK(UsersWithoutOneEvent("S", "remove") == 0);

  clock.Advance(absl::Minutes(1));
  auto raised = chunked.UpdateSegmentPercent({"S", 60.0});
  REQUIRE(raised.ok());
  CHECK(Members("S") == InBuckets("S", 6000));
  CHECK(raised->added == static_cast<int64_t>(InBuckets("S", 6000).size() - InBuckets("S", 3000).size()));
  CHECK(Count("SELECT count(*) FROM segment_tasks WHERE finished_at IS NULL") == 0);
  CHECK(Count("SELECT count(*) FROM segment_tasks") == 3);
}

TEST_CASE_METHOD(Fixture, "deleting a segment stops its fill under way and ends every membership in chunks",
                 "[pg][tasks]") {
  CreateUsers(0, 120);
  FirstChunkPause pause;
  SegmentUseCases filling{store, clock, pause.Options(30)};
  absl::Status fill_status = absl::UnknownError("not run");
  std::thread filler([&] { fill_status = filling.CreateSegment(Auto("GONE", 100)).status(); });
  REQUIRE(pause.WaitUntilPaused());
  const int64_t filled_so_far = Count("SELECT count(*) FROM memberships");
  CHECK(filled_so_far == 30);

  SegmentUseCases deleting{store, clock, SegmentTaskOptions{.chunk_users = 7}};
  auto ended = deleting.DeleteSegment("GONE");
  REQUIRE(ended.ok());
  CHECK(*ended == filled_so_far);
  pause.Resume();
  filler.join();
  CHECK(fill_status.ok());

  CHECK(Count("SELECT count(*) FROM memberships") == 0);
  CHECK(Count("SELECT count(*) FROM history WHERE slug = 'GONE' AND operation = 'add'") == filled_so_far);
  CHECK(Count("SELECT count(*) FROM history WHERE slug = 'GONE' AND operation = 'remove' "
              "AND reason = 'segment_deleted'") == filled_so_far);
  CHECK(Count("SELECT count(*) FROM segment_tasks WHERE finished_at IS NULL") == 0);
}

TEST_CASE_METHOD(Fixture, "a task left unfinished by a stopped instance is finished by FinishStale", "[pg][tasks]") {
  CreateUsers(0, 90);
  // What a call does before it crashes: the segment published with its
  // task, no chunk run.
  Segment published;
  REQUIRE(store
              .InTransaction([&](Transaction& tx) -> absl::Status {
                auto inserted = tx.segments().Insert({"LEFT", 10000, "", "00112233aabbccdd", {}}, clock.Now());
                if (!inserted.ok()) return inserted.status();
                published = *inserted;
                SegmentTask task;
                task.segment_id = published.id;
                task.slug = published.slug;
                task.kind = SegmentTaskKind::kAssign;
                task.at = clock.Now();
                return tx.segments().StartTask(task, clock.Now()).status();
              })
              .ok());
  CHECK(Members("LEFT").empty());

  SegmentTasks tasks{store, clock, SegmentTaskOptions{.chunk_users = 20}};
  auto fresh = tasks.FinishStale(absl::Seconds(30));
  REQUIRE(fresh.ok());
  CHECK(*fresh == 0);  // its heartbeat is recent: the call may still run it
  clock.Advance(absl::Minutes(1));
  auto stale = tasks.FinishStale(absl::Seconds(30));
  REQUIRE(stale.ok());
  CHECK(*stale == 1);
  CHECK(Members("LEFT").size() == 90);
  CHECK(UsersWithoutOneEvent("LEFT", "add") == 0);
  CHECK(QueryValue("SELECT count FROM segment_tasks") == "90");
  // Events carry the time of the change, not of the chunk.
  CHECK(Count("SELECT count(DISTINCT at) FROM history WHERE slug = 'LEFT'") == 1);
}
