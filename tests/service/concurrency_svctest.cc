// Racing calls: all released at once from their own threads, each must get a
// clean answer (never INTERNAL) and the database must hold exactly one result.
#include <fmt/format.h>

#include <atomic>
#include <latch>
#include <map>
#include <thread>

#include "service/service_fixture.h"

namespace segments::testing {
namespace {

constexpr int kRacers = 20;

// Runs `call` on kRacers threads released together; counts the status codes.
std::map<grpc::StatusCode, int> Race(const std::function<grpc::Status()>& call) {
  std::latch start(kRacers);
  std::vector<grpc::Status> results(kRacers);
  std::vector<std::thread> threads;
  threads.reserve(kRacers);
  for (size_t i = 0; i < kRacers; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      results[i] = call();
    });
  }
  for (auto& t : threads) t.join();
  std::map<grpc::StatusCode, int> counts;
  for (const auto& status : results) {
    ++counts[status.error_code()];
    if (!status.ok()) UNSCOPED_INFO(Describe(status));
  }
  return counts;
}

TEST_CASE_METHOD(ServiceFixture, "Concurrent CreateSegment of one slug: one wins and the rest get ALREADY_EXISTS",
                 "[service][concurrency]") {
  const auto counts = Race([this] { return CreateSegment("RACE"); });
  CHECK(counts ==
        std::map<grpc::StatusCode, int>{{grpc::StatusCode::OK, 1}, {grpc::StatusCode::ALREADY_EXISTS, kRacers - 1}});
  CHECK(Count("SELECT count(*) FROM segments WHERE slug = 'RACE'") == 1);
}

TEST_CASE_METHOD(ServiceFixture, "Concurrent UpdateUserSegments adding one segment: one wins with one history event",
                 "[service][concurrency]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("RACE").ok());
  const auto request = Change(kUser1, {{"RACE"}});
  const auto counts = Race([&] { return Update(request); });
  CHECK(counts == std::map<grpc::StatusCode, int>{{grpc::StatusCode::OK, 1},
                                                  {grpc::StatusCode::FAILED_PRECONDITION, kRacers - 1}});
  CHECK(Count("SELECT count(*) FROM memberships") == 1);
  CHECK(HistoryOf(kUser1) == std::vector<std::vector<std::string>>{Event("RACE", "add", "manual", Now())});
}

TEST_CASE_METHOD(ServiceFixture, "Concurrent CreateUser of one id: one wins", "[service][concurrency]") {
  const auto counts = Race([this] { return CreateUser(kUser1); });
  CHECK(counts ==
        std::map<grpc::StatusCode, int>{{grpc::StatusCode::OK, 1}, {grpc::StatusCode::ALREADY_EXISTS, kRacers - 1}});
  CHECK(Count("SELECT count(*) FROM users") == 1);
}

TEST_CASE_METHOD(ServiceFixture, "Concurrent changes of different users of one segment all succeed",
                 "[service][concurrency]") {
  REQUIRE(CreateSegment("SHARED").ok());
  std::vector<std::string> ids;
  for (int i = 0; i < kRacers; ++i) {
    ids.push_back(fmt::format("00000000-0000-4000-8000-{:012x}", i));
    REQUIRE(CreateUser(ids.back()).ok());
  }
  std::atomic<int> next{0};
  const auto counts = Race([&] { return Update(Change(ids[static_cast<size_t>(next++)], {{"SHARED"}})); });
  CHECK(counts == std::map<grpc::StatusCode, int>{{grpc::StatusCode::OK, kRacers}});
  CHECK(Count("SELECT count(*) FROM memberships") == kRacers);
  CHECK(Count("SELECT count(*) FROM history WHERE operation = 'add'") == kRacers);
}

TEST_CASE_METHOD(ServiceFixture, "Concurrent DeleteSegment of one slug: one wins and the rest get NOT_FOUND",
                 "[service][concurrency]") {
  REQUIRE(CreateUser(kUser1).ok());
  REQUIRE(CreateSegment("RACE").ok());
  REQUIRE(Update(Change(kUser1, {{"RACE"}})).ok());
  const auto counts = Race([this] { return DeleteSegment("RACE"); });
  CHECK(counts ==
        std::map<grpc::StatusCode, int>{{grpc::StatusCode::OK, 1}, {grpc::StatusCode::NOT_FOUND, kRacers - 1}});
  CHECK(Count("SELECT count(*) FROM history WHERE reason = 'segment_deleted'") == 1);
}

}  // namespace
}  // namespace segments::testing
