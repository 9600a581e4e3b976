#include "domain/idempotency.h"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "domain/errors.h"
#include "support/fake_clock.h"

using namespace segments::domain;
using segments::testing::FakeClock;

namespace {

// Remembers what it was started with; its calls do nothing.
class RecordingIdempotencyStore final : public IdempotencyStore {
 public:
  class NoCall final : public KeyedCall {
   public:
    absl::StatusOr<CallOutcome> Settle(const CallOutcome& outcome) override { return outcome; }
    void Abandon() override {}
    bool answered_earlier() const override { return false; }
    void AnswerAfterTask(int64_t) override {}
    std::optional<int64_t> pending_task() const override { return std::nullopt; }
  };

  std::unique_ptr<KeyedCall> StartKeyedCall(IdempotencyKey key, absl::Time now) override {
    started.emplace_back(std::move(key), now);
    return std::make_unique<NoCall>();
  }
  absl::StatusOr<int64_t> DeleteKeysMadeBefore(absl::Time, int) override { return 0; }

  std::vector<std::pair<IdempotencyKey, absl::Time>> started;
};

}  // namespace

TEST_CASE("a key is 1 to 128 printable ASCII characters", "[idempotency]") {
  for (const std::string& good : {std::string("a"), std::string(" "), std::string("~"), std::string(128, 'k'),
                                  std::string("7f3c0d2e-order-42 retry#1 {\"x\":[1]}")}) {
    INFO(good);
    CHECK(CheckIdempotencyKey(good).ok());
  }
  for (const std::string& bad :
       {std::string(), std::string(129, 'k'), std::string("tab\there"), std::string("new\nline"),
        std::string("del\x7f"), std::string("nul\0", 4), std::string("caf\xc3\xa9"), std::string("\x1f")}) {
    INFO(bad);
    const absl::Status status = CheckIdempotencyKey(bad);
    CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    const std::vector<FieldViolation> violations = ViolationsIn(status);
    REQUIRE(violations.size() == 1);
    CHECK(violations[0].field == FieldPath(Field::kIdempotencyKey));
  }
}

TEST_CASE("a key used for another request is a conflict naming the key", "[idempotency]") {
  const absl::Status status = KeyReused("order-42");
  CHECK(status.code() == absl::StatusCode::kAlreadyExists);
  CHECK(status.message() == "idempotency key \"order-42\" was already used with a different request");
}

TEST_CASE("success and the client's errors are stored; failures of the infrastructure are not", "[idempotency]") {
  using C = absl::StatusCode;
  for (C code : {C::kOk, C::kInvalidArgument, C::kFailedPrecondition, C::kOutOfRange, C::kNotFound, C::kAlreadyExists,
                 C::kPermissionDenied, C::kUnauthenticated}) {
    INFO(absl::StatusCodeToString(code));
    CHECK(IsFinalOutcome(code));
  }
  for (C code : {C::kUnavailable, C::kDeadlineExceeded, C::kAborted, C::kInternal, C::kUnknown, C::kCancelled,
                 C::kResourceExhausted, C::kDataLoss, C::kUnimplemented}) {
    INFO(absl::StatusCodeToString(code));
    CHECK_FALSE(IsFinalOutcome(code));
  }
}

TEST_CASE("a call starts in its caller's scope at the clock's now, to the microsecond", "[idempotency]") {
  RecordingIdempotencyStore store;
  FakeClock clock;
  clock.Advance(absl::Nanoseconds(1500));
  IdempotentCalls calls(store, clock);
  CHECK(calls.Start("alice", "k", "fingerprint") != nullptr);
  REQUIRE(store.started.size() == 1);
  const auto& [key, now] = store.started[0];
  CHECK(key.scope == "alice");
  CHECK(key.key == "k");
  CHECK(key.fingerprint == "fingerprint");
  CHECK(now == clock.Now() - absl::Nanoseconds(500));
}

TEST_CASE("the current keyed call is the innermost scope's, on this thread only", "[idempotency]") {
  RecordingIdempotencyStore::NoCall outer;
  RecordingIdempotencyStore::NoCall inner;
  CHECK(KeyedCall::Current() == nullptr);
  {
    const KeyedCall::Scope a(outer);
    CHECK(KeyedCall::Current() == &outer);
    {
      const KeyedCall::Scope b(inner);
      CHECK(KeyedCall::Current() == &inner);
    }
    CHECK(KeyedCall::Current() == &outer);
    {
      const KeyedCall::Suspend none;
      CHECK(KeyedCall::Current() == nullptr);
      const KeyedCall::Scope c(inner);
      CHECK(KeyedCall::Current() == &inner);
    }
    CHECK(KeyedCall::Current() == &outer);
    KeyedCall* elsewhere = &outer;
    std::thread([&] { elsewhere = KeyedCall::Current(); }).join();
    CHECK(elsewhere == nullptr);
  }
  CHECK(KeyedCall::Current() == nullptr);
}
