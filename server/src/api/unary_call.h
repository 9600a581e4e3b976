// Runs a unary handler on the worker pool and finishes the call's reactor
// from there, so the gRPC thread that received the call returns at once; or,
// when the handler's work deferred the answer (common/deferred_completion.h:
// a write waiting to show in the read model), from wherever that ends, so
// the worker is free for the next call meanwhile.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "api/call_observer.h"
#include "api/grpc_status.h"
#include "common/deferred_completion.h"
#include "common/worker_pool.h"

namespace segments::api {

// `handler` returns absl::Status and fills the response it captured.
template <typename Handler>
grpc::ServerUnaryReactor* RunOnWorkers(grpc::CallbackServerContext* context, WorkerPool& workers, Handler handler) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const bool queued = workers.TrySubmit([context, reactor, handler = std::move(handler)]() mutable {
    const RequestLogContext request_log(*context);
    // Work nobody waits for any more is skipped.
    if (context->IsCancelled()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "call cancelled"));
      return;
    }
    if (context->deadline() < std::chrono::system_clock::now()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline passed before work started"));
      return;
    }
    CompletionScope scope;
    grpc::Status status = ToGrpcStatus(handler());
    if (auto deferral = scope.Take()) {
      std::move (*deferral)([reactor, status = std::move(status)]() mutable { reactor->Finish(std::move(status)); });
    } else {
      reactor->Finish(status);
    }
  });
  if (!queued) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is overloaded or stopping; retry later"));
  }
  return reactor;
}

}  // namespace segments::api
