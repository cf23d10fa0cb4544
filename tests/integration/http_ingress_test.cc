// HTTP ingress faults through the real webhook-gateway binary: signals that
// must not stop it, and requests that must each get a truthful answer.
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/gateway/http/http_test_client.h"
#include "tests/integration/gateway_fixture.h"
#include "tests/integration/gateway_process.h"
#include "tests/support/eventually.h"

namespace convocore::integration {
namespace {

using ::convocore::http::testing::HttpClient;
using ::convocore::http::testing::HttpResponse;
using ::convocore::http::testing::RawConnection;
using ::convocore::testing::Eventually;
using ::testing::HasSubstr;

// The pids of this process's children (every thread's).
std::vector<pid_t> Children() {
  std::vector<pid_t> pids;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "children");
    pid_t pid;
    while (in >> pid) pids.push_back(pid);
  }
  return pids;
}

// How many descriptors process `pid` has open.
int OpenDescriptors(pid_t pid) {
  int count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(
           absl::StrCat("/proc/", pid, "/fd"))) {
    ++count;
  }
  return count;
}

std::string Webhook(const std::string& body) {
  return absl::StrCat(
      "POST /webhooks HTTP/1.1\r\nHost: gw\r\n"
      "Content-Type: application/json\r\nContent-Length: ",
      body.size(), "\r\n\r\n", body);
}

using HttpIngressTest = GatewayTest;

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

// With every descriptor taken, a new connection is answered 503 at once (not
// left waiting) and the gateway says why (a rate-limited error line,
// gateway_http_connections_shed_total); a connection it already serves is
// answered as ever; once descriptors are free again, so is a new one.
TEST_F(HttpIngressTest, OutOfDescriptorsNewConnectionsGet503AndItIsLogged) {
  StartGateway();
  const std::vector<pid_t> children = Children();
  ASSERT_EQ(children.size(), 1u);
  const pid_t pid = children[0];
  absl::StatusOr<RawConnection> early =
      RawConnection::Connect(gateway_->http_port());
  ASSERT_TRUE(early.ok());
  ASSERT_EQ(early->Exchange("GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")->code,
            200);

  rlimit original{};
  ASSERT_EQ(prlimit(pid, RLIMIT_NOFILE, nullptr, &original), 0);
  const rlim_t low = OpenDescriptors(pid) + 4;
  const rlimit limited{.rlim_cur = low, .rlim_max = original.rlim_max};
  ASSERT_EQ(prlimit(pid, RLIMIT_NOFILE, &limited, nullptr), 0)
      << "cannot lower the gateway's open file limit";
  // Fill what is left, and more: the rest wait in the listen backlog.
  std::vector<RawConnection> fillers;
  for (int i = 0; i < 12; ++i) {
    absl::StatusOr<RawConnection> filler =
        RawConnection::Connect(gateway_->http_port());
    ASSERT_TRUE(filler.ok()) << filler.status();
    fillers.push_back(*std::move(filler));
  }
  // A connection that arrives now is answered 503 within the watchdog's
  // two checks, not left waiting: while it sheds, Pistache's listener is
  // kept off the listening socket and cannot take the spare it frees. (A
  // descriptor another thread of the process frees meanwhile may serve one
  // late connection instead, at once: that one is answered too, and the
  // next is refused.)
  absl::StatusOr<HttpResponse> refused;
  std::vector<RawConnection> late_ones;
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<RawConnection> late =
        RawConnection::Connect(gateway_->http_port());
    ASSERT_TRUE(late.ok());
    ASSERT_TRUE(late->Send(Webhook(ReadSample("webhook_test.json"))).ok());
    refused = late->ReadResponse(absl::Now() + absl::Seconds(2));
    ASSERT_TRUE(refused.ok()) << refused.status() << "\n" << gateway_->log();
    late_ones.push_back(*std::move(late));
    if (refused->code != 200) break;
  }
  EXPECT_EQ(refused->code, 503) << refused->body;
  EXPECT_THAT(refused->body, HasSubstr("no file descriptor left"));
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(gateway_->log(), "cannot accept HTTP connections");
  })) << gateway_->log();

  // A request on a connection it serves is answered.
  absl::StatusOr<HttpResponse> served =
      early->Exchange(Webhook(ReadSample("agent_created.json")));
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(served->code, 200) << served->body;

  ASSERT_EQ(prlimit(pid, RLIMIT_NOFILE, &original, nullptr), 0);
  fillers.clear();
  HttpClient client;
  absl::StatusOr<HttpResponse> later =
      client.PostJson(Url("/webhooks"), ReadSample("agent_deleted.json"));
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ(later->code, 200) << later->body;
  absl::StatusOr<HttpResponse> metrics = client.Get(Url("/metrics"));
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(metrics->body, HasSubstr("gateway_http_connections_shed_total"));
  gateway_->Signal(SIGTERM);
  EXPECT_EQ(gateway_->WaitForExit(), 0) << gateway_->log();
}

// A flood of connections beyond --http_max_connections: each one over the
// limit is answered 503 and closed, the descriptors the process holds stay
// bounded, and once the flood goes the gateway serves as before.
TEST_F(HttpIngressTest, ConnectionsBeyondTheLimitGet503AndTheProcessLives) {
  StartGateway({"--http_max_connections=16"});
  const std::vector<pid_t> children = Children();
  ASSERT_EQ(children.size(), 1u);
  const int descriptors_before = OpenDescriptors(children[0]);
  std::vector<RawConnection> flood;
  int refused = 0;
  for (int i = 0; i < 200; ++i) {
    absl::StatusOr<RawConnection> connection =
        RawConnection::Connect(gateway_->http_port());
    ASSERT_TRUE(connection.ok()) << connection.status();
    flood.push_back(*std::move(connection));
  }
  for (RawConnection& connection : flood) {
    absl::StatusOr<HttpResponse> answer =
        connection.ReadResponse(absl::Now() + absl::Milliseconds(200));
    if (answer.ok()) {
      EXPECT_EQ(answer->code, 503) << answer->body;
      EXPECT_THAT(answer->body, HasSubstr("--http_max_connections"));
      ++refused;
    }
  }
  EXPECT_EQ(refused, 200 - 16);
  // Refused connections are closed by the gateway: only the 16 it serves,
  // and a few of its own, hold descriptors.
  EXPECT_TRUE(Eventually([&] {
    return OpenDescriptors(children[0]) <= descriptors_before + 2 * 16 + 8;
  })) << OpenDescriptors(children[0])
      << " descriptors open";
  flood.clear();
  HttpClient client;
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<HttpResponse> posted =
        client.PostJson(Url("/webhooks"), ReadSample("webhook_test.json"));
    return posted.ok() && posted->code == 200;
  })) << gateway_->log();
  absl::StatusOr<HttpResponse> metrics = client.Get(Url("/metrics"));
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(metrics->body,
              HasSubstr("gateway_http_connections_refused_total 184"));
  gateway_->Signal(SIGTERM);
  EXPECT_EQ(gateway_->WaitForExit(), 0) << gateway_->log();
}

// Every sample pipelined in one send on one connection: each answered 200
// in order with the next sequence, then each a duplicate in a second send.
TEST_F(HttpIngressTest, PipelinedWebhooksAreEachStoredAndAnsweredInOrder) {
  StartGateway();
  absl::StatusOr<RawConnection> connection =
      RawConnection::Connect(gateway_->http_port());
  ASSERT_TRUE(connection.ok());
  const std::vector<std::string> names = SampleNames();
  std::string bytes;
  for (const std::string& name : names) bytes += Webhook(ReadSample(name));
  for (bool again : {false, true}) {
    ASSERT_TRUE(connection->Send(bytes).ok());
    for (std::size_t i = 0; i < names.size(); ++i) {
      absl::StatusOr<HttpResponse> response = connection->ReadResponse();
      ASSERT_TRUE(response.ok()) << names[i] << ": " << response.status();
      EXPECT_EQ(response->code, 200) << names[i] << ": " << response->body;
      EXPECT_THAT(response->body,
                  HasSubstr(absl::StrCat("\"sequence\":", i + 1, ",")))
          << names[i];
      EXPECT_THAT(response->body, HasSubstr(again ? "\"duplicate\":true"
                                                  : "\"duplicate\":false"));
    }
  }
  HttpClient client;
  absl::StatusOr<HttpResponse> metrics = client.Get(Url("/metrics"));
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(metrics->body,
              HasSubstr(absl::StrCat("gateway_http_requests_total{route=\""
                                     "webhooks\",code=\"200\"} ",
                                     2 * names.size())));
}

}  // namespace
}  // namespace convocore::integration
