// How fast the translator turns a webhook body into an Event, on one core,
// for each spec sample and a 10 KiB formData; and, for comparison, protobuf's
// JsonStringToMessage (into a google.protobuf.Struct, the least it could do
// for these bodies) and RapidJSON's DOM parse alone, copying and in situ.
// Prints translations/s per case.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "gateway/core/json_document.h"
#include "gateway/core/translator.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "rapidjson/document.h"

namespace convocore::gateway {
namespace {

constexpr char kSecret[] = "your_workspace_secret";

struct Case {
  std::string name;
  std::string body;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (const auto& entry :
       std::filesystem::directory_iterator(GATEWAY_SAMPLES_DIR)) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    cases.push_back({entry.path().stem().string(), text.str()});
  }
  std::sort(cases.begin(), cases.end(),
            [](const Case& a, const Case& b) { return a.name < b.name; });
  // A form of about 10 KiB: 100 fields of ~100 bytes, some not strings.
  std::string form_data;
  for (int i = 0; i < 100; ++i) {
    absl::StrAppend(
        &form_data, i == 0 ? "" : ",", "\"field_", i, "\":",
        i % 10 == 0 ? absl::StrCat(i * 1.5)
                    : absl::StrCat("\"", std::string(88, 'a' + i % 26), "\""));
  }
  cases.push_back(
      {"form_submitted_10KiB",
       absl::StrCat(
           R"({"type":"form_submitted","payload":{"agentId":"agent_1",)",
           R"("convoId":"convo_1","formType":"ui_engine_form",)",
           R"("channel":"webchat","createdAt":1718035200000,)",
           R"("formData":{)", form_data, R"(},"workspaceSecret":")", kSecret,
           R"("}})")});
  return cases;
}

void SetRate(benchmark::State& state, const std::string& body) {
  state.counters["translations/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * body.size()));
}

void BM_Translate(benchmark::State& state, const std::string& body) {
  auto translator = Translator::Create({.secrets = {kSecret}});
  if (!translator.ok()) {
    state.SkipWithError(std::string(translator.status().message()).c_str());
    return;
  }
  const absl::Time now = absl::Now();
  for (auto _ : state) {
    auto translation = (*translator)->Translate(body, now);
    if (!translation.ok()) {
      state.SkipWithError(std::string(translation.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(translation);
  }
  SetRate(state, body);
}

void BM_ProtobufJsonToStruct(benchmark::State& state, const std::string& body) {
  for (auto _ : state) {
    google::protobuf::Struct parsed;
    auto status = google::protobuf::util::JsonStringToMessage(body, &parsed);
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(parsed);
  }
  SetRate(state, body);
}

constexpr unsigned kFlags = rapidjson::kParseIterativeFlag |
                            rapidjson::kParseValidateEncodingFlag |
                            rapidjson::kParseFullPrecisionFlag;

void BM_RapidJsonCopy(benchmark::State& state, const std::string& body) {
  for (auto _ : state) {
    rapidjson::Document document;
    document.Parse<kFlags>(body.data(), body.size());
    benchmark::DoNotOptimize(document);
  }
  SetRate(state, body);
}

void BM_RapidJsonInsitu(benchmark::State& state, const std::string& body) {
  for (auto _ : state) {
    std::string buffer = body;  // in situ needs a writable, NUL-ended copy
    rapidjson::Document document;
    document.ParseInsitu<kFlags>(buffer.data());
    benchmark::DoNotOptimize(document);
  }
  SetRate(state, body);
}

void BM_JsonDocument(benchmark::State& state, const std::string& body) {
  const JsonLimits limits;
  for (auto _ : state) {
    JsonDocument document;
    auto status = document.Parse(body, limits);
    benchmark::DoNotOptimize(status);
    benchmark::DoNotOptimize(document.root());
  }
  SetRate(state, body);
}

}  // namespace
}  // namespace convocore::gateway

int main(int argc, char** argv) {
  using namespace convocore::gateway;  // NOLINT: main only
  static const std::vector<Case> cases = Cases();
  for (const Case& c : cases) {
    benchmark::RegisterBenchmark(("Translate/" + c.name).c_str(), BM_Translate,
                                 c.body);
  }
  for (const Case& c : cases) {
    benchmark::RegisterBenchmark(("ProtobufJsonToStruct/" + c.name).c_str(),
                                 BM_ProtobufJsonToStruct, c.body);
    benchmark::RegisterBenchmark(("JsonDocument/" + c.name).c_str(),
                                 BM_JsonDocument, c.body);
    benchmark::RegisterBenchmark(("RapidJsonCopy/" + c.name).c_str(),
                                 BM_RapidJsonCopy, c.body);
    benchmark::RegisterBenchmark(("RapidJsonInsitu/" + c.name).c_str(),
                                 BM_RapidJsonInsitu, c.body);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
