#include "tests/gateway/metrics/exposition_checker.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "rapidjson/document.h"

namespace convocore::metrics::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

absl::StatusOr<std::vector<ParsedSample>> CheckExposition(
    std::string_view text) {
  char dir_template[] = "/tmp/exposition.XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    return absl::InternalError("mkdtemp failed");
  }
  const std::string dir = dir_template;
  const std::string input = dir + "/metrics.txt";
  const std::string output = dir + "/samples.jsonl";
  const std::string errors = dir + "/errors.txt";
  {
    std::ofstream out(input, std::ios::binary);
    out << text;
  }
  const std::string command =
      absl::StrCat("'", GATEWAY_TEST_PYTHON, "' '", GATEWAY_EXPOSITION_CHECKER,
                   "' '", input, "' >'", output, "' 2>'", errors, "'");
  const int rc = std::system(command.c_str());
  const std::string parsed = ReadFile(output);
  const std::string complaint = ReadFile(errors);
  std::system(absl::StrCat("rm -rf '", dir, "'").c_str());
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("exposition rejected (run buildscripts/install-deps.sh if "
                     "prometheus_client is missing): ",
                     complaint));
  }
  std::vector<ParsedSample> samples;
  for (absl::string_view line : absl::StrSplit(parsed, '\n')) {
    if (line.empty()) continue;
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseNanAndInfFlag>(line.data(), line.size());
    if (doc.HasParseError() || !doc.IsObject()) {
      return absl::InternalError(absl::StrCat("bad checker line: ", line));
    }
    ParsedSample sample;
    sample.name = doc["name"].GetString();
    for (const auto& label : std::as_const(doc)["labels"].GetObject()) {
      sample.labels[label.name.GetString()] = label.value.GetString();
    }
    sample.value = doc["value"].GetDouble();
    samples.push_back(std::move(sample));
  }
  return samples;
}

double SampleValue(const std::vector<ParsedSample>& samples,
                   std::string_view name,
                   const std::map<std::string, std::string>& labels) {
  for (const ParsedSample& sample : samples) {
    if (sample.name == name && sample.labels == labels) return sample.value;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace convocore::metrics::testing
