#include "gateway/metrics/registry.h"

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/gateway/metrics/exposition_checker.h"

namespace convocore::metrics {
namespace {

using ::convocore::metrics::testing::CheckExposition;
using ::convocore::metrics::testing::SampleValue;
using ::testing::HasSubstr;

TEST(ExpositionFormatTest, EscapesHelpText) {
  EXPECT_EQ(EscapeHelp("a\\b\nc\"d"), "a\\\\b\\nc\"d");
}

TEST(ExpositionFormatTest, EscapesLabelValues) {
  EXPECT_EQ(EscapeLabelValue("a\\b\nc\"d"), "a\\\\b\\nc\\\"d");
  EXPECT_EQ(EscapeLabelValue("caf\xc3\xa9"), "caf\xc3\xa9");
}

TEST(ExpositionFormatTest, FormatsValues) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(0.0005), "0.0005");
  EXPECT_EQ(FormatValue(2.5e-5), "2.5e-05");
  EXPECT_EQ(FormatValue(67108864), "67108864");
  EXPECT_EQ(FormatValue(1e21), "1e+21");
  EXPECT_EQ(FormatValue(-0.125), "-0.125");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(ExpositionFormatTest, ValidatesNames) {
  EXPECT_TRUE(IsValidMetricName("gateway_webhooks_total"));
  EXPECT_TRUE(IsValidMetricName("a:b"));
  EXPECT_FALSE(IsValidMetricName("9lives"));
  EXPECT_FALSE(IsValidMetricName("with-dash"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_TRUE(IsValidLabelName("type"));
  EXPECT_FALSE(IsValidLabelName("__reserved"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
}

TEST(ExpositionFormatTest, TruncatesAtUtf8Boundary) {
  // "é" is two bytes; cutting inside it drops it whole.
  EXPECT_EQ(TruncateUtf8("ab\xc3\xa9", 3), "ab");
  EXPECT_EQ(TruncateUtf8("ab\xc3\xa9", 4), "ab\xc3\xa9");
  EXPECT_EQ(TruncateUtf8("abcdef", 4), "abcd");
  // A four-byte emoji cut anywhere inside is dropped whole.
  EXPECT_EQ(TruncateUtf8("x\xf0\x9f\x98\x80", 4), "x");
}

TEST(HistogramTest, CountsCumulativelyWithSum) {
  Histogram h({1, 2, 5});
  h.Observe(0.5);
  h.Observe(1);  // an upper bound is inclusive
  h.Observe(3);
  h.Observe(100);
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_THAT(s.cumulative, ::testing::ElementsAre(2, 2, 3, 4));
  EXPECT_EQ(s.count, 4u);
  EXPECT_DOUBLE_EQ(s.sum, 104.5);
}

TEST(FamilyTest, BoundsTheNumberOfSeries) {
  Registry registry;
  CounterFamily& family = registry.AddCounter(
      "fields_total", "Fields.", {"field"}, FamilyOptions{.max_series = 2});
  family.WithLabels({"a"}).Increment();
  family.WithLabels({"b"}).Increment();
  family.WithLabels({"c"}).Increment();
  family.WithLabels({"d"}).Increment(2);
  family.WithLabels({"a"}).Increment();  // still its own series
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("fields_total{field=\"a\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("fields_total{field=\"b\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("fields_total{field=\"_overflow\"} 3\n"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("field=\"c\"")));
}

TEST(FamilyTest, TruncatesLongLabelValues) {
  Registry registry;
  CounterFamily& family =
      registry.AddCounter("fields_total", "Fields.", {"field"},
                          FamilyOptions{.max_label_value_bytes = 4});
  family.WithLabels({"abcdefgh"}).Increment();
  family.WithLabels({"abcdxyz"}).Increment();
  EXPECT_THAT(registry.Render(), HasSubstr("fields_total{field=\"abcd\"} 2\n"));
}

TEST(FamilyTest, ConcurrentIncrementsAreAllCounted) {
  Registry registry;
  CounterFamily& family =
      registry.AddCounter("hits_total", "Hits.", {"thread"});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 10'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&family, t] {
      for (int i = 0; i < kPerThread; ++i) {
        family.WithLabels({t % 2 == 0 ? "even" : "odd"}).Increment();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(
      family.WithLabels({"even"}).value() + family.WithLabels({"odd"}).value(),
      static_cast<std::uint64_t>(kThreads * kPerThread));
}

TEST(RegistryTest, RendersHelpTypeAndSamplesInOrder) {
  Registry registry;
  registry.AddCounter("requests_total", "Requests.").Get().Increment(3);
  registry.AddGauge("temperature", "Degrees.").Get().Set(-1.5);
  EXPECT_EQ(registry.Render(),
            "# HELP requests_total Requests.\n"
            "# TYPE requests_total counter\n"
            "requests_total 3\n"
            "# HELP temperature Degrees.\n"
            "# TYPE temperature gauge\n"
            "temperature -1.5\n");
}

TEST(RegistryTest, RendersHistogramBucketsSumAndCount) {
  Registry registry;
  registry.AddHistogram("latency_seconds", "Latency.", {0.1, 1}, {"route"})
      .WithLabels({"a"})
      .Observe(0.5);
  EXPECT_EQ(registry.Render(),
            "# HELP latency_seconds Latency.\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{route=\"a\",le=\"0.1\"} 0\n"
            "latency_seconds_bucket{route=\"a\",le=\"1\"} 1\n"
            "latency_seconds_bucket{route=\"a\",le=\"+Inf\"} 1\n"
            "latency_seconds_sum{route=\"a\"} 0.5\n"
            "latency_seconds_count{route=\"a\"} 1\n");
}

TEST(RegistryTest, CallbacksAreReadAtRenderTime) {
  Registry registry;
  double subscribers = 1;
  registry.AddCallbackGauge("subscribers", "Open subscribers.",
                            [&subscribers] { return subscribers; });
  registry.AddCallbackCounter("dropped_total", "Dropped.", [] { return 7; });
  EXPECT_THAT(registry.Render(), HasSubstr("subscribers 1\n"));
  subscribers = 4;
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("subscribers 4\n"));
  EXPECT_THAT(text,
              HasSubstr("# TYPE dropped_total counter\ndropped_total 7\n"));
}

// The exposition, with every character the format must escape, read back by
// prometheus_client's parser: what was written is what is read.
TEST(RegistryTest, RealParserReadsBackEveryValue) {
  Registry registry;
  CounterFamily& fields = registry.AddCounter(
      "unknown_fields_total", "Unknown \"fields\" by name,\nwith a \\ in help.",
      {"field"});
  const std::vector<std::string> nasty = {
      "plain",     "quote\"inside", "back\\slash",
      "new\nline", "caf\xc3\xa9",   "emoji \xf0\x9f\x98\x80",
      "brace}{",   "comma,equals=", "trailing\\"};
  for (std::size_t i = 0; i < nasty.size(); ++i) {
    fields.WithLabels({nasty[i]}).Increment(i + 1);
  }
  registry.AddGauge("ratio", "A gauge.", {"a", "b"})
      .WithLabels({"x", "y"})
      .Set(0.25);
  HistogramFamily& latency = registry.AddHistogram(
      "latency_seconds", "Latency.", LatencyBuckets(), {"type"});
  latency.WithLabels({"t1"}).Observe(0.0003);
  latency.WithLabels({"t1"}).Observe(7);
  latency.WithLabels({"t1"}).Observe(60);
  latency.WithLabels({"t2"}).Observe(0.001);
  registry.AddCallbackGauge("nan_gauge", "Not a number.",
                            [] { return std::nan(""); });

  absl::StatusOr<std::vector<testing::ParsedSample>> samples =
      CheckExposition(registry.Render());
  ASSERT_TRUE(samples.ok()) << samples.status();
  for (std::size_t i = 0; i < nasty.size(); ++i) {
    EXPECT_EQ(
        SampleValue(*samples, "unknown_fields_total", {{"field", nasty[i]}}),
        static_cast<double>(i + 1))
        << nasty[i];
  }
  EXPECT_EQ(SampleValue(*samples, "ratio", {{"a", "x"}, {"b", "y"}}), 0.25);
  EXPECT_EQ(SampleValue(*samples, "latency_seconds_count", {{"type", "t1"}}),
            3);
  EXPECT_EQ(SampleValue(*samples, "latency_seconds_bucket",
                        {{"type", "t1"}, {"le", "0.0005"}}),
            1);
  EXPECT_EQ(SampleValue(*samples, "latency_seconds_bucket",
                        {{"type", "t1"}, {"le", "10"}}),
            2);
  EXPECT_EQ(SampleValue(*samples, "latency_seconds_bucket",
                        {{"type", "t1"}, {"le", "+Inf"}}),
            3);
  EXPECT_DOUBLE_EQ(
      SampleValue(*samples, "latency_seconds_sum", {{"type", "t1"}}), 67.0003);
  EXPECT_TRUE(std::isnan(SampleValue(*samples, "nan_gauge")));
}

TEST(RegistryTest, CheckerRejectsABrokenExposition) {
  // The checker must be strict enough to catch what we could get wrong.
  EXPECT_FALSE(CheckExposition("x_total 1\n").ok());  // no HELP/TYPE
  EXPECT_FALSE(CheckExposition("# HELP x X.\n# TYPE x counter\nx 1\n").ok());
  EXPECT_FALSE(CheckExposition("# HELP g G.\n# TYPE g gauge\n"
                               "g{a=\"un\"escaped\"} 1\n")
                   .ok());
  EXPECT_FALSE(CheckExposition("# HELP h H.\n# TYPE h histogram\n"
                               "h_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n")
                   .ok());  // no +Inf bucket
}

}  // namespace
}  // namespace convocore::metrics
