// HTTP ingress faults through the real webhook-gateway binary: signals that
// must not stop it, and requests that must each get a truthful answer.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/gateway/http/http_test_client.h"
#include "tests/integration/gateway_process.h"
#include "tests/support/eventually.h"

namespace convocore::integration {
namespace {

using ::convocore::http::testing::HttpClient;
using ::convocore::http::testing::HttpResponse;
using ::convocore::http::testing::RawConnection;
using ::convocore::testing::Eventually;
using ::testing::HasSubstr;

class HttpIngressTest : public ::testing::Test {
 protected:
  void StartGateway(std::vector<std::string> args = {}) {
    args.insert(args.begin(), {"--store=memory", "--heartbeat_interval=100ms"});
    gateway_ = std::make_unique<GatewayProcess>(std::move(args));
    ASSERT_TRUE(gateway_->WaitReady()) << gateway_->log();
  }

  std::string Url(const std::string& path) const {
    return gateway_->base_url() + path;
  }

  std::unique_ptr<GatewayProcess> gateway_;
};

TEST_F(HttpIngressTest, SighupIsLoggedAndIgnored) {
  StartGateway();
  gateway_->Signal(SIGHUP);
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(gateway_->log(), "SIGHUP received and ignored");
  })) << gateway_->log();
  gateway_->Signal(SIGHUP);  // and again
  EXPECT_FALSE(gateway_->WaitForExit(absl::Milliseconds(200)).has_value());
  HttpClient client;
  absl::StatusOr<HttpResponse> posted =
      client.PostJson(Url("/webhooks"), ReadSample("webhook_test.json"));
  ASSERT_TRUE(posted.ok()) << posted.status();
  EXPECT_EQ(posted->code, 200) << posted->body;
  gateway_->Signal(SIGTERM);
  EXPECT_EQ(gateway_->WaitForExit(), 0) << gateway_->log();
}

}  // namespace
}  // namespace convocore::integration
