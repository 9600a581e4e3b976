// A bare HTTP client for the metrics port, and a reader of the text
// exposition format, for tests.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace segments::testing {

// Sends `request` to 127.0.0.1:port and returns all that came back before
// the server closed the connection.
inline std::string HttpExchange(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    throw std::runtime_error("cannot reach 127.0.0.1:" + std::to_string(port));
  }
  std::string answer;
  char buffer[4096];
  for (ssize_t got; (got = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, static_cast<size_t>(got));
  ::close(fd);
  return answer;
}

// The body of GET /metrics.
inline std::string ScrapeMetrics(int port) {
  const std::string answer = HttpExchange(port, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
  const size_t body = answer.find("\r\n\r\n");
  return body == std::string::npos ? std::string() : answer.substr(body + 4);
}

// The value of the sample written exactly as `series` (name and labels, as
// exposed), or nullopt when there is none.
inline std::optional<double> SampleValue(std::string_view exposition, std::string_view series) {
  for (size_t start = 0; start < exposition.size();) {
    size_t end = exposition.find('\n', start);
    if (end == std::string_view::npos) end = exposition.size();
    const std::string_view line = exposition.substr(start, end - start);
    if (line.size() > series.size() && line.starts_with(series) && line[series.size()] == ' ') {
      return std::stod(std::string(line.substr(series.size() + 1)));
    }
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace segments::testing
