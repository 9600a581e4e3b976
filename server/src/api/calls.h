// Every call of the services starts here: admitted for its method by the
// CallGuard (api/access.h: a token whose roles cover the method), then run
// on the worker pool (api/unary_call.h); a mutation that carries an
// idempotency key runs as a keyed call (api/idempotency.h), the key scoped to
// the caller. Handlers name their method and never check access themselves.
#pragma once

#include <grpcpp/grpcpp.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "api/access.h"
#include "api/call_observer.h"
#include "api/grpc_status.h"
#include "api/idempotency.h"
#include "api/unary_call.h"
#include "common/worker_pool.h"
#include "domain/acting_as.h"
#include "domain/idempotency.h"

namespace segments::api {

class Calls {
 public:
  // `idempotent_calls` may be null for a service without mutations.
  Calls(WorkerPool& workers, const CallGuard& guard, domain::IdempotentCalls* idempotent_calls = nullptr)
      : workers_(workers), guard_(guard), idempotent_calls_(idempotent_calls) {}

  // A call whose `handler` (returning absl::Status, filling the response it
  // captured) reads. `method` is the full name
  // ("/segmentation.v1.SegmentService/GetSegment") and must outlive the call.
  template <typename Handler>
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* context, std::string_view method, Handler handler) {
    const RequestLogContext request_log(*context);
    if (auto refused = Refusal(*context, method)) return Finished(context, *std::move(refused));
    return RunOnWorkers(context, workers_, std::move(handler));
  }

  // A read that `at_once` may answer on this thread: it returns the status
  // to finish with, or nullopt to run `handler` on the workers instead.
  template <typename AtOnce, typename Handler>
  grpc::ServerUnaryReactor* ReadAtOnce(grpc::CallbackServerContext* context, std::string_view method, AtOnce at_once,
                                       Handler handler) {
    const RequestLogContext request_log(*context);
    if (auto refused = Refusal(*context, method)) return Finished(context, *std::move(refused));
    if (std::optional<grpc::Status> answered = at_once()) return Finished(context, *std::move(answered));
    return RunOnWorkers(context, workers_, std::move(handler));
  }

  // A call that changes something; `request` and `response` must outlive it.
  template <typename Handler>
  grpc::ServerUnaryReactor* Mutate(grpc::CallbackServerContext* context, std::string_view method,
                                   const google::protobuf::Message* request, google::protobuf::Message* response,
                                   Handler handler) {
    const RequestLogContext request_log(*context);
    absl::StatusOr<auth::Principal> caller = guard_.Admit(*context, method);
    if (!caller.ok()) return Finished(context, ToGrpcStatus(caller.status()));
    absl::StatusOr<std::optional<std::string>> key = IdempotencyKeyOf(*context);
    if (!key.ok()) return Finished(context, ToGrpcStatus(key.status()));
    // What the handler changes is the caller's (history records the subject).
    auto as_caller = [subject = caller->subject, handler = std::move(handler)]() {
      const domain::ActingAs acting_as(subject);
      return handler();
    };
    if (!*key) return RunOnWorkers(context, workers_, std::move(as_caller));
    // Keys are the caller's own: another subject's same key is another call.
    std::string scope = guard_.enabled() ? std::move(caller->subject) : std::string();
    return RunOnWorkers(context, workers_,
                        [&calls = *idempotent_calls_, method, request, response, scope = std::move(scope),
                         key = **std::move(key), as_caller = std::move(as_caller)]() mutable -> grpc::Status {
                          return RunKeyed(calls, method, std::move(scope), std::move(key), *request, *response,
                                          as_caller);
                        });
  }

  // A server stream: `begin` makes and starts its reactor once the caller
  // is admitted.
  template <typename Response, typename Begin>
  grpc::ServerWriteReactor<Response>* Stream(grpc::CallbackServerContext* context, std::string_view method,
                                             Begin begin) {
    const RequestLogContext request_log(*context);
    if (auto refused = Refusal(*context, method)) return new RefusedStream<Response>(*std::move(refused));
    return begin();
  }

 private:
  // Ends at once with `status`; deletes itself when gRPC is done with it.
  template <typename Response>
  class RefusedStream final : public grpc::ServerWriteReactor<Response> {
   public:
    explicit RefusedStream(const grpc::Status& status) { this->Finish(status); }
    void OnDone() override { delete this; }
  };

  std::optional<grpc::Status> Refusal(const grpc::CallbackServerContext& context, std::string_view method) const {
    absl::StatusOr<auth::Principal> caller = guard_.Admit(context, method);
    if (caller.ok()) return std::nullopt;
    return ToGrpcStatus(caller.status());
  }

  static grpc::ServerUnaryReactor* Finished(grpc::CallbackServerContext* context, const grpc::Status& status) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }

  WorkerPool& workers_;
  const CallGuard& guard_;
  domain::IdempotentCalls* idempotent_calls_;
};

}  // namespace segments::api
