// The fixture of the tests that start the real binary: one gateway at a
// time, on free ports, stopped (SIGKILL if it must) when the test ends.
#ifndef TESTS_INTEGRATION_GATEWAY_FIXTURE_H_
#define TESTS_INTEGRATION_GATEWAY_FIXTURE_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/gateway_process.h"

namespace convocore::integration {

class GatewayTest : public ::testing::Test {
 protected:
  void TearDown() override { gateway_.reset(); }

  // (Re)starts the gateway with `args`, after the memory store and a 100 ms
  // heartbeat (which `args` may override), and waits until it is ready.
  void StartGateway(std::vector<std::string> args = {}) {
    gateway_.reset();
    args.insert(args.begin(), {"--store=memory", "--heartbeat_interval=100ms"});
    gateway_ = std::make_unique<GatewayProcess>(std::move(args));
    ASSERT_TRUE(gateway_->WaitReady()) << gateway_->log();
  }

  // `path` on the gateway's HTTP port.
  std::string Url(const std::string& path) const {
    return gateway_->base_url() + path;
  }

  std::unique_ptr<GatewayProcess> gateway_;
};

}  // namespace convocore::integration

#endif  // TESTS_INTEGRATION_GATEWAY_FIXTURE_H_
