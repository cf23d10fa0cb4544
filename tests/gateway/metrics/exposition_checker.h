// Test helper: checks a Prometheus text exposition with a real parser
// (prometheus_client, from PyPI, run by check_exposition.py) and returns the
// samples it read, so that tests can compare values.
#ifndef TESTS_GATEWAY_METRICS_EXPOSITION_CHECKER_H_
#define TESTS_GATEWAY_METRICS_EXPOSITION_CHECKER_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace convocore::metrics::testing {

struct ParsedSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// OK with every sample if the exposition parses and passes the checks of
// check_exposition.py; the parser's complaint otherwise.
absl::StatusOr<std::vector<ParsedSample>> CheckExposition(
    std::string_view text);

// The value of the sample named `name` with exactly `labels`, or NaN.
double SampleValue(const std::vector<ParsedSample>& samples,
                   std::string_view name,
                   const std::map<std::string, std::string>& labels = {});

}  // namespace convocore::metrics::testing

#endif  // TESTS_GATEWAY_METRICS_EXPOSITION_CHECKER_H_
