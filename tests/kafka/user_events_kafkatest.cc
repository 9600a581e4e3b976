// The user-event consumer against the real broker (scripts/kafka.sh), the
// test database and an in-process fake of the user service. Each test has
// topics and a consumer group of its own.
#include <absl/strings/str_format.h>

#include "domain/acting_as.h"
#include "domain/clock.h"
#include "domain/segment_use_cases.h"
#include "domain/user_use_cases.h"
#include "ingest/user_directory.h"
#include "ingest/user_event_consumer.h"
#include "kafka/kafka_fixture.h"
#include "metrics/registry.h"
#include "storage/pg_pool.h"
#include "storage/pg_store.h"
#include "support/domain_testing.h"
#include "support/http_get.h"
#include "support/test_database.h"

namespace {

using segments::domain::CreateSegmentCommand;
using segments::ingest::UserEventConsumer;
using segments::ingest::UserEventConsumerOptions;
using segments::ingest::UserEventStats;
using segments::testing::CommittedTotal;
using segments::testing::FakeUserService;
using segments::testing::Query;
using segments::testing::QueryValue;
using segments::testing::ReadTopic;
using segments::testing::TestProducer;
using segments::testing::UniqueName;
using userservice::v1::USER_STATE_ACTIVE;
using userservice::v1::USER_STATE_EXCLUDED;

constexpr int kPartitions = 4;

std::string User(int n) { return absl::StrFormat("00000000-0000-4000-8000-%012d", n); }

// Waits up to `timeout` for `done`.
bool Eventually(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time until = absl::Now() + timeout;
  while (absl::Now() < until) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return done();
}

// "active", "excluded", or "" when the replica does not have the user.
std::string ReplicaState(const std::string& user) {
  auto rows = Query("SELECT state FROM users WHERE id = '" + user + "'");
  return rows.empty() ? "" : rows[0][0];
}

// The user's history, oldest first: "add SLUG reason" / "remove SLUG reason".
std::vector<std::string> HistoryOf(const std::string& user) {
  std::vector<std::string> out;
  for (const auto& row :
       Query("SELECT operation, slug, reason FROM history WHERE user_id = '" + user + "' ORDER BY id")) {
    out.push_back(row[0] + " " + row[1] + " " + row[2]);
  }
  return out;
}

std::vector<std::string> SegmentsOf(const std::string& user) {
  std::vector<std::string> out;
  for (const auto& row : Query("SELECT s.slug FROM memberships m JOIN segments s ON s.id = m.segment_id "
                               "WHERE m.user_id = '" +
                               user + "' ORDER BY s.slug")) {
    out.push_back(row[0]);
  }
  return out;
}

struct Harness {
  Harness() {
    segments::testing::ResetDatabase();
    segments::testing::CreateTopic(topic, kPartitions);
    segments::testing::CreateTopic(dead_letter_topic, 1);
  }
  ~Harness() {
    if (consumer) consumer->Stop();
  }

  void StartConsumer(std::function<bool()> crash_after_apply = {}) {
    UserEventConsumerOptions options;
    options.brokers = segments::testing::KafkaBrokers();
    options.topic = topic;
    options.group = group;
    options.dead_letter_topic = dead_letter_topic;
    // A consumer that crashed without leaving is noticed after 6 s, the
    // broker's shortest session.
    options.kafka_settings = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
    options.retry_backoff_min = absl::Milliseconds(50);
    options.retry_backoff_max = absl::Milliseconds(400);
    options.stall_after = absl::Milliseconds(300);
    options.crash_after_apply = std::move(crash_after_apply);
    auto started = UserEventConsumer::Start(std::move(options), directory, users);
    REQUIRE(started.ok());
    consumer = std::move(*started);
  }

  // One more member of the same group, with default settings.
  std::unique_ptr<UserEventConsumer> StartAnotherConsumer() {
    UserEventConsumerOptions options;
    options.brokers = segments::testing::KafkaBrokers();
    options.topic = topic;
    options.group = group;
    options.dead_letter_topic = dead_letter_topic;
    options.retry_backoff_min = absl::Milliseconds(50);
    options.retry_backoff_max = absl::Milliseconds(400);
    auto started = UserEventConsumer::Start(std::move(options), directory, users);
    REQUIRE(started.ok());
    return std::move(*started);
  }

  void CreateSegment(const std::string& slug, std::optional<double> percent) {
    CreateSegmentCommand command;
    command.slug = slug;
    command.percent_to_fill = percent;
    REQUIRE(segment_cases.CreateSegment(command).ok());
  }

  void StopConsumer() {
    consumer->Stop();
    consumer.reset();
  }

  int64_t Committed() const { return CommittedTotal(group, topic, kPartitions); }

  // Waits until the consumer committed `events` events in all.
  bool AllCommitted(int64_t events) {
    return Eventually([&] { return Committed() == events; });
  }

  const std::string topic = UniqueName("UserAction");
  const std::string dead_letter_topic = topic + ".dlq";
  const std::string group = UniqueName("segments");
  segments::storage::PgPool pool{segments::storage::PgPoolOptions{segments::testing::TestDatabaseUrl(), 4}};
  segments::storage::PgStore store{pool};
  segments::domain::SystemClock clock;
  segments::domain::UserUseCases users{store, clock};
  segments::domain::SegmentUseCases segment_cases{store, clock};
  FakeUserService user_service;
  segments::ingest::UserServiceClient directory{
      grpc::CreateChannel(user_service.address(), grpc::InsecureChannelCredentials()),
      segments::ingest::UserServiceClientOptions{.call_timeout = absl::Milliseconds(500),
                                                 .backoff_min = absl::Milliseconds(20),
                                                 .backoff_max = absl::Milliseconds(100),
                                                 .max_wait = absl::Milliseconds(300)}};
  TestProducer producer;
  std::unique_ptr<UserEventConsumer> consumer;
};

}  // namespace

TEST_CASE("An event creates the user, who enters the automatic segments that take them", "[kafka]") {
  Harness h;
  h.CreateSegment("EVERYONE", 100.0);
  h.CreateSegment("NOBODY", 0.0);
  h.StartConsumer();
  h.user_service.Set(User(1), USER_STATE_ACTIVE);
  h.producer.SendEvent(h.topic, User(1));
  h.producer.Flush();

  REQUIRE(h.AllCommitted(1));
  CHECK(ReplicaState(User(1)) == "active");
  CHECK(SegmentsOf(User(1)) == std::vector<std::string>{"EVERYONE"});
  CHECK(HistoryOf(User(1)) == std::vector<std::string>{"add EVERYONE auto_percent"});
  CHECK(h.consumer->Stats().created == 1);
}

TEST_CASE("A state change is applied, and a returning user is evaluated again", "[kafka]") {
  Harness h;
  h.StartConsumer();
  h.user_service.Set(User(2), USER_STATE_ACTIVE);
  h.producer.SendEvent(h.topic, User(2));
  h.producer.Flush();
  REQUIRE(h.AllCommitted(1));
  REQUIRE(ReplicaState(User(2)) == "active");

  h.user_service.Set(User(2), USER_STATE_EXCLUDED);
  h.producer.SendEvent(h.topic, User(2));
  h.producer.Flush();
  REQUIRE(h.AllCommitted(2));
  CHECK(ReplicaState(User(2)) == "excluded");

  // A segment filled while the user was excluded does not take them...
  h.CreateSegment("LATER", 100.0);
  CHECK(SegmentsOf(User(2)).empty());
  // ...until they come back.
  h.user_service.Set(User(2), USER_STATE_ACTIVE);
  h.producer.SendEvent(h.topic, User(2));
  h.producer.Flush();
  REQUIRE(h.AllCommitted(3));
  CHECK(ReplicaState(User(2)) == "active");
  CHECK(SegmentsOf(User(2)) == std::vector<std::string>{"LATER"});
}

TEST_CASE("A deletion ends every membership with history", "[kafka]") {
  Harness h;
  h.CreateSegment("AUTO", 100.0);
  h.CreateSegment("MANUAL", std::nullopt);
  h.StartConsumer();
  h.user_service.Set(User(3), USER_STATE_ACTIVE);
  h.producer.SendEvent(h.topic, User(3));
  h.producer.Flush();
  REQUIRE(h.AllCommitted(1));
  segments::domain::UpdateUserSegmentsCommand add_manual{User(3), {}, {}};
  add_manual.to_add.emplace_back().slug = "MANUAL";
  {
    const segments::domain::ActingAs ann("ann");  // as a call of ann's token does
    REQUIRE(h.segment_cases.UpdateUserSegments(add_manual).ok());
  }
  REQUIRE(SegmentsOf(User(3)) == std::vector<std::string>{"AUTO", "MANUAL"});

  h.user_service.Remove(User(3));
  h.producer.SendEvent(h.topic, User(3));
  h.producer.Flush();
  REQUIRE(h.AllCommitted(2));
  CHECK(ReplicaState(User(3)).empty());
  CHECK(SegmentsOf(User(3)).empty());
  CHECK(HistoryOf(User(3)) == std::vector<std::string>{"add AUTO auto_percent", "add MANUAL manual",
                                                       "remove AUTO user_deleted", "remove MANUAL user_deleted"});
  // What user events change is the system's, whoever made what they end.
  CHECK(Query("SELECT actor FROM history WHERE user_id = '" + User(3) + "' ORDER BY id") ==
        std::vector<std::vector<std::string>>{{"system"}, {"ann"}, {"system"}, {"system"}});
  CHECK(h.consumer->Stats().deleted == 1);
}

// The task statement's users are numbers. An event names one as a string or
// as a JSON integer; either way it is the integer user, never the UUID that
// ends in the same digits, which has its own state and its own events.
TEST_CASE("Events for integer users, as strings or JSON numbers, apply to those users only", "[kafka]") {
  const std::string uuid1000 = "00000000-0000-0000-0000-000000001000";
  Harness h;
  h.CreateSegment("EVERYONE", 100.0);
  h.StartConsumer();
  h.user_service.Set("1000", USER_STATE_ACTIVE);
  h.user_service.Set("1002", USER_STATE_ACTIVE);
  h.user_service.Set(uuid1000, USER_STATE_EXCLUDED);
  h.producer.Send(h.topic, "1000", R"({"userID": 1000})");
  h.producer.Send(h.topic, "1002", R"({"userID": "1002"})");
  h.producer.Flush();
  REQUIRE(h.AllCommitted(2));
  CHECK(ReplicaState("1000") == "active");
  CHECK(ReplicaState("1002") == "active");
  CHECK(ReplicaState(uuid1000).empty());
  CHECK(SegmentsOf("1000") == std::vector<std::string>{"EVERYONE"});
  CHECK(HistoryOf("1000") == std::vector<std::string>{"add EVERYONE auto_percent"});

  h.producer.SendEvent(h.topic, uuid1000);
  h.producer.Flush();
  REQUIRE(h.AllCommitted(3));
  CHECK(ReplicaState(uuid1000) == "excluded");
  CHECK(ReplicaState("1000") == "active");

  // The integer user leaves the user service: only they are deleted.
  h.user_service.Remove("1000");
  h.producer.Send(h.topic, "1000", R"({"userID":1000})");
  h.producer.Flush();
  REQUIRE(h.AllCommitted(4));
  CHECK(ReplicaState("1000").empty());
  CHECK(HistoryOf("1000") == std::vector<std::string>{"add EVERYONE auto_percent", "remove EVERYONE user_deleted"});
  CHECK(ReplicaState(uuid1000) == "excluded");
  CHECK(ReplicaState("1002") == "active");
  CHECK(h.consumer->Stats().dead_lettered == 0);
}

TEST_CASE("Duplicated and reordered events end in the user service's state, with no extra history", "[kafka]") {
  Harness h;
  h.CreateSegment("ALL", 100.0);
  // Final states in the user service: 10 active, 11 excluded, 12 deleted
  // (never seen by the replica), 13 active.
  h.user_service.Set(User(10), USER_STATE_ACTIVE);
  h.user_service.Set(User(11), USER_STATE_EXCLUDED);
  h.user_service.Set(User(13), USER_STATE_ACTIVE);
  int sent = 0;
  for (int round = 0; round < 3; ++round) {  // every event three times, users interleaved
    for (int n : {13, 12, 11, 10}) {
      h.producer.SendEvent(h.topic, User(n));
      ++sent;
    }
  }
  // Events that arrive "late", on partitions other than their key's: the
  // state they lead to is still the current one.
  h.producer.Send(h.topic, "late", TestProducer::EventValue(User(10)), 0);
  h.producer.Send(h.topic, "late", TestProducer::EventValue(User(10)), 3);
  sent += 2;
  h.producer.Flush();
  h.StartConsumer();
  REQUIRE(h.AllCommitted(sent));
  CHECK(ReplicaState(User(10)) == "active");
  CHECK(ReplicaState(User(11)) == "excluded");
  CHECK(ReplicaState(User(12)).empty());
  CHECK(ReplicaState(User(13)) == "active");
  // One add each for the active users; the excluded one is created
  // excluded, so it never entered.
  CHECK(HistoryOf(User(10)) == std::vector<std::string>{"add ALL auto_percent"});
  CHECK(HistoryOf(User(13)) == std::vector<std::string>{"add ALL auto_percent"});
  CHECK(QueryValue("SELECT count(*) FROM history") == "2");

  // The same events once more (as after a rewind): nothing changes.
  for (int n : {10, 11, 12, 13}) h.producer.SendEvent(h.topic, User(n));
  h.producer.Flush();
  REQUIRE(h.AllCommitted(sent + 4));
  CHECK(QueryValue("SELECT count(*) FROM history") == "2");
  CHECK(QueryValue("SELECT count(*) FROM users") == "3");
}

TEST_CASE("A crash between the database commit and the offset commit is harmless on redelivery", "[kafka]") {
  Harness h;
  h.CreateSegment("ALL", 100.0);
  for (int n = 20; n < 30; ++n) {
    h.user_service.Set(User(n), USER_STATE_ACTIVE);
    h.producer.SendEvent(h.topic, User(n));
  }
  h.producer.Flush();
  std::atomic<int> applied_batches{0};
  h.StartConsumer([&] { return ++applied_batches == 1; });  // crashes after its first transaction
  REQUIRE(Eventually([&] { return h.consumer->crashed(); }));
  h.StopConsumer();
  // The first batch is in the database, its offsets are not committed.
  const std::string users_after_crash = QueryValue("SELECT count(*) FROM users");
  CHECK(users_after_crash != "0");
  CHECK(h.Committed() == 0);

  h.StartConsumer();  // the next instance gets the same events again
  REQUIRE(h.AllCommitted(10));
  CHECK(QueryValue("SELECT count(*) FROM users") == "10");
  // One membership and one history event per user: the redelivered events
  // changed nothing.
  CHECK(QueryValue("SELECT count(*) FROM memberships") == "10");
  CHECK(QueryValue("SELECT count(*) FROM history") == "10");
  CHECK(h.consumer->Stats().unchanged == std::stoll(users_after_crash));
}

TEST_CASE("While the user service is down, events wait uncommitted and are all applied once it returns", "[kafka]") {
  Harness h;
  h.StartConsumer();
  h.user_service.SetOutage(true);
  for (int n = 30; n < 40; ++n) {
    h.user_service.Set(User(n), USER_STATE_ACTIVE);
    h.producer.SendEvent(h.topic, User(n));
  }
  h.producer.Flush();
  // The consumer keeps trying: calls arrive, nothing is applied or committed.
  REQUIRE(Eventually([&] { return h.consumer->Stats().retries >= 3; }));
  CHECK(Eventually([&] { return h.consumer->Stalled(); }));  // what health reports
  CHECK(h.user_service.calls() >= 3);
  CHECK(QueryValue("SELECT count(*) FROM users") == "0");
  CHECK(h.Committed() == 0);

  // Shutting down in the middle commits nothing: the batch was not applied.
  h.StopConsumer();
  CHECK(h.Committed() == 0);

  h.StartConsumer();
  CHECK_FALSE(h.consumer->Stalled());
  h.user_service.SetOutage(false);
  REQUIRE(h.AllCommitted(10));
  CHECK(QueryValue("SELECT count(*) FROM users WHERE state = 'active'") == "10");
  CHECK(h.consumer->Stats().events == 10);
  CHECK_FALSE(h.consumer->Stalled());
}

TEST_CASE("Consumers joining and leaving the group share the work and lose nothing", "[kafka]") {
  Harness h;
  int sent = 0;
  auto send_users = [&](int from, int to) {
    for (int n = from; n < to; ++n) {
      h.user_service.Set(User(n), USER_STATE_ACTIVE);
      h.producer.SendEvent(h.topic, User(n));
      ++sent;
    }
    h.producer.Flush();
  };

  h.StartConsumer();
  send_users(1000, 1200);
  auto second = h.StartAnotherConsumer();  // a rebalance while events flow
  send_users(1200, 1400);
  REQUIRE(h.AllCommitted(sent));
  send_users(1400, 1600);
  second->Stop();  // leaves: its partitions go back to the first
  send_users(1600, 1800);
  REQUIRE(h.AllCommitted(sent));
  CHECK(QueryValue("SELECT count(*) FROM users") == "800");
  // Each consumer committed only what it applied: together, every event at
  // least once, and the replica has each user once.
  const UserEventStats first_stats = h.consumer->Stats();
  const UserEventStats second_stats = second->Stats();
  CHECK(first_stats.created + second_stats.created == 800);
  CHECK(first_stats.events + second_stats.events >= sent);
}

TEST_CASE("A poison message goes to the dead-letter topic and the next message is processed", "[kafka]") {
  Harness h;
  h.StartConsumer();
  h.user_service.Set(User(41), USER_STATE_ACTIVE);
  h.user_service.Set(User(42), USER_STATE_ACTIVE);
  // All on partition 1, so the good events queue behind the bad ones.
  h.producer.Send(h.topic, "k1", TestProducer::EventValue(User(41)), 1);
  h.producer.Send(h.topic, "bad-json", "this is not JSON", 1);
  h.producer.Send(h.topic, "bad-uuid", R"({"userID": "not-a-uuid"})", 1);
  h.producer.Send(h.topic, "k2", TestProducer::EventValue(User(42)), 1);
  h.producer.Flush();

  REQUIRE(h.AllCommitted(4));
  CHECK(ReplicaState(User(41)) == "active");
  CHECK(ReplicaState(User(42)) == "active");
  CHECK(h.consumer->Stats().dead_lettered == 2);

  auto letters = ReadTopic(h.dead_letter_topic, 1, 2, absl::Seconds(20));
  REQUIRE(letters.size() == 2);
  CHECK(letters[0].key == "bad-json");
  CHECK(letters[0].value == "this is not JSON");
  CHECK(letters[0].headers["segments-source-topic"] == h.topic);
  CHECK(letters[0].headers["segments-source-partition"] == "1");
  CHECK(letters[0].headers["segments-source-offset"] == "1");
  CHECK_THAT(letters[0].headers["segments-error"], Catch::Matchers::Contains("not a JSON user event"));
  CHECK(letters[1].key == "bad-uuid");
  CHECK(letters[1].headers["segments-source-offset"] == "2");
  CHECK_THAT(letters[1].headers["segments-error"], Catch::Matchers::StartsWith("userID:"));
}

TEST_CASE("While the database is down, events wait uncommitted and are applied once it is back", "[kafka][restart]") {
  Harness h;
  h.StartConsumer();
  h.user_service.Set(User(50), USER_STATE_ACTIVE);
  h.producer.SendEvent(h.topic, User(50));
  h.producer.Flush();
  REQUIRE(h.AllCommitted(1));

  segments::testing::RunPgScript("stop");
  h.user_service.Set(User(51), USER_STATE_ACTIVE);
  h.producer.SendEvent(h.topic, User(51));
  h.producer.Flush();
  const bool retried = Eventually([&] { return h.consumer->Stats().retries >= 2; });
  const int64_t committed_while_down = h.Committed();
  segments::testing::RunPgScript("start");
  REQUIRE(retried);
  CHECK(committed_while_down == 1);

  REQUIRE(h.AllCommitted(2));
  CHECK(ReplicaState(User(51)) == "active");
}

TEST_CASE("A partition paused during an outage fetches again when it comes back after a rebalance", "[kafka]") {
  Harness h;
  int sent = 0, next_user = 2000;
  auto send_to_every_partition = [&] {
    for (int partition = 0; partition < kPartitions; ++partition) {
      const std::string user = User(next_user++);
      h.user_service.Set(user, USER_STATE_ACTIVE);
      h.producer.Send(h.topic, user, TestProducer::EventValue(user), partition);
      ++sent;
    }
    h.producer.Flush();
  };
  h.StartConsumer();
  h.user_service.SetOutage(true);
  send_to_every_partition();
  REQUIRE(Eventually([&] { return h.consumer->Stats().retries >= 1; }));  // every partition paused
  auto second = h.StartAnotherConsumer();                                 // takes half of them
  REQUIRE(Eventually([&] { return second->Stats().retries >= 1; }));
  h.user_service.SetOutage(false);
  REQUIRE(h.AllCommitted(sent));
  second->Stop();  // its partitions come back to the first consumer
  send_to_every_partition();
  REQUIRE(h.AllCommitted(sent));
  CHECK(QueryValue("SELECT count(*) FROM users") == std::to_string(sent));
}

namespace {

// Answers as `inner` does once released; until then every lookup waits: a
// consumer stuck in a call that neither fails nor returns.
class HeldDirectory final : public segments::ingest::UserDirectory {
 public:
  explicit HeldDirectory(segments::ingest::UserDirectory& inner) : inner_(inner) {}

  absl::StatusOr<std::vector<segments::domain::ObservedUser>> Lookup(
      const std::vector<segments::domain::UserId>& users) override {
    {
      absl::MutexLock lock(&mu_);
      ++lookups_;
      mu_.Await(absl::Condition(&released_));
    }
    return inner_.Lookup(users);
  }

  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }
  int lookups() {
    absl::MutexLock lock(&mu_);
    return lookups_;
  }

 private:
  segments::ingest::UserDirectory& inner_;
  absl::Mutex mu_;
  bool released_ = false;
  int lookups_ = 0;
};

int64_t TotalLag(const UserEventConsumer& consumer) {
  int64_t total = 0;
  for (const auto& partition : consumer.Lags()) total += partition.lag;
  return total;
}

}  // namespace

TEST_CASE("Events waiting on a partition with no progress stall the consumer, with no failure seen", "[kafka]") {
  Harness h;
  HeldDirectory held(h.directory);
  UserEventConsumerOptions options;
  options.brokers = segments::testing::KafkaBrokers();
  options.topic = h.topic;
  options.group = h.group;
  options.dead_letter_topic = h.dead_letter_topic;
  options.stall_after = absl::Seconds(1);
  options.lag_check_period = absl::Milliseconds(100);
  auto started = UserEventConsumer::Start(std::move(options), held, h.users);
  REQUIRE(started.ok());
  std::unique_ptr<UserEventConsumer> consumer = std::move(*started);
  // Declared after the consumer, so the lookup is released before it stops.
  struct ReleaseAtEnd {
    HeldDirectory& held;
    ~ReleaseAtEnd() { held.Release(); }
  } release_at_end{held};

  for (int n = 50; n < 55; ++n) {
    h.user_service.Set(User(n), USER_STATE_ACTIVE);
    h.producer.SendEvent(h.topic, User(n));
  }
  h.producer.Flush();
  REQUIRE(Eventually([&] { return held.lookups() == 1; }));
  // The broker's offsets show the five waiting; nothing fails, nothing moves.
  REQUIRE(Eventually([&] { return TotalLag(*consumer) == 5; }));
  REQUIRE(Eventually([&] { return consumer->Stalled(); }));
  CHECK(consumer->Stats().retries == 0);
  const std::string stalled = segments::metrics::Default().Expose();
  CHECK(segments::testing::SampleValue(stalled, "segments_user_events_stalled") == 1.0);
  int64_t exposed_lag = 0;
  for (int p = 0; p < kPartitions; ++p) {
    exposed_lag += static_cast<int64_t>(
        segments::testing::SampleValue(
            stalled, absl::StrFormat(R"(segments_user_events_lag{topic="%s",partition="%d"})", h.topic, p))
            .value_or(0));
  }
  CHECK(exposed_lag == 5);

  held.Release();
  REQUIRE(h.AllCommitted(5));
  CHECK(Eventually([&] { return !consumer->Stalled() && TotalLag(*consumer) == 0; }));
  const std::string flowing = segments::metrics::Default().Expose();
  CHECK(segments::testing::SampleValue(flowing, "segments_user_events_stalled") == 0.0);
  CHECK(segments::testing::SampleValue(flowing, "segments_user_events_applied_total") >= 5.0);
  CHECK(segments::testing::SampleValue(flowing, "segments_user_events_last_commit_timestamp_seconds") > 1.7e9);
  consumer->Stop();
}
