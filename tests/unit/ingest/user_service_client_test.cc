// The user-service client against an in-process fake on loopback: answers,
// retries with backoff, the bound on waiting, and malformed answers.
#include <absl/strings/str_format.h>
#include <absl/time/clock.h>

#include <catch2/catch.hpp>

#include "ingest/user_directory.h"
#include "support/fake_user_service.h"

using segments::domain::ObservedUser;
using segments::domain::UserState;
using segments::ingest::UserServiceClient;
using segments::ingest::UserServiceClientOptions;
using segments::testing::FakeUserService;

namespace {
segments::domain::UserId User(int n) {
  return segments::domain::UserId::Parse(absl::StrFormat("00000000-0000-4000-8000-%012d", n)).value();
}

UserServiceClientOptions Fast() {
  UserServiceClientOptions options;
  options.call_timeout = absl::Milliseconds(500);
  options.backoff_min = absl::Milliseconds(10);
  options.backoff_max = absl::Milliseconds(40);
  options.max_wait = absl::Milliseconds(400);
  return options;
}

struct Fixture {
  explicit Fixture(UserServiceClientOptions options = Fast())
      : client(grpc::CreateChannel(service.address(), grpc::InsecureChannelCredentials()), options) {}
  FakeUserService service;
  UserServiceClient client;
};
}  // namespace

TEST_CASE("lookups answer every id in the order asked, unknown ones without a state", "[ingest][client]") {
  Fixture f;
  f.service.Set(User(1), userservice::v1::USER_STATE_ACTIVE);
  f.service.Set(User(3), userservice::v1::USER_STATE_EXCLUDED);
  auto found = f.client.Lookup({User(3), User(2), User(1)});
  REQUIRE(found.ok());
  REQUIRE(found->size() == 3);
  CHECK((*found)[0].id == User(3));
  CHECK((*found)[0].state == UserState::kExcluded);
  CHECK((*found)[1].id == User(2));
  CHECK_FALSE((*found)[1].state.has_value());
  CHECK((*found)[2].state == UserState::kActive);
}

TEST_CASE("big lookups are split into calls of the batch size", "[ingest][client]") {
  UserServiceClientOptions options = Fast();
  options.batch_size = 100;
  Fixture f(options);
  std::vector<segments::domain::UserId> ids;
  for (int n = 0; n < 250; ++n) ids.push_back(User(n));
  auto found = f.client.Lookup(ids);
  REQUIRE(found.ok());
  CHECK(found->size() == 250);
  CHECK(f.service.calls() == 3);
}

TEST_CASE("transient failures are retried with backoff", "[ingest][client]") {
  Fixture f;
  f.service.Set(User(1), userservice::v1::USER_STATE_ACTIVE);
  f.service.FailNext(3, grpc::StatusCode::UNAVAILABLE);
  auto found = f.client.Lookup({User(1)});
  REQUIRE(found.ok());
  CHECK((*found)[0].state == UserState::kActive);
  CHECK(f.service.calls() == 4);
}

TEST_CASE("an outage longer than the bound gives UNAVAILABLE after about max_wait", "[ingest][client]") {
  Fixture f;
  f.service.SetOutage(true);
  const absl::Time start = absl::Now();
  auto found = f.client.Lookup({User(1)});
  const absl::Duration took = absl::Now() - start;
  CHECK(found.status().code() == absl::StatusCode::kUnavailable);
  CHECK(f.service.calls() >= 3);
  CHECK(took < absl::Seconds(2));
}

TEST_CASE("errors that retrying cannot fix are not retried", "[ingest][client]") {
  Fixture f;
  f.service.FailNext(1, grpc::StatusCode::INVALID_ARGUMENT);
  auto found = f.client.Lookup({User(1)});
  CHECK(found.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.service.calls() == 1);
}

TEST_CASE("a user service that is not there is retried within the bound", "[ingest][client]") {
  UserServiceClient client(grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()), Fast());
  auto found = client.Lookup({User(1)});
  CHECK(found.status().code() == absl::StatusCode::kUnavailable);
}

TEST_CASE("a malformed answer is an error, not a guess", "[ingest][client]") {
  Fixture f;
  f.service.Set(User(1), userservice::v1::USER_STATE_UNSPECIFIED);
  auto found = f.client.Lookup({User(1)});
  CHECK(found.status().code() == absl::StatusCode::kInternal);
}

TEST_CASE("integer ids are asked for as their decimal text, apart from UUIDs", "[ingest][client]") {
  Fixture f;
  const std::string uuid1000 = "00000000-0000-0000-0000-000000001000";
  f.service.Set("1000", userservice::v1::USER_STATE_ACTIVE);
  f.service.Set(uuid1000, userservice::v1::USER_STATE_EXCLUDED);
  const auto id = [](const std::string& text) { return segments::domain::UserId::Parse(text).value(); };
  auto found = f.client.Lookup({id(uuid1000), id("1002"), id("1000")});
  REQUIRE(found.ok());
  REQUIRE(found->size() == 3);
  CHECK((*found)[0].id == id(uuid1000));
  CHECK((*found)[0].state == UserState::kExcluded);
  CHECK((*found)[1].id == id("1002"));
  CHECK_FALSE((*found)[1].state.has_value());
  CHECK((*found)[2].id == id("1000"));
  CHECK((*found)[2].state == UserState::kActive);
}
