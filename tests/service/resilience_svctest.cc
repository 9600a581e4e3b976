// Health, a database that goes away and comes back under a running server, and
// a graceful drain on Shutdown.
#include <future>
#include <optional>

#include "service/service_fixture.h"

namespace segments::testing {
namespace {

using namespace std::chrono_literals;

// Stops the test database; starts it again when the test ends, whatever
// happened in between.
class DatabaseStopGuard {
 public:
  DatabaseStopGuard() = default;
  DatabaseStopGuard(const DatabaseStopGuard&) = delete;
  DatabaseStopGuard& operator=(const DatabaseStopGuard&) = delete;
  ~DatabaseStopGuard() {
    if (!stopped_) return;
    try {
      RunPgScript("start");
    } catch (const std::exception& e) {
      FAIL_CHECK("could not restart the test database: " << e.what());
    }
  }
  void Stop() {
    stopped_ = true;
    RunPgScript("stop");
  }
  void Start() {
    RunPgScript("start");
    stopped_ = false;
  }

 private:
  bool stopped_ = false;
};

// A call through a new channel of its own, as a new client would make it.
grpc::Status GetUserSegmentsFromNewClient(int port, const std::string& user) {
  auto stub = v1::SegmentService::NewStub(NewChannel(port));
  v1::GetUserSegmentsRequest request;
  request.set_user_id(user);
  v1::GetUserSegmentsResponse response;
  return stub->GetUserSegments(NewContext(1000ms).get(), request, &response);
}

TEST_CASE_METHOD(ServiceFixture, "Health is SERVING while the database is up", "[service][health]") {
  CHECK(Eventually([&] { return HealthNow() == Health::kServing; }, absl::Seconds(5)));
  // Also from a client that connects later.
  CHECK(CheckHealth(NewChannel(app->port())) == Health::kServing);
}

TEST_CASE("A server whose database is unreachable answers UNAVAILABLE and is NOT_SERVING", "[service][health]") {
  config::Config config = TestConfig();
  config.database_url = "postgresql://postgres@127.0.0.1:1/segments_test";
  ServiceFixture fixture(config);

  const absl::Time began = absl::Now();
  const grpc::Status create = fixture.CreateUser(kUser1);
  CHECK(create.error_code() == grpc::StatusCode::UNAVAILABLE);
  v1::GetUserSegmentsResponse response;
  const grpc::Status read = fixture.GetUserSegments(kUser1, &response);
  CHECK(read.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(absl::Now() - began < absl::Seconds(3));
  // It never was SERVING, and cannot become so.
  CHECK(fixture.HealthNow() == Health::kNotServing);
  // Clients never see storage details.
  CHECK(create.error_message().find("postgres") == std::string::npos);
  CHECK(create.error_message().find("127.0.0.1") == std::string::npos);
}

TEST_CASE_METHOD(ServiceFixture, "A database restart: fast UNAVAILABLE while down and recovery on the same server",
                 "[service][health][restart]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("BEFORE").ok());
  REQUIRE(Update(Change(kUser1, {{"BEFORE"}})).ok());
  // Every pooled connection has been used and is idle now: they all go stale.
  REQUIRE(SegmentsOf(kUser1) == std::vector<std::string>{"BEFORE"});
  REQUIRE(Eventually([&] { return HealthNow() == Health::kServing; }, absl::Seconds(5)));
  const auto before = Snapshot();

  DatabaseStopGuard database;
  database.Stop();

  struct Probe {
    const char* name;
    std::function<grpc::Status()> call;
  };
  const std::vector<Probe> probes = {
      {"GetUserSegments",
       [&] {
         v1::GetUserSegmentsResponse response;
         return GetUserSegments(kUser1, &response);
       }},
      {"UpdateUserSegments", [&] { return Update(Change(kUser1, {}, {"BEFORE"})); }},
      {"CreateSegment", [&] { return CreateSegment("DURING"); }},
      {"DeleteSegment", [&] { return DeleteSegment("BEFORE"); }},
      {"CreateUser", [&] { return CreateUser(kUser2); }},
      {"UpdateUser", [&] { return UpdateUser(kUser1, "excluded"); }},
      {"DeleteUser", [&] { return DeleteUser(kUser1); }},
  };
  // Twice round: the first calls meet stale connections, the later ones none.
  for (int round = 0; round < 2; ++round) {
    for (const Probe& probe : probes) {
      const absl::Time began = absl::Now();
      const grpc::Status status = probe.call();
      const absl::Duration took = absl::Now() - began;
      INFO(probe.name << " round " << round << ": " << Describe(status) << " in " << absl::FormatDuration(took));
      CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
      CHECK(took < absl::Seconds(3));
    }
  }
  CHECK(Eventually([&] { return HealthNow() == Health::kNotServing; }, absl::Seconds(3)));

  database.Start();
  // The same server instance recovers by itself.
  grpc::Status last;
  const bool recovered = Eventually(
      [&] {
        v1::GetUserSegmentsResponse response;
        last = GetUserSegments(kUser1, &response);
        return last.ok() && response.segments_size() == 1 && response.segments(0) == "BEFORE";
      },
      absl::Seconds(10), absl::Milliseconds(50));
  INFO("last read: " << Describe(last));
  REQUIRE(recovered);
  // Nothing of the refused calls happened.
  CHECK(Snapshot() == before);

  const grpc::Status created = CreateSegment("AFTER");
  INFO(Describe(created));
  CHECK(created.ok());
  CHECK(Update(Change(kUser1, {{"AFTER"}})).ok());
  CHECK(SegmentsOf(kUser1) == std::vector<std::string>{"AFTER", "BEFORE"});
  CHECK(CreateUser(kUser2).ok());
  CHECK(Eventually([&] { return HealthNow() == Health::kServing; }, absl::Seconds(10)));
}

TEST_CASE_METHOD(ServiceFixture, "Shutdown lets an in-flight call finish and refuses new ones", "[service][shutdown]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("DRAIN").ok());

  // Destroyed in reverse: the lock goes first, then Shutdown is waited for,
  // then the call; so a failing check cannot leave anything hanging.
  std::optional<AsyncUpdate> in_flight;
  std::future<void> shutdown;
  PgSession locker;
  const std::string locker_pid = locker.Exec("SELECT pg_backend_pid()");
  locker.Exec("BEGIN");
  locker.Exec("SELECT 1 FROM users WHERE id = " + Literal(kUser1) + " FOR UPDATE");

  in_flight.emplace(*segments, Change(kUser1, {{"DRAIN"}}), 20000ms);
  // The call is inside the database, waiting for the row lock.
  REQUIRE(Eventually(
      [&] {
        return Count(
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND wait_event_type = 'Lock' AND pid <> " +
                   locker_pid) == 1;
      },
      absl::Seconds(5)));

  const absl::Time shutdown_began = absl::Now();
  shutdown = std::async(std::launch::async, [this] { app->Shutdown(absl::Seconds(5)); });

  // The server stops listening at once; new clients are refused from then on...
  REQUIRE(Eventually([&] { return !PortAcceptsConnections(app->port()); }, absl::Seconds(3)));
  {
    const grpc::Status status = GetUserSegmentsFromNewClient(app->port(), kUser1);
    INFO("GetUserSegments after shutdown began: " << Describe(status));
    CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  {
    auto stub = v1::UserAdminService::NewStub(NewChannel(app->port()));
    v1::CreateUserRequest request;
    request.set_user_id(kUser2);
    v1::CreateUserResponse response;
    const grpc::Status status = stub->CreateUser(NewContext(1000ms).get(), request, &response);
    INFO("CreateUser after shutdown began: " << Describe(status));
    CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  // ... while the call in flight still waits, and so does Shutdown.
  CHECK(in_flight->result.wait_for(0ms) == std::future_status::timeout);
  CHECK(shutdown.wait_for(0ms) == std::future_status::timeout);

  locker.Exec("ROLLBACK");
  REQUIRE(in_flight->result.wait_for(5s) == std::future_status::ready);
  const grpc::Status drained = in_flight->result.get();
  INFO("in-flight call: " << Describe(drained));
  CHECK(drained.ok());
  REQUIRE(shutdown.wait_for(5s) == std::future_status::ready);
  shutdown.get();
  CHECK(absl::Now() - shutdown_began < absl::Seconds(5));

  CHECK(Count("SELECT count(*) FROM memberships") == 1);
  CHECK(HistoryOf(kUser1) == std::vector<std::vector<std::string>>{Event("DRAIN", "add", "manual", Now())});
  CHECK(Count("SELECT count(*) FROM users WHERE id = " + Literal(kUser2)) == 0);
  // The old client's connection is gone too.
  v1::GetUserSegmentsResponse response;
  CHECK(GetUserSegments(kUser1, &response).error_code() == grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace segments::testing
