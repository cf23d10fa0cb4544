// The real webhook-gateway binary on free ports, driven like a platform
// would drive it: libcurl posts webhooks, a gRPC client subscribes, signals
// stop it.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "convocore/webhooks/v1/events.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/gateway/http/http_test_client.h"
#include "tests/gateway/metrics/exposition_checker.h"
#include "tests/integration/gateway_fixture.h"
#include "tests/integration/gateway_process.h"

namespace convocore::integration {
namespace {

namespace v1 = ::convocore::webhooks::v1;
using ::convocore::http::testing::CanConnect;
using ::convocore::http::testing::HttpClient;
using ::convocore::http::testing::HttpResponse;
using ::convocore::http::testing::RawConnection;
using ::convocore::metrics::testing::CheckExposition;
using ::convocore::metrics::testing::SampleValue;
using ::testing::HasSubstr;
using ::testing::Not;

rapidjson::Document ParseJson(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str(), text.size());
  EXPECT_FALSE(doc.HasParseError()) << text;
  return doc;
}

// EVENT_TYPE_MESSAGE_RECEIVED for "message_received".
v1::EventType TypeOf(const std::string& type) {
  v1::EventType value = v1::EVENT_TYPE_UNSPECIFIED;
  v1::EventType_Parse("EVENT_TYPE_" + absl::AsciiStrToUpper(type), &value);
  return value;
}

// Every field of the sample webhook is in the event, with its value: typed
// fields by their documented key, enum fields as their `*_raw` sibling, and
// nothing else set; the secret nowhere.
void ExpectEventCarriesSample(const v1::Event& event,
                              const std::string& sample_text) {
  rapidjson::Document sample = ParseJson(sample_text);
  const std::string type = sample["type"].GetString();
  SCOPED_TRACE(type);
  EXPECT_EQ(event.type_raw(), type);
  EXPECT_EQ(event.event_type(), TypeOf(type));
  EXPECT_NE(event.event_type(), v1::EVENT_TYPE_UNSPECIFIED);
  EXPECT_GT(event.sequence(), 0u);
  EXPECT_FALSE(event.id().empty());
  EXPECT_TRUE(event.has_receive_time());
  const rapidjson::Value& payload = sample["payload"];
  EXPECT_EQ(google::protobuf::util::TimeUtil::TimestampToMilliseconds(
                event.create_time()),
            payload["createdAt"].GetInt64());
  EXPECT_EQ(event.envelope_extras_json(), "");
  EXPECT_EQ(event.payload_extras_json(), "");
  EXPECT_EQ(event.SerializeAsString().find(kSampleSecret), std::string::npos);

  const google::protobuf::FieldDescriptor* field =
      v1::Event::descriptor()->FindFieldByName(type);
  ASSERT_NE(field, nullptr);
  ASSERT_TRUE(event.GetReflection()->HasField(event, field));
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(
                  event.GetReflection()->GetMessage(event, field), &json)
                  .ok());
  rapidjson::Document typed = ParseJson(json);
  for (const auto& member : payload.GetObject()) {
    const std::string key = member.name.GetString();
    SCOPED_TRACE(key);
    if (key == "workspaceSecret") {
      EXPECT_FALSE(typed.HasMember(key.c_str()));
      continue;
    }
    const std::string raw = key + "Raw";
    if (typed.HasMember(raw.c_str())) {
      EXPECT_EQ(typed[raw.c_str()], member.value);
      const std::string enum_value = typed[key.c_str()].GetString();
      EXPECT_THAT(enum_value, Not(HasSubstr("UNSPECIFIED")));
      EXPECT_THAT(enum_value, Not(HasSubstr("OTHER")));
    } else if (key == "createdAt") {
      EXPECT_EQ(typed[key.c_str()].GetString(),
                std::to_string(member.value.GetInt64()));
    } else if (member.value.IsObject()) {
      // Kept as JSON text (formData): the same JSON once parsed.
      ASSERT_TRUE(typed.HasMember(key.c_str()));
      EXPECT_EQ(ParseJson(typed[key.c_str()].GetString()), member.value);
    } else {
      ASSERT_TRUE(typed.HasMember(key.c_str()));
      EXPECT_EQ(typed[key.c_str()], member.value);
    }
  }
  for (const auto& member : std::as_const(typed).GetObject()) {
    std::string key = member.name.GetString();
    if (absl::EndsWith(key, "Raw")) key.resize(key.size() - 3);
    EXPECT_TRUE(payload.HasMember(key.c_str()))
        << member.name.GetString() << " is set but not in the sample";
  }
}

class GatewayIntegrationTest : public GatewayTest {
 protected:
  absl::StatusOr<HttpResponse> PostSample(HttpClient& client,
                                          const std::string& name) {
    return client.PostJson(Url("/webhooks"), ReadSample(name));
  }
};

TEST_F(GatewayIntegrationTest, EverySampleReachesASubscriberOfItsType) {
  StartGateway();
  const std::vector<std::string> names = SampleNames();
  ASSERT_EQ(names.size(), 15u);
  // One subscriber per type, each filtered for its type, all open before
  // anything is posted.
  std::vector<std::unique_ptr<Subscriber>> subscribers;
  for (const std::string& name : names) {
    v1::SubscribeRequest request;
    request.add_event_types(
        TypeOf(ParseJson(ReadSample(name))["type"].GetString()));
    subscribers.push_back(
        std::make_unique<Subscriber>(gateway_->grpc_port(), request));
  }
  for (auto& subscriber : subscribers) ASSERT_TRUE(subscriber->WaitStarted());

  HttpClient client;
  std::map<std::string, std::uint64_t> sequences;
  for (const std::string& name : names) {
    absl::StatusOr<HttpResponse> response = PostSample(client, name);
    ASSERT_TRUE(response.ok()) << response.status();
    ASSERT_EQ(response->code, 200) << name << ": " << response->body;
    rapidjson::Document ack = ParseJson(response->body);
    EXPECT_FALSE(ack["duplicate"].GetBool());
    sequences[name] = ack["sequence"].GetUint64();
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    SCOPED_TRACE(names[i]);
    std::optional<std::vector<v1::Event>> events =
        subscribers[i]->EventsUntilCaughtUpTo(names.size());
    ASSERT_TRUE(events.has_value());
    ASSERT_EQ(events->size(), 1u);  // its own type, and nothing else
    EXPECT_EQ((*events)[0].sequence(), sequences[names[i]]);
    ExpectEventCarriesSample((*events)[0], ReadSample(names[i]));
  }
}

TEST_F(GatewayIntegrationTest, ADuplicateIsAcknowledgedButStreamedOnce) {
  StartGateway();
  Subscriber subscriber(gateway_->grpc_port(), {});
  ASSERT_TRUE(subscriber.WaitStarted());
  HttpClient client;
  auto first = PostSample(client, "lead_captured.json");
  auto second = PostSample(client, "lead_captured.json");
  ASSERT_EQ(first->code, 200);
  ASSERT_EQ(second->code, 200);
  rapidjson::Document a = ParseJson(first->body);
  rapidjson::Document b = ParseJson(second->body);
  EXPECT_EQ(a["sequence"], b["sequence"]);
  EXPECT_EQ(a["id"], b["id"]);
  EXPECT_TRUE(b["duplicate"].GetBool());
  auto events = subscriber.EventsUntilCaughtUpTo(1);
  ASSERT_TRUE(events.has_value());
  EXPECT_EQ(events->size(), 1u);
}

TEST_F(GatewayIntegrationTest, BadInputsGetTheirStatusAndServingGoesOn) {
  StartGateway({"--max_body_bytes=4096", "--log_level=debug"});
  std::string wrong_secret = ReadSample("webhook_test.json");
  wrong_secret.replace(wrong_secret.find(kSampleSecret),
                       std::strlen(kSampleSecret), "not_the_secret");
  std::string no_secret = R"({"type":"webhook_test","payload":{
      "message":"m","createdAt":1718035200000}})";
  struct Case {
    std::string what;
    std::string method;
    std::string path;
    std::string body;
    std::vector<std::string> headers;
    long code;
  };
  const std::vector<Case> cases = {
      {"malformed JSON", "POST", "/webhooks", "{\"type\":", {}, 400},
      {"not an object", "POST", "/webhooks", "[1,2]", {}, 400},
      {"invalid UTF-8", "POST", "/webhooks", "{\"type\":\"\xff\"}", {}, 400},
      {"bad createdAt",
       "POST",
       "/webhooks",
       R"({"type":"webhook_test","payload":{"message":"m","createdAt":"abc",
           "workspaceSecret":"your_workspace_secret"}})",
       {},
       400},
      {"wrong secret", "POST", "/webhooks", wrong_secret, {}, 401},
      {"missing secret", "POST", "/webhooks", no_secret, {}, 401},
      {"too large", "POST", "/webhooks", std::string(5000, ' '), {}, 413},
      {"not JSON",
       "POST",
       "/webhooks",
       ReadSample("webhook_test.json"),
       {"Content-Type: text/plain"},
       415},
      {"wrong method", "GET", "/webhooks", "", {}, 405},
      {"unknown path", "POST", "/webhook", "{}", {}, 404},
  };
  HttpClient client;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    std::vector<std::string> headers = c.headers;
    if (headers.empty() && c.method == "POST") {
      headers.push_back("Content-Type: application/json");
    }
    absl::StatusOr<HttpResponse> response =
        client.Request(c.method, Url(c.path), c.body, headers);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->code, c.code) << response->body;
    rapidjson::Document error = ParseJson(response->body);
    ASSERT_TRUE(error.IsObject());
    EXPECT_EQ(error["error"]["code"].GetInt(), c.code);
    EXPECT_THAT(response->body, Not(HasSubstr(kSampleSecret)));
    // Still serving.
    EXPECT_EQ(client.Get(Url("/healthz"))->code, 200);
  }
  // Garbage that is not HTTP at all.
  absl::StatusOr<RawConnection> raw =
      RawConnection::Connect(gateway_->http_port());
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->Exchange("\x16\x03\x01 not http\r\n\r\n")->code, 400);
  // And a good webhook still goes through.
  EXPECT_EQ(PostSample(client, "webhook_test.json")->code, 200);
  EXPECT_EQ(gateway_->WaitForExit(absl::ZeroDuration()), std::nullopt);
  // Even at debug level, the log has neither the secret nor a payload.
  EXPECT_THAT(gateway_->log(), HasSubstr("webhook rejected"));
  EXPECT_THAT(gateway_->log(), Not(HasSubstr(kSampleSecret)));
  EXPECT_THAT(gateway_->log(), Not(HasSubstr("This is a test event")));
}

TEST_F(GatewayIntegrationTest, KeepAliveHoldsWithoutAConnectionHeader) {
  StartGateway();
  HttpClient client;  // libcurl sends no Connection header on HTTP/1.1
  long connections = 0;
  for (const std::string& name : SampleNames()) {
    absl::StatusOr<HttpResponse> response = PostSample(client, name);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->code, 200);
    EXPECT_EQ(response->headers["connection"], "Keep-Alive");
    connections += response->new_connections;
  }
  EXPECT_EQ(connections, 1);
}

TEST_F(GatewayIntegrationTest, CurlDoesNotWaitOnExpect100Continue) {
  StartGateway();
  absl::StatusOr<RawConnection> raw =
      RawConnection::Connect(gateway_->http_port());
  ASSERT_TRUE(raw.ok());
  const std::string body = ReadSample("bug_reported.json");
  EXPECT_EQ(
      raw->Exchange(absl::StrCat("POST /webhooks HTTP/1.1\r\nHost: x\r\n"
                                 "Content-Type: application/json\r\n"
                                 "Expect: 100-continue\r\nContent-Length: ",
                                 body.size(), "\r\n\r\n"))
          ->code,
      100);
  EXPECT_EQ(raw->Exchange(body)->code, 200);
}

TEST_F(GatewayIntegrationTest, MetricsParseAndCountWhatWasSent) {
  StartGateway({"--max_body_bytes=4096"});
  Subscriber subscriber(gateway_->grpc_port(), {});
  ASSERT_TRUE(subscriber.WaitStarted());
  HttpClient client;
  for (const std::string& name : SampleNames()) {
    ASSERT_EQ(PostSample(client, name)->code, 200);
  }
  ASSERT_EQ(PostSample(client, "form_submitted.json")->code, 200);  // dup
  ASSERT_EQ(client.PostJson(Url("/webhooks"), "{")->code, 400);
  ASSERT_EQ(client.PostJson(Url("/webhooks"), "nope")->code, 400);
  ASSERT_EQ(client
                .PostJson(Url("/webhooks"),
                          R"({"type":"x","payload":{"workspaceSecret":"no"}})")
                ->code,
            401);
  ASSERT_EQ(
      client
          .Request("POST", Url("/webhooks"), "{}", {"Content-Type: text/plain"})
          ->code,
      415);
  ASSERT_EQ(client.PostJson(Url("/webhooks"), std::string(5000, ' '))->code,
            413);
  const std::string unknown =
      R"({"type":"survey_completed","payload":{"score":5,"createdAt":1,
          "workspaceSecret":"your_workspace_secret"}})";
  ASSERT_EQ(client.PostJson(Url("/webhooks"), unknown)->code, 200);

  absl::StatusOr<HttpResponse> metrics = client.Get(Url("/metrics"));
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(metrics->headers["content-type"], HasSubstr("version=0.0.4"));
  absl::StatusOr<std::vector<metrics::testing::ParsedSample>> samples =
      CheckExposition(metrics->body);
  ASSERT_TRUE(samples.ok()) << samples.status();
  for (const std::string& name : SampleNames()) {
    const std::string type = name.substr(0, name.size() - 5);
    EXPECT_EQ(SampleValue(*samples, "gateway_webhooks_total",
                          {{"type", type}, {"outcome", "accepted"}}),
              1)
        << type;
  }
  EXPECT_EQ(SampleValue(*samples, "gateway_webhooks_total",
                        {{"type", "form_submitted"}, {"outcome", "duplicate"}}),
            1);
  EXPECT_EQ(SampleValue(*samples, "gateway_webhooks_total",
                        {{"type", "other"}, {"outcome", "accepted"}}),
            1);
  EXPECT_EQ(SampleValue(*samples, "gateway_unknown_event_types_total",
                        {{"type", "survey_completed"}}),
            1);
  EXPECT_EQ(SampleValue(*samples, "gateway_webhooks_rejected_total",
                        {{"reason", "invalid"}}),
            2);
  EXPECT_EQ(SampleValue(*samples, "gateway_webhooks_rejected_total",
                        {{"reason", "unauthenticated"}}),
            1);
  EXPECT_EQ(SampleValue(*samples, "gateway_webhooks_rejected_total",
                        {{"reason", "unsupported_media_type"}}),
            1);
  EXPECT_EQ(SampleValue(*samples, "gateway_webhooks_rejected_total",
                        {{"reason", "too_large"}}),
            1);
  EXPECT_EQ(SampleValue(*samples, "gateway_ingest_latency_seconds_count"), 17);
  EXPECT_EQ(SampleValue(*samples, "gateway_events_published_total"), 16);
  // Every group commit is timed, and together they hold every event.
  EXPECT_EQ(SampleValue(*samples, "gateway_store_append_events_sum"), 16);
  EXPECT_EQ(SampleValue(*samples, "gateway_store_append_seconds_count"),
            SampleValue(*samples, "gateway_commit_batches_total"));
  EXPECT_GT(SampleValue(*samples, "gateway_store_append_seconds_sum"), 0);
  EXPECT_EQ(SampleValue(*samples, "gateway_last_sequence"), 16);
  EXPECT_EQ(SampleValue(*samples, "gateway_retained_events"), 16);
  EXPECT_GT(SampleValue(*samples, "gateway_retained_bytes"), 0);
  EXPECT_EQ(SampleValue(*samples, "gateway_subscribers"), 1);
  EXPECT_EQ(SampleValue(*samples, "gateway_ready"), 1);
  EXPECT_GT(SampleValue(*samples, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(SampleValue(*samples, "process_open_fds"), 3);
  EXPECT_GT(SampleValue(*samples, "process_threads"), 4);
  EXPECT_GT(SampleValue(*samples, "process_cpu_seconds_total"), 0);
  EXPECT_GT(SampleValue(*samples, "process_start_time_seconds"), 1.7e9);
  EXPECT_EQ(SampleValue(*samples, "gateway_http_requests_total",
                        {{"route", "webhooks"}, {"code", "200"}}),
            17);
}

TEST_F(GatewayIntegrationTest, ASecondInstanceOnTheSamePortFailsClearly) {
  StartGateway();
  for (const std::string& flag :
       {absl::StrCat("--http_port=", gateway_->http_port()),
        absl::StrCat("--grpc_port=", gateway_->grpc_port())}) {
    SCOPED_TRACE(flag);
    GatewayProcess second({"--store=memory", "--log_format=plain", flag});
    EXPECT_EQ(second.WaitForExit(), 1);
    const std::vector<std::string> lines = second.log_lines();
    ASSERT_EQ(lines.size(), 1u) << second.log();
    EXPECT_THAT(lines[0], HasSubstr("ERROR"));
    EXPECT_THAT(lines[0], HasSubstr("Address already in use"));
    EXPECT_THAT(lines[0], HasSubstr(flag.substr(0, flag.find('='))));
  }
  // The first one is unharmed.
  HttpClient client;
  EXPECT_EQ(PostSample(client, "webhook_test.json")->code, 200);
}

TEST_F(GatewayIntegrationTest, StartupErrorsAreOneLineAndNonZero) {
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> env;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{}, {}, "CONVOCORE_WORKSPACE_SECRET"},
      {{"--workspace_secret_file=/nonexistent/secret"},
       {},
       "/nonexistent/secret"},
      {{"--http_port=eighty"}, {"CONVOCORE_WORKSPACE_SECRET=s"}, "http_port"},
      {{},
       {"CONVOCORE_WORKSPACE_SECRET=s", "GATEWAY_GRPC_PORT=x"},
       "GATEWAY_GRPC_PORT"},
      {{"--store=cloud"}, {"CONVOCORE_WORKSPACE_SECRET=s"}, "--store"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.says);
    GatewayProcess process(c.args, c.env);
    const std::optional<int> code = process.WaitForExit();
    ASSERT_TRUE(code.has_value());
    EXPECT_NE(*code, 0);
    EXPECT_LT(*code, 128) << "killed by a signal: " << process.log();
    const std::vector<std::string> lines = process.log_lines();
    ASSERT_EQ(lines.size(), 1u) << process.log();
    EXPECT_THAT(lines[0], HasSubstr(c.says));
  }
}

TEST_F(GatewayIntegrationTest, SigtermClosesTheListenerAndExitsZero) {
  StartGateway({"--shutdown_timeout=5s"});
  HttpClient client;
  EXPECT_EQ(client.Get(Url("/readyz"))->code, 200);
  // An idle keep-alive connection, accepted before the signal.
  absl::StatusOr<RawConnection> raw =
      RawConnection::Connect(gateway_->http_port());
  ASSERT_TRUE(raw.ok());
  ASSERT_EQ(raw->Exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")->code,
            200);
  gateway_->Signal(SIGTERM);
  EXPECT_EQ(gateway_->WaitForExit(), 0) << gateway_->log();
  EXPECT_FALSE(CanConnect(gateway_->http_port()));
  EXPECT_THAT(gateway_->log(), HasSubstr("\"message\":\"stopped\""));
}

// SIGTERM while clients post and a subscriber streams: exit 0 within the
// deadline, the stream ends with UNAVAILABLE, and every webhook that got a
// 200 is in the log: streamed before the end, or read by resuming after a
// restart on the same data directory.
TEST_F(GatewayIntegrationTest, SigtermLosesNothingAccepted) {
  char dir[] = "/tmp/gateway_integration.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string data_dir = dir;
  const std::vector<std::string> args = {
      "--store=disk", "--data_dir=" + data_dir, "--heartbeat_interval=100ms",
      "--shutdown_timeout=5s"};
  gateway_ = std::make_unique<GatewayProcess>(args);
  ASSERT_TRUE(gateway_->WaitReady()) << gateway_->log();

  v1::SubscribeRequest from_start;
  from_start.set_after_sequence(0);
  auto subscriber =
      std::make_unique<Subscriber>(gateway_->grpc_port(), from_start);
  ASSERT_TRUE(subscriber->WaitStarted());

  constexpr int kClients = 4;
  std::atomic<bool> stop{false};
  std::atomic<int> accepted_count{0};
  absl::Mutex mu;
  std::set<std::uint64_t> accepted;
  std::vector<std::thread> clients;
  const std::string url = Url("/webhooks");
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      HttpClient client;
      for (int i = 0; !stop.load() && i < 100'000; ++i) {
        const std::string body = absl::StrCat(
            R"({"type":"webhook_test","payload":{"message":"client )", c,
            " message ", i,
            R"(","createdAt":1718035200000,"workspaceSecret":")", kSampleSecret,
            "\"}}");
        absl::StatusOr<HttpResponse> response = client.PostJson(url, body);
        if (!response.ok()) {
          if (!CanConnect(gateway_->http_port())) return;  // it has gone
          continue;
        }
        if (response->code != 200) continue;  // 503 while draining
        rapidjson::Document ack = ParseJson(response->body);
        absl::MutexLock lock(&mu);
        accepted.insert(ack["sequence"].GetUint64());
        ++accepted_count;
      }
    });
  }
  // Requests are in flight all along; stop once a few hundred got through.
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (accepted_count.load() < 200 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  gateway_->Signal(SIGTERM);
  const std::optional<int> code = gateway_->WaitForExit();
  stop.store(true);
  for (std::thread& client : clients) client.join();
  ASSERT_EQ(code, 0) << gateway_->log();

  std::optional<grpc::Status> end = subscriber->WaitFinished();
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->error_code(), grpc::StatusCode::UNAVAILABLE)
      << end->error_message();
  EXPECT_THAT(end->error_message(), HasSubstr("resume"));
  std::vector<std::uint64_t> streamed;
  while (auto response = subscriber->Next(absl::ZeroDuration())) {
    for (const v1::Event& event : response->events()) {
      streamed.push_back(event.sequence());
    }
  }
  subscriber.reset();

  // Restart on the same log; resume after the last sequence streamed.
  gateway_ = std::make_unique<GatewayProcess>(args);
  ASSERT_TRUE(gateway_->WaitReady()) << gateway_->log();
  v1::SubscribeRequest resume;
  resume.set_after_sequence(streamed.empty() ? 0 : streamed.back());
  Subscriber resumed(gateway_->grpc_port(), resume);
  ASSERT_TRUE(resumed.WaitStarted());
  const std::uint64_t newest = *accepted.rbegin();
  std::optional<std::vector<v1::Event>> rest =
      resumed.EventsUntilCaughtUpTo(newest);
  ASSERT_TRUE(rest.has_value());
  for (const v1::Event& event : *rest) streamed.push_back(event.sequence());

  // In order, no gap, no repeat, and every accepted sequence is there.
  for (std::size_t i = 0; i < streamed.size(); ++i) {
    ASSERT_EQ(streamed[i], i + 1);
  }
  EXPECT_GE(streamed.size(), newest);
  for (std::uint64_t sequence : accepted) {
    EXPECT_LE(sequence, streamed.size());
  }
  EXPECT_GE(accepted.size(), 200u);
  gateway_.reset();
  std::filesystem::remove_all(data_dir);
}

TEST_F(GatewayIntegrationTest, SigintStopsAnIdleGateway) {
  StartGateway();
  Subscriber subscriber(gateway_->grpc_port(), {});
  ASSERT_TRUE(subscriber.WaitStarted());
  gateway_->Signal(SIGINT);
  EXPECT_EQ(gateway_->WaitForExit(), 0) << gateway_->log();
  std::optional<grpc::Status> end = subscriber.WaitFinished();
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace convocore::integration
