#include "metrics/http_endpoint.h"

#include <absl/strings/numbers.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "common/log.h"

namespace segments::metrics {
namespace {

constexpr size_t kMaxRequestBytes = 8192;
constexpr int kIoTimeoutSeconds = 5;  // a client that stalls is dropped after this

// "host:port" or "[v6]:port" split in two; an empty host means every address.
bool SplitAddress(std::string_view address, std::string& host, std::string& port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return false;
  host = std::string(address.substr(0, colon));
  port = std::string(address.substr(colon + 1));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int number = 0;
  return absl::SimpleAtoi(port, &number) && number >= 0 && number <= 65535;
}

void SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t sent = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (sent <= 0) {
      if (sent < 0 && errno == EINTR) continue;
      return;  // the client went away or stalled: nothing more to do
    }
    data.remove_prefix(static_cast<size_t>(sent));
  }
}

std::string Response(std::string_view status, std::string_view content_type, std::string_view body) {
  return fmt::format("HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}", status,
                     content_type, body.size(), body);
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(const std::string& address,
                                                                  const Registry& registry) {
  std::string host, port;
  if (!SplitAddress(address, host, port)) {
    return absl::InvalidArgumentError(fmt::format("metrics address \"{}\" is not host:port", address));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return absl::InvalidArgumentError(fmt::format("metrics address \"{}\": {}", address, ::gai_strerror(rc)));
  }
  std::string last_error = "no address";
  for (addrinfo* candidate = found; candidate != nullptr; candidate = candidate->ai_next) {
    const int fd = ::socket(candidate->ai_family, candidate->ai_socktype | SOCK_CLOEXEC, candidate->ai_protocol);
    if (fd < 0) continue;
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (::bind(fd, candidate->ai_addr, candidate->ai_addrlen) == 0 && ::listen(fd, 16) == 0) {
      sockaddr_storage bound{};
      socklen_t length = sizeof bound;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
      const int bound_port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                               : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
      ::freeaddrinfo(found);
      return std::unique_ptr<HttpEndpoint>(new HttpEndpoint(fd, bound_port, registry));
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return absl::UnavailableError(fmt::format("cannot listen for metrics on {}: {}", address, last_error));
}

HttpEndpoint::HttpEndpoint(int listen_fd, int port, const Registry& registry)
    : listen_fd_(listen_fd), port_(port), registry_(registry) {
  if (::pipe2(wake_fds_, O_CLOEXEC) != 0) wake_fds_[0] = wake_fds_[1] = -1;
  thread_ = std::thread([this] { Loop(); });
}

HttpEndpoint::~HttpEndpoint() {
  Stop();
  ::close(listen_fd_);
  for (int fd : wake_fds_) {
    if (fd >= 0) ::close(fd);
  }
}

void HttpEndpoint::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_fds_[1] >= 0) {
    const char byte = 0;
    [[maybe_unused]] ssize_t ignored = ::write(wake_fds_[1], &byte, 1);
  }
  if (thread_.joinable()) thread_.join();
}

void HttpEndpoint::Loop() {
  while (!stopping_.load()) {
    pollfd watched[2] = {{listen_fd_, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
    if (::poll(watched, wake_fds_[0] >= 0 ? 2 : 1, 1000) <= 0) continue;
    if (watched[1].revents != 0) return;
    const int connection = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) continue;
    const timeval timeout{kIoTimeoutSeconds, 0};
    ::setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    Serve(connection);
    ::close(connection);
  }
}

void HttpEndpoint::Serve(int connection) {
  std::string request;
  char buffer[1024];
  while (request.find("\r\n\r\n") == std::string::npos) {
    if (request.size() > kMaxRequestBytes) {
      SendAll(connection, Response("431 Request Header Fields Too Large", "text/plain", "request too large\n"));
      return;
    }
    const ssize_t got = ::recv(connection, buffer, sizeof buffer, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return;  // closed, or stalled past the timeout
    request.append(buffer, static_cast<size_t>(got));
  }
  // "GET /metrics?x=y HTTP/1.1": the method, then the path without a query.
  const std::string_view line = std::string_view(request).substr(0, request.find("\r\n"));
  const size_t first_space = line.find(' ');
  const size_t second_space = line.find(' ', first_space + 1);
  if (first_space == std::string_view::npos || second_space == std::string_view::npos) {
    SendAll(connection, Response("400 Bad Request", "text/plain", "bad request line\n"));
    return;
  }
  const std::string_view method = line.substr(0, first_space);
  std::string_view path = line.substr(first_space + 1, second_space - first_space - 1);
  path = path.substr(0, path.find('?'));
  if (path != "/metrics") {
    SendAll(connection, Response("404 Not Found", "text/plain", "metrics are at /metrics\n"));
  } else if (method != "GET" && method != "HEAD") {
    SendAll(connection, Response("405 Method Not Allowed", "text/plain", "only GET\n"));
  } else {
    std::string response = Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", registry_.Expose());
    if (method == "HEAD") response.resize(response.find("\r\n\r\n") + 4);
    SendAll(connection, response);
  }
}

}  // namespace segments::metrics
