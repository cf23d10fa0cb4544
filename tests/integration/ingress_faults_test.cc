// Faults at the gateway's edges, through the real webhook-gateway binary:
// a data directory removed under a running gateway, malformed HTTP framing
// on raw sockets, a resume point past any sequence, and a subscriber that
// stops reading. Each case ends with the gateway still serving (or, for the
// removed directory, restarted on a fresh one).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/event_stream_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/gateway/http/http_test_client.h"
#include "tests/integration/gateway_fixture.h"
#include "tests/integration/gateway_process.h"
#include "tests/integration/webhook_requests.h"
#include "tests/support/eventually.h"
#include "tests/support/temp_dir.h"

namespace convocore::integration {
namespace {

namespace v1 = ::convocore::webhooks::v1;
using ::convocore::http::testing::HttpClient;
using ::convocore::http::testing::HttpResponse;
using ::convocore::http::testing::RawConnection;
using ::convocore::testing::Eventually;
using ::testing::HasSubstr;
using ::testing::Not;

// `body` as a well-formed POST /webhooks request.
std::string PostRequest(const std::string& body) {
  return absl::StrCat(
      "POST /webhooks HTTP/1.1\r\nHost: gw\r\n"
      "Content-Type: application/json\r\nContent-Length: ",
      body.size(), "\r\n\r\n", body);
}

// The "sequence" of a 200's body, or nullopt.
std::optional<std::uint64_t> SequenceOf(const std::string& body) {
  static const std::regex kSequence(R"re("sequence":\s*([0-9]+))re");
  std::smatch match;
  std::uint64_t sequence = 0;
  if (!std::regex_search(body, match, kSequence) ||
      !absl::SimpleAtoi(match[1].str(), &sequence)) {
    return std::nullopt;
  }
  return sequence;
}

// The value of the unlabelled sample `name` in a /metrics exposition.
std::optional<double> MetricValue(const std::string& exposition,
                                  const std::string& name) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::StartsWith(line, name + " ")) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(name.size() + 1), &value)) return value;
  }
  return std::nullopt;
}

// An error answer is a JSON object {"error":{"code":<code>,...}} and does
// not echo the workspace secret.
void ExpectJsonError(const HttpResponse& response, long code) {
  EXPECT_EQ(response.code, code) << response.body;
  rapidjson::Document doc;
  doc.Parse(response.body.c_str(), response.body.size());
  ASSERT_FALSE(doc.HasParseError()) << "not JSON: " << response.body;
  ASSERT_TRUE(doc.IsObject()) << response.body;
  ASSERT_TRUE(doc.HasMember("error") && doc["error"].IsObject() &&
              doc["error"].HasMember("code") && doc["error"]["code"].IsInt())
      << response.body;
  EXPECT_EQ(doc["error"]["code"].GetInt(), code) << response.body;
  EXPECT_THAT(response.body, Not(HasSubstr(kSampleSecret)));
}

// A Subscribe stream whose client never reads a message: once the HTTP/2
// windows are full, the gateway cannot write to it any more.
class StalledSubscriber {
 public:
  explicit StalledSubscriber(std::uint16_t grpc_port)
      : channel_(grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port),
                                     grpc::InsecureChannelCredentials())),
        stub_(v1::EventStreamService::NewStub(channel_)) {
    // Bounds WaitForInitialMetadata below, should the gateway never answer.
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(60));
    reader_ = stub_->Subscribe(&context_, v1::SubscribeRequest());
    reader_->WaitForInitialMetadata();
  }
  ~StalledSubscriber() {
    if (!finished_) {
      context_.TryCancel();
      reader_->Finish().IgnoreError();
    }
  }

  // Starts reading at last: the number of events read to the stream's end,
  // and its status.
  std::pair<std::size_t, grpc::Status> ReadToEnd() {
    std::size_t events = 0;
    v1::SubscribeResponse response;
    while (reader_->Read(&response)) events += response.events_size();
    finished_ = true;
    return {events, reader_->Finish()};
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::EventStreamService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader_;
  bool finished_ = false;
};

// The gateway stops (TearDown) before its directory goes (temp_).
class IngressFaultsTest : public GatewayTest {
 protected:
  HttpResponse Post(HttpClient& client, const std::string& body) {
    return OrNoResponse(client.PostJson(Url("/webhooks"), body));
  }

  std::string Metrics(HttpClient& client) {
    return OrNoResponse(client.Get(Url("/metrics"))).body;
  }

  // `request` alone on a new connection, and its answer (code 0 if none).
  HttpResponse ExchangeAlone(const std::string& request) {
    absl::StatusOr<RawConnection> connection =
        RawConnection::Connect(gateway_->http_port());
    if (!connection.ok()) return OrNoResponse(connection.status());
    return OrNoResponse(connection->Exchange(request));
  }

  // The stream from the oldest event through `last`, as sequence -> type.
  std::map<std::uint64_t, std::string> StoredTypes(std::uint64_t last) {
    v1::SubscribeRequest request;
    request.set_after_sequence(0);
    Subscriber subscriber(gateway_->grpc_port(), request);
    std::optional<std::vector<v1::Event>> events =
        subscriber.EventsThrough(last);
    EXPECT_TRUE(events.has_value()) << "the stream never reached " << last;
    std::map<std::uint64_t, std::string> types;
    for (const v1::Event& event : events.value_or(std::vector<v1::Event>())) {
      EXPECT_TRUE(types.emplace(event.sequence(), event.type_raw()).second)
          << "sequence " << event.sequence() << " streamed twice";
    }
    return types;
  }

  convocore::testing::TempDir temp_{"ingress_faults_it"};
  const std::filesystem::path root_ = temp_.path();
};

// docs/design/storage.md, "When the disk fails": a data directory removed
// under the running store is noticed by the append right after its fsync,
// so no webhook is acknowledged into files that are gone; the gateway then
// refuses webhooks and says why until it restarts, and stays up.
TEST_F(IngressFaultsTest, RemovedDataDirIsRefusedReportedAndSurvived) {
  const std::filesystem::path data_dir = root_ / "data";
  // It polls one connection as fast as 503s come back: no rate limit.
  StartGateway({"--store=disk", "--data_dir=" + data_dir.string(),
                "--http_max_requests_per_connection=0"});
  HttpClient client;
  std::uint64_t last_before = 0;
  for (int n = 0; n < 100; ++n) {
    const HttpResponse response =
        Post(client, Webhook(absl::StrCat("before-", n)));
    ASSERT_EQ(response.code, 200) << response.body;
    std::optional<std::uint64_t> sequence = SequenceOf(response.body);
    ASSERT_TRUE(sequence.has_value()) << response.body;
    EXPECT_EQ(*sequence, last_before + 1);
    last_before = *sequence;
  }

  std::filesystem::remove_all(data_dir);
  ASSERT_FALSE(std::filesystem::exists(data_dir));

  // Webhooks posted from now on, one at a time, until the first refusal:
  // each was posted after the removal, so none may get a 200.
  std::vector<std::uint64_t> acknowledged_after_removal;
  std::optional<HttpResponse> refusal;
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  for (int n = 0; absl::Now() < give_up; ++n) {
    HttpResponse response = Post(client, Webhook(absl::StrCat("after-", n)));
    if (response.code == 200) {
      acknowledged_after_removal.push_back(
          SequenceOf(response.body).value_or(0));
      continue;
    }
    refusal = std::move(response);
    break;
  }
  ASSERT_TRUE(refusal.has_value())
      << "still 200 five seconds after the removal\n"
      << gateway_->log();
  ExpectJsonError(*refusal, 503);
  EXPECT_TRUE(acknowledged_after_removal.empty())
      << "acknowledged into a removed directory: sequences "
      << absl::StrJoin(acknowledged_after_removal, ", ");

  // Readiness says so, naming the store and its directory.
  HttpResponse ready;
  EXPECT_TRUE(Eventually(
      [&] {
        ready = OrNoResponse(client.Get(Url("/readyz")));
        return ready.code == 503;
      },
      absl::Seconds(5)))
      << ready.code << " " << ready.body;
  rapidjson::Document readiness;
  readiness.Parse(ready.body.c_str(), ready.body.size());
  ASSERT_FALSE(readiness.HasParseError()) << ready.body;
  ASSERT_TRUE(readiness.IsObject() && readiness.HasMember("reason") &&
              readiness["reason"].IsString())
      << ready.body;
  const std::string reason = readiness["reason"].GetString();
  EXPECT_THAT(reason, HasSubstr("event store"));
  EXPECT_THAT(reason, HasSubstr(data_dir.string()));

  // And it stays refused: a short settle of further webhooks, each 503.
  int refused = 1;
  const absl::Time settle_end = absl::Now() + absl::Seconds(1);
  for (int n = 0; absl::Now() < settle_end; ++n, ++refused) {
    const HttpResponse response =
        Post(client, Webhook(absl::StrCat("settle-", n)));
    ASSERT_EQ(response.code, 503) << "settle-" << n << ": " << response.body;
  }
  ASSERT_GE(refused, 10);

  const std::string metrics = Metrics(client);
  EXPECT_EQ(MetricValue(metrics, "gateway_ready"), 0.0) << metrics;

  // One error line in the log says the storage is gone, naming the
  // directory; a refused webhook adds none.
  int error_lines = 0;
  std::vector<std::string> storage_gone;
  for (const std::string& line : gateway_->log_lines()) {
    rapidjson::Document doc;
    doc.Parse(line.c_str(), line.size());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("level") ||
        !doc["level"].IsString() ||
        std::string(doc["level"].GetString()) != "error") {
      continue;
    }
    ++error_lines;
    if (absl::StrContains(line, "storage is gone")) {
      storage_gone.push_back(line);
    }
  }
  ASSERT_EQ(storage_gone.size(), 1u) << gateway_->log();
  EXPECT_THAT(storage_gone[0], HasSubstr(data_dir.string()));
  EXPECT_LT(error_lines, refused) << gateway_->log();
  EXPECT_THAT(gateway_->log(), Not(HasSubstr(kSampleSecret)));

  // Still up and answering.
  EXPECT_EQ(gateway_->WaitForExit(absl::ZeroDuration()), std::nullopt);
  EXPECT_EQ(OrNoResponse(client.Get(Url("/healthz"))).code, 200);
  // Reads keep serving the events still in the index.
  const std::map<std::uint64_t, std::string> stored = StoredTypes(last_before);
  EXPECT_EQ(stored.size(), last_before);

  // A restart on a fresh directory serves again.
  StartGateway({"--store=disk", "--data_dir=" + (root_ / "fresh").string()});
  HttpClient fresh_client;
  EXPECT_EQ(OrNoResponse(fresh_client.Get(Url("/readyz"))).code, 200);
  const HttpResponse fresh = Post(fresh_client, Webhook("fresh"));
  ASSERT_EQ(fresh.code, 200) << fresh.body;
  EXPECT_EQ(SequenceOf(fresh.body), 1u) << fresh.body;
  EXPECT_EQ(StoredTypes(1),
            (std::map<std::uint64_t, std::string>{{1, "message_received"}}));
}

// Requests that are not framed as HTTP/1.1 allows, each alone on a new
// connection: a JSON error with its status, the secret nowhere, nothing
// stored.
TEST_F(IngressFaultsTest, MalformedFramingGetsAJsonErrorAndStoresNothing) {
  StartGateway();
  const std::string body = ReadSample("webhook_test.json");
  std::string secrets;  // long filler that would show if echoed
  while (secrets.size() < (200 << 10)) absl::StrAppend(&secrets, kSampleSecret);
  struct Case {
    std::string what;
    std::string request;
    long code;
  };
  const std::vector<Case> cases = {
      {"Content-Length -1",
       absl::StrCat("POST /webhooks HTTP/1.1\r\nHost: gw\r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Length: -1\r\n\r\n",
                    body),
       400},
      {"a 200 KB header",
       absl::StrCat("POST /webhooks HTTP/1.1\r\nHost: gw\r\n"
                    "Content-Type: application/json\r\nX-Filler: ",
                    secrets, "\r\nContent-Length: ", body.size(), "\r\n\r\n",
                    body),
       431},
      {"bare LF line endings",
       absl::StrCat("POST /webhooks HTTP/1.1\nHost: gw\n"
                    "Content-Type: application/json\nContent-Length: ",
                    body.size(), "\n\n", body),
       400},
      {"HTTP/1.1 without Host",
       absl::StrCat("POST /webhooks HTTP/1.1\r\n"
                    "Content-Type: application/json\r\nContent-Length: ",
                    body.size(), "\r\n\r\n", body),
       400},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const HttpResponse response = ExchangeAlone(c.request);
    ExpectJsonError(response, c.code);
    // Our own words, not a library's exception text, and not the request
    // echoed back.
    EXPECT_THAT(response.body, Not(HasSubstr("stoull")));
    EXPECT_THAT(response.body, Not(HasSubstr("basic_string")));
    EXPECT_LE(response.body.size(), 300u) << response.body;
  }

  // Two different lengths: no way to tell where the body ends, so the
  // connection must not be read further.
  absl::StatusOr<RawConnection> conflicting =
      RawConnection::Connect(gateway_->http_port());
  ASSERT_TRUE(conflicting.ok());
  const HttpResponse refused = OrNoResponse(conflicting->Exchange(
      absl::StrCat("POST /webhooks HTTP/1.1\r\nHost: gw\r\n"
                   "Content-Type: application/json\r\nContent-Length: ",
                   body.size(), "\r\nContent-Length: ", body.size() + 1,
                   "\r\n\r\n", body, "}")));
  ExpectJsonError(refused, 400);
  const auto connection_header = refused.headers.find("connection");
  ASSERT_NE(connection_header, refused.headers.end());
  EXPECT_EQ(connection_header->second, "Close");
  EXPECT_TRUE(conflicting->WaitForClose());

  // None of them was stored: the next webhook is the first.
  HttpClient client;
  const HttpResponse accepted = Post(client, body);
  ASSERT_EQ(accepted.code, 200) << accepted.body;
  EXPECT_EQ(SequenceOf(accepted.body), 1u) << accepted.body;
  EXPECT_EQ(gateway_->WaitForExit(absl::ZeroDuration()), std::nullopt);
}

// A target too long to read is 414 (RFC 9112 section 3); a long one that
// fits names no route, 404. Neither body echoes more than a short prefix.
TEST_F(IngressFaultsTest, LongTargetsGetSmallBodies) {
  StartGateway();
  std::string target = "/";
  while (target.size() < (1 << 20)) absl::StrAppend(&target, kSampleSecret);
  const HttpResponse huge = ExchangeAlone(
      absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: gw\r\n\r\n"));
  ExpectJsonError(huge, 414);
  EXPECT_LE(huge.body.size(), 300u) << huge.body;

  // A 32 KiB path, and a query that carries the secret: at most a short
  // prefix of the path comes back, and nothing of the query.
  const std::string long_path = "/" + std::string(32 << 10, 'p');
  const HttpResponse long_one =
      ExchangeAlone(absl::StrCat("GET ", long_path, "?token=", kSampleSecret,
                                 " HTTP/1.1\r\nHost: gw\r\n\r\n"));
  ExpectJsonError(long_one, 404);
  EXPECT_LE(long_one.body.size(), 300u) << long_one.body;
  EXPECT_THAT(long_one.body, Not(HasSubstr(std::string(100, 'p'))));
  HttpClient client;
  EXPECT_EQ(OrNoResponse(client.Get(Url("/healthz"))).code, 200);
}

// RFC 9112 §3.2.2: a server must accept the absolute form of a target.
TEST_F(IngressFaultsTest, AbsoluteFormTargetIsAcceptedAndStored) {
  StartGateway();
  const std::string body = ReadSample("lead_captured.json");
  const HttpResponse response = ExchangeAlone(absl::StrCat(
      "POST http://localhost/webhooks HTTP/1.1\r\nHost: localhost\r\n"
      "Content-Type: application/json\r\nContent-Length: ",
      body.size(), "\r\n\r\n", body));
  ASSERT_EQ(response.code, 200) << response.body;
  const std::optional<std::uint64_t> sequence = SequenceOf(response.body);
  ASSERT_EQ(sequence, 1u) << response.body;
  EXPECT_EQ(StoredTypes(1),
            (std::map<std::uint64_t, std::string>{{1, "lead_captured"}}));
}

// 2, then 5, different samples in one send each: that many 200s in order,
// each under its own new sequence, each in the stream with its type.
// (http_ingress_test pipelines every sample and checks the answers; this
// checks what was stored.)
TEST_F(IngressFaultsTest, PipelinedSamplesAreEachAnsweredAndStored) {
  StartGateway();
  const std::vector<std::string> names = SampleNames();
  ASSERT_GE(names.size(), 7u);
  absl::StatusOr<RawConnection> connection =
      RawConnection::Connect(gateway_->http_port());
  ASSERT_TRUE(connection.ok());
  std::map<std::uint64_t, std::string> expected;  // sequence -> type
  std::uint64_t last = 0;
  std::size_t next = 0;
  for (std::size_t batch : {2u, 5u}) {
    SCOPED_TRACE(absl::StrCat(batch, " pipelined"));
    std::string bytes;
    std::vector<std::string> types;
    for (std::size_t i = 0; i < batch; ++i, ++next) {
      bytes += PostRequest(ReadSample(names[next]));
      types.push_back(names[next].substr(0, names[next].size() - 5));
    }
    ASSERT_TRUE(connection->Send(bytes).ok());
    for (std::size_t i = 0; i < batch; ++i) {
      const HttpResponse response = OrNoResponse(connection->ReadResponse());
      ASSERT_EQ(response.code, 200) << types[i] << ": " << response.body;
      EXPECT_THAT(response.body, HasSubstr("\"duplicate\":false"));
      const std::optional<std::uint64_t> sequence = SequenceOf(response.body);
      ASSERT_TRUE(sequence.has_value()) << response.body;
      EXPECT_EQ(*sequence, last + 1) << types[i];
      last = *sequence;
      expected.emplace(*sequence, types[i]);
    }
  }
  EXPECT_EQ(StoredTypes(last), expected);
}

// The largest after_sequence is beyond any stream: INVALID_ARGUMENT (a
// request that can never be served), not OUT_OF_RANGE (which tells the
// client that events were trimmed and to resume from the oldest).
TEST_F(IngressFaultsTest, LargestAfterSequenceIsInvalidArgument) {
  StartGateway();
  v1::SubscribeRequest largest;
  largest.set_after_sequence(std::numeric_limits<std::uint64_t>::max());
  HttpClient client;
  for (bool empty : {true, false}) {
    SCOPED_TRACE(empty ? "empty stream" : "one event");
    if (!empty) {
      ASSERT_EQ(Post(client, ReadSample("webhook_test.json")).code, 200);
    }
    Subscriber subscriber(gateway_->grpc_port(), largest);
    const std::optional<grpc::Status> status = subscriber.WaitFinished();
    ASSERT_TRUE(status.has_value()) << "the stream did not end";
    EXPECT_EQ(status->error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << status->error_message();
  }
  // A resume point at the head is served.
  v1::SubscribeRequest head;
  head.set_after_sequence(1);
  Subscriber subscriber(gateway_->grpc_port(), head);
  EXPECT_TRUE(subscriber.WaitStarted());
  EXPECT_EQ(subscriber.WaitFinished(absl::Milliseconds(200)), std::nullopt);
  EXPECT_EQ(gateway_->WaitForExit(absl::ZeroDuration()), std::nullopt);
}

// A subscriber that stops reading is cut off (RESOURCE_EXHAUSTED) once it
// falls --subscriber_queue_limit events behind; from then on
// gateway_subscribers does not count it, although its client never reads
// the end of the stream. A subscriber that reads is counted throughout.
TEST_F(IngressFaultsTest, CutOffSubscriberIsNotCountedWhileItsClientStalls) {
  StartGateway({"--subscriber_queue_limit=16"});
  HttpClient client;
  Subscriber reading(gateway_->grpc_port(), v1::SubscribeRequest());
  ASSERT_TRUE(reading.WaitStarted());
  StalledSubscriber stalled(gateway_->grpc_port());
  ASSERT_TRUE(Eventually(
      [&] {
        return MetricValue(Metrics(client), "gateway_subscribers") == 2.0;
      },
      absl::Seconds(5)))
      << Metrics(client);

  // Large webhooks until the stalled one is cut off.
  std::uint64_t last = 0;
  std::optional<double> cut_off;
  const absl::Time give_up = absl::Now() + absl::Seconds(15);
  for (int n = 0; absl::Now() < give_up; ++n) {
    const HttpResponse response =
        Post(client, Webhook(absl::StrCat("large-", n), 64 << 10));
    ASSERT_EQ(response.code, 200) << response.body;
    last = SequenceOf(response.body).value_or(last);
    if (n % 8 != 7) continue;
    cut_off = MetricValue(Metrics(client), "gateway_subscribers_cut_off_total");
    if (cut_off.value_or(0) >= 1) break;
  }
  ASSERT_EQ(cut_off, 1.0) << "after " << last << " webhooks of 64 KiB\n"
                          << Metrics(client);

  // Counted no more (the one that reads still is), now and a little later.
  EXPECT_TRUE(Eventually(
      [&] {
        return MetricValue(Metrics(client), "gateway_subscribers") == 1.0;
      },
      absl::Seconds(5)))
      << Metrics(client);
  const std::optional<std::vector<v1::Event>> read =
      reading.EventsThrough(last, absl::Seconds(15));
  ASSERT_TRUE(read.has_value()) << "the reading subscriber never got " << last;
  EXPECT_EQ(read->size(), last);
  EXPECT_EQ(reading.WaitFinished(absl::ZeroDuration()), std::nullopt);
  const std::string metrics = Metrics(client);
  EXPECT_EQ(MetricValue(metrics, "gateway_subscribers"), 1.0) << metrics;
  EXPECT_EQ(MetricValue(metrics, "gateway_subscribers_cut_off_total"), 1.0)
      << metrics;

  // It was the stalled one: reading at last, it gets fewer events than were
  // posted, then RESOURCE_EXHAUSTED.
  const auto [events, status] = stalled.ReadToEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
  EXPECT_LT(events, last);
}

}  // namespace
}  // namespace convocore::integration
