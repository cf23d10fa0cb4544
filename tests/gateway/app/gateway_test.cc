// The whole gateway in-process, on free ports: a webhook in over HTTP, the
// graceful shutdown. tests/integration runs the real binary.
#include "gateway/app/gateway.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/gateway/http/http_test_client.h"

namespace convocore::app {
namespace {

using ::convocore::http::testing::CanConnect;
using ::convocore::http::testing::HttpClient;

GatewayOptions TestOptions() {
  FlagValues flags;
  flags.http_address = "127.0.0.1";
  flags.grpc_address = "127.0.0.1";
  flags.http_port = 0;
  flags.grpc_port = 0;
  flags.store = "memory";
  flags.http_threads = 2;
  absl::StatusOr<GatewayOptions> options =
      BuildOptions(flags, "your_workspace_secret");
  EXPECT_TRUE(options.ok()) << options.status();
  return *options;
}

std::string Sample(const std::string& name) {
  std::ifstream in(std::string(GATEWAY_TESTDATA_DIR) + "/samples/" + name,
                   std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(GatewayTest, AcceptsAWebhookAndShutsDownCleanly) {
  absl::StatusOr<std::unique_ptr<Gateway>> gateway =
      Gateway::Start(TestOptions());
  ASSERT_TRUE(gateway.ok()) << gateway.status();
  const std::string base =
      absl::StrCat("http://127.0.0.1:", (*gateway)->http_port());
  HttpClient client;
  EXPECT_EQ(client.Get(base + "/readyz")->code, 200);
  auto response =
      client.PostJson(base + "/webhooks", Sample("webhook_test.json"));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->code, 200);
  EXPECT_THAT(response->body, ::testing::HasSubstr("\"sequence\":1"));
  auto metrics = client.Get(base + "/metrics");
  EXPECT_THAT(metrics->body, ::testing::HasSubstr(
                                 "gateway_webhooks_total{type=\"webhook_test\""
                                 ",outcome=\"accepted\"} 1"));
  EXPECT_THAT(metrics->body, ::testing::HasSubstr("gateway_ready 1"));

  const std::uint16_t port = (*gateway)->http_port();
  EXPECT_TRUE((*gateway)->Shutdown(absl::Seconds(5)).ok());
  EXPECT_FALSE(CanConnect(port));
  EXPECT_TRUE((*gateway)->Shutdown(absl::Seconds(5)).ok());  // idempotent
}

TEST(GatewayTest, APortInUseIsAClearStartupError) {
  absl::StatusOr<std::unique_ptr<Gateway>> first =
      Gateway::Start(TestOptions());
  ASSERT_TRUE(first.ok()) << first.status();
  GatewayOptions options = TestOptions();
  options.grpc_port = (*first)->grpc_port();
  absl::StatusOr<std::unique_ptr<Gateway>> second = Gateway::Start(options);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), ::testing::HasSubstr("gRPC"));
  EXPECT_THAT(second.status().message(),
              ::testing::HasSubstr("Address already in use"));

  options = TestOptions();
  options.http_port = (*first)->http_port();
  second = Gateway::Start(options);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), ::testing::HasSubstr("HTTP"));
  EXPECT_THAT(second.status().message(), ::testing::HasSubstr("--http_port"));
}

}  // namespace
}  // namespace convocore::app
