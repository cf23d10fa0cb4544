// The Pistache adapter against a small in-test backend, over real sockets:
// libcurl for ordinary requests, raw TCP for what libcurl hides.
#include "gateway/http/server.h"

#include <atomic>
#include <iostream>
#include <memory>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/gateway/http/http_test_client.h"
#include "tests/support/eventually.h"

namespace convocore::http {
namespace {

using ::convocore::http::testing::CanConnect;
using ::convocore::http::testing::HttpClient;
using ::convocore::http::testing::HttpResponse;
using ::convocore::http::testing::RawConnection;
using ::testing::HasSubstr;

// Accepts every body as the next sequence, or answers what the body names:
// "400", "401", "413", "503". A body "block" is answered by Release(), from
// the releasing thread, as the hub answers from its committer thread.
class TestBackend : public HttpBackend {
 public:
  void HandleWebhook(std::string_view body, absl::Time receive_time,
                     WebhookCallback done) override {
    {
      absl::MutexLock lock(&mu_);
      bodies_.emplace_back(body);
      receive_times_.push_back(receive_time);
    }
    if (body == "400") {
      std::move(done)(
          absl::InvalidArgumentError("payload.createdAt: expected \"ms\""));
      return;
    }
    if (body == "401") {
      std::move(done)(absl::UnauthenticatedError("wrong secret"));
      return;
    }
    if (body == "413") {
      std::move(done)(absl::ResourceExhaustedError("too many keys"));
      return;
    }
    if (body == "503") {
      std::move(done)(absl::UnavailableError("store unavailable"));
      return;
    }
    WebhookAck ack{.sequence = ++sequence_,
                   .id = "id-" + std::string(body),
                   .duplicate = false};
    {
      // Stored, in this backend's terms: the body gets a sequence.
      absl::MutexLock lock(&mu_);
      accepted_.emplace_back(body);
    }
    if (body == "block") {
      absl::MutexLock lock(&mu_);
      if (!released_) {
        blocked_.push_back(
            [ack, done = std::move(done)]() mutable { std::move(done)(ack); });
        if (!entered_.HasBeenNotified()) entered_.Notify();
        return;
      }
    }
    std::move(done)(std::move(ack));
  }
  void OnWebhookRefused(Refusal refusal) override {
    absl::MutexLock lock(&mu_);
    refusals_.push_back(refusal);
  }
  absl::Status Readiness() const override {
    absl::MutexLock lock(&mu_);
    return readiness_;
  }
  std::string RenderMetrics() const override {
    absl::MutexLock lock(&mu_);
    return metrics_;
  }
  void SetMetrics(std::string metrics) {
    absl::MutexLock lock(&mu_);
    metrics_ = std::move(metrics);
  }

  void SetReadiness(absl::Status status) {
    absl::MutexLock lock(&mu_);
    readiness_ = std::move(status);
  }
  std::vector<std::string> bodies() const {
    absl::MutexLock lock(&mu_);
    return bodies_;
  }
  // The bodies given a sequence (stored), in order.
  std::vector<std::string> accepted() const {
    absl::MutexLock lock(&mu_);
    return accepted_;
  }
  std::vector<Refusal> refusals() const {
    absl::MutexLock lock(&mu_);
    return refusals_;
  }
  std::vector<absl::Time> receive_times() const {
    absl::MutexLock lock(&mu_);
    return receive_times_;
  }
  void WaitUntilBlocked() { entered_.WaitForNotification(); }
  // Answers every blocked webhook, and from now on answers them at once.
  void Release() {
    std::vector<absl::AnyInvocable<void() &&>> blocked;
    {
      absl::MutexLock lock(&mu_);
      released_ = true;
      blocked.swap(blocked_);
    }
    for (auto& answer : blocked) std::move(answer)();
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> bodies_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> accepted_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> receive_times_ ABSL_GUARDED_BY(mu_);
  std::vector<Refusal> refusals_ ABSL_GUARDED_BY(mu_);
  absl::Status readiness_ ABSL_GUARDED_BY(mu_);
  std::string metrics_ ABSL_GUARDED_BY(mu_) = "# metrics\n";
  std::atomic<std::uint64_t> sequence_{0};
  absl::Notification entered_;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<absl::AnyInvocable<void() &&>> blocked_ ABSL_GUARDED_BY(mu_);
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(HttpServerOptions{}); }
  void TearDown() override {
    backend_.Release();  // never leave a webhook unanswered
    server_.reset();
  }

  absl::StatusOr<RawConnection> Connect() const {
    return RawConnection::Connect(server_->port());
  }

  void StartServer(HttpServerOptions options) {
    server_.reset();
    registry_ = std::make_unique<metrics::Registry>();
    options.address = "127.0.0.1";
    options.port = 0;
    auto server = HttpServer::Start(options, &backend_, registry_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  // The count of requests in flight once it settles at `expected`: an HTTP
  // thread counts a request until it leaves the handler, and a response
  // until Pistache has written it, so the count can lag a moment.
  int InFlightSettledAt(int expected) {
    convocore::testing::Eventually(
        [&] { return server_->in_flight() == expected; });
    return server_->in_flight();
  }

  std::string Url(absl::string_view path) const {
    return absl::StrCat("http://127.0.0.1:", server_->port(), path);
  }

  static rapidjson::Document Json(const std::string& body) {
    rapidjson::Document doc;
    doc.Parse(body.c_str());
    EXPECT_FALSE(doc.HasParseError()) << body;
    return doc;
  }

  std::string Request(absl::string_view method, absl::string_view path,
                      absl::string_view body,
                      absl::string_view extra_headers = "") const {
    return absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: localhost\r\n",
                        extra_headers, "Content-Length: ", body.size(),
                        "\r\n\r\n", body);
  }

  std::unique_ptr<metrics::Registry> registry_;
  TestBackend backend_;
  std::unique_ptr<HttpServer> server_;
  HttpClient client_;
};

TEST_F(HttpServerTest, AcceptedWebhookIsJsonWithSequenceAndId) {
  absl::StatusOr<HttpResponse> response =
      client_.PostJson(Url("/webhooks"), R"({"type":"x"})");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->code, 200);
  EXPECT_EQ(response->headers["content-type"], "application/json");
  rapidjson::Document doc = Json(response->body);
  EXPECT_EQ(doc["sequence"].GetUint64(), 1u);
  EXPECT_STREQ(doc["id"].GetString(), "id-{\"type\":\"x\"}");
  EXPECT_FALSE(doc["duplicate"].GetBool());
  EXPECT_THAT(backend_.bodies(), ::testing::ElementsAre(R"({"type":"x"})"));
}

TEST_F(HttpServerTest, BackendErrorsMapToStatusesWithJsonBodies) {
  const std::vector<std::pair<std::string, long>> cases = {
      {"400", 400}, {"401", 401}, {"413", 413}, {"503", 503}};
  for (const auto& [body, code] : cases) {
    absl::StatusOr<HttpResponse> response =
        client_.PostJson(Url("/webhooks"), body);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->code, code) << body;
    rapidjson::Document doc = Json(response->body);
    EXPECT_EQ(doc["error"]["code"].GetInt(), code);
  }
  absl::StatusOr<HttpResponse> response =
      client_.PostJson(Url("/webhooks"), "400");
  EXPECT_STREQ(Json(response->body)["error"]["message"].GetString(),
               "payload.createdAt: expected \"ms\"");
}

TEST_F(HttpServerTest, ContentTypeMustBeJsonWhenPresent) {
  absl::StatusOr<HttpResponse> plain = client_.Request(
      "POST", Url("/webhooks"), "{}", {"Content-Type: text/plain"});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->code, 415);
  EXPECT_THAT(Json(plain->body)["error"]["message"].GetString(),
              HasSubstr("text/plain"));
  absl::StatusOr<HttpResponse> charset =
      client_.Request("POST", Url("/webhooks"), "{}",
                      {"Content-Type: application/json; charset=utf-8"});
  EXPECT_EQ(charset->code, 200);
  absl::StatusOr<HttpResponse> absent =
      client_.Request("POST", Url("/webhooks"), "{}");
  EXPECT_EQ(absent->code, 200);
  EXPECT_THAT(backend_.refusals(),
              ::testing::ElementsAre(Refusal::kUnsupportedMediaType));
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethodIs405) {
  absl::StatusOr<HttpResponse> missing = client_.Get(Url("/nope?x=1"));
  EXPECT_EQ(missing->code, 404);
  EXPECT_EQ(Json(missing->body)["error"]["code"].GetInt(), 404);
  absl::StatusOr<HttpResponse> get = client_.Get(Url("/webhooks"));
  EXPECT_EQ(get->code, 405);
  EXPECT_EQ(get->headers["allow"], "POST");
  absl::StatusOr<HttpResponse> post =
      client_.Request("POST", Url("/healthz"), "{}");
  EXPECT_EQ(post->code, 405);
  EXPECT_EQ(post->headers["allow"], "GET");
  EXPECT_TRUE(backend_.bodies().empty());
}

TEST_F(HttpServerTest, HealthReadinessAndMetrics) {
  EXPECT_EQ(client_.Get(Url("/healthz"))->code, 200);
  EXPECT_EQ(client_.Get(Url("/readyz"))->code, 200);
  backend_.SetReadiness(absl::UnavailableError("store: disk full"));
  absl::StatusOr<HttpResponse> not_ready = client_.Get(Url("/readyz"));
  EXPECT_EQ(not_ready->code, 503);
  EXPECT_STREQ(Json(not_ready->body)["reason"].GetString(), "store: disk full");
  EXPECT_EQ(client_.Get(Url("/healthz"))->code, 200);
  absl::StatusOr<HttpResponse> metrics = client_.Get(Url("/metrics"));
  EXPECT_EQ(metrics->code, 200);
  EXPECT_EQ(metrics->body, "# metrics\n");
  EXPECT_THAT(metrics->headers["content-type"], HasSubstr("text/plain"));
  EXPECT_THAT(metrics->headers["content-type"], HasSubstr("version=0.0.4"));
}

TEST_F(HttpServerTest, CountsRequestsByRouteAndCode) {
  ASSERT_TRUE(client_.PostJson(Url("/webhooks"), "{}").ok());
  ASSERT_TRUE(client_.PostJson(Url("/webhooks"), "401").ok());
  ASSERT_TRUE(client_.Get(Url("/nope")).ok());
  const std::string text = registry_->Render();
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(gateway_http_requests_total{route="webhooks",code="200"} 1)"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(gateway_http_requests_total{route="webhooks",code="401"} 1)"));
  EXPECT_THAT(
      text,
      HasSubstr(R"(gateway_http_requests_total{route="other",code="404"} 1)"));
}

// Pistache's own limit is 4 KiB; ours is the configured body limit.
TEST_F(HttpServerTest, BodiesUpToTheLimitPassAndLargerOnesAre413) {
  HttpServerOptions options;
  options.max_body_bytes = 256 << 10;
  StartServer(options);
  const std::string fits(256 << 10, 'a');
  absl::StatusOr<HttpResponse> ok = client_.PostJson(Url("/webhooks"), fits);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->code, 200);
  EXPECT_EQ(backend_.bodies().back().size(), fits.size());

  absl::StatusOr<HttpResponse> large =
      client_.PostJson(Url("/webhooks"), fits + "b");
  ASSERT_TRUE(large.ok()) << large.status();
  EXPECT_EQ(large->code, 413);
  EXPECT_EQ(Json(large->body)["error"]["code"].GetInt(), 413);
  EXPECT_EQ(large->headers["connection"], "Close");
  EXPECT_THAT(backend_.refusals(), ::testing::ElementsAre(Refusal::kTooLarge));
  // The server keeps serving.
  EXPECT_EQ(client_.PostJson(Url("/webhooks"), "{}")->code, 200);
}

TEST_F(HttpServerTest, TooLargeIsAnsweredBeforeTheBodyIsSent) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  // Headers only; the 100 MiB body never comes.
  absl::StatusOr<HttpResponse> response = connection->Exchange(
      "POST /webhooks HTTP/1.1\r\nHost: x\r\n"
      "Content-Length: 104857600\r\n\r\n");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->code, 413);
  EXPECT_TRUE(connection->WaitForClose());
}

TEST_F(HttpServerTest, AbsurdContentLengthIs413) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  absl::StatusOr<HttpResponse> response = connection->Exchange(
      "POST /webhooks HTTP/1.1\r\nHost: x\r\n"
      "Content-Length: 18446744073709551615\r\n\r\n");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->code, 413);
}

TEST_F(HttpServerTest, HugeHeadersAre431) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  const std::string header = "X-Filler: " + std::string(2 << 20, 'x');
  // The server may close before it has read all of it; that is fine.
  absl::StatusOr<HttpResponse> response =
      connection->Exchange(Request("POST", "/webhooks", "{}", header + "\r\n"));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->code, 431);
}

TEST_F(HttpServerTest, InvalidContentLengthIs400) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  absl::StatusOr<HttpResponse> response = connection->Exchange(
      "POST /webhooks HTTP/1.1\r\nHost: x\r\n"
      "Content-Length: abc\r\n\r\n{}");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->code, 400);
  EXPECT_TRUE(connection->WaitForClose());
}

TEST_F(HttpServerTest, GarbageIs400AndTheServerGoesOn) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  absl::StatusOr<HttpResponse> response =
      connection->Exchange("NOT HTTP AT ALL\r\n\r\n");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->code, 400);
  EXPECT_EQ(Json(response->body)["error"]["code"].GetInt(), 400);
  EXPECT_EQ(client_.Get(Url("/healthz"))->code, 200);
}

// Pistache answers "Connection: Close" when the request has no Connection
// header; HTTP/1.1 means keep-alive then.
TEST_F(HttpServerTest, AResponseTooLargeForTheSocketArrivesWholeAndInOrder) {
  // More than the socket buffers take at once: the server writes what fits
  // and hands the rest to Pistache's queue.
  const std::string big(32 << 20, 'm');
  backend_.SetMetrics(big);
  auto connection = Connect();
  ASSERT_TRUE(connection.ok()) << connection.status();
  auto metrics = connection->Exchange(Request("GET", "/metrics", ""));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->code, 200);
  EXPECT_TRUE(metrics->body == big)
      << "a body of " << metrics->body.size() << " bytes, not the "
      << big.size() << " sent";
  // Later responses on the connection come after it, written directly again
  // once it is out; and the queue takes over again when the socket is full.
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 3; ++i) {
      auto webhook = connection->Exchange(
          Request("POST", "/webhooks", absl::StrCat("{\"n\":", i, "}"),
                  "Content-Type: application/json\r\n"));
      ASSERT_TRUE(webhook.ok()) << webhook.status();
      EXPECT_EQ(webhook->code, 200);
    }
    if (round == 0) {
      metrics = connection->Exchange(Request("GET", "/metrics", ""));
      ASSERT_TRUE(metrics.ok()) << metrics.status();
      EXPECT_TRUE(metrics->body == big)
          << "a body of " << metrics->body.size() << " bytes";
    }
  }
  EXPECT_EQ(InFlightSettledAt(0), 0);
}

TEST_F(HttpServerTest, KeepAliveHoldsWithoutAConnectionHeader) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<HttpResponse> response =
        connection->Exchange(Request("POST", "/webhooks", "{}"));
    ASSERT_TRUE(response.ok()) << i << ": " << response.status();
    EXPECT_EQ(response->code, 200);
    EXPECT_EQ(response->headers["connection"], "Keep-Alive");
  }
  // And libcurl reuses its connection.
  EXPECT_EQ(client_.PostJson(Url("/webhooks"), "{}")->new_connections, 1);
  EXPECT_EQ(client_.PostJson(Url("/webhooks"), "{}")->new_connections, 0);
  EXPECT_EQ(client_.Get(Url("/healthz"))->new_connections, 0);
}

TEST_F(HttpServerTest, ConnectionCloseIsHonoured) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  ASSERT_TRUE(
      connection->Send(Request("GET", "/healthz", "", "Connection: close\r\n"))
          .ok());
  absl::StatusOr<HttpResponse> response = connection->ReadResponse();
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->headers["connection"], "Close");
  EXPECT_TRUE(connection->WaitForClose());
}

TEST_F(HttpServerTest, Http10ClosesUnlessAskedToKeepAlive) {
  absl::StatusOr<RawConnection> closing = Connect();
  ASSERT_TRUE(closing.ok());
  EXPECT_EQ(
      closing->Exchange("GET /healthz HTTP/1.0\r\n\r\n")->headers["connection"],
      "Close");
  EXPECT_TRUE(closing->WaitForClose());

  absl::StatusOr<RawConnection> kept = Connect();
  ASSERT_TRUE(kept.ok());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(
        kept->Send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .ok());
    absl::StatusOr<HttpResponse> response = kept->ReadResponse();
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->headers["connection"], "Keep-Alive");
  }
}

// Pistache never answers "Expect: 100-continue"; clients then wait (curl: a
// second) before sending the body.
TEST_F(HttpServerTest, AnswersExpect100Continue) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  absl::StatusOr<HttpResponse> interim = connection->Exchange(
      "POST /webhooks HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: application/json\r\n"
      "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  ASSERT_TRUE(interim.ok()) << interim.status();
  EXPECT_EQ(interim->code, 100);
  absl::StatusOr<HttpResponse> final_response = connection->Exchange("{}");
  ASSERT_TRUE(final_response.ok()) << final_response.status();
  EXPECT_EQ(final_response->code, 200);
  EXPECT_EQ(final_response->headers["connection"], "Keep-Alive");
  // The connection goes on, and the next request may expect again.
  EXPECT_EQ(connection
                ->Exchange("POST /webhooks HTTP/1.1\r\nHost: x\r\n"
                           "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
                ->code,
            100);
  EXPECT_EQ(connection->Exchange("{}")->code, 200);
}

TEST_F(HttpServerTest, Expect100ContinueGetsTheFinalErrorAtOnce) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  absl::StatusOr<HttpResponse> response = connection->Exchange(
      "POST /webhooks HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: text/csv\r\n"
      "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->code, 415);
  EXPECT_TRUE(connection->WaitForClose());
  EXPECT_TRUE(backend_.bodies().empty());
}

TEST_F(HttpServerTest, CurlWithExpectDoesNotWait) {
  // libcurl sends "Expect: 100-continue" and waits up to a second for the
  // 100 before sending the body; with a 100 it sends at once.
  absl::StatusOr<HttpResponse> response = client_.Request(
      "POST", Url("/webhooks"), "{}",
      {"Content-Type: application/json", "Expect: 100-continue"});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->code, 200);
}

TEST_F(HttpServerTest, ReceiveTimeIsWhenTheRequestStarted) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  const absl::Time before = absl::Now();
  ASSERT_TRUE(connection
                  ->Send("POST /webhooks HTTP/1.1\r\nHost: x\r\n"
                         "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
                  .ok());
  // The 100 shows the server has read the headers; the body comes later,
  // and the receive time is still the first byte's.
  ASSERT_EQ(connection->ReadResponse()->code, 100);
  const absl::Time body_sent = absl::Now();
  ASSERT_EQ(connection->Exchange("{}")->code, 200);
  ASSERT_EQ(backend_.receive_times().size(), 1u);
  EXPECT_GE(backend_.receive_times()[0], before);
  EXPECT_LE(backend_.receive_times()[0], body_sent);
}

TEST_F(HttpServerTest, ConnectionsOverTheLimitGet503AndTheirSlotComesBack) {
  HttpServerOptions options;
  options.max_connections = 3;
  StartServer(options);
  std::vector<RawConnection> held;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<RawConnection> connection = Connect();
    ASSERT_TRUE(connection.ok());
    ASSERT_EQ(connection->Exchange(Request("GET", "/healthz", ""))->code, 200);
    held.push_back(*std::move(connection));
  }
  // More than the limit: each answered at once, without a request, and
  // closed; the connections held are served as before.
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<RawConnection> extra = Connect();
    ASSERT_TRUE(extra.ok());
    absl::StatusOr<HttpResponse> refused = extra->ReadResponse();
    ASSERT_TRUE(refused.ok()) << refused.status();
    EXPECT_EQ(refused->code, 503);
    EXPECT_THAT(refused->body, HasSubstr("--http_max_connections"));
    EXPECT_TRUE(extra->WaitForClose());
  }
  EXPECT_EQ(held[0].Exchange(Request("GET", "/healthz", ""))->code, 200);
  held.pop_back();
  EXPECT_TRUE(convocore::testing::Eventually([&] {
    absl::StatusOr<RawConnection> again = Connect();
    if (!again.ok()) return false;
    absl::StatusOr<HttpResponse> response =
        again->Exchange(Request("GET", "/healthz", ""));
    return response.ok() && response->code == 200;
  }));
  // The five above, and any attempt of the loop made before the closed
  // connection was counted out.
  const std::string metrics = registry_->Render();
  std::smatch refused;
  ASSERT_TRUE(std::regex_search(
      metrics, refused,
      std::regex("gateway_http_connections_refused_total ([0-9]+)")))
      << metrics;
  EXPECT_GE(std::stoi(refused[1]), 5);
  EXPECT_THAT(metrics, HasSubstr("gateway_http_connections_open"));
}

TEST_F(HttpServerTest, ARequestFloodOnOneConnectionGets429AndTheRestWait) {
  HttpServerOptions options;
  options.max_requests_per_second_per_connection = 5;
  StartServer(options);
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  std::string flood;
  for (int i = 0; i < 20; ++i) flood += Request("GET", "/healthz", "");
  ASSERT_TRUE(connection->Send(flood).ok());
  int ok = 0;
  int throttled = 0;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<HttpResponse> response = connection->ReadResponse();
    ASSERT_TRUE(response.ok()) << response.status();
    if (response->code == 200) ++ok;
    if (response->code == 429) {
      ++throttled;
      EXPECT_THAT(response->body, HasSubstr("RESOURCE_EXHAUSTED"));
    }
  }
  EXPECT_EQ(ok + throttled, 20);
  EXPECT_GE(ok, 5);
  EXPECT_GE(throttled, 10);
  // Another connection has its own budget, and this one refills.
  absl::StatusOr<RawConnection> other = Connect();
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->Exchange(Request("GET", "/healthz", ""))->code, 200);
  EXPECT_TRUE(convocore::testing::Eventually([&] {
    absl::StatusOr<HttpResponse> response =
        connection->Exchange(Request("GET", "/healthz", ""));
    return response.ok() && response->code == 200;
  }));
  EXPECT_THAT(registry_->Render(),
              HasSubstr("gateway_http_requests_throttled_total"));
}

TEST_F(HttpServerTest, AnIdleConnectionIsClosedAfterTheIdleTimeout) {
  HttpServerOptions options;
  options.idle_timeout = absl::Milliseconds(200);
  StartServer(options);
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  ASSERT_EQ(connection->Exchange(Request("GET", "/healthz", ""))->code, 200);
  EXPECT_TRUE(connection->WaitForClose());
}

TEST_F(HttpServerTest, ASlowRequestGets408) {
  HttpServerOptions options;
  options.request_timeout = absl::Milliseconds(200);
  StartServer(options);
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  absl::StatusOr<HttpResponse> response =
      connection->Exchange("POST /webhooks HTTP/1.1\r\nHost: x\r\n");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->code, 408);
  EXPECT_TRUE(connection->WaitForClose());
}

TEST_F(HttpServerTest, ASlowSecondRequestOnAKeptConnectionGets408) {
  HttpServerOptions options;
  options.request_timeout = absl::Milliseconds(200);
  StartServer(options);
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  ASSERT_EQ(connection->Exchange(Request("GET", "/healthz", ""))->code, 200);
  absl::StatusOr<HttpResponse> response =
      connection->Exchange("POST /webhooks HTTP/1.1\r\nHost: x\r\n");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->code, 408);
}

TEST_F(HttpServerTest, SecondServerOnTheSamePortFails) {
  HttpServerOptions options;
  options.address = "127.0.0.1";
  options.port = server_->port();
  TestBackend other;
  auto second = HttpServer::Start(options, &other, nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(),
              HasSubstr(absl::StrCat("127.0.0.1:", server_->port())));
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
  // The first one is unharmed.
  EXPECT_EQ(client_.Get(Url("/healthz"))->code, 200);
}

TEST_F(HttpServerTest, DrainFinishesInFlightRequestsAndRefusesNewOnes) {
  absl::StatusOr<RawConnection> in_flight = Connect();
  ASSERT_TRUE(in_flight.ok());
  absl::StatusOr<RawConnection> idle = Connect();
  ASSERT_TRUE(idle.ok());
  // Served once, so that the server has accepted it before the drain.
  ASSERT_EQ(idle->Exchange(Request("GET", "/healthz", ""))->code, 200);
  ASSERT_TRUE(in_flight->Send(Request("POST", "/webhooks", "block")).ok());
  backend_.WaitUntilBlocked();
  EXPECT_EQ(InFlightSettledAt(1), 1);

  server_->BeginDrain();
  // New connections are refused; the open ones still get answers.
  EXPECT_FALSE(CanConnect(server_->port()));
  absl::StatusOr<HttpResponse> readiness =
      idle->Exchange(Request("GET", "/readyz", ""));
  ASSERT_TRUE(readiness.ok()) << readiness.status();
  EXPECT_EQ(readiness->code, 503);
  EXPECT_EQ(readiness->headers["connection"], "Close");
  EXPECT_FALSE(server_->WaitForIdle(absl::Now()));

  backend_.Release();
  absl::StatusOr<HttpResponse> accepted = in_flight->ReadResponse();
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ(accepted->code, 200);
  EXPECT_EQ(accepted->headers["connection"], "Close");
  EXPECT_TRUE(server_->WaitForIdle(absl::Now() + absl::Seconds(10)));
  server_->Shutdown();
}

TEST_F(HttpServerTest, AClientGoneBeforeItsResponseDoesNotHoldTheDrain) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  ASSERT_TRUE(connection->Send(Request("POST", "/webhooks", "block")).ok());
  backend_.WaitUntilBlocked();
  connection->Reset();
  server_->BeginDrain();
  backend_.Release();
  EXPECT_TRUE(server_->WaitForIdle(absl::Now() + absl::Seconds(10)));
}

TEST_F(HttpServerTest, AWebhookIsAnsweredFromItsCallbackOnAnotherThread) {
  HttpServerOptions options;
  options.threads = 1;
  StartServer(options);
  absl::StatusOr<RawConnection> waiting = Connect();
  ASSERT_TRUE(waiting.ok());
  ASSERT_TRUE(waiting->Send(Request("POST", "/webhooks", "block")).ok());
  backend_.WaitUntilBlocked();
  // Only the webhook waiting for its outcome is in flight.
  EXPECT_EQ(InFlightSettledAt(1), 1);
  // The one HTTP thread is not held by the webhook waiting for its outcome.
  absl::StatusOr<RawConnection> other = Connect();
  ASSERT_TRUE(other.ok());
  absl::StatusOr<HttpResponse> accepted =
      other->Exchange(Request("POST", "/webhooks", "{}"));
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ(accepted->code, 200);

  backend_.Release();  // the callback runs on this thread
  absl::StatusOr<HttpResponse> answered = waiting->ReadResponse();
  ASSERT_TRUE(answered.ok()) << answered.status();
  EXPECT_EQ(answered->code, 200);
  EXPECT_EQ(answered->headers["connection"], "Keep-Alive");
  EXPECT_THAT(answered->body, HasSubstr("id-block"));
  // The connection serves its next request as usual.
  EXPECT_EQ(waiting->Exchange(Request("GET", "/healthz", ""))->code, 200);
  EXPECT_TRUE(server_->WaitForIdle(absl::Now() + absl::Seconds(10)));
}

TEST_F(HttpServerTest, AClientGoneBeforeItsCallbackLeavesNothingInFlight) {
  HttpServerOptions options;
  options.threads = 1;
  StartServer(options);
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  ASSERT_TRUE(connection->Send(Request("POST", "/webhooks", "block")).ok());
  backend_.WaitUntilBlocked();
  connection->Reset();
  // Served by the one HTTP thread, which by then has usually seen the reset
  // too: the answer then finds the peer gone.
  absl::StatusOr<RawConnection> probe = Connect();
  ASSERT_TRUE(probe.ok());
  ASSERT_EQ(probe->Exchange(Request("GET", "/healthz", ""))->code, 200);
  backend_.Release();
  EXPECT_TRUE(server_->WaitForIdle(absl::Now() + absl::Seconds(10)));
  EXPECT_EQ(server_->in_flight(), 0);
  EXPECT_EQ(probe->Exchange(Request("POST", "/webhooks", "{}"))->code, 200);
}

TEST_F(HttpServerTest, ACallbackAfterShutdownWritesNothingAndReleasesItsCount) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  ASSERT_TRUE(connection->Send(Request("POST", "/webhooks", "block")).ok());
  backend_.WaitUntilBlocked();
  server_->BeginDrain();
  EXPECT_FALSE(server_->WaitForIdle(absl::Now()));
  server_->Shutdown();  // the drain's deadline passed: the threads stop
  EXPECT_EQ(server_->in_flight(), 1);
  backend_.Release();  // the transport is gone: the answer is dropped
  EXPECT_EQ(server_->in_flight(), 0);
}

TEST_F(HttpServerTest, WebhooksDuringDrainAre503) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  ASSERT_EQ(connection->Exchange(Request("GET", "/healthz", ""))->code, 200);
  server_->BeginDrain();
  absl::StatusOr<HttpResponse> response =
      connection->Exchange(Request("POST", "/webhooks", "{}"));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->code, 503);
  EXPECT_THAT(backend_.refusals(),
              ::testing::ElementsAre(Refusal::kShuttingDown));
  EXPECT_TRUE(backend_.bodies().empty());
}

TEST_F(HttpServerTest, ConcurrentClientsAreAllAnswered) {
  constexpr int kClients = 8;
  constexpr int kPerClient = 50;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([this, &ok] {
      HttpClient client;
      for (int i = 0; i < kPerClient; ++i) {
        auto response = client.PostJson(Url("/webhooks"), "{}");
        if (response.ok() && response->code == 200) ++ok;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), kClients * kPerClient);
  EXPECT_EQ(backend_.bodies().size(),
            static_cast<std::size_t>(kClients * kPerClient));
}

std::string Webhook(absl::string_view body) {
  return absl::StrCat(
      "POST /webhooks HTTP/1.1\r\nHost: gw\r\n"
      "Content-Type: application/json\r\nContent-Length: ",
      body.size(), "\r\n\r\n", body);
}

// Several complete requests in one send each get their own response, in
// order, and each webhook is stored exactly when it is answered 200.
TEST_F(HttpServerTest, PipelinedRequestsAreEachAnsweredInOrder) {
  int next = 0;
  for (int n : {1, 2, 5, 20, 100}) {
    absl::StatusOr<RawConnection> connection = Connect();
    ASSERT_TRUE(connection.ok());
    std::string bytes;
    std::vector<std::string> bodies;
    for (int i = 0; i < n; ++i) {
      bodies.push_back(absl::StrCat("n", next++));
      bytes += Webhook(bodies.back());
    }
    const std::size_t stored_before = backend_.accepted().size();
    ASSERT_TRUE(connection->Send(bytes).ok());
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<HttpResponse> response = connection->ReadResponse();
      ASSERT_TRUE(response.ok()) << n << " #" << i << ": " << response.status();
      EXPECT_EQ(response->code, 200) << response->body;
      EXPECT_THAT(response->body, HasSubstr("\"id\":\"id-" + bodies[i] + "\""))
          << n << " #" << i;
    }
    std::vector<std::string> accepted = backend_.accepted();
    ASSERT_EQ(accepted.size(), stored_before + n);
    EXPECT_EQ(std::vector<std::string>(accepted.begin() + stored_before,
                                       accepted.end()),
              bodies);
  }
}

// A webhook answered later (its store is slow) still comes before the
// responses to the requests pipelined after it.
TEST_F(HttpServerTest, PipelinedResponsesWaitForAnEarlierWebhook) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  ASSERT_TRUE(connection
                  ->Send(Webhook("block") +
                         "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n" +
                         Webhook("{}"))
                  .ok());
  backend_.WaitUntilBlocked();
  EXPECT_FALSE(
      connection->ReadResponse(absl::Now() + absl::Milliseconds(100)).ok());
  backend_.Release();
  absl::StatusOr<HttpResponse> first = connection->ReadResponse();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(first->body, HasSubstr("id-block"));
  absl::StatusOr<HttpResponse> second = connection->ReadResponse();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->body, "{\"status\":\"ok\"}");
  absl::StatusOr<HttpResponse> third = connection->ReadResponse();
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_THAT(third->body, HasSubstr("id-{}"));
}

// Responses too large for the socket, from the HTTP thread and from a
// webhook's callback on another thread, enter Pistache's queue in order:
// one thread at a time hands them over, with no lock of ours held, since
// Pistache may run a write's continuation (which locks the connection)
// inside the call that queues it.
TEST_F(HttpServerTest, QueuedResponsesFromTwoThreadsArriveWholeAndInOrder) {
  const std::string big(8 << 20, 'q');
  backend_.SetMetrics(big);
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  // The webhook waits, and the metrics after it wait for it.
  ASSERT_TRUE(connection
                  ->Send(Webhook("block") + Request("GET", "/metrics", "") +
                         Webhook("{}"))
                  .ok());
  backend_.WaitUntilBlocked();
  // This thread, as the hub's committer, writes the three: more than the
  // socket takes, so the rest goes to Pistache's queue.
  backend_.Release();
  // Answered by the HTTP thread while that queue is still being written:
  // queued after it.
  ASSERT_TRUE(connection->Send(Request("GET", "/metrics", "")).ok());
  absl::StatusOr<HttpResponse> first = connection->ReadResponse();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(first->body, HasSubstr("id-block"));
  absl::StatusOr<HttpResponse> second = connection->ReadResponse();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->body == big) << second->body.size() << " bytes";
  absl::StatusOr<HttpResponse> third = connection->ReadResponse();
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_THAT(third->body, HasSubstr("id-{}"));
  absl::StatusOr<HttpResponse> fourth = connection->ReadResponse();
  ASSERT_TRUE(fourth.ok()) << fourth.status();
  EXPECT_TRUE(fourth->body == big) << fourth->body.size() << " bytes";
  // Written directly again once the queue is empty.
  EXPECT_EQ(connection->Exchange(Request("GET", "/healthz", ""))->code, 200);
  EXPECT_EQ(InFlightSettledAt(0), 0);
}

TEST_F(HttpServerTest, ARequestSplitAtAnyByteIsRead) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  const std::string request = Webhook("{\"split\":true}");
  for (std::size_t cut = 1; cut < request.size(); ++cut) {
    ASSERT_TRUE(connection->Send(request.substr(0, cut)).ok());
    ASSERT_TRUE(connection->Send(request.substr(cut)).ok());
    absl::StatusOr<HttpResponse> response = connection->ReadResponse();
    ASSERT_TRUE(response.ok()) << cut << ": " << response.status();
    EXPECT_EQ(response->code, 200) << cut;
  }
  EXPECT_EQ(backend_.accepted().size(), request.size() - 1);
}

TEST_F(HttpServerTest, ARequestAndTheStartOfTheNextAreBothAnswered) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  const std::string second = Webhook("{\"second\":1}");
  ASSERT_TRUE(
      connection->Send(Webhook("{\"first\":1}") + second.substr(0, 9)).ok());
  absl::StatusOr<HttpResponse> first = connection->ReadResponse();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->code, 200);
  ASSERT_TRUE(connection->Send(second.substr(9)).ok());
  absl::StatusOr<HttpResponse> next = connection->ReadResponse();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->code, 200) << next->body;
  EXPECT_EQ(backend_.accepted(),
            (std::vector<std::string>{"{\"first\":1}", "{\"second\":1}"}));
}

// Valid requests pipelined and cut at random points, among them webhooks
// the backend refuses, and sometimes a malformed request last: exactly one
// response per request, in order, and a webhook stored iff answered 200.
TEST_F(HttpServerTest, RandomFramingGetsOneTruthfulResponsePerRequest) {
  constexpr std::uint32_t kSeed = 20261202;
  std::cout << "random framing seed: " << kSeed << "\n";
  SCOPED_TRACE(absl::StrCat("seed ", kSeed));
  std::mt19937 random(kSeed);
  auto below = [&](int n) {
    return static_cast<int>(random() % static_cast<std::uint32_t>(n));
  };
  const std::vector<std::string> malformed = {
      "POST /webhooks HTTP/1.1\nHost: gw\nContent-Length: 2\n\n{}",
      "POST /webhooks HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n"
      "Content-Length: 3\r\n\r\n{}",
      "GET /healthz HTTP/1.1\r\nHost: gw\r\nX-A: a\r\n folded\r\n\r\n",
      "NOT HTTP\r\n\r\n",
      "POST /webhooks HTTP/1.1\r\nHost: gw\r\nContent-Length: -1\r\n\r\n",
      "POST /webhooks HTTP/1.1\r\n\r\n",
  };
  for (int round = 0; round < 40; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    struct Expected {
      int code;
      std::string stored;  // the body, for a webhook to be stored
    };
    std::vector<Expected> expected;
    std::string bytes;
    const int count = 1 + below(12);
    for (int i = 0; i < count; ++i) {
      const std::string body =
          absl::StrCat("{\"r\":", round, ",\"i\":", i, "}");
      switch (below(5)) {
        case 0:
        case 1:
          bytes += Webhook(body);
          expected.push_back({200, body});
          break;
        case 2: {
          const std::size_t half = body.size() / 2;
          absl::StrAppend(&bytes,
                          "POST /webhooks HTTP/1.1\r\nHost: gw\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n",
                          absl::Hex(half), "\r\n", body.substr(0, half), "\r\n",
                          absl::Hex(body.size() - half), "\r\n",
                          body.substr(half), "\r\n0\r\n\r\n");
          expected.push_back({200, body});
          break;
        }
        case 3:
          bytes += Webhook("400");  // refused by the backend: not stored
          expected.push_back({400, ""});
          break;
        case 4:
          if (below(2) == 0) {
            bytes += "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n";
            expected.push_back({200, ""});
          } else {
            bytes += "GET /nope HTTP/1.1\r\nHost: gw\r\n\r\n";
            expected.push_back({404, ""});
          }
          break;
      }
    }
    const bool ends_malformed = below(3) == 0;
    if (ends_malformed) {
      bytes += malformed[below(static_cast<int>(malformed.size()))];
      expected.push_back({400, ""});
    }
    absl::StatusOr<RawConnection> connection = Connect();
    ASSERT_TRUE(connection.ok());
    const std::size_t stored_before = backend_.accepted().size();
    for (std::size_t at = 0; at < bytes.size();) {
      const std::size_t piece =
          1 + below(static_cast<int>(
                  std::min<std::size_t>(bytes.size() - at, 300)));
      // The server may close after a malformed request before reading all.
      (void)connection->Send(bytes.substr(at, piece));
      at += piece;
    }
    std::vector<std::string> answered_200;
    for (std::size_t i = 0; i < expected.size(); ++i) {
      absl::StatusOr<HttpResponse> response = connection->ReadResponse();
      ASSERT_TRUE(response.ok()) << "#" << i << ": " << response.status();
      EXPECT_EQ(response->code, expected[i].code)
          << "#" << i << " " << response->body;
      if (!expected[i].stored.empty() && response->code == 200) {
        answered_200.push_back(expected[i].stored);
      }
    }
    if (ends_malformed) {
      EXPECT_TRUE(connection->WaitForClose());
    }
    // Nothing more than one response per request.
    EXPECT_FALSE(
        connection->ReadResponse(absl::Now() + absl::Milliseconds(5)).ok());
    const std::vector<std::string> accepted = backend_.accepted();
    ASSERT_GE(accepted.size(), stored_before);
    EXPECT_EQ(std::vector<std::string>(accepted.begin() + stored_before,
                                       accepted.end()),
              answered_200);
  }
}

TEST_F(HttpServerTest, FramingFaultsAreAnsweredInOurWordsAndClose) {
  struct Case {
    std::string request;
    int code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"POST /webhooks HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n"
       "Content-Length: 3\r\n\r\n{}",
       400, "conflicting Content-Length"},
      {"POST /webhooks HTTP/1.1\r\nHost: gw\r\nContent-Length: -1\r\n\r\n", 400,
       "invalid Content-Length \\\"-1\\\""},
      {"POST /webhooks HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n"
       "\r\nFFFFFFFFFFFFFFFFFFFFFFFFFFFF\r\n",
       400, "is too large"},
      {"GET /healthz HTTP/1.1\nHost: gw\n\n", 400, "bare LF"},
      {"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-A: a\r\n b\r\n\r\n", 400,
       "obsolete line folding"},
      {"GET /healthz HTTP/1.1\r\n\r\n", 400, "without a Host header"},
      {"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Big: " +
           std::string(1 << 20, 'x') + "\r\n\r\n",
       431, "larger than the limit of 65536 bytes"},
      {"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Big: " +
           std::string(200 << 10, 'x') + "\r\n\r\n",
       431, "larger than the limit of 65536 bytes"},
  };
  std::string many = "GET /healthz HTTP/1.1\r\nHost: gw\r\n";
  for (int i = 0; i < 10000; ++i) absl::StrAppend(&many, "X-", i, ": v\r\n");
  std::vector<Case> all = cases;
  all.push_back({many + "\r\n", 431, "header fields"});
  for (const Case& c : all) {
    for (bool bytewise : {false, true}) {
      absl::StatusOr<RawConnection> connection = Connect();
      ASSERT_TRUE(connection.ok());
      if (bytewise && c.request.size() < 4096) {
        for (char byte : c.request) {
          (void)connection->Send(std::string(1, byte));
        }
      } else {
        (void)connection->Send(c.request);
      }
      absl::StatusOr<HttpResponse> response = connection->ReadResponse();
      ASSERT_TRUE(response.ok()) << c.message << ": " << response.status();
      EXPECT_EQ(response->code, c.code) << response->body;
      EXPECT_THAT(response->body, HasSubstr(c.message));
      EXPECT_EQ(response->headers["connection"], "Close");
      EXPECT_TRUE(connection->WaitForClose());
    }
  }
  EXPECT_TRUE(backend_.accepted().empty());
}

TEST_F(HttpServerTest, AbsoluteFormTargetsAreRouted) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  absl::StatusOr<HttpResponse> response = connection->Exchange(
      "POST http://gateway.example/webhooks HTTP/1.1\r\nHost: gateway.example"
      "\r\nContent-Length: 2\r\n\r\n{}");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->code, 200) << response->body;
  EXPECT_EQ(backend_.accepted(), std::vector<std::string>{"{}"});
}

TEST_F(HttpServerTest, A404EchoesAtMostAShortPieceOfTheTarget) {
  absl::StatusOr<RawConnection> connection = Connect();
  ASSERT_TRUE(connection.ok());
  absl::StatusOr<HttpResponse> response = connection->Exchange(absl::StrCat(
      "GET /", std::string(60000, 'a'), " HTTP/1.1\r\nHost: gw\r\n\r\n"));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->code, 404);
  EXPECT_LT(response->body.size(), 400u);
}

}  // namespace
}  // namespace convocore::http
