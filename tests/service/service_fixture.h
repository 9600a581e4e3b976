// Shared fixture of the service tests: the real Application in-process on
// 127.0.0.1:0 against the test database, with a FakeClock, and helpers to call
// it through the generated stubs. Header-only because the build compiles only
// *_svctest.cc files of this folder.
#pragma once

#include <absl/status/statusor.h>
#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "app/application.h"
#include "common/log.h"
#include "config/config.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "segmentation/v1/history_service.grpc.pb.h"
#include "segmentation/v1/segment_service.grpc.pb.h"
#include "segmentation/v1/user_admin_service.grpc.pb.h"
#include "support/fake_clock.h"
#include "support/test_database.h"
#include "support/test_tokens.h"

namespace segments::testing {

namespace v1 = ::segmentation::v1;

// Every call of a test gets this deadline unless it says otherwise.
inline constexpr std::chrono::milliseconds kCallTimeout{5000};

// Calls carry an admin token (support/test_tokens.h) unless a test says otherwise.
inline std::unique_ptr<grpc::ClientContext> NewContextAs(const std::string& authorization,
                                                         std::chrono::milliseconds timeout = kCallTimeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  if (!authorization.empty()) context->AddMetadata("authorization", authorization);
  return context;
}

inline std::unique_ptr<grpc::ClientContext> NewContext(std::chrono::milliseconds timeout = kCallTimeout) {
  return NewContextAs(TestTokens::Get().BearerFor(auth::Role::kAdmin), timeout);
}

// A channel of its own (no subchannel shared with other tests' channels),
// failing fast rather than waiting for a server that is not there.
inline std::shared_ptr<grpc::Channel> NewChannel(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials(), args);
}

// True if something accepts TCP connections on 127.0.0.1:`port`.
inline bool PortAcceptsConnections(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return connected;
}

// --- errors

// The google.rpc.BadRequest field violations carried by `status`.
inline std::vector<google::rpc::BadRequest::FieldViolation> FieldViolations(const grpc::Status& status) {
  std::vector<google::rpc::BadRequest::FieldViolation> out;
  if (status.error_details().empty()) return out;
  google::rpc::Status rich;
  if (!rich.ParseFromString(status.error_details())) {
    throw std::runtime_error("grpc-status-details-bin is not a google.rpc.Status");
  }
  for (const auto& detail : rich.details()) {
    google::rpc::BadRequest bad_request;
    if (detail.UnpackTo(&bad_request)) {
      for (const auto& v : bad_request.field_violations()) out.push_back(v);
    }
  }
  return out;
}

// Just the field paths of the violations, in order.
inline std::vector<std::string> ViolationFields(const grpc::Status& status) {
  std::vector<std::string> fields;
  for (const auto& v : FieldViolations(status)) fields.push_back(v.field());
  return fields;
}

inline std::string Describe(const grpc::Status& status) {
  std::string out =
      "code " + std::to_string(static_cast<int>(status.error_code())) + " '" + status.error_message() + "'";
  for (const auto& v : FieldViolations(status)) out += " [" + v.field() + ": " + v.description() + "]";
  return out;
}

// --- waiting

// Polls `done` until it is true or `timeout` passes; true if it became true.
inline bool Eventually(const std::function<bool()>& done, absl::Duration timeout,
                       absl::Duration step = absl::Milliseconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (done()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(step);
  }
}

// --- health (grpc.health.v1 without its proto: the request is empty and the
// response is at most field 1, a varint enum)

enum class Health { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3, kCallFailed = -1 };

inline Health CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(2000),
                          const std::string& service = "") {
  grpc::GenericStub stub(channel);
  auto context = NewContext(timeout);
  grpc::ByteBuffer request;
  {
    // HealthCheckRequest{service}: field 1, length-delimited (names are
    // short); the server's overall status ("") encodes as no bytes.
    std::string bytes;
    if (!service.empty()) bytes = std::string("\x0a") + static_cast<char>(service.size()) + service;
    grpc::Slice slice(bytes);
    request = grpc::ByteBuffer(&slice, 1);
  }
  grpc::ByteBuffer response;
  auto done = std::make_shared<std::promise<grpc::Status>>();
  auto result = done->get_future();
  stub.UnaryCall(context.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [done](grpc::Status s) { done->set_value(std::move(s)); });
  const grpc::Status status = result.get();
  // Check answers NOT_FOUND for a service name it does not know.
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) return Health::kServiceUnknown;
  if (!status.ok()) return Health::kCallFailed;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return Health::kCallFailed;
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (bytes.empty()) return Health::kUnknown;
  if (bytes.size() == 2 && bytes[0] == 0x08 && bytes[1] >= 0 && bytes[1] <= 3) return static_cast<Health>(bytes[1]);
  return Health::kCallFailed;
}

// --- requests

struct AddItem {
  std::string slug;
  std::optional<int64_t> seconds = std::nullopt;
  std::optional<absl::Time> deadline = std::nullopt;
};

inline google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  google::protobuf::Timestamp out;
  const int64_t seconds = absl::ToUnixSeconds(t);  // rounds down, so nanos >= 0
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
  return out;
}

inline v1::UpdateUserSegmentsRequest Change(const std::string& user_id, const std::vector<AddItem>& to_add,
                                            const std::vector<std::string>& to_remove = {}) {
  v1::UpdateUserSegmentsRequest request;
  request.set_user_id(user_id);
  for (const AddItem& item : to_add) {
    auto* add = request.add_segments_to_add();
    add->set_segment_slug(item.slug);
    if (item.seconds) add->set_seconds_to_be_in_segment(*item.seconds);
    if (item.deadline) *add->mutable_deadline_for_staying_in_segment() = ToTimestamp(*item.deadline);
  }
  for (const std::string& slug : to_remove) request.add_segments_to_remove()->set_segment_slug(slug);
  return request;
}

// One UpdateUserSegments call in flight on the callback API, with an
// idempotency key if one is given.
class AsyncUpdate {
 public:
  AsyncUpdate(v1::SegmentService::Stub& stub, v1::UpdateUserSegmentsRequest request, std::chrono::milliseconds timeout,
              const std::optional<std::string>& idempotency_key = std::nullopt)
      : request_(std::move(request)) {
    auto promise = std::make_shared<std::promise<grpc::Status>>();
    result = promise->get_future().share();
    context_.set_deadline(std::chrono::system_clock::now() + timeout);
    if (idempotency_key) context_.AddMetadata("idempotency-key", *idempotency_key);
    context_.AddMetadata("authorization", TestTokens::Get().BearerFor(auth::Role::kAdmin));
    stub.async()->UpdateUserSegments(&context_, &request_, &response_,
                                     [promise](grpc::Status status) { promise->set_value(std::move(status)); });
  }
  AsyncUpdate(const AsyncUpdate&) = delete;
  AsyncUpdate& operator=(const AsyncUpdate&) = delete;
  ~AsyncUpdate() {
    context_.TryCancel();
    result.wait();
  }

  // Gives up on the call, as a client that goes away does.
  void Cancel() { context_.TryCancel(); }

  std::shared_future<grpc::Status> result;

 private:
  grpc::ClientContext context_;
  v1::UpdateUserSegmentsRequest request_;
  v1::UpdateUserSegmentsResponse response_;
};

// --- database

inline int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

// SQL for a timestamptz column as microseconds since the epoch.
inline std::string MicrosOf(const std::string& column) {
  return "(extract(epoch FROM " + column + ") * 1000000)::int8";
}

// Quotes `text` as an SQL literal (tests only use plain ASCII).
inline std::string Literal(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

// History of a user as rows of (slug, operation, reason, micros), by time.
inline std::vector<std::vector<std::string>> HistoryOf(const std::string& user_id) {
  return Query("SELECT slug, operation::text, reason::text, " + MicrosOf("at") +
               " FROM history WHERE user_id = " + Literal(user_id) + " ORDER BY at, slug, operation");
}

inline std::vector<std::string> Event(const std::string& slug, const std::string& operation, const std::string& reason,
                                      absl::Time at) {
  return {slug, operation, reason, std::to_string(Micros(at))};
}

inline int64_t Count(const std::string& sql) { return std::stoll(QueryValue(sql)); }

// Every row of the four tables as JSON text, for "nothing changed" checks.
inline std::vector<std::vector<std::string>> Snapshot() {
  return Query(
      "SELECT 'users', row_to_json(t)::text FROM users t "
      "UNION ALL SELECT 'segments', row_to_json(t)::text FROM segments t "
      "UNION ALL SELECT 'memberships', row_to_json(t)::text FROM memberships t "
      "UNION ALL SELECT 'history', row_to_json(t)::text FROM history t ORDER BY 1, 2");
}

// A libpq session of its own, e.g. to hold a row lock while the server waits.
class PgSession {
 public:
  PgSession() : conn_(PQconnectdb(TestDatabaseUrl().c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string message = PQerrorMessage(conn_);
      PQfinish(conn_);
      throw std::runtime_error(message);
    }
  }
  ~PgSession() { PQfinish(conn_); }
  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;

  // Runs `sql`; throws on failure. Returns the first value, if any.
  std::string Exec(const std::string& sql) {
    const auto rows = Rows(sql);
    return rows.empty() || rows[0].empty() ? "" : rows[0][0];
  }

  // Runs `sql`; throws on failure. Every value as text ("" for NULL), as
  // Query() gives them, without a connection per statement.
  std::vector<std::vector<std::string>> Rows(const std::string& sql) {
    std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn_, sql.c_str()), &PQclear);
    const auto status = PQresultStatus(result.get());
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      throw std::runtime_error(sql + ": " + PQresultErrorMessage(result.get()));
    }
    std::vector<std::vector<std::string>> rows(static_cast<size_t>(PQntuples(result.get())));
    for (int r = 0; r < PQntuples(result.get()); ++r) {
      for (int c = 0; c < PQnfields(result.get()); ++c) rows[r].emplace_back(PQgetvalue(result.get(), r, c));
    }
    return rows;
  }

 private:
  PGconn* conn_;
};

// --- the fixture

inline config::Config TestConfig() {
  config::Config config;
  config.grpc_listen = "127.0.0.1:0";
  config.database_url = TestDatabaseUrl();
  config.health_check_period = absl::Milliseconds(100);
  config.db_connect_timeout = absl::Seconds(1);
  config.db_acquire_timeout = absl::Seconds(2);
  config.db_statement_timeout = absl::Seconds(10);
  config.shutdown_grace = absl::Seconds(5);
  // The expiry job runs once at start and then not again unless a test asks
  // for a shorter period, so tests that move the fake clock decide when
  // memberships are ended.
  config.expiry_period = absl::Hours(1);
  config.report_link_keys = "test-key:0123456789abcdef0123456789abcdef";
  config.auth = true;
  config.auth_jwks_file = TestTokens::Get().jwks_file();
  config.auth_issuer = TestTokens::kIssuer;
  config.auth_audience = TestTokens::kAudience;
  return config;
}

inline const std::string kUser1 = "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b";
inline const std::string kUser2 = "1c8f0a6f-2d3e-4f40-9bac-1d2e3f405b6c";

class ServiceFixture {
 public:
  // Whether the fixture empties the database first; a second instance on
  // the same database does not.
  enum class Database { kReset, kShared };

  ServiceFixture() : ServiceFixture(TestConfig()) {}
  explicit ServiceFixture(const config::Config& config, Database database = Database::kReset) {
    // Application leaves the level to main(); keep test output to problems.
    log::SetMinLevel(log::Level::kWarning);
    if (database == Database::kReset) ResetDatabase();
    auto started = app::Application::Start(config, clock);
    if (!started.ok()) throw std::runtime_error("Application::Start: " + started.status().ToString());
    app = *std::move(started);
    channel = NewChannel(app->port());
    segments = v1::SegmentService::NewStub(channel);
    users = v1::UserAdminService::NewStub(channel);
    history = v1::HistoryService::NewStub(channel);
  }
  ServiceFixture(const ServiceFixture&) = delete;
  ServiceFixture& operator=(const ServiceFixture&) = delete;

  // Fixed start time: 2024-03-01T12:00:00Z.
  absl::Time Now() const { return clock.Now(); }

  grpc::Status CreateUser(const std::string& user_id) {
    v1::CreateUserRequest request;
    request.set_user_id(user_id);
    v1::CreateUserResponse response;
    return users->CreateUser(NewContext().get(), request, &response);
  }

  grpc::Status UpdateUser(const std::string& user_id, const std::string& status) {
    v1::UpdateUserRequest request;
    request.set_user_id(user_id);
    request.set_status(status);
    v1::UpdateUserResponse response;
    return users->UpdateUser(NewContext().get(), request, &response);
  }

  grpc::Status DeleteUser(const std::string& user_id, v1::DeleteUserResponse* response = nullptr) {
    v1::DeleteUserRequest request;
    request.set_user_id(user_id);
    v1::DeleteUserResponse ignored;
    return users->DeleteUser(NewContext().get(), request, response != nullptr ? response : &ignored);
  }

  grpc::Status CreateSegment(const v1::CreateSegmentRequest& request, v1::CreateSegmentResponse* response = nullptr) {
    v1::CreateSegmentResponse ignored;
    return segments->CreateSegment(NewContext().get(), request, response != nullptr ? response : &ignored);
  }

  grpc::Status CreateSegment(const std::string& slug) {
    v1::CreateSegmentRequest request;
    request.set_slug(slug);
    return CreateSegment(request);
  }

  grpc::Status DeleteSegment(const std::string& slug, v1::DeleteSegmentResponse* response = nullptr) {
    v1::DeleteSegmentRequest request;
    request.set_slug(slug);
    v1::DeleteSegmentResponse ignored;
    return segments->DeleteSegment(NewContext().get(), request, response != nullptr ? response : &ignored);
  }

  grpc::Status Update(const v1::UpdateUserSegmentsRequest& request) {
    v1::UpdateUserSegmentsResponse response;
    return segments->UpdateUserSegments(NewContext().get(), request, &response);
  }

  grpc::Status GetUserSegments(const std::string& user_id, v1::GetUserSegmentsResponse* response) {
    v1::GetUserSegmentsRequest request;
    request.set_user_id(user_id);
    return segments->GetUserSegments(NewContext().get(), request, response);
  }

  // The user's segments; fails the test if the call fails.
  std::vector<std::string> SegmentsOf(const std::string& user_id) {
    v1::GetUserSegmentsResponse response;
    const grpc::Status status = GetUserSegments(user_id, &response);
    INFO(Describe(status));
    REQUIRE(status.ok());
    return {response.segments().begin(), response.segments().end()};
  }

  Health HealthNow() { return CheckHealth(channel); }

  // Declared first: the application uses it until it is destroyed.
  FakeClock clock;
  std::unique_ptr<app::Application> app;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::HistoryService::Stub> history;
  std::unique_ptr<v1::SegmentService::Stub> segments;
  std::unique_ptr<v1::UserAdminService::Stub> users;
};

}  // namespace segments::testing
