#include "gateway/app/env_flags.h"

#include <map>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

ABSL_FLAG(int, test_port, 8080, "A port.");
ABSL_FLAG(absl::Duration, test_timeout, absl::Seconds(10), "A timeout.");
ABSL_FLAG(std::string, test_name, "default", "A name.");

namespace convocore::app {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<std::string> kFlags = {"test_name", "test_port",
                                         "test_timeout"};

EnvironmentLookup Lookup(std::map<std::string, std::string> environment) {
  return [environment = std::move(environment)](
             const std::string& name) -> std::optional<std::string> {
    auto it = environment.find(name);
    if (it == environment.end()) return std::nullopt;
    return it->second;
  };
}

class EnvFlagsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    absl::SetFlag(&FLAGS_test_port, 8080);
    absl::SetFlag(&FLAGS_test_timeout, absl::Seconds(10));
    absl::SetFlag(&FLAGS_test_name, "default");
  }
};

TEST_F(EnvFlagsTest, VariableNameIsGatewayAndTheFlagInUpperCase) {
  EXPECT_EQ(EnvironmentVariableFor("http_port"), "GATEWAY_HTTP_PORT");
  EXPECT_EQ(EnvironmentVariableFor("workspace_secret_file"),
            "GATEWAY_WORKSPACE_SECRET_FILE");
}

TEST_F(EnvFlagsTest, FindsTheFlagsOfAFile) {
  EXPECT_EQ(FlagsDefinedIn("gateway/app/env_flags_test.cc"), kFlags);
  EXPECT_TRUE(FlagsDefinedIn("no/such/file.cc").empty());
}

TEST_F(EnvFlagsTest, SetVariablesSetTheirFlags) {
  ASSERT_TRUE(ApplyEnvironmentToFlags(
                  kFlags, Lookup({{"GATEWAY_TEST_PORT", "9090"},
                                  {"GATEWAY_TEST_TIMEOUT", "2.5s"}}))
                  .ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_test_port), 9090);
  EXPECT_EQ(absl::GetFlag(FLAGS_test_timeout), absl::Milliseconds(2500));
  EXPECT_EQ(absl::GetFlag(FLAGS_test_name), "default");
}

TEST_F(EnvFlagsTest, ABadValueNamesTheVariableAndTheFlag) {
  absl::Status status = ApplyEnvironmentToFlags(
      kFlags, Lookup({{"GATEWAY_TEST_PORT", "eighty"}}));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("GATEWAY_TEST_PORT"));
  EXPECT_THAT(status.message(), HasSubstr("--test_port"));
  EXPECT_EQ(absl::GetFlag(FLAGS_test_port), 8080);
}

TEST_F(EnvFlagsTest, UnknownGatewayVariablesAreReported) {
  EXPECT_THAT(
      UnknownGatewayVariables(kFlags, {"PATH=/bin", "GATEWAY_TEST_PORT=1",
                                       "GATEWAY_TEST_PROT=2", "GATEWAY_=x"}),
      ElementsAre("GATEWAY_TEST_PROT", "GATEWAY_"));
}

}  // namespace
}  // namespace convocore::app
