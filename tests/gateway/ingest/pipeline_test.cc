// The ingest pipeline over the real translator, de-duplicator and event hub
// (in-memory store); a store that refuses to write stands in for a full disk,
// one that holds its writes for a slow fsync. The last tests serve it over
// the real HTTP server.
#include "gateway/ingest/pipeline.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gateway/http/server.h"
#include "gateway/ingest/hub_sink.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/hub/event_hub.h"
#include "services/hub/in_memory_event_store.h"
#include "tests/gateway/http/http_test_client.h"
#include "tests/gateway/metrics/exposition_checker.h"
#include "tests/support/eventually.h"

namespace convocore::ingest {
namespace {

using ::convocore::http::testing::HttpResponse;
using ::convocore::http::testing::RawConnection;
using ::convocore::metrics::testing::CheckExposition;
using ::convocore::metrics::testing::SampleValue;
using ::testing::HasSubstr;

constexpr char kSecret[] = "your_workspace_secret";

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::filesystem::path> SamplePaths() {
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(
           std::filesystem::path(GATEWAY_TESTDATA_DIR) / "samples")) {
    if (entry.path().extension() == ".json") paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

// Holds the store's Append() while `held`, as a slow fsync would.
struct Hold {
  absl::Mutex mu;
  bool held ABSL_GUARDED_BY(mu) = false;
};

// The in-memory store, but Append() fails while `failing` is set.
class FlakyStore final : public hub::EventStore {
 public:
  FlakyStore(std::shared_ptr<std::atomic<bool>> failing,
             std::shared_ptr<Hold> hold)
      : failing_(std::move(failing)), hold_(std::move(hold)) {}
  absl::Status Append(absl::Span<const hub::StoredEvent> batch) override {
    {
      absl::MutexLock lock(&hold_->mu);
      hold_->mu.Await(absl::Condition(
          +[](bool* held) { return !*held; }, &hold_->held));
    }
    if (failing_->load()) return absl::UnavailableError("disk full");
    return inner_.Append(batch);
  }
  absl::StatusOr<std::vector<hub::StoredEvent>> ReadAfter(
      std::uint64_t after, std::size_t max) const override {
    return inner_.ReadAfter(after, max);
  }
  absl::StatusOr<std::uint64_t> FirstSequenceAtOrAfter(
      absl::Time time) const override {
    return inner_.FirstSequenceAtOrAfter(time);
  }
  hub::StoreStats Stats() const override { return inner_.Stats(); }
  absl::Status Health() const override {
    return failing_->load() ? absl::UnavailableError("disk full")
                            : absl::OkStatus();
  }

 private:
  std::shared_ptr<std::atomic<bool>> failing_;
  std::shared_ptr<Hold> hold_;
  hub::InMemoryEventStore inner_{hub::RetentionOptions{}};
};

class PipelineTest : public ::testing::Test {
 protected:
  PipelineTest() {
    auto translator = gateway::Translator::Create({.secrets = {kSecret}});
    EXPECT_TRUE(translator.ok()) << translator.status();
    translator_ = std::move(*translator);
    auto hub =
        hub::EventHub::Create(std::make_unique<FlakyStore>(failing_, hold_));
    EXPECT_TRUE(hub.ok()) << hub.status();
    hub_ = std::move(*hub);
    sink_ = std::make_unique<HubSink>(hub_.get());
    pipeline_ = std::make_unique<IngestPipeline>(
        translator_.get(), &deduplicator_, sink_.get(), &metrics_,
        [this] { return now_; });
  }

  void HoldStore(bool held) {
    absl::MutexLock lock(&hold_->mu);
    hold_->held = held;
  }

  absl::StatusOr<IngestResult> Ingest(const std::string& body) {
    return IngestAndWait(body, now_);
  }
  absl::StatusOr<IngestResult> IngestAndWait(const std::string& body,
                                             absl::Time received) {
    absl::Notification answered;
    absl::StatusOr<IngestResult> result;
    pipeline_->Ingest(body, received, [&](absl::StatusOr<IngestResult> r) {
      result = std::move(r);
      answered.Notify();
    });
    answered.WaitForNotification();
    return result;
  }

  double Value(std::string_view name,
               const std::map<std::string, std::string>& labels = {}) {
    absl::StatusOr<std::vector<metrics::testing::ParsedSample>> samples =
        CheckExposition(registry_.Render());
    EXPECT_TRUE(samples.ok()) << samples.status();
    if (!samples.ok()) return -1;
    return SampleValue(*samples, name, labels);
  }

  absl::Time now_ = absl::FromUnixSeconds(1718035200);
  std::shared_ptr<std::atomic<bool>> failing_ =
      std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<Hold> hold_ = std::make_shared<Hold>();
  metrics::Registry registry_;
  IngestMetrics metrics_{registry_};
  std::unique_ptr<gateway::Translator> translator_;
  gateway::Deduplicator deduplicator_{gateway::DeduplicatorOptions{}};
  std::unique_ptr<hub::EventHub> hub_;
  std::unique_ptr<HubSink> sink_;
  std::unique_ptr<IngestPipeline> pipeline_;
};

TEST_F(PipelineTest, EverySampleIsAcceptedInSequence) {
  const std::vector<std::filesystem::path> paths = SamplePaths();
  ASSERT_EQ(paths.size(), 15u);
  std::uint64_t expected_sequence = 0;
  for (const auto& path : paths) {
    absl::StatusOr<IngestResult> result = Ingest(ReadFile(path));
    ASSERT_TRUE(result.ok()) << path << ": " << result.status();
    EXPECT_EQ(result->sequence, ++expected_sequence) << path;
    EXPECT_FALSE(result->duplicate);
    EXPECT_FALSE(result->id.empty());
  }
  absl::StatusOr<std::vector<metrics::testing::ParsedSample>> samples =
      CheckExposition(registry_.Render());
  ASSERT_TRUE(samples.ok()) << samples.status();
  for (const auto& path : paths) {
    EXPECT_EQ(
        SampleValue(*samples, "gateway_webhooks_total",
                    {{"type", path.stem().string()}, {"outcome", "accepted"}}),
        1)
        << path;
  }
  EXPECT_EQ(hub_->Stats().published_total, 15u);
}

TEST_F(PipelineTest, ADuplicateIsAcknowledgedWithTheFirstSequenceNotStored) {
  const std::string body = ReadFile(SamplePaths()[0]);  // agent_created.json
  absl::StatusOr<IngestResult> first = Ingest(body);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<IngestResult> second = Ingest(body);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->duplicate);
  EXPECT_EQ(second->sequence, first->sequence);
  EXPECT_EQ(second->id, first->id);
  EXPECT_EQ(hub_->Stats().published_total, 1u);
  EXPECT_EQ(Value("gateway_webhooks_total",
                  {{"type", "agent_created"}, {"outcome", "duplicate"}}),
            1);
}

TEST_F(PipelineTest, RejectionsKeepTheirCodesAndAreCounted) {
  EXPECT_EQ(Ingest("{not json").status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string wrong_secret = ReadFile(SamplePaths()[0]);
  wrong_secret.replace(wrong_secret.find(kSecret), strlen(kSecret), "nope");
  absl::StatusOr<IngestResult> unauthenticated = Ingest(wrong_secret);
  EXPECT_EQ(unauthenticated.status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(unauthenticated.status().message(),
              ::testing::Not(HasSubstr(kSecret)));
  EXPECT_EQ(Ingest(std::string(2 << 20, ' ')).status().code(),
            absl::StatusCode::kResourceExhausted);
  // As the gateway records a refusal of the HTTP layer.
  metrics_.Reject(Rejection::kUnsupportedMediaType);
  EXPECT_EQ(Value("gateway_webhooks_rejected_total", {{"reason", "invalid"}}),
            1);
  EXPECT_EQ(
      Value("gateway_webhooks_rejected_total", {{"reason", "unauthenticated"}}),
      1);
  EXPECT_EQ(Value("gateway_webhooks_rejected_total", {{"reason", "too_large"}}),
            1);
  EXPECT_EQ(Value("gateway_webhooks_rejected_total",
                  {{"reason", "unsupported_media_type"}}),
            1);
  EXPECT_EQ(hub_->Stats().published_total, 0u);
}

TEST_F(PipelineTest, CountsWhatTheContractDoesNotKnow) {
  const std::string body = R"({"type":"brand_new","extra":1,"payload":{
      "workspaceSecret":"your_workspace_secret","createdAt":1718035200000}})";
  absl::StatusOr<IngestResult> result = Ingest(body);
  ASSERT_TRUE(result.ok()) << result.status();
  const std::string unknown_channel =
      R"({"type":"message_received","payload":{"agentId":"a","convoId":"c",
      "messageContent":"hi","channel":"carrier_pigeon","newKey":true,
      "createdAt":1718035200000,"workspaceSecret":"your_workspace_secret"}})";
  ASSERT_TRUE(Ingest(unknown_channel).ok());
  EXPECT_EQ(Value("gateway_unknown_event_types_total", {{"type", "brand_new"}}),
            1);
  EXPECT_EQ(Value("gateway_webhooks_total",
                  {{"type", "other"}, {"outcome", "accepted"}}),
            1);
  EXPECT_EQ(Value("gateway_unknown_fields_total", {{"field", "extra"}}), 1);
  EXPECT_EQ(
      Value("gateway_unknown_fields_total", {{"field", "payload.newKey"}}), 1);
  EXPECT_EQ(Value("gateway_unknown_enum_values_total",
                  {{"field", "payload.channel"}}),
            1);
}

TEST_F(PipelineTest, TheSecretNeverReachesTheMetrics) {
  // The secret as an unknown key, an unknown type and an enum value.
  const std::string body = R"({"type":"your_workspace_secret",
      "your_workspace_secret":1,"payload":{"your_workspace_secret":2,
      "channel":"your_workspace_secret","createdAt":1,
      "workspaceSecret":"your_workspace_secret"}})";
  ASSERT_TRUE(Ingest(body).ok());
  const std::string message_received =
      R"({"type":"message_received","payload":{"agentId":"a","convoId":"c",
      "messageContent":"m","channel":"your_workspace_secret",
      "your_workspace_secret":true,"createdAt":1,
      "workspaceSecret":"your_workspace_secret"}})";
  ASSERT_TRUE(Ingest(message_received).ok());
  EXPECT_THAT(registry_.Render(), ::testing::Not(HasSubstr(kSecret)));
  EXPECT_EQ(Value("gateway_secret_redactions_total"), 2);
}

TEST_F(PipelineTest, UnknownFieldNamesAreBounded) {
  for (int i = 0; i < 300; ++i) {
    const std::string body = absl::StrCat(
        R"({"type":"webhook_test","payload":{"message":"m","createdAt":1,)",
        "\"field", i, "\":1,",
        R"("workspaceSecret":"your_workspace_secret"}})");
    ASSERT_TRUE(Ingest(body).ok());
  }
  const std::string text = registry_.Render();
  std::size_t series = 0;
  for (std::size_t at = text.find("gateway_unknown_fields_total{");
       at != std::string::npos;
       at = text.find("gateway_unknown_fields_total{", at + 1)) {
    ++series;
  }
  EXPECT_EQ(series, 201u);  // 200 names and the overflow
  EXPECT_EQ(Value("gateway_unknown_fields_total", {{"field", "_overflow"}}),
            100);
}

TEST_F(PipelineTest, AStoreFailureIs503AndTheWebhookIsNewAgainLater) {
  const std::string body = ReadFile(SamplePaths()[0]);
  failing_->store(true);
  absl::StatusOr<IngestResult> failed = Ingest(body);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Value("gateway_webhooks_total",
                  {{"type", "agent_created"}, {"outcome", "failed"}}),
            1);
  failing_->store(false);
  absl::StatusOr<IngestResult> retried = Ingest(body);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_FALSE(retried->duplicate);
}

TEST_F(PipelineTest, ConcurrentIdenticalDeliveriesStoreOneEvent) {
  const std::string body = ReadFile(SamplePaths()[1]);
  constexpr int kThreads = 8;
  std::vector<absl::StatusOr<IngestResult>> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = Ingest(body); });
  }
  for (std::thread& thread : threads) thread.join();
  int duplicates = 0;
  for (const auto& result : results) {
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->sequence, 1u);
    duplicates += result->duplicate;
  }
  EXPECT_EQ(duplicates, kThreads - 1);
  EXPECT_EQ(hub_->Stats().published_total, 1u);
}

TEST_F(PipelineTest, IngestReturnsBeforeTheEventIsStoredAndAnswersOnceItIs) {
  {
    absl::MutexLock lock(&hold_->mu);
    hold_->held = true;
  }
  absl::Notification answered;
  absl::StatusOr<IngestResult> result;
  pipeline_->Ingest(ReadFile(SamplePaths()[0]), now_,
                    [&](absl::StatusOr<IngestResult> r) {
                      result = std::move(r);
                      answered.Notify();
                    });
  // Ingest() returned while the store is still writing: not answered yet.
  EXPECT_FALSE(answered.HasBeenNotified());
  EXPECT_EQ(Value("gateway_webhooks_total",
                  {{"type", "agent_created"}, {"outcome", "accepted"}}),
            0);
  {
    absl::MutexLock lock(&hold_->mu);
    hold_->held = false;
  }
  answered.WaitForNotification();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->sequence, 1u);
  EXPECT_EQ(Value("gateway_webhooks_total",
                  {{"type", "agent_created"}, {"outcome", "accepted"}}),
            1);
  EXPECT_EQ(Value("gateway_ingest_latency_seconds_count"), 1);
}

TEST_F(PipelineTest, LatencyIsFromReceiptToAcknowledgement) {
  const absl::Time received = now_;
  now_ += absl::Milliseconds(3);  // the clock the pipeline reads at the end
  ASSERT_TRUE(IngestAndWait(ReadFile(SamplePaths()[2]), received).ok());
  ASSERT_TRUE(IngestAndWait(ReadFile(SamplePaths()[2]), received).ok());
  EXPECT_EQ(Value("gateway_ingest_latency_seconds_count"), 2);
  EXPECT_DOUBLE_EQ(Value("gateway_ingest_latency_seconds_sum"), 0.006);
  EXPECT_EQ(Value("gateway_ingest_latency_seconds_bucket", {{"le", "0.0025"}}),
            0);
  EXPECT_EQ(Value("gateway_ingest_latency_seconds_bucket", {{"le", "0.005"}}),
            2);
}



// What the binary's backend does: webhooks to the pipeline.
class PipelineBackend final : public http::HttpBackend {
 public:
  explicit PipelineBackend(IngestPipeline* pipeline) : pipeline_(pipeline) {}
  void HandleWebhook(std::string_view body, absl::Time receive_time,
                     http::WebhookCallback done) override {
    pipeline_->Ingest(
        body, receive_time,
        [done = std::move(done)](absl::StatusOr<IngestResult> result) mutable {
          if (!result.ok()) {
            std::move(done)(result.status());
            return;
          }
          std::move(done)(http::WebhookAck{.sequence = result->sequence,
                                           .id = std::move(result->id),
                                           .duplicate = result->duplicate});
        });
  }
  void OnWebhookRefused(http::Refusal) override {}
  absl::Status Readiness() const override { return absl::OkStatus(); }
  std::string RenderMetrics() const override { return ""; }

 private:
  IngestPipeline* const pipeline_;
};

std::string Post(const std::string& body) {
  return absl::StrCat(
      "POST /webhooks HTTP/1.1\r\nHost: gateway\r\n"
      "Content-Type: application/json\r\nContent-Length: ",
      body.size(), "\r\n\r\n", body);
}

// What asynchronous Ingest() calls answer, by call, as their callbacks
// deliver it (on the committer's thread).
class Outcomes {
 public:
  explicit Outcomes(int calls) : calls_(calls), results_(calls) {}

  // The callback of call `i`.
  IngestPipeline::Callback For(int i) {
    return [this, i](absl::StatusOr<IngestResult> result) {
      absl::MutexLock lock(&mu_);
      results_[i] = std::move(result);
    };
  }
  int arrived() {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const auto& result : results_) n += result.has_value();
    return n;
  }
  bool WaitForAll() {
    return convocore::testing::Eventually(
        [&] { return arrived() == calls_; });
  }
  // Call `i`'s answer, once WaitForAll() returned true.
  absl::StatusOr<IngestResult> operator[](int i) {
    absl::MutexLock lock(&mu_);
    return *results_[i];
  }

 private:
  const int calls_;
  absl::Mutex mu_;
  std::vector<std::optional<absl::StatusOr<IngestResult>>> results_
      ABSL_GUARDED_BY(mu_);
};

TEST_F(PipelineTest, DuplicatesOfAHeldDeliveryAreAnsweredOnceItIsStored) {
  const std::string body = ReadFile(SamplePaths()[0]);
  HoldStore(true);
  constexpr int kCopies = 4;
  Outcomes outcomes(kCopies);
  for (int i = 0; i < kCopies; ++i) {
    // Each call returns at once: nothing waits for the store.
    pipeline_->Ingest(body, now_, outcomes.For(i));
  }
  EXPECT_EQ(deduplicator_.waiting(), static_cast<std::size_t>(kCopies - 1));
  EXPECT_EQ(outcomes.arrived(), 0);
  HoldStore(false);
  ASSERT_TRUE(outcomes.WaitForAll());
  for (int i = 0; i < kCopies; ++i) {
    const absl::StatusOr<IngestResult> result = outcomes[i];
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->sequence, 1u);
    EXPECT_EQ(result->duplicate, i != 0) << i;
  }
  EXPECT_EQ(deduplicator_.waiting(), 0u);
  EXPECT_EQ(hub_->Stats().published_total, 1u);
  EXPECT_EQ(Value("gateway_webhooks_total",
                  {{"type", "agent_created"}, {"outcome", "duplicate"}}),
            kCopies - 1);
}

TEST_F(PipelineTest, DuplicatesOfAFailedDeliveryGetItsUnavailable) {
  const std::string body = ReadFile(SamplePaths()[0]);
  HoldStore(true);
  failing_->store(true);
  constexpr int kCopies = 3;
  Outcomes outcomes(kCopies);
  for (int i = 0; i < kCopies; ++i) {
    pipeline_->Ingest(body, now_, outcomes.For(i));
  }
  HoldStore(false);
  ASSERT_TRUE(outcomes.WaitForAll());
  for (int i = 0; i < kCopies; ++i) {
    EXPECT_EQ(outcomes[i].status().code(), absl::StatusCode::kUnavailable)
        << i;
  }
  EXPECT_THAT(std::string(outcomes[1].status().message()),
              HasSubstr("first delivery of this webhook could not be stored"));
  EXPECT_EQ(Value("gateway_webhooks_total",
                  {{"type", "agent_created"}, {"outcome", "failed"}}),
            kCopies);
  // Nothing was stored, so the next delivery is new and is stored.
  failing_->store(false);
  absl::StatusOr<IngestResult> later = Ingest(body);
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_FALSE(later->duplicate);
  EXPECT_EQ(hub_->Stats().published_total, 1u);
}

// Over the real HTTP server with one thread: duplicates of a webhook held in
// the store occupy no thread, so that other requests are answered meanwhile,
// and each gets the first delivery's answer once it is stored.
TEST_F(PipelineTest, HeldDuplicatesOverHttpLeaveTheOnlyThreadFree) {
  PipelineBackend backend(pipeline_.get());
  absl::StatusOr<std::unique_ptr<http::HttpServer>> server =
      http::HttpServer::Start({.address = "127.0.0.1", .port = 0, .threads = 1},
                              &backend, nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::uint16_t port = (*server)->port();
  const std::string held = ReadFile(SamplePaths()[0]);
  const std::string stored = ReadFile(SamplePaths()[1]);
  // One already stored, for a duplicate answered at once.
  ASSERT_TRUE(IngestAndWait(stored, absl::Now()).ok());

  HoldStore(true);
  constexpr int kCopies = 4;
  std::vector<RawConnection> connections;
  for (int i = 0; i < kCopies; ++i) {
    absl::StatusOr<RawConnection> connection = RawConnection::Connect(port);
    ASSERT_TRUE(connection.ok()) << connection.status();
    ASSERT_TRUE(connection->Send(Post(held)).ok());
    connections.push_back(*std::move(connection));
  }
  ASSERT_TRUE(convocore::testing::Eventually(
      [&] { return deduplicator_.waiting() == kCopies - 1; }));

  // Meanwhile the one HTTP thread answers everything else.
  absl::StatusOr<RawConnection> other = RawConnection::Connect(port);
  ASSERT_TRUE(other.ok()) << other.status();
  absl::StatusOr<HttpResponse> health =
      other->Exchange("GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n");
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(health->code, 200);
  absl::StatusOr<HttpResponse> duplicate = other->Exchange(Post(stored));
  ASSERT_TRUE(duplicate.ok()) << duplicate.status();
  EXPECT_EQ(duplicate->code, 200);
  EXPECT_THAT(duplicate->body, HasSubstr("\"duplicate\":true"));
  absl::StatusOr<HttpResponse> invalid = other->Exchange(Post("{}"));
  ASSERT_TRUE(invalid.ok()) << invalid.status();
  EXPECT_EQ(invalid->code, 400);
  // The held ones are not answered while held.
  EXPECT_FALSE(
      connections[0].ReadResponse(absl::Now() + absl::Milliseconds(50)).ok());

  HoldStore(false);
  int duplicates = 0;
  for (RawConnection& connection : connections) {
    absl::StatusOr<HttpResponse> response = connection.ReadResponse();
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->code, 200) << response->body;
    EXPECT_THAT(response->body, HasSubstr("\"sequence\":2"));
    duplicates += absl::StrContains(response->body, "\"duplicate\":true");
  }
  EXPECT_EQ(duplicates, kCopies - 1);
  EXPECT_EQ(hub_->Stats().published_total, 2u);
  (*server)->Shutdown();
}

// A sink like the JetStream store's: it may say that it already held the
// event (stored through another gateway replica).
class ReplicatedLogSink final : public EventSink {
 public:
  void Publish(convocore::webhooks::v1::Event event,
               SinkCallback done) override {
    ++published_;
    std::move(done)(SinkAck{.sequence = 7, .duplicate = true});
  }
  int published() const { return published_; }

 private:
  int published_ = 0;
};

TEST(PipelineSinkTest, ASinksDuplicateIsAnsweredAsADuplicateAndRemembered) {
  auto translator = gateway::Translator::Create({.secrets = {kSecret}});
  ASSERT_TRUE(translator.ok());
  metrics::Registry registry;
  IngestMetrics metrics(registry);
  gateway::Deduplicator deduplicator{gateway::DeduplicatorOptions{}};
  ReplicatedLogSink sink;
  IngestPipeline pipeline(translator->get(), &deduplicator, &sink, &metrics);
  const std::string body = ReadFile(SamplePaths()[0]);  // agent_created.json
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<IngestResult> result;
    pipeline.Ingest(body, absl::Now(), [&](absl::StatusOr<IngestResult> r) {
      result = std::move(r);
    });
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_TRUE(result->duplicate);
    EXPECT_EQ(result->sequence, 7u);
  }
  // The second delivery was answered from the de-duplicator's memory.
  EXPECT_EQ(sink.published(), 1);
  absl::StatusOr<std::vector<metrics::testing::ParsedSample>> samples =
      CheckExposition(registry.Render());
  ASSERT_TRUE(samples.ok());
  EXPECT_EQ(SampleValue(*samples, "gateway_webhooks_total",
                        {{"type", "agent_created"}, {"outcome", "duplicate"}}),
            2);
  EXPECT_EQ(SampleValue(*samples, "gateway_webhooks_total",
                        {{"type", "agent_created"}, {"outcome", "accepted"}}),
            0);
}

}  // namespace
}  // namespace convocore::ingest
