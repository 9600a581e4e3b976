// The metrics port of a running server (docs/operating.md): calls counted
// per method and status code, and the state of the pool, the read model and
// health read at each scrape; request ids in the log lines of failed calls.
#include <catch2/catch.hpp>

#include <string>

#include "service/service_fixture.h"
#include "support/http_get.h"
#include "support/stderr_capture.h"

namespace segments::testing {
namespace {

config::Config WithMetrics() {
  config::Config config = TestConfig();
  config.metrics_listen = "127.0.0.1:0";
  return config;
}

double Sample(const std::string& exposition, const std::string& series) {
  return SampleValue(exposition, series).value_or(0);
}

const std::string kGetOk =
    R"(segments_grpc_server_handled_total{grpc_service="segmentation.v1.SegmentService",grpc_method="GetUserSegments",grpc_code="OK"})";
const std::string kGetSeconds =
    R"(segments_grpc_server_handling_seconds_count{grpc_service="segmentation.v1.SegmentService",grpc_method="GetUserSegments"})";
const std::string kCreateInvalid =
    R"(segments_grpc_server_handled_total{grpc_service="segmentation.v1.SegmentService",grpc_method="CreateSegment",grpc_code="INVALID_ARGUMENT"})";
const std::string kCreateUnauthenticated =
    R"(segments_grpc_server_handled_total{grpc_service="segmentation.v1.SegmentService",grpc_method="CreateSegment",grpc_code="UNAUTHENTICATED"})";

}  // namespace

TEST_CASE("Calls are counted per method and status code, and timed", "[metrics]") {
  ServiceFixture f(WithMetrics());
  REQUIRE(f.app->metrics_port() > 0);
  // The registry is the process's: other tests' calls count too, so only
  // differences are compared.
  const std::string before = ScrapeMetrics(f.app->metrics_port());

  REQUIRE(f.CreateSegment("METRICS_A").ok());
  v1::GetUserSegmentsResponse response;
  for (int i = 0; i < 3; ++i) REQUIRE(f.GetUserSegments(kUser1, &response).ok());
  REQUIRE(f.CreateSegment("").error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  {
    v1::CreateSegmentRequest request;
    request.set_slug("METRICS_B");
    v1::CreateSegmentResponse created;
    auto context = NewContextAs("");  // no token
    REQUIRE(f.segments->CreateSegment(context.get(), request, &created).error_code() ==
            grpc::StatusCode::UNAUTHENTICATED);
  }

  const std::string after = ScrapeMetrics(f.app->metrics_port());
  CHECK(Sample(after, kGetOk) - Sample(before, kGetOk) == 3);
  CHECK(Sample(after, kGetSeconds) - Sample(before, kGetSeconds) == 3);
  CHECK(Sample(after, kCreateInvalid) - Sample(before, kCreateInvalid) == 1);
  CHECK(Sample(after, kCreateUnauthenticated) - Sample(before, kCreateUnauthenticated) == 1);
  CHECK(after.find("# TYPE segments_grpc_server_handling_seconds histogram") != std::string::npos);
}

TEST_CASE("A scrape reads the pool, the workers, the read model and health as they are", "[metrics]") {
  ServiceFixture f(WithMetrics());
  REQUIRE(f.CreateUser(kUser1).ok());
  REQUIRE(f.CreateSegment("METRICS_C").ok());
  v1::UpdateUserSegmentsRequest request;
  request.set_user_id(kUser1);
  request.add_segments_to_add()->set_segment_slug("METRICS_C");
  REQUIRE(f.Update(request).ok());
  REQUIRE(Eventually([&] { return f.app->read_model().Serving(); }, absl::Seconds(20)));
  REQUIRE(Eventually(
      [&] {
        const std::string text = ScrapeMetrics(f.app->metrics_port());
        return Sample(text, R"(segments_health_serving{service=""})") == 1 &&
               Sample(text, "segments_read_model_memberships") == 1;
      },
      absl::Seconds(20)));
  const std::string text = ScrapeMetrics(f.app->metrics_port());
  CHECK(Sample(text, "segments_read_model_serving") == 1);
  CHECK(Sample(text, "segments_read_model_users") == 1);
  CHECK(Sample(text, "segments_read_model_memory_bytes") > 0);
  CHECK(Sample(text, "segments_read_model_look_age_seconds") >= 0);
  CHECK(Sample(text, "segments_read_model_last_change_timestamp_seconds") > 1.7e9);
  CHECK(Sample(text, "segments_db_pool_max_connections") == TestConfig().db_pool_size);
  CHECK(Sample(text, "segments_db_pool_open_connections") >= 1);
  CHECK(Sample(text, "segments_worker_threads") == TestConfig().workers);
  CHECK(Sample(text, "segments_worker_queue_capacity") == TestConfig().max_queued_calls);
  CHECK(SampleValue(text, "segments_worker_queue_depth").has_value());
  CHECK(Sample(text, R"(segments_health_serving{service="segmentation.v1.MembershipReadModel"})") == 1);
  CHECK(Sample(text, "segments_expiry_last_success_timestamp_seconds") > 1.7e9);
  CHECK(text.find("segments_build_info{version=\"") != std::string::npos);
  CHECK(Sample(text, "process_resident_memory_bytes") > 0);
}

TEST_CASE("A slow call's log line carries the caller's request id", "[metrics]") {
  config::Config config = WithMetrics();
  // Every write takes longer than this (a commit, then the read model).
  config.slow_call_threshold = absl::Milliseconds(1);
  ServiceFixture f(config);
  // Lines go to stderr. The line is written before the answer is sent, so
  // it is there once the call returns.
  v1::CreateSegmentRequest request;
  request.set_slug("METRICS_SLOW");
  v1::CreateSegmentResponse response;
  grpc::Status status;
  const std::string written = CaptureStderr([&] {
    auto context = NewContext();
    context->AddMetadata("x-request-id", "test-request-4711");
    status = f.segments->CreateSegment(context.get(), request, &response);
  });
  REQUIRE(status.ok());
  INFO(written);
  const size_t line_start = written.find("WARN slow call method=/segmentation.v1.SegmentService/CreateSegment");
  REQUIRE(line_start != std::string::npos);
  const std::string line = written.substr(line_start, written.find('\n', line_start) - line_start);
  CHECK(line.find("code=OK") != std::string::npos);
  CHECK(line.find("request_id=test-request-4711") != std::string::npos);
  CHECK(line.find("duration_ms=") != std::string::npos);
}

}  // namespace segments::testing
