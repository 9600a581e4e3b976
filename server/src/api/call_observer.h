// Watches every call the server answers, whichever service it belongs to
// (ours, health, reflection), as a gRPC server interceptor:
//  - metrics per method: calls started, calls handled by status code, and
//    the handling time (segments_grpc_server_*);
//  - a log line, with the caller's request id (metadata x-request-id, which
//    the gateway always sets), for each call that failed on our side
//    (INTERNAL, UNAVAILABLE, ...: warnings) and each unary call slower than
//    the threshold; calls the caller got wrong are logged at debug level.
#pragma once

#include <absl/time/time.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/server_interceptor.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"

namespace segments::api {

// The metadata key that carries a request's id, end to end.
inline constexpr std::string_view kRequestIdKey = "x-request-id";

// The call's request id, or "" when the caller sent none. Ids are cut to 128
// characters.
std::string RequestIdOf(const grpc::ServerContextBase& context);

// While open, log lines of this thread carry the call's request id.
class RequestLogContext {
 public:
  explicit RequestLogContext(const grpc::ServerContextBase& context);

 private:
  log::LogContext context_;
};

struct CallObserverOptions {
  absl::Duration slow_call_threshold = absl::Milliseconds(500);
};

class CallObserverFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallObserverFactory(CallObserverOptions options) : options_(options) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;

 private:
  const CallObserverOptions options_;
};

// The observer of every call, for ServerBuilder's interceptor creators.
std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> CallObservers(
    CallObserverOptions options);

}  // namespace segments::api
