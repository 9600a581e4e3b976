// The metrics port: a deliberately small HTTP/1.1 server on a thread of its
// own that answers GET /metrics with the registry's exposition, one
// connection at a time, and closes each connection after its answer. It
// serves scrapers and operators, never the API, so it stays out of gRPC's
// threads and needs no HTTP library.
#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "metrics/registry.h"

namespace segments::metrics {

class HttpEndpoint {
 public:
  // Listens on `address` ("host:port", "[v6]:port"; port 0 picks a free
  // one) and serves `registry` until Stop(). INVALID_ARGUMENT for a bad
  // address, UNAVAILABLE when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpEndpoint>> Start(const std::string& address, const Registry& registry);
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  int port() const { return port_; }
  void Stop();  // Idempotent.

 private:
  HttpEndpoint(int listen_fd, int port, const Registry& registry);
  void Loop();
  void Serve(int connection);

  const int listen_fd_;
  const int port_;
  const Registry& registry_;
  int wake_fds_[2] = {-1, -1};  // a pipe: Stop() writes, the loop wakes
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace segments::metrics
