#include "metrics/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "common/log.h"

namespace segments::metrics {
namespace {

void AddTo(std::atomic<double>& target, double by) {
  double seen = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(seen, seen + by, std::memory_order_relaxed)) {
  }
}

// Numbers as Prometheus reads them: shortest round-trip form, and its
// spellings of the infinities and NaN.
std::string Number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", value);
}

// Label values escape backslash, double quote and newline; help text
// escapes backslash and newline.
std::string Escaped(std::string_view text, bool quotes) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="1",b="2"}` (with `extra` last, for a histogram's le), or nothing.
std::string Labels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                   std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return {};
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += fmt::format("{}=\"{}\"", names[i], Escaped(values[i], true));
  }
  if (!extra_name.empty()) {
    if (!names.empty()) out += ',';
    out += fmt::format("{}=\"{}\"", extra_name, Escaped(extra_value, true));
  }
  out += '}';
  return out;
}

[[noreturn]] void Misuse(const std::string& message) {
  log::Error("metrics: {}", message);
  std::abort();
}

}  // namespace

void Gauge::Add(double by) { AddTo(value_, by); }

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(upper_bounds_.size() + 1)) {
  if (!std::is_sorted(upper_bounds_.begin(), upper_bounds_.end())) Misuse("histogram bounds must be increasing");
}

void Histogram::Observe(double value) {
  const size_t bucket = std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  AddTo(sum_, value);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot{upper_bounds_, {}, sum_.load(std::memory_order_relaxed)};
  snapshot.cumulative_counts.reserve(upper_bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    snapshot.cumulative_counts.push_back(total);
  }
  return snapshot;
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> buckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                              0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  return buckets;
}

const std::vector<double>& TaskBuckets() {
  static const std::vector<double> buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                              2.5,   5,    10,    30,   60,  120,  300};
  return buckets;
}

template <typename Metric>
Metric& Family<Metric>::With(std::initializer_list<std::string_view> values) {
  return With(std::vector<std::string>(values.begin(), values.end()));
}

template <typename Metric>
Metric& Family<Metric>::With(const std::vector<std::string>& values) {
  if (values.size() != label_names_.size())
    Misuse(fmt::format("{} label values for {} names", values.size(), label_names_.size()));
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Metric>& metric = metrics_[values];
  if (!metric) metric = make_();
  return *metric;
}

template <typename Metric>
void Family<Metric>::Clear() {
  absl::MutexLock lock(&mu_);
  metrics_.clear();
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Registry::Entry& Registry::Register(const std::string& name, const std::string& help, Type type,
                                    const std::vector<std::string>& label_names, const std::vector<double>* buckets) {
  auto [it, inserted] = entries_.try_emplace(name);
  Entry& entry = it->second;
  if (!inserted) {
    const std::vector<std::string>* names = nullptr;
    if (entry.type == Type::kCounter) names = &entry.counters->label_names();
    if (entry.type == Type::kGauge || entry.type == Type::kCopiedCounter) names = &entry.gauges->label_names();
    if (entry.type == Type::kHistogram) names = &entry.histograms->label_names();
    if (entry.type != type || *names != label_names) Misuse(fmt::format("{} registered twice, differently", name));
    return entry;
  }
  entry.type = type;
  entry.help = help;
  switch (type) {
    case Type::kCounter:
      entry.counters = std::make_unique<Family<Counter>>(label_names, [] { return std::make_unique<Counter>(); });
      break;
    case Type::kGauge:
    case Type::kCopiedCounter:
      entry.gauges = std::make_unique<Family<Gauge>>(label_names, [] { return std::make_unique<Gauge>(); });
      break;
    case Type::kHistogram:
      entry.histograms = std::make_unique<Family<Histogram>>(
          label_names, [bounds = *buckets] { return std::make_unique<Histogram>(bounds); });
      break;
  }
  return entry;
}

Counter& Registry::AddCounter(const std::string& name, const std::string& help) {
  return AddCounterFamily(name, help, {}).With({});
}
Gauge& Registry::AddGauge(const std::string& name, const std::string& help) {
  return AddGaugeFamily(name, help, {}).With({});
}
Histogram& Registry::AddHistogram(const std::string& name, const std::string& help,
                                  const std::vector<double>& buckets) {
  return AddHistogramFamily(name, help, {}, buckets).With({});
}

Family<Counter>& Registry::AddCounterFamily(const std::string& name, const std::string& help,
                                            const std::vector<std::string>& label_names) {
  if (!name.ends_with("_total")) Misuse(fmt::format("counter {} must end in _total", name));
  absl::MutexLock lock(&mu_);
  return *Register(name, help, Type::kCounter, label_names, nullptr).counters;
}
Family<Gauge>& Registry::AddGaugeFamily(const std::string& name, const std::string& help,
                                        const std::vector<std::string>& label_names) {
  absl::MutexLock lock(&mu_);
  return *Register(name, help, Type::kGauge, label_names, nullptr).gauges;
}
Family<Histogram>& Registry::AddHistogramFamily(const std::string& name, const std::string& help,
                                                const std::vector<std::string>& label_names,
                                                const std::vector<double>& buckets) {
  absl::MutexLock lock(&mu_);
  return *Register(name, help, Type::kHistogram, label_names, &buckets).histograms;
}

Family<Gauge>& Registry::AddCopiedCounterFamily(const std::string& name, const std::string& help,
                                                const std::vector<std::string>& label_names) {
  if (!name.ends_with("_total")) Misuse(fmt::format("counter {} must end in _total", name));
  absl::MutexLock lock(&mu_);
  return *Register(name, help, Type::kCopiedCounter, label_names, nullptr).gauges;
}

Gauge& Registry::AddCopiedCounter(const std::string& name, const std::string& help) {
  return AddCopiedCounterFamily(name, help, {}).With({});
}

Registry::Registration::Registration(Registration&& other) noexcept
    : registry_(std::exchange(other.registry_, nullptr)), id_(other.id_) {}

Registry::Registration& Registry::Registration::operator=(Registration&& other) noexcept {
  if (this != &other) {
    if (registry_) registry_->Forget(id_);
    registry_ = std::exchange(other.registry_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

Registry::Registration::~Registration() {
  if (registry_) registry_->Forget(id_);
}

Registry::Registration Registry::OnScrape(std::function<void()> update) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_update_id_++;
  updates_.emplace(id, std::move(update));
  return Registration(this, id);
}

void Registry::Forget(uint64_t id) {
  // Waits for a scrape in progress, which may be running this very update.
  absl::MutexLock scrape(&scrape_mu_);
  absl::MutexLock lock(&mu_);
  updates_.erase(id);
}

void Registry::AppendFamily(std::string& out, const std::string& name, const Entry& entry) {
  static constexpr std::string_view kTypeNames[] = {"counter", "gauge", "histogram", "counter"};
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, Escaped(entry.help, false), name,
                     kTypeNames[static_cast<int>(entry.type)]);
  switch (entry.type) {
    case Type::kCounter:
      entry.counters->ForEach([&](const std::vector<std::string>& values, const Counter& counter) {
        out += fmt::format("{}{} {}\n", name, Labels(entry.counters->label_names(), values), counter.Value());
      });
      break;
    case Type::kGauge:
    case Type::kCopiedCounter:
      entry.gauges->ForEach([&](const std::vector<std::string>& values, const Gauge& gauge) {
        out += fmt::format("{}{} {}\n", name, Labels(entry.gauges->label_names(), values), Number(gauge.Value()));
      });
      break;
    case Type::kHistogram:
      entry.histograms->ForEach([&](const std::vector<std::string>& values, const Histogram& histogram) {
        const std::vector<std::string>& names = entry.histograms->label_names();
        const Histogram::Snapshot snapshot = histogram.Read();
        for (size_t i = 0; i < snapshot.cumulative_counts.size(); ++i) {
          const double bound = i < snapshot.upper_bounds.size() ? snapshot.upper_bounds[i] : INFINITY;
          out += fmt::format("{}_bucket{} {}\n", name, Labels(names, values, "le", Number(bound)),
                             snapshot.cumulative_counts[i]);
        }
        out += fmt::format("{}_sum{} {}\n", name, Labels(names, values), Number(snapshot.sum));
        out += fmt::format("{}_count{} {}\n", name, Labels(names, values), snapshot.count());
      });
      break;
  }
}

std::string Registry::Expose() const {
  absl::MutexLock scrape(&scrape_mu_);
  std::vector<std::function<void()>> updates;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, update] : updates_) updates.push_back(update);
  }
  for (const auto& update : updates) update();  // without mu_: they set metrics

  std::string out;
  absl::MutexLock lock(&mu_);
  for (const auto& entry : entries_) AppendFamily(out, entry.first, entry.second);
  return out;
}

Registry& Default() {
  static auto* registry = new Registry();  // never destroyed: metrics outlive every thread that updates them
  return *registry;
}

}  // namespace segments::metrics
