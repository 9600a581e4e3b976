// Prometheus metrics, written by hand: there is no C++ client library among
// the packages we build from. Counters, gauges and histograms are lock-free
// atomics on the paths that update them; a family with labels hands out a
// metric per label values, created once and kept for the process's life, so
// callers look it up once and keep the reference. Values that are cheaper to
// read than to keep current (pool sizes, queue depth, consumer lag) are set
// by OnScrape callbacks just before each exposition. Everything is exposed in
// the text format (version 0.0.4) by Registry::Expose.
#pragma once

#include <absl/base/thread_annotations.h>
#include <absl/synchronization/mutex.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace segments::metrics {

class Counter {
 public:
  void Inc(uint64_t by = 1) { value_.fetch_add(by, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double by);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Buckets are counted one by one and summed up at exposition, so a scrape
// racing with Observe still sees cumulative counts that never decrease.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative_counts;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count() const { return cumulative_counts.back(); }
  };
  Snapshot Read() const;

 private:
  const std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // upper_bounds_.size() + 1
  std::atomic<double> sum_{0};
};

// Latencies of calls and database waits, in seconds: 0.5 ms to 10 s.
const std::vector<double>& LatencyBuckets();
// Longer work (a batch, a job's pass, a fill): 5 ms to 5 min.
const std::vector<double>& TaskBuckets();

enum class Type { kCounter, kGauge, kHistogram, kCopiedCounter };

// The metrics of one name: one per combination of label values.
template <typename Metric>
class Family {
 public:
  Family(std::vector<std::string> label_names, std::function<std::unique_ptr<Metric>()> make)
      : label_names_(std::move(label_names)), make_(std::move(make)) {}

  // The metric for these label values (as many as label names), made on
  // first use. The reference stays valid for the registry's life.
  Metric& With(std::initializer_list<std::string_view> values);
  Metric& With(const std::vector<std::string>& values);
  // Drops every combination (for values that come and go, like partitions).
  void Clear();

  const std::vector<std::string>& label_names() const { return label_names_; }
  template <typename Visit>
  void ForEach(Visit visit) const {
    absl::MutexLock lock(&mu_);
    for (const auto& [values, metric] : metrics_) visit(values, *metric);
  }

 private:
  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<Metric>()> make_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> metrics_ ABSL_GUARDED_BY(mu_);
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Each returns the metric of that name, registering it on first use; the
  // same name asked for with another type or labels is a programming error
  // (it aborts). Names follow Prometheus' rules (counters end in _total).
  Counter& AddCounter(const std::string& name, const std::string& help);
  Gauge& AddGauge(const std::string& name, const std::string& help);
  Histogram& AddHistogram(const std::string& name, const std::string& help, const std::vector<double>& buckets);
  Family<Counter>& AddCounterFamily(const std::string& name, const std::string& help,
                                    const std::vector<std::string>& label_names);
  Family<Gauge>& AddGaugeFamily(const std::string& name, const std::string& help,
                                const std::vector<std::string>& label_names);
  Family<Histogram>& AddHistogramFamily(const std::string& name, const std::string& help,
                                        const std::vector<std::string>& label_names,
                                        const std::vector<double>& buckets);
  // A counter kept elsewhere (the kernel's CPU time, a component's totals)
  // and copied in by an OnScrape update: exposed as a counter, set as a gauge.
  Family<Gauge>& AddCopiedCounterFamily(const std::string& name, const std::string& help,
                                        const std::vector<std::string>& label_names);
  Gauge& AddCopiedCounter(const std::string& name, const std::string& help);

  // `update` runs before each exposition (one at a time) until the returned
  // registration is destroyed.
  class Registration {
   public:
    Registration() = default;
    Registration(Registry* registry, uint64_t id) : registry_(registry), id_(id) {}
    Registration(Registration&& other) noexcept;
    Registration& operator=(Registration&& other) noexcept;
    ~Registration();

   private:
    Registry* registry_ = nullptr;
    uint64_t id_ = 0;
  };
  [[nodiscard]] Registration OnScrape(std::function<void()> update);

  // Every metric in the text exposition format, sorted by name.
  std::string Expose() const;

 private:
  struct Entry {
    Type type;
    std::string help;
    std::unique_ptr<Family<Counter>> counters;
    std::unique_ptr<Family<Gauge>> gauges;
    std::unique_ptr<Family<Histogram>> histograms;
  };
  Entry& Register(const std::string& name, const std::string& help, Type type,
                  const std::vector<std::string>& label_names, const std::vector<double>* buckets)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Forget(uint64_t id);
  static void AppendFamily(std::string& out, const std::string& name, const Entry& entry);

  mutable absl::Mutex scrape_mu_;  // one exposition at a time
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::function<void()>> updates_ ABSL_GUARDED_BY(mu_);
  uint64_t next_update_id_ ABSL_GUARDED_BY(mu_) = 1;
};

// The process's registry, which the server exposes on --metrics-listen.
Registry& Default();

}  // namespace segments::metrics
