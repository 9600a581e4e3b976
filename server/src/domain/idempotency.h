// Idempotency keys (docs/behaviour.md#idempotency-keys): the rules of a key,
// which outcomes are stored, and the start of a keyed call.
#pragma once

#include <absl/status/status.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "domain/clock.h"
#include "domain/repositories/idempotency_store.h"

namespace segments::domain {

inline constexpr size_t kMaxIdempotencyKeyLength = 128;

// OK for 1..128 printable ASCII characters (0x20..0x7E); otherwise
// INVALID_ARGUMENT naming Field::kIdempotencyKey.
absl::Status CheckIdempotencyKey(std::string_view key);

// ALREADY_EXISTS: `key` was used with another request.
absl::Status KeyReused(std::string_view key);

// Whether an outcome with `code` is what the call did, to be stored and
// replayed: success and the client's errors. Failures of the
// infrastructure (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, INTERNAL, ...)
// say nothing about the request; they are not stored, so a retry does the
// work.
bool IsFinalOutcome(absl::StatusCode code);

class IdempotentCalls {
 public:
  IdempotentCalls(IdempotencyStore& store, const Clock& clock) : store_(store), clock_(clock) {}

  // A call with `key`, already checked by CheckIdempotencyKey, for a
  // request that `fingerprint` tells apart from others. `scope` is the
  // caller's (the token's subject; "" when authentication is off): the same
  // key in two scopes names two calls.
  std::unique_ptr<KeyedCall> Start(std::string scope, std::string key, std::string fingerprint);

 private:
  IdempotencyStore& store_;
  const Clock& clock_;
};

}  // namespace segments::domain
