#include "metrics/registry.h"

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

using segments::metrics::Counter;
using segments::metrics::Histogram;
using segments::metrics::Registry;

namespace {

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("Counters and gauges are exposed with their help, type and labels", "[metrics]") {
  Registry registry;
  registry.AddCounter("jobs_total", "Jobs run.").Inc(3);
  auto& by_code = registry.AddCounterFamily("calls_total", "Calls.", {"method", "code"});
  by_code.With({"Get", "OK"}).Inc();
  by_code.With({"Get", "OK"}).Inc();
  by_code.With({"Get", "NOT_FOUND"}).Inc();
  registry.AddGauge("queue_depth", "Waiting.").Set(2.5);

  const std::string text = registry.Expose();
  CHECK(Contains(text, "# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total 3\n"));
  CHECK(Contains(text, "calls_total{method=\"Get\",code=\"OK\"} 2\n"));
  CHECK(Contains(text, "calls_total{method=\"Get\",code=\"NOT_FOUND\"} 1\n"));
  CHECK(Contains(text, "# TYPE queue_depth gauge\nqueue_depth 2.5\n"));
  // Sorted by name, each family once.
  CHECK(text.find("calls_total") < text.find("jobs_total"));
  CHECK(text.find("# TYPE calls_total") == text.rfind("# TYPE calls_total"));
}

TEST_CASE("The same name gives the same metric", "[metrics]") {
  Registry registry;
  registry.AddCounter("hits_total", "Hits.").Inc();
  registry.AddCounter("hits_total", "Hits.").Inc();
  CHECK(registry.AddCounter("hits_total", "Hits.").Value() == 2);
}

TEST_CASE("Label values and help text are escaped", "[metrics]") {
  Registry registry;
  registry.AddGaugeFamily("odd", "Line one\nand a \\ backslash.", {"value"}).With({"a\"b\\c\nd"}).Set(1);
  const std::string text = registry.Expose();
  CHECK(Contains(text, "# HELP odd Line one\\nand a \\\\ backslash.\n"));
  CHECK(Contains(text, "odd{value=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

TEST_CASE("A histogram exposes cumulative buckets, +Inf, sum and count", "[metrics]") {
  Registry registry;
  Histogram& latency = registry.AddHistogram("latency_seconds", "Latency.", {0.1, 1});
  latency.Observe(0.05);
  latency.Observe(0.1);  // on a bound: counted in it (le)
  latency.Observe(0.5);
  latency.Observe(7);
  const std::string text = registry.Expose();
  CHECK(Contains(text, "# TYPE latency_seconds histogram\n"));
  CHECK(Contains(text, "latency_seconds_bucket{le=\"0.1\"} 2\n"));
  CHECK(Contains(text, "latency_seconds_bucket{le=\"1\"} 3\n"));
  CHECK(Contains(text, "latency_seconds_bucket{le=\"+Inf\"} 4\n"));
  CHECK(Contains(text, "latency_seconds_sum 7.65\n"));
  CHECK(Contains(text, "latency_seconds_count 4\n"));
}

TEST_CASE("A labelled histogram puts le after its labels", "[metrics]") {
  Registry registry;
  registry.AddHistogramFamily("call_seconds", "Calls.", {"method"}, {0.5}).With({"Get"}).Observe(0.2);
  const std::string text = registry.Expose();
  CHECK(Contains(text, "call_seconds_bucket{method=\"Get\",le=\"0.5\"} 1\n"));
  CHECK(Contains(text, "call_seconds_count{method=\"Get\"} 1\n"));
}

TEST_CASE("Copied counters are exposed as counters", "[metrics]") {
  Registry registry;
  registry.AddCopiedCounterFamily("cpu_seconds_total", "CPU.", {}).With({}).Set(1.25);
  const std::string text = registry.Expose();
  CHECK(Contains(text, "# TYPE cpu_seconds_total counter\ncpu_seconds_total 1.25\n"));
}

TEST_CASE("Scrape updates run before each exposition, until their registration ends", "[metrics]") {
  Registry registry;
  auto& gauge = registry.AddGauge("seen", "Updates seen.");
  int runs = 0;
  {
    Registry::Registration registration = registry.OnScrape([&] { gauge.Set(++runs); });
    CHECK(Contains(registry.Expose(), "seen 1\n"));
    CHECK(Contains(registry.Expose(), "seen 2\n"));
    Registry::Registration moved = std::move(registration);  // still registered, once
    CHECK(Contains(registry.Expose(), "seen 3\n"));
  }
  registry.Expose();
  CHECK(runs == 3);
}

TEST_CASE("A family's Clear drops label values that are gone", "[metrics]") {
  Registry registry;
  auto& lag = registry.AddGaugeFamily("lag", "Lag.", {"partition"});
  lag.With({"0"}).Set(5);
  lag.With({"1"}).Set(7);
  lag.Clear();
  lag.With({"1"}).Set(8);
  const std::string text = registry.Expose();
  CHECK_FALSE(Contains(text, "lag{partition=\"0\"}"));
  CHECK(Contains(text, "lag{partition=\"1\"} 8\n"));
}

TEST_CASE("Counters count every increment from many threads", "[metrics]") {
  Registry registry;
  Counter& counter = registry.AddCounter("increments_total", "Increments.");
  Histogram& histogram = registry.AddHistogram("observed", "Observations.", {1});
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        counter.Inc();
        histogram.Observe(0.5);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(counter.Value() == 40000);
  const Histogram::Snapshot snapshot = histogram.Read();
  CHECK(snapshot.count() == 40000);
  CHECK(snapshot.sum == 20000);
}
