// Changes of a whole segment in chunks (domain/segment_tasks.h) on the real
// database: a fill paused between two chunks holds no one, and the users
// created, changed or deleted meanwhile end up exactly as if the fill had
// run alone before or after them; lowered percentages and deletions in
// chunks; a task a stopped instance left is finished by another.
#include <absl/synchronization/notification.h>
#include <absl/time/clock.h>
#include <fmt/format.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

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
    return {.chunk_users = chunk_users, .after_chunk = [this](const SegmentTask&) {
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

// 200 users, a segment MANUAL, and HALF (50%) filling in chunks of 40 on a
// thread of its own, paused after its first chunk until Finish().
class PausedHalfFill {
 public:
  explicit PausedHalfFill(Fixture& f) : filling_(f.store, f.clock, pause_.Options(40)) {
    f.CreateUsers(0, 200);
    REQUIRE(f.segments.CreateSegment({"MANUAL", std::nullopt, "", {}, {}, std::nullopt}).ok());
    thread_ = std::thread([this] { status_ = filling_.CreateSegment(Auto("HALF", 50)).status(); });
    REQUIRE(pause_.WaitUntilPaused());
  }
  ~PausedHalfFill() {
    if (thread_.joinable()) (void)Finish();
  }
  absl::Status Finish() {
    pause_.Resume();
    thread_.join();
    return status_;
  }

 private:
  FirstChunkPause pause_;
  SegmentUseCases filling_;
  absl::Status status_ = absl::UnknownError("not run");
  std::thread thread_;
};

// Runs `write` on a thread of its own; true once it has returned OK (within
// a generous minute).
bool Completes(const std::function<absl::Status()>& write, std::vector<std::thread>& threads) {
  auto done = std::make_shared<absl::Notification>();
  auto ok = std::make_shared<std::atomic<bool>>(false);
  threads.emplace_back([=] {
    ok->store(write().ok());
    done->Notify();
  });
  return done->WaitForNotificationWithTimeout(absl::Minutes(1)) && ok->load();
}

}  // namespace

TEST_CASE_METHOD(Fixture, "a fill paused between chunks holds no one; users changed meanwhile get one membership each",
                 "[pg][tasks]") {
  PausedHalfFill fill(*this);

  // The segment is published: reads see it, and every write goes through
  // while the fill waits between chunks.
  CHECK(Count("SELECT count(*) FROM segment_tasks WHERE finished_at IS NULL") == 1);
  // New users until one falls in the segment's half and one outside it.
  const std::string salt = QueryValue("SELECT salt FROM segments WHERE slug = 'HALF'");
  std::set<bool> sides;
  for (int g = 1000; g < 1064 && sides.size() < 2; ++g) {
    CHECK(users.CreateUser(UserNo(g)).ok());
    sides.insert(InPercent(Bucket(salt, UserNo(g)), 5000));
  }
  CHECK(sides.size() == 2);
  CHECK(users.UpdateUser(UserNo(170), "excluded").ok());
  CHECK(users.DeleteUser(UserNo(180)).ok());
  // A user the fill has not reached yet, added by hand: the fill leaves them be.
  CHECK(segments.UpdateUserSegments({UserNo(150), {{"HALF", {}}, {"MANUAL", {}}}, {}}).ok());
  CHECK(segments.UpdateUserSegments({UserNo(1), {{"MANUAL", {}}}, {}}).ok());

  REQUIRE(fill.Finish().ok());
  CHECK(Count("SELECT count(*) FROM segment_tasks WHERE finished_at IS NULL") == 0);
  // The task walked the users there were at its first chunk, not those
  // created since, which their own transactions evaluated.
  CHECK(QueryValue("SELECT last_user || ' ' || after_user FROM segment_tasks") == UserNo(199) + " " + UserNo(199));

  Users expected = InBuckets("HALF", 5000);
  expected.insert(UserNo(150));
  CHECK(Members("HALF") == expected);
  CHECK(UsersWithoutOneEvent("HALF", "add") == 0);
  CHECK(Count("SELECT count(*) FROM history WHERE slug = 'HALF' AND operation = 'add'") ==
        static_cast<int64_t>(expected.size()));
  CHECK(Count("SELECT count(*) FROM history WHERE slug = 'HALF' AND operation = 'remove'") == 0);
}

TEST_CASE_METHOD(Fixture, "a chunk under way holds only the deletion of its own users", "[pg][tasks]") {
  PausedHalfFill fill(*this);

  // A member-to-be of the second chunk (users 40 to 79).
  std::string doomed;
  for (const std::string& id : InBuckets("HALF", 5000)) {
    if (id > UserNo(39) && id <= UserNo(79)) doomed = id;
  }
  REQUIRE(!doomed.empty());
  const int64_t task_id = Count("SELECT id FROM segment_tasks");

  // The second chunk, its transaction held open while others write.
  std::vector<std::thread> writers;
  bool deletion_waited = false;
  REQUIRE(store
              .InTransaction([&](Transaction& tx) -> absl::Status {
                auto task = tx.segments().LockTask(task_id);
                if (!task.ok()) return task.status();
                REQUIRE(task->has_value());
                auto chunk = RunSegmentTaskChunk(tx, **task, 40, clock.Now());
                if (!chunk.ok()) return chunk.status();
                CHECK(chunk->after_user == UserNo(79));
                // Neither these nor the automatic-assignment lock wait for the chunk.
                CHECK(Completes([&] { return users.CreateUser(UserNo(1000)); }, writers));
                CHECK(Completes([&] { return users.UpdateUser(UserNo(150), "excluded"); }, writers));
                CHECK(Completes([&] { return users.UpdateUser(UserNo(150), "active"); }, writers));
                CHECK(Completes([&] { return segments.UpdateUserSegments({doomed, {{"MANUAL", {}}}, {}}); }, writers));
                // Deleting a user the chunk adds waits for it, then ends that
                // membership too.
                writers.emplace_back([&] { CHECK(users.DeleteUser(doomed).ok()); });
                for (int i = 0; i < 6000 && !deletion_waited; ++i) {
                  deletion_waited = Count(
                                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                                        "datname = current_database()") > 0;
                  if (!deletion_waited) absl::SleepFor(absl::Milliseconds(10));
                }
                return absl::OkStatus();
              })
              .ok());
  CHECK(deletion_waited);
  for (std::thread& t : writers) t.join();
  REQUIRE(fill.Finish().ok());

  Users expected = InBuckets("HALF", 5000);
  CHECK(!expected.contains(doomed));  // deleted
  CHECK(Members("HALF") == expected);
  CHECK(UsersWithoutOneEvent("HALF", "add") == 0);
  CHECK(Count(fmt::format("SELECT count(*) FROM history WHERE slug = 'HALF' AND user_id = '{}' AND operation = "
                          "'remove' AND reason = 'user_deleted'",
                          doomed)) == 1);
  CHECK(Count("SELECT count(*) FROM memberships m LEFT JOIN users u ON u.id = m.user_id WHERE u.id IS NULL") == 0);
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
