// A small metrics registry and its Prometheus text exposition (format 0.0.4).
//
// Debian packages no Prometheus C++ client, so the gateway keeps its own:
// counters, gauges and histograms, with or without labels, plus values read
// from a callback at scrape time (hub statistics). Updating a metric is
// lock-free; looking a labelled series up takes a reader lock, so hot paths
// keep the returned reference.
//
// Label values that come from the outside world (unknown field names, unknown
// event types) must not grow the exposition without bound: every labelled
// family holds at most `max_series` series; further label sets all share one
// overflow series whose label values are kOverflowLabelValue, and long values
// are cut to `max_label_value_bytes` (at a UTF-8 boundary).
#ifndef GATEWAY_METRICS_REGISTRY_H_
#define GATEWAY_METRICS_REGISTRY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace convocore::metrics {

// The label value of the series that collects every label set past a
// family's max_series.
inline constexpr std::string_view kOverflowLabelValue = "_overflow";

// A monotonically increasing count.
class Counter {
 public:
  void Increment(std::uint64_t n = 1) {
    value_.fetch_add(n, std::memory_order_relaxed);
  }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into fixed buckets, with their sum.
class Histogram {
 public:
  struct Snapshot {
    std::vector<double> upper_bounds;       // without +Inf
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;  // == cumulative.back()
  };

  // `upper_bounds` must be strictly increasing and finite.
  explicit Histogram(std::vector<double> upper_bounds);

  void Observe(double value);
  Snapshot snapshot() const;

 private:
  const std::vector<double> upper_bounds_;
  // One per bound, then one for values above the last bound.
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

// Latency buckets in seconds, from 50 µs to 10 s.
std::vector<double> LatencyBuckets();

struct FamilyOptions {
  std::size_t max_series = 1000;
  std::size_t max_label_value_bytes = 128;
};

namespace internal {

// What the registry needs of every family to render it.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  // Appends the family's HELP, TYPE and sample lines.
  virtual void Render(std::string* out) const = 0;
};

}  // namespace internal

// The series of one metric name, keyed by their label values.
template <typename Metric>
class Family : public internal::FamilyBase {
 public:
  using Factory = std::function<std::unique_ptr<Metric>()>;

  Family(std::string name, std::string help, std::vector<std::string> labels,
         FamilyOptions options, Factory factory);

  // The series for `values`, one per label name, in the order the labels were
  // declared; created on first use. The reference stays valid for the life of
  // the registry.
  Metric& WithLabels(absl::Span<const std::string_view> values);
  Metric& WithLabels(std::initializer_list<std::string_view> values) {
    return WithLabels(absl::MakeConstSpan(values.begin(), values.size()));
  }
  // The series of a family without labels.
  Metric& Get() { return WithLabels(absl::Span<const std::string_view>()); }

  void Render(std::string* out) const override;

 private:
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> labels_;
  const FamilyOptions options_;
  const Factory factory_;
  mutable absl::Mutex mu_;
  // Ordered, so that the exposition is stable.
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> series_
      ABSL_GUARDED_BY(mu_);
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Owns every metric family and renders them in registration order.
// Thread-safe. Names are fixed by our code; an invalid name or a name
// registered twice is a programming error and aborts at startup.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // A counter's name ends in "_total".
  CounterFamily& AddCounter(std::string name, std::string help,
                            std::vector<std::string> labels = {},
                            FamilyOptions options = {});
  GaugeFamily& AddGauge(std::string name, std::string help,
                        std::vector<std::string> labels = {},
                        FamilyOptions options = {});
  HistogramFamily& AddHistogram(std::string name, std::string help,
                                std::vector<double> upper_bounds,
                                std::vector<std::string> labels = {},
                                FamilyOptions options = {});

  // Values read when the registry is rendered (e.g. from the hub's Stats()).
  // `read` is called from the scraping thread and must be thread-safe.
  void AddCallbackGauge(std::string name, std::string help,
                        std::function<double()> read);
  void AddCallbackCounter(std::string name, std::string help,
                          std::function<double()> read);

  // The Prometheus text exposition of every family.
  std::string Render() const;

 private:
  void Register(const std::string& name,
                std::unique_ptr<internal::FamilyBase> family);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<internal::FamilyBase>> families_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::string> names_ ABSL_GUARDED_BY(mu_);
};

// The exposition format's escaping and number formatting, exposed for tests.
bool IsValidMetricName(std::string_view name);
bool IsValidLabelName(std::string_view name);
std::string EscapeHelp(std::string_view help);
std::string EscapeLabelValue(std::string_view value);
std::string FormatValue(double value);
// `value` cut to at most `max_bytes` without splitting a UTF-8 sequence.
std::string_view TruncateUtf8(std::string_view value, std::size_t max_bytes);

}  // namespace convocore::metrics

#endif  // GATEWAY_METRICS_REGISTRY_H_
