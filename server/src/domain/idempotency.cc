#include "domain/idempotency.h"

#include <fmt/format.h>

#include <algorithm>

#include "domain/errors.h"

namespace segments::domain {
namespace {

thread_local KeyedCall* current_keyed_call = nullptr;

}  // namespace

KeyedCall::Scope::Scope(KeyedCall& call) : previous_(current_keyed_call) { current_keyed_call = &call; }

KeyedCall::Scope::~Scope() { current_keyed_call = previous_; }

KeyedCall::Suspend::Suspend() : previous_(current_keyed_call) { current_keyed_call = nullptr; }

KeyedCall::Suspend::~Suspend() { current_keyed_call = previous_; }

KeyedCall* KeyedCall::Current() { return current_keyed_call; }

absl::Status CheckIdempotencyKey(std::string_view key) {
  const bool printable = std::all_of(key.begin(), key.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
  if (key.empty() || key.size() > kMaxIdempotencyKeyLength || !printable) {
    return FieldError(
        absl::StatusCode::kInvalidArgument, Field::kIdempotencyKey,
        fmt::format("must be 1 to {} printable ASCII characters (0x20 to 0x7E)", kMaxIdempotencyKeyLength));
  }
  return absl::OkStatus();
}

absl::Status KeyReused(std::string_view key) {
  return absl::AlreadyExistsError(fmt::format("idempotency key \"{}\" was already used with a different request", key));
}

bool IsFinalOutcome(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return true;
    default:
      return false;
  }
}

std::unique_ptr<KeyedCall> IdempotentCalls::Start(std::string scope, std::string key, std::string fingerprint) {
  return store_.StartKeyedCall(IdempotencyKey{std::move(scope), std::move(key), std::move(fingerprint)},
                               TruncateToMicros(clock_.Now()));
}

}  // namespace segments::domain
