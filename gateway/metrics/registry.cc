#include "gateway/metrics/registry.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

// Debian's Abseil is built with its own absl::string_view, distinct from
// std::string_view: absl::StrCat takes the former, our API the latter.

namespace convocore::metrics {
namespace {

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// `labels` rendered as {a="x",b="y"}, with `extra` (already formatted, e.g.
// le="0.5") appended; empty when there is nothing to render.
std::string LabelSet(const std::vector<std::string>& names,
                     const std::vector<std::string>& values,
                     absl::string_view extra = {}) {
  if (names.empty() && extra.empty()) return "";
  std::string out = "{";
  for (std::size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ",", names[i], "=\"",
                    EscapeLabelValue(values[i]), "\"");
  }
  if (!extra.empty()) absl::StrAppend(&out, names.empty() ? "" : ",", extra);
  out += "}";
  return out;
}

void AppendHeader(std::string* out, absl::string_view name,
                  absl::string_view help, absl::string_view type) {
  absl::StrAppend(out, "# HELP ", name, " ",
                  EscapeHelp(std::string_view(help.data(), help.size())), "\n",
                  "# TYPE ", name, " ", type, "\n");
}

void RenderSeries(std::string* out, const std::string& name,
                  const std::string& labels, const Counter& counter) {
  absl::StrAppend(out, name, labels, " ", counter.value(), "\n");
}

void RenderSeries(std::string* out, const std::string& name,
                  const std::string& labels, const Gauge& gauge) {
  absl::StrAppend(out, name, labels, " ", FormatValue(gauge.value()), "\n");
}

constexpr absl::string_view TypeName(const Counter*) { return "counter"; }
constexpr absl::string_view TypeName(const Gauge*) { return "gauge"; }
constexpr absl::string_view TypeName(const Histogram*) { return "histogram"; }

// A value read at scrape time.
class CallbackFamily : public internal::FamilyBase {
 public:
  CallbackFamily(std::string name, std::string help, absl::string_view type,
                 std::function<double()> read)
      : name_(std::move(name)),
        help_(std::move(help)),
        type_(type),
        read_(std::move(read)) {}

  void Render(std::string* out) const override {
    AppendHeader(out, name_, help_, type_);
    absl::StrAppend(out, name_, " ", FormatValue(read_()), "\n");
  }

 private:
  const std::string name_;
  const std::string help_;
  const absl::string_view type_;
  const std::function<double()> read_;
};

}  // namespace

bool IsValidMetricName(std::string_view name) {
  if (name.empty() || !(IsNameStart(name[0]) || name[0] == ':')) return false;
  for (char c : name) {
    if (!(IsNameStart(c) || IsDigit(c) || c == ':')) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || !IsNameStart(name[0])) return false;
  if (name.size() >= 2 && name[0] == '_' && name[1] == '_') return false;
  for (char c : name) {
    if (!(IsNameStart(c) || IsDigit(c))) return false;
  }
  return true;
}

namespace {

// Backslash and line feed escaped, and the double quote when `quote`: the
// exposition escapes HELP text without the quote, label values with it.
std::string Escape(std::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string EscapeHelp(std::string_view help) { return Escape(help, false); }

std::string EscapeLabelValue(std::string_view value) {
  return Escape(value, true);
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // The shortest digits that read back as the same double, in fixed
  // notation unless the exponent is extreme, so that bucket bounds read as
  // written (le="0.0005", not the equally short "5e-04").
  char buffer[400];
  const std::to_chars_result sci = std::to_chars(
      buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  if (sci.ec != std::errc()) return "NaN";
  const std::string scientific(buffer, sci.ptr);
  const int exponent = std::atoi(scientific.c_str() + scientific.find('e') + 1);
  if (exponent < -4 || exponent >= 21) return scientific;
  const std::to_chars_result fixed = std::to_chars(
      buffer, buffer + sizeof(buffer), value, std::chars_format::fixed);
  if (fixed.ec != std::errc()) return scientific;
  return std::string(buffer, fixed.ptr);
}

std::string_view TruncateUtf8(std::string_view value, std::size_t max_bytes) {
  if (value.size() <= max_bytes) return value;
  std::size_t end = max_bytes;
  // Step back over continuation bytes (10xxxxxx) to a sequence start.
  while (end > 0 && (static_cast<unsigned char>(value[end]) & 0xC0) == 0x80) {
    --end;
  }
  return value.substr(0, end);
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      buckets_(new std::atomic<std::uint64_t>[upper_bounds_.size() + 1]) {
  for (std::size_t i = 0; i < upper_bounds_.size(); ++i) {
    ABSL_RAW_CHECK(std::isfinite(upper_bounds_[i]),
                   "histogram bounds must be finite");
    ABSL_RAW_CHECK(i == 0 || upper_bounds_[i - 1] < upper_bounds_[i],
                   "histogram bounds must increase");
  }
  for (std::size_t i = 0; i <= upper_bounds_.size(); ++i) buckets_[i] = 0;
}

void Histogram::Observe(double value) {
  // Buckets are few (about 16): a linear scan beats a binary search here.
  std::size_t i = 0;
  while (i < upper_bounds_.size() && value > upper_bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.upper_bounds = upper_bounds_;
  s.cumulative.reserve(upper_bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  // The count is the +Inf bucket by construction, so that the exposition is
  // consistent even while observations race with the scrape.
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

namespace {

void RenderSeries(std::string* out, const std::string& name,
                  const std::vector<std::string>& label_names,
                  const std::vector<std::string>& label_values,
                  const Histogram& histogram) {
  const Histogram::Snapshot s = histogram.snapshot();
  for (std::size_t i = 0; i <= s.upper_bounds.size(); ++i) {
    const std::string le = absl::StrCat(
        "le=\"",
        i < s.upper_bounds.size() ? FormatValue(s.upper_bounds[i]) : "+Inf",
        "\"");
    absl::StrAppend(out, name, "_bucket",
                    LabelSet(label_names, label_values, le), " ",
                    s.cumulative[i], "\n");
  }
  const std::string labels = LabelSet(label_names, label_values);
  absl::StrAppend(out, name, "_sum", labels, " ", FormatValue(s.sum), "\n");
  absl::StrAppend(out, name, "_count", labels, " ", s.count, "\n");
}

template <typename Metric>
void RenderSeries(std::string* out, const std::string& name,
                  const std::vector<std::string>& label_names,
                  const std::vector<std::string>& label_values,
                  const Metric& metric) {
  RenderSeries(out, name, LabelSet(label_names, label_values), metric);
}

}  // namespace

template <typename Metric>
Family<Metric>::Family(std::string name, std::string help,
                       std::vector<std::string> labels, FamilyOptions options,
                       Factory factory)
    : name_(std::move(name)),
      help_(std::move(help)),
      labels_(std::move(labels)),
      options_(options),
      factory_(std::move(factory)) {
  for (const std::string& label : labels_) {
    ABSL_RAW_CHECK(IsValidLabelName(label) && label != "le",
                   "invalid metric label name");
  }
  ABSL_RAW_CHECK(options_.max_series >= 1, "max_series must be positive");
}

template <typename Metric>
Metric& Family<Metric>::WithLabels(absl::Span<const std::string_view> values) {
  ABSL_RAW_CHECK(values.size() == labels_.size(),
                 "wrong number of metric label values");
  std::vector<std::string> key;
  key.reserve(values.size());
  for (std::string_view v : values) {
    key.emplace_back(TruncateUtf8(v, options_.max_label_value_bytes));
  }
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = series_.find(key);
    if (it != series_.end()) return *it->second;
  }
  absl::MutexLock lock(&mu_);
  auto it = series_.find(key);
  if (it != series_.end()) return *it->second;
  // The overflow series is created when the limit is reached and does not
  // count against it.
  const std::size_t regular =
      series_.size() - series_.count(std::vector<std::string>(
                           labels_.size(), std::string(kOverflowLabelValue)));
  if (!labels_.empty() && regular >= options_.max_series) {
    key.assign(labels_.size(), std::string(kOverflowLabelValue));
    it = series_.find(key);
    if (it != series_.end()) return *it->second;
  }
  return *series_.emplace(std::move(key), factory_()).first->second;
}

template <typename Metric>
void Family<Metric>::Render(std::string* out) const {
  AppendHeader(out, name_, help_,
               TypeName(static_cast<const Metric*>(nullptr)));
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [values, metric] : series_) {
    RenderSeries(out, name_, labels_, values, *metric);
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

void Registry::Register(const std::string& name,
                        std::unique_ptr<internal::FamilyBase> family) {
  ABSL_RAW_CHECK(IsValidMetricName(name), "invalid metric name");
  absl::MutexLock lock(&mu_);
  for (const std::string& existing : names_) {
    ABSL_RAW_CHECK(existing != name, "metric registered twice");
  }
  names_.push_back(name);
  families_.push_back(std::move(family));
}

CounterFamily& Registry::AddCounter(std::string name, std::string help,
                                    std::vector<std::string> labels,
                                    FamilyOptions options) {
  ABSL_RAW_CHECK(name.size() > 6 && name.ends_with("_total"),
                 "a counter's name ends in _total");
  auto family = std::make_unique<CounterFamily>(
      name, std::move(help), std::move(labels), options,
      [] { return std::make_unique<Counter>(); });
  CounterFamily& ref = *family;
  Register(name, std::move(family));
  return ref;
}

GaugeFamily& Registry::AddGauge(std::string name, std::string help,
                                std::vector<std::string> labels,
                                FamilyOptions options) {
  auto family = std::make_unique<GaugeFamily>(
      name, std::move(help), std::move(labels), options,
      [] { return std::make_unique<Gauge>(); });
  GaugeFamily& ref = *family;
  Register(name, std::move(family));
  return ref;
}

HistogramFamily& Registry::AddHistogram(std::string name, std::string help,
                                        std::vector<double> upper_bounds,
                                        std::vector<std::string> labels,
                                        FamilyOptions options) {
  auto family = std::make_unique<HistogramFamily>(
      name, std::move(help), std::move(labels), options,
      [upper_bounds = std::move(upper_bounds)] {
        return std::make_unique<Histogram>(upper_bounds);
      });
  HistogramFamily& ref = *family;
  Register(name, std::move(family));
  return ref;
}

void Registry::AddCallbackGauge(std::string name, std::string help,
                                std::function<double()> read) {
  auto family = std::make_unique<CallbackFamily>(name, std::move(help), "gauge",
                                                 std::move(read));
  Register(name, std::move(family));
}

void Registry::AddCallbackCounter(std::string name, std::string help,
                                  std::function<double()> read) {
  ABSL_RAW_CHECK(name.size() > 6 && name.ends_with("_total"),
                 "a counter's name ends in _total");
  auto family = std::make_unique<CallbackFamily>(name, std::move(help),
                                                 "counter", std::move(read));
  Register(name, std::move(family));
}

std::string Registry::Render() const {
  std::string out;
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& family : families_) family->Render(&out);
  return out;
}

}  // namespace convocore::metrics
