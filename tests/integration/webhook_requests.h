// What the integration suites send to a gateway and read from its answers:
// distinct webhooks, POST /webhooks and /readyz through libcurl, the
// acknowledgement of a 200, and the stream read back over gRPC.
#ifndef TESTS_INTEGRATION_WEBHOOK_REQUESTS_H_
#define TESTS_INTEGRATION_WEBHOOK_REQUESTS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/gateway/http/http_test_client.h"
#include "tests/integration/gateway_process.h"

namespace convocore::integration {

// A distinct message_received webhook for `tag`, its content padded with
// `padding` bytes (distinct content, hence a distinct event id).
inline std::string Webhook(const std::string& tag, std::size_t padding = 0) {
  return absl::StrCat(
      R"({"type":"message_received","payload":{"agentId":"agent_1",)",
      R"("agentName":"Bot","convoId":"convo_1","messageContent":")", tag,
      std::string(padding, 'x'),
      R"(","channel":"whatsapp","messageType":"text","from":"+1234567890",)",
      R"("createdAt":1718035200000,"workspaceSecret":")", kSampleSecret,
      R"("}})");
}

// The answer to a request; code 0 (and the error as the body) when there was
// none, e.g. because the gateway is gone.
inline http::testing::HttpResponse OrNoResponse(
    absl::StatusOr<http::testing::HttpResponse> response) {
  if (response.ok()) return *std::move(response);
  http::testing::HttpResponse none;
  none.body = std::string(response.status().message());
  return none;
}

inline http::testing::HttpResponse PostWebhook(
    http::testing::HttpClient& client, const GatewayProcess& gateway,
    const std::string& tag) {
  return OrNoResponse(
      client.PostJson(gateway.base_url() + "/webhooks", Webhook(tag)));
}

inline long Readyz(http::testing::HttpClient& client,
                   const GatewayProcess& gateway) {
  return OrNoResponse(client.Get(gateway.base_url() + "/readyz")).code;
}

// The body of a 200.
struct Ack {
  std::uint64_t sequence = 0;
  std::string id;
  bool duplicate = false;
};

inline std::optional<Ack> ParseAck(const std::string& body) {
  static const std::regex kAck(
      R"re("sequence":\s*([0-9]+).*"id":\s*"([^"]*)".*"duplicate":\s*(true|false))re");
  std::smatch match;
  if (!std::regex_search(body, match, kAck)) return std::nullopt;
  return Ack{std::stoull(match[1]), match[2], match[3] == "true"};
}

// The stream after `after_sequence`, in stream order, read up to the first
// event with a sequence >= `through`. A stream that ends meanwhile (a
// replica whose store is recovering ends it with UNAVAILABLE) is resumed
// after the last event read, as the client helpers do; a minute in all.
inline std::vector<webhooks::v1::Event> ReadStream(
    const GatewayProcess& gateway, std::uint64_t after_sequence,
    std::uint64_t through) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  std::vector<webhooks::v1::Event> events;
  std::uint64_t last = after_sequence;
  while (last < through && absl::Now() < deadline) {
    webhooks::v1::SubscribeRequest request;
    request.set_after_sequence(last);
    Subscriber subscriber(gateway.grpc_port(), request);
    while (last < through) {
      std::optional<webhooks::v1::Event> event =
          subscriber.NextEvent(std::min(deadline - absl::Now(),
                                        absl::Seconds(5)));
      if (!event.has_value()) break;  // ended, or silent for 5 s
      last = event->sequence();
      events.push_back(*std::move(event));
    }
  }
  EXPECT_GE(last, through) << "the stream never reached " << through;
  return events;
}

}  // namespace convocore::integration

#endif  // TESTS_INTEGRATION_WEBHOOK_REQUESTS_H_
