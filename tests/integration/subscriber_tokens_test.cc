// Credentials rotated without a restart, through the real binary: subscriber
// tokens (refused at start with the line and the reason, enforced per type,
// reloaded when the file changes and on SIGHUP, a file that cannot be used
// keeping the tokens in force) and workspace secrets (swapped under load with
// no 401 for a secret in force); neither is ever written to the log.
#include "services/auth/subscriber_tokens.h"

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/gateway/http/http_test_client.h"
#include "tests/integration/gateway_process.h"
#include "tests/integration/webhook_requests.h"
#include "tests/support/eventually.h"
#include "tests/support/temp_dir.h"

namespace convocore::integration {
namespace {

namespace v1 = convocore::webhooks::v1;
using ::convocore::testing::Eventually;
using ::convocore::testing::TempDir;
using http::testing::HttpClient;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kCrmToken[] = "crm-7a0c51e2d9-token";
constexpr char kOpsToken[] = "ops-1f93b6c4e8-token";

std::string Entry(const std::string& name, const std::string& token,
                  const std::string& types) {
  const auth::TokenDigest digest = auth::DigestOf(token);
  return absl::StrCat(
      "    {\"name\": \"", name, "\", \"sha256\": \"",
      absl::BytesToHexString(absl::string_view(
          reinterpret_cast<const char*>(digest.data()), digest.size())),
      "\", \"event_types\": [", types, "]}");
}

std::string TokensFile(const std::vector<std::string>& entries) {
  std::string text = "{\n  \"tokens\": [\n";
  for (std::size_t i = 0; i < entries.size(); ++i) {
    absl::StrAppend(&text, i == 0 ? "" : ",\n", entries[i]);
  }
  return absl::StrCat(text, "\n  ]\n}\n");
}

std::string LeadWebhook(const std::string& name) {
  return absl::StrCat(
      R"({"type":"lead_captured","payload":{"agentId":"agent_1",)",
      R"("agentName":"Bot","leadName":")", name,
      R"(","leadEmail":"[email protected]","channel":"web-chat",)",
      R"("operation":"captured","createdAt":1718035200000,)",
      R"("workspaceSecret":")", kSampleSecret, R"("}})");
}

class SubscriberTokensTest : public ::testing::Test {
 protected:
  SubscriberTokensTest() : dir_("subscriber_tokens_test") {}

  std::string path() const { return (dir_.path() / "tokens.json").string(); }

  // Replaces the file as Kubernetes does: a new file renamed over the old.
  void WriteTokens(const std::string& text) {
    const std::string next = path() + ".next";
    std::ofstream(next, std::ios::binary | std::ios::trunc) << text;
    std::filesystem::rename(next, path());
  }

  std::unique_ptr<GatewayProcess> StartGateway() {
    auto gateway = std::make_unique<GatewayProcess>(std::vector<std::string>{
        "--store=memory", "--subscriber_tokens_file=" + path(),
        "--heartbeat_interval=200ms"});
    return gateway;
  }

  void ExpectNoTokenInLog(const GatewayProcess& gateway) {
    for (const char* token : {kCrmToken, kOpsToken}) {
      EXPECT_THAT(gateway.log(), Not(HasSubstr(token)));
    }
  }

  TempDir dir_;
  HttpClient client_;
};

TEST_F(SubscriberTokensTest, AFileThatDoesNotParseIsRefusedAtStart) {
  WriteTokens(TokensFile({Entry("crm", kCrmToken, "\"lead_captured\""),
                          Entry("ops", kOpsToken, "\"lead_capture\"")}));
  GatewayProcess gateway(
      {"--store=memory", "--subscriber_tokens_file=" + path()});
  EXPECT_EQ(gateway.WaitForExit(), 1);
  EXPECT_THAT(gateway.log(), HasSubstr(path()));
  EXPECT_THAT(gateway.log(), HasSubstr("line 4"));
  EXPECT_THAT(gateway.log(),
              HasSubstr("unknown event type \\\"lead_capture\\\""));
}

TEST_F(SubscriberTokensTest, ATokenReadsItsTypesAndNothingWithoutOne) {
  WriteTokens(TokensFile({Entry("crm", kCrmToken, "\"lead_captured\"")}));
  std::unique_ptr<GatewayProcess> gateway = StartGateway();
  ASSERT_TRUE(gateway->WaitReady()) << gateway->log();

  Subscriber anonymous(gateway->grpc_port(), v1::SubscribeRequest());
  std::optional<grpc::Status> refused = anonymous.WaitFinished();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->error_code(), grpc::StatusCode::UNAUTHENTICATED);

  v1::SubscribeRequest messages;
  messages.add_event_types(v1::EVENT_TYPE_MESSAGE_RECEIVED);
  Subscriber denied(gateway->grpc_port(), messages, kCrmToken);
  std::optional<grpc::Status> denial = denied.WaitFinished();
  ASSERT_TRUE(denial.has_value());
  EXPECT_EQ(denial->error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denial->error_message(), HasSubstr("message_received"));

  Subscriber crm(gateway->grpc_port(), v1::SubscribeRequest(), kCrmToken);
  ASSERT_TRUE(crm.WaitStarted());
  ASSERT_EQ(PostWebhook(client_, *gateway, "a message").code, 200);
  ASSERT_EQ(OrNoResponse(client_.PostJson(gateway->base_url() + "/webhooks",
                                          LeadWebhook("Jane")))
                .code,
            200);
  std::optional<v1::Event> event = crm.NextEvent();
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->event_type(), v1::EVENT_TYPE_LEAD_CAPTURED);
  EXPECT_EQ(event->sequence(), 2u);
  ExpectNoTokenInLog(*gateway);
}

TEST_F(SubscriberTokensTest, ARevokedTokenIsCutOffWhenTheFileChanges) {
  WriteTokens(TokensFile({Entry("crm", kCrmToken, "\"lead_captured\""),
                          Entry("ops", kOpsToken, "\"*\"")}));
  std::unique_ptr<GatewayProcess> gateway = StartGateway();
  ASSERT_TRUE(gateway->WaitReady()) << gateway->log();
  Subscriber crm(gateway->grpc_port(), v1::SubscribeRequest(), kCrmToken);
  Subscriber ops(gateway->grpc_port(), v1::SubscribeRequest(), kOpsToken);
  ASSERT_TRUE(crm.WaitStarted() && ops.WaitStarted());
  ASSERT_EQ(OrNoResponse(client_.PostJson(gateway->base_url() + "/webhooks",
                                          LeadWebhook("Ann")))
                .code,
            200);
  ASSERT_TRUE(crm.NextEvent().has_value());

  // No signal: the gateway sees the file change by itself.
  WriteTokens(TokensFile({Entry("ops", kOpsToken, "\"*\"")}));
  std::optional<grpc::Status> ended = crm.WaitFinished(absl::Seconds(10));
  ASSERT_TRUE(ended.has_value()) << gateway->log();
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(ended->error_message(), HasSubstr("revoked"));
  EXPECT_FALSE(ended->error_details().empty()) << "no resume detail";
  // The other stream goes on.
  ASSERT_EQ(PostWebhook(client_, *gateway, "after").code, 200);
  std::optional<v1::Event> next = ops.NextEvent();
  ASSERT_TRUE(next.has_value());
  ASSERT_TRUE(ops.NextEvent().has_value());
  EXPECT_THAT(gateway->log(), HasSubstr("subscriber tokens reloaded"));
  ExpectNoTokenInLog(*gateway);
}

TEST_F(SubscriberTokensTest, SighupReloadsAndABrokenFileKeepsTheTokensInForce) {
  WriteTokens(TokensFile({Entry("crm", kCrmToken, "\"lead_captured\"")}));
  std::unique_ptr<GatewayProcess> gateway = StartGateway();
  ASSERT_TRUE(gateway->WaitReady()) << gateway->log();

  WriteTokens("{\"tokens\": [\n  {\"name\": \"crm\",, }\n]}\n");
  gateway->Signal(SIGHUP);
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(gateway->log(),
                             "the subscriber tokens file cannot be used");
  }));
  EXPECT_THAT(gateway->log(), HasSubstr("line 2"));
  Subscriber still(gateway->grpc_port(), v1::SubscribeRequest(), kCrmToken);
  ASSERT_TRUE(still.WaitStarted());
  const http::testing::HttpResponse metrics =
      OrNoResponse(client_.Get(gateway->base_url() + "/metrics"));
  EXPECT_THAT(metrics.body,
              HasSubstr("gateway_subscriber_tokens_reloads_total{outcome="
                        "\"failed\"}"));
  EXPECT_THAT(metrics.body, HasSubstr("gateway_subscriber_tokens 1"));

  WriteTokens(TokensFile({Entry("crm", kCrmToken, "\"lead_captured\""),
                          Entry("ops", kOpsToken, "\"*\"")}));
  gateway->Signal(SIGHUP);
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(gateway->log(), "\"on\":\"SIGHUP\"") &&
           absl::StrContains(gateway->log(), "\"tokens\":2");
  })) << gateway->log();
  Subscriber ops(gateway->grpc_port(), v1::SubscribeRequest(), kOpsToken);
  ASSERT_TRUE(ops.WaitStarted());
  EXPECT_EQ(gateway->WaitForExit(absl::ZeroDuration()), std::nullopt);
  ExpectNoTokenInLog(*gateway);
}

TEST(GrpcGuardTest, AnOpenStreamOffLoopbackIsAnExplicitChoice) {
  GatewayProcess refused({"--store=memory", "--grpc_address=0.0.0.0"});
  EXPECT_EQ(refused.WaitForExit(), 2);
  EXPECT_THAT(refused.log(), HasSubstr("--grpc_allow_unauthenticated"));

  GatewayProcess open({"--store=memory", "--grpc_address=0.0.0.0",
                       "--grpc_allow_unauthenticated=true"});
  ASSERT_TRUE(open.WaitReady()) << open.log();
  // Logged right after "gateway ready".
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(open.log(), "the event stream is open to anyone");
  })) << open.log();
}

TEST(GrpcGuardTest, TlsFilesThatCannotBeReadAreNamedAtStart) {
  GatewayProcess gateway({"--store=memory",
                          "--grpc_tls_cert=/nonexistent/tls.crt",
                          "--grpc_tls_key=/nonexistent/tls.key"});
  EXPECT_EQ(gateway.WaitForExit(), 1);
  EXPECT_THAT(
      gateway.log(),
      HasSubstr("cannot read the TLS certificate /nonexistent/tls.crt"));
  EXPECT_THAT(gateway.log(), Not(HasSubstr("another instance")));
}

std::string Codes(const std::map<long, int>& codes) {
  std::string out;
  for (const auto& [code, count] : codes) {
    absl::StrAppend(&out, code, ":", count, " ");
  }
  return out;
}

// Posts webhooks carrying `secret` back to back on its own thread, counting
// the answers by code, until stopped.
class SecretSender {
 public:
  SecretSender(const GatewayProcess& gateway, std::string secret)
      : url_(gateway.base_url() + "/webhooks"), secret_(std::move(secret)) {
    thread_ = std::thread([this] {
      HttpClient client;
      for (int n = 0; !stop_.load(); ++n) {
        const std::string body = absl::StrCat(
            R"({"type":"webhook_test","payload":{"message":")", secret_.size(),
            "-", n, R"(","createdAt":1718035200000,"workspaceSecret":")",
            secret_, R"("}})");
        const long code = OrNoResponse(client.PostJson(url_, body)).code;
        absl::MutexLock lock(&mu_);
        ++codes_[code];
        last_ = code;
      }
    });
  }
  ~SecretSender() { Stop(); }

  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  // Forgets the answers so far.
  void Reset() {
    absl::MutexLock lock(&mu_);
    codes_.clear();
  }
  std::map<long, int> codes() {
    absl::MutexLock lock(&mu_);
    return codes_;
  }
  long last() {
    absl::MutexLock lock(&mu_);
    return last_;
  }

 private:
  const std::string url_;
  const std::string secret_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  std::map<long, int> codes_ ABSL_GUARDED_BY(mu_);
  long last_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

TEST_F(SubscriberTokensTest, WorkspaceSecretsRotateUnderLoadWithoutA401) {
  constexpr char kOld[] = "old-workspace-secret-51c0";
  constexpr char kNew[] = "new-workspace-secret-9e2d";
  const std::string secret_file = (dir_.path() / "secrets").string();
  auto write_secrets = [&](const std::string& text) {
    std::ofstream(secret_file + ".next", std::ios::trunc) << text;
    std::filesystem::rename(secret_file + ".next", secret_file);
  };
  write_secrets(absl::StrCat(kOld, "\n"));
  // Each sender posts back to back on one connection: no rate limit.
  GatewayProcess gateway(
      {"--store=memory", "--workspace_secret_file=" + secret_file,
       "--http_max_requests_per_connection=0"},
      {});
  ASSERT_TRUE(gateway.WaitReady()) << gateway.log();
  SecretSender old_sender(gateway, kOld);
  SecretSender new_sender(gateway, kNew);
  ASSERT_TRUE(Eventually([&] {
    return old_sender.codes()[200] > 20 && new_sender.codes()[401] > 20;
  }));

  // The new secret joins: the old one never fails meanwhile.
  old_sender.Reset();
  write_secrets(absl::StrCat(kOld, "\n", kNew, "\n"));
  ASSERT_TRUE(Eventually([&] { return new_sender.last() == 200; }))
      << gateway.log();
  new_sender.Reset();
  ASSERT_TRUE(Eventually([&] { return new_sender.codes()[200] > 20; }));
  std::map<long, int> old_codes = old_sender.codes();
  EXPECT_EQ(old_codes.size(), 1u) << "old secret answers: " << Codes(old_codes);
  EXPECT_GT(old_codes[200], 0);

  // The old one leaves: the new one never fails meanwhile.
  new_sender.Reset();
  write_secrets(absl::StrCat(kNew, "\n"));
  ASSERT_TRUE(Eventually([&] { return old_sender.last() == 401; }));
  // A file that holds no secret keeps the secrets in force.
  write_secrets("\n");
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(gateway.log(),
                             "the workspace secret file cannot be used");
  }));
  ASSERT_TRUE(Eventually([&] { return new_sender.codes()[200] > 20; }));
  old_sender.Stop();
  new_sender.Stop();
  std::map<long, int> new_codes = new_sender.codes();
  EXPECT_EQ(new_codes.size(), 1u) << "new secret answers: " << Codes(new_codes);
  const http::testing::HttpResponse metrics =
      OrNoResponse(client_.Get(gateway.base_url() + "/metrics"));
  EXPECT_THAT(metrics.body, HasSubstr("gateway_workspace_secrets 1"));
  EXPECT_THAT(metrics.body,
              HasSubstr("gateway_workspace_secret_reloads_total{outcome="
                        "\"failed\"} 1"));
  for (const char* secret : {kOld, kNew}) {
    EXPECT_THAT(gateway.log(), Not(HasSubstr(secret)));
    EXPECT_THAT(metrics.body, Not(HasSubstr(secret)));
  }
}

TEST_F(SubscriberTokensTest, WorkspaceLabelsReachTheEventsAndLimitTokens) {
  // The crm token is limited to acme.
  std::string tokens = TokensFile({Entry("acme-crm", kCrmToken, "\"*\""),
                                   Entry("ops", kOpsToken, "\"*\"")});
  const std::string crm_types = "\"event_types\": [\"*\"]}";
  tokens.replace(tokens.find(crm_types), crm_types.size(),
                 "\"event_types\": [\"*\"], \"workspaces\": [\"acme\"]}");
  WriteTokens(tokens);
  GatewayProcess gateway(
      {"--store=memory", "--subscriber_tokens_file=" + path()},
      {"CONVOCORE_WORKSPACE_SECRET=acme=acme-secret-1,globex=globex-secret-2"});
  ASSERT_TRUE(gateway.WaitReady()) << gateway.log();
  Subscriber crm(gateway.grpc_port(), v1::SubscribeRequest(), kCrmToken);
  v1::SubscribeRequest globex_only;
  globex_only.add_workspaces("globex");
  Subscriber ops(gateway.grpc_port(), globex_only, kOpsToken);
  ASSERT_TRUE(crm.WaitStarted() && ops.WaitStarted());
  Subscriber denied(gateway.grpc_port(), globex_only, kCrmToken);
  std::optional<grpc::Status> denial = denied.WaitFinished();
  ASSERT_TRUE(denial.has_value());
  EXPECT_EQ(denial->error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denial->error_message(), HasSubstr("workspace \"globex\""));

  // The same webhook from both workspaces: two events, each labelled.
  std::vector<Ack> acks;
  for (const char* secret : {"acme-secret-1", "globex-secret-2"}) {
    const http::testing::HttpResponse response = OrNoResponse(client_.PostJson(
        gateway.base_url() + "/webhooks",
        absl::StrCat(R"({"type":"webhook_test","payload":{"message":"hello",)",
                     R"("createdAt":1718035200000,"workspaceSecret":")", secret,
                     R"("}})")));
    ASSERT_EQ(response.code, 200) << response.body;
    std::optional<Ack> ack = ParseAck(response.body);
    ASSERT_TRUE(ack.has_value());
    EXPECT_FALSE(ack->duplicate);
    acks.push_back(*ack);
  }
  EXPECT_NE(acks[0].id, acks[1].id);
  std::optional<v1::Event> acme_event = crm.NextEvent();
  ASSERT_TRUE(acme_event.has_value());
  EXPECT_EQ(acme_event->workspace(), "acme");
  EXPECT_EQ(acme_event->sequence(), acks[0].sequence);
  std::optional<v1::Event> globex_event = ops.NextEvent();
  ASSERT_TRUE(globex_event.has_value());
  EXPECT_EQ(globex_event->workspace(), "globex");
  EXPECT_EQ(globex_event->sequence(), acks[1].sequence);
  // Neither stream gets the other workspace's event.
  EXPECT_FALSE(crm.NextEvent(absl::Milliseconds(300)).has_value());
  EXPECT_FALSE(ops.NextEvent(absl::Milliseconds(300)).has_value());
  for (const char* secret : {"acme-secret-1", "globex-secret-2"}) {
    EXPECT_THAT(gateway.log(), Not(HasSubstr(secret)));
  }
}

}  // namespace
}  // namespace convocore::integration
