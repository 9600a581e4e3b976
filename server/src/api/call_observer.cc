#include "api/call_observer.h"

#include <absl/container/flat_hash_map.h>
#include <absl/synchronization/mutex.h>
#include <fmt/format.h>

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>

#include "common/log.h"
#include "metrics/registry.h"

namespace segments::api {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

constexpr size_t kMaxRequestIdLength = 128;
constexpr int kCodes = 17;  // gRPC's status codes, OK (0) to UNAUTHENTICATED (16)

std::string_view CodeName(grpc::StatusCode code) {
  static constexpr std::array<std::string_view, kCodes> kNames = {
      "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  return index >= 0 && index < kCodes ? kNames[index] : "UNKNOWN";
}

// Failures of ours rather than the caller's: what operators must see.
bool ServerSide(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DATA_LOSS:
      return true;
    default:
      return false;
  }
}

struct Families {
  metrics::Family<metrics::Counter>& started = metrics::Default().AddCounterFamily(
      "segments_grpc_server_started_total", "gRPC calls started, by method.", {"grpc_service", "grpc_method"});
  metrics::Family<metrics::Counter>& handled = metrics::Default().AddCounterFamily(
      "segments_grpc_server_handled_total", "gRPC calls answered, by method and status code.",
      {"grpc_service", "grpc_method", "grpc_code"});
  metrics::Family<metrics::Histogram>& seconds = metrics::Default().AddHistogramFamily(
      "segments_grpc_server_handling_seconds",
      "Time from a gRPC call's arrival to its status being sent, in seconds, by method.",
      {"grpc_service", "grpc_method"}, metrics::LatencyBuckets());
};

Families& Metrics() {
  static auto* families = new Families();
  return *families;
}

// One method's metrics. A code's counter is made the first time the method
// ends with it, so the exposition lists only the codes that happened.
class MethodMetrics {
 public:
  explicit MethodMetrics(std::string_view full_name) {
    // "/package.Service/Method"
    const std::string_view name = full_name.substr(full_name.starts_with('/') ? 1 : 0);
    const size_t slash = name.find('/');
    service_ = std::string(name.substr(0, slash));
    method_ = slash == std::string_view::npos ? std::string() : std::string(name.substr(slash + 1));
    started_ = &Metrics().started.With({service_, method_});
    seconds_ = &Metrics().seconds.With({service_, method_});
  }

  void Started() { started_->Inc(); }

  void Handled(grpc::StatusCode code, double seconds) {
    seconds_->Observe(seconds);
    const int index = static_cast<int>(code) >= 0 && static_cast<int>(code) < kCodes ? static_cast<int>(code) : 2;
    metrics::Counter* counter = handled_[index].load(std::memory_order_acquire);
    if (counter == nullptr) {
      counter = &Metrics().handled.With({service_, method_, std::string(CodeName(code))});
      handled_[index].store(counter, std::memory_order_release);
    }
    counter->Inc();
  }

 private:
  std::string service_;
  std::string method_;
  metrics::Counter* started_;
  metrics::Histogram* seconds_;
  std::array<std::atomic<metrics::Counter*>, kCodes> handled_{};
};

// Methods by name, for the process's life. gRPC names a call's method with
// a pointer to its registered name, so each thread remembers the pointers it
// has seen and takes no lock after the first call of a method.
MethodMetrics& MetricsOf(const char* method) {
  thread_local absl::flat_hash_map<const char*, MethodMetrics*> seen;
  if (auto it = seen.find(method); it != seen.end()) return *it->second;
  static absl::Mutex mu;
  static auto* by_name = new std::map<std::string, std::unique_ptr<MethodMetrics>, std::less<>>();
  absl::MutexLock lock(&mu);
  std::unique_ptr<MethodMetrics>& metrics = (*by_name)[method];
  if (!metrics) metrics = std::make_unique<MethodMetrics>(method);
  seen.emplace(method, metrics.get());
  return *metrics;
}

class CallObserver final : public grpc::experimental::Interceptor {
 public:
  CallObserver(ServerRpcInfo* info, const CallObserverOptions& options)
      : info_(info), options_(options), metrics_(MetricsOf(info->method())) {
    metrics_.Started();
  }

  ~CallObserver() override {
    // A call that never sent a status: its client went away. Counted only:
    // the call's context may be gone by now, so nothing reads it.
    if (!finished_) metrics_.Handled(grpc::StatusCode::CANCELLED, Elapsed().count());
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Finish(methods->GetSendStatus());
    }
    methods->Proceed();
  }

 private:
  std::chrono::duration<double> Elapsed() const { return std::chrono::steady_clock::now() - start_; }

  void Finish(const grpc::Status& status) {
    finished_ = true;
    const std::chrono::duration<double> elapsed = Elapsed();
    metrics_.Handled(status.error_code(), elapsed.count());

    const bool failed = ServerSide(status.error_code());
    const bool slow = info_->type() == ServerRpcInfo::Type::UNARY &&
                      elapsed > absl::ToChronoNanoseconds(options_.slow_call_threshold);
    const log::Level level = failed || slow ? log::Level::kWarning : log::Level::kDebug;
    if (!log::Enabled(level) || (status.ok() && !slow)) return;
    const std::string request_id =
        info_->server_context() != nullptr ? RequestIdOf(*info_->server_context()) : std::string();
    log::Write(level, slow && !failed ? "slow call" : "call failed",
               {{"method", info_->method()},
                {"code", std::string(CodeName(status.error_code()))},
                {"error", status.error_message()},
                {"duration_ms", fmt::format("{:.1f}", elapsed.count() * 1000)},
                {"request_id", request_id.empty() ? "-" : request_id}});
  }

  ServerRpcInfo* const info_;
  const CallObserverOptions& options_;
  MethodMetrics& metrics_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  bool finished_ = false;
};

}  // namespace

std::string RequestIdOf(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find(grpc::string_ref(kRequestIdKey.data(), kRequestIdKey.size()));
  if (it == metadata.end()) return {};
  return std::string(it->second.data(), std::min(it->second.size(), kMaxRequestIdLength));
}

RequestLogContext::RequestLogContext(const grpc::ServerContextBase& context)
    : context_(
          [](const void* subject, std::vector<log::Field>& fields) {
            std::string id = RequestIdOf(*static_cast<const grpc::ServerContextBase*>(subject));
            if (!id.empty()) fields.push_back({"request_id", std::move(id)});
          },
          &context) {}

grpc::experimental::Interceptor* CallObserverFactory::CreateServerInterceptor(ServerRpcInfo* info) {
  return new CallObserver(info, options_);
}

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> CallObservers(
    CallObserverOptions options) {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<CallObserverFactory>(options));
  return factories;
}

}  // namespace segments::api
