#include "metrics/http_endpoint.h"

#include <catch2/catch.hpp>

#include <string>

#include "support/http_get.h"

using segments::metrics::HttpEndpoint;
using segments::metrics::Registry;

using segments::testing::HttpExchange;

TEST_CASE("GET /metrics answers the registry's exposition", "[metrics]") {
  Registry registry;
  registry.AddCounter("answers_total", "Answers.").Inc(42);
  auto endpoint = HttpEndpoint::Start("127.0.0.1:0", registry);
  REQUIRE(endpoint.ok());
  REQUIRE((*endpoint)->port() > 0);

  const std::string answer = HttpExchange((*endpoint)->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(answer.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(answer.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  CHECK(answer.find("\r\n\r\n# HELP answers_total Answers.\n# TYPE answers_total counter\nanswers_total 42\n") !=
        std::string::npos);
  // Query strings are ignored; one answer per connection, then it closes.
  CHECK(HttpExchange((*endpoint)->port(), "GET /metrics?x=1 HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
}

TEST_CASE("Other paths and methods are refused; the endpoint stops", "[metrics]") {
  Registry registry;
  auto endpoint = HttpEndpoint::Start("127.0.0.1:0", registry);
  REQUIRE(endpoint.ok());
  const int port = (*endpoint)->port();
  CHECK(HttpExchange(port, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
  CHECK(HttpExchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").starts_with("HTTP/1.1 405 "));
  CHECK(HttpExchange(port, "nonsense\r\n\r\n").starts_with("HTTP/1.1 400 "));
  const std::string head = HttpExchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  CHECK(head.starts_with("HTTP/1.1 200 OK"));
  CHECK(head.ends_with("\r\n\r\n"));  // headers only
  (*endpoint)->Stop();
  (*endpoint)->Stop();  // idempotent
}

TEST_CASE("A bad or taken address is refused at start", "[metrics]") {
  Registry registry;
  CHECK(absl::IsInvalidArgument(HttpEndpoint::Start("no-port", registry).status()));
  CHECK(absl::IsInvalidArgument(HttpEndpoint::Start("127.0.0.1:99999", registry).status()));
  auto first = HttpEndpoint::Start("127.0.0.1:0", registry);
  REQUIRE(first.ok());
  CHECK(absl::IsUnavailable(HttpEndpoint::Start("127.0.0.1:" + std::to_string((*first)->port()), registry).status()));
}
