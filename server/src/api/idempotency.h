// Idempotency keys on the mutating calls (docs/grpc-api.md#idempotency-keys):
// the key a call carries in its metadata, the fingerprint of its request,
// and its outcome stored with its work and answered again to repeats.
#pragma once

#include <absl/functional/function_ref.h>
#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <optional>
#include <string>
#include <string_view>

#include "api/grpc_status.h"
#include "domain/idempotency.h"

namespace segments::api {

// The metadata that carries the key; the gateway passes the HTTP header
// Idempotency-Key on as it.
inline constexpr std::string_view kIdempotencyKeyMetadata = "idempotency-key";

// The key of the call (nullopt if it carries none); INVALID_ARGUMENT if it
// carries a malformed one, or several.
absl::StatusOr<std::optional<std::string>> IdempotencyKeyOf(const grpc::ServerContextBase& context);

// SHA-256 over `method` and the deterministic serialization of `request`:
// requests that are the same message field for field have the same one.
std::string RequestFingerprint(std::string_view method, const google::protobuf::Message& request);

// Runs `handler`, which fills `response`, as the keyed call `key` of
// `method` (IdempotentCalls) in the caller's `scope`, and returns what to answer: its outcome,
// stored; an earlier call's outcome (the status with its details, and
// `response` as it was); or the refusal of a key used for another request.
grpc::Status RunKeyed(domain::IdempotentCalls& calls, std::string_view method, std::string scope, std::string key,
                      const google::protobuf::Message& request, google::protobuf::Message& response,
                      absl::FunctionRef<absl::Status()> handler);

}  // namespace segments::api
