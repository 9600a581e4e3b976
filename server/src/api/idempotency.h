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
#include "api/unary_call.h"
#include "common/worker_pool.h"
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
// `method` (IdempotentCalls), and returns what to answer: its outcome,
// stored; an earlier call's outcome (the status with its details, and
// `response` as it was); or the refusal of a key used for another request.
grpc::Status RunKeyed(domain::IdempotentCalls& calls, std::string_view method, std::string key,
                      const google::protobuf::Message& request, google::protobuf::Message& response,
                      absl::FunctionRef<absl::Status()> handler);

// Runs the mutating calls of a service as RunOnWorkers does, and as
// RunKeyed (on the worker) those that carry a key.
class Mutations {
 public:
  Mutations(WorkerPool& workers, domain::IdempotentCalls& calls) : workers_(workers), calls_(calls) {}

  // `handler` returns absl::Status and fills `response`. `method` names the
  // call ("/segmentation.v1.SegmentService/CreateSegment") and must outlive
  // it, as `request` and `response` do.
  template <typename Handler>
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context, std::string_view method,
                                const google::protobuf::Message* request, google::protobuf::Message* response,
                                Handler handler) {
    absl::StatusOr<std::optional<std::string>> key = IdempotencyKeyOf(*context);
    if (!key.ok()) {
      grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
      reactor->Finish(ToGrpcStatus(key.status()));
      return reactor;
    }
    if (!*key) return RunOnWorkers(context, workers_, std::move(handler));
    return RunOnWorkers(context, workers_,
                        [&calls = calls_, method, request, response, key = **std::move(key),
                         handler = std::move(handler)]() mutable -> grpc::Status {
                          return RunKeyed(calls, method, std::move(key), *request, *response, handler);
                        });
  }

 private:
  WorkerPool& workers_;
  domain::IdempotentCalls& calls_;
};

}  // namespace segments::api
