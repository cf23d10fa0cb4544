// Several gateway replicas on one JetStream stream, through the real binary
// and a real 3-node cluster (R3) on loopback: every replica streams every
// event with the same sequences in the same order; a body is streamed once
// whichever replicas received it; no webhook that got a 200 is lost when a
// replica or the stream's leader is SIGKILLed under load; without a quorum
// (or without any server) webhooks and readiness answer 503, never 200, and
// recover by themselves.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/event_stream_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/gateway/http/http_test_client.h"
#include "tests/integration/gateway_process.h"
#include "tests/integration/webhook_requests.h"
#include "tests/support/eventually.h"
#include "tests/support/nats_cluster.h"

namespace convocore::integration {
namespace {

namespace v1 = ::convocore::webhooks::v1;
using ::convocore::http::testing::HttpClient;
using ::convocore::http::testing::HttpResponse;
using ::convocore::testing::Eventually;
using ::convocore::testing::NatsCluster;
using ::testing::AnyOf;
using ::testing::HasSubstr;

constexpr char kStream[] = "CONVOCORE_EVENTS";  // the --nats_stream default
constexpr int kReplicas = 3;

std::vector<std::uint64_t> SequencesOf(const std::vector<v1::Event>& events) {
  std::vector<std::uint64_t> sequences;
  for (const v1::Event& event : events) sequences.push_back(event.sequence());
  return sequences;
}

// Senders that post distinct webhooks until stopped, each to the next
// replica in turn, as a load balancer spreads them. Every answer's code is
// counted (0: no answer, e.g. from a killed replica) and every 200 recorded.
class Load {
 public:
  Load(std::vector<GatewayProcess*> gateways, int senders) {
    for (int s = 0; s < senders; ++s) {
      threads_.emplace_back([this, gateways, s] { Send(gateways, s); });
    }
  }
  ~Load() { Stop(); }

  void Stop() {
    stop_ = true;
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }

  int acks() const { return acks_.load(); }
  // sequence -> event id of every 200.
  std::map<std::uint64_t, std::string> acked() const {
    absl::MutexLock lock(&mu_);
    return acked_;
  }
  // HTTP code -> how many answers had it.
  std::map<long, int> codes() const {
    absl::MutexLock lock(&mu_);
    return codes_;
  }
  // What a 200 should never be: unparseable, a duplicate of a distinct body,
  // or a sequence acknowledged for two different events.
  int bad_acks() const { return bad_acks_.load(); }

 private:
  void Send(const std::vector<GatewayProcess*>& gateways, int s) {
    HttpClient client;
    std::size_t next = s;
    for (int n = 0; !stop_.load(); ++n) {
      const GatewayProcess& gateway = *gateways[next++ % gateways.size()];
      const HttpResponse response =
          PostWebhook(client, gateway, absl::StrCat("load-", s, "-", n));
      std::optional<Ack> ack;
      if (response.code == 200) ack = ParseAck(response.body);
      Record(response.code, ack);
      // A dead replica refuses at once: do not spin on it.
      if (response.code == 0) absl::SleepFor(absl::Milliseconds(5));
    }
  }

  void Record(long code, const std::optional<Ack>& ack) {
    absl::MutexLock lock(&mu_);
    ++codes_[code];
    if (code != 200) return;
    if (!ack || ack->duplicate) {
      ++bad_acks_;
      return;
    }
    auto [it, inserted] = acked_.emplace(ack->sequence, ack->id);
    if (!inserted && it->second != ack->id) ++bad_acks_;
    ++acks_;
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> acks_{0};
  std::atomic<int> bad_acks_{0};
  mutable absl::Mutex mu_;
  std::map<std::uint64_t, std::string> acked_ ABSL_GUARDED_BY(mu_);
  std::map<long, int> codes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

class JetStreamHaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<NatsCluster>> cluster =
        NatsCluster::Start(3, absl::Seconds(60));
    if (absl::IsFailedPrecondition(cluster.status())) {
      GTEST_SKIP() << cluster.status();
    }
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    // All at once: the replicas race to create the stream, as a Deployment's
    // pods do.
    for (int k = 0; k < kReplicas; ++k) {
      gateways_.push_back(std::make_unique<GatewayProcess>(Flags()));
    }
    for (auto& gateway : gateways_) {
      ASSERT_TRUE(gateway->WaitReady(absl::Seconds(60))) << gateway->log();
    }
  }

  std::vector<std::string> Flags() const {
    return {"--store=jetstream",        "--nats_url=" + cluster_->url(),
            "--nats_replicas=3",        "--nats_publish_timeout=2s",
            "--nats_start_timeout=30s", "--heartbeat_interval=100ms"};
  }

  std::vector<GatewayProcess*> Gateways() const {
    std::vector<GatewayProcess*> all;
    for (const auto& gateway : gateways_) all.push_back(gateway.get());
    return all;
  }

  // The node logs, for a failure message.
  std::string ClusterLogs() const {
    std::string logs;
    for (int k = 0; k < cluster_->size(); ++k) {
      absl::StrAppend(&logs, "--- ", cluster_->name(k), "\n", cluster_->log(k));
    }
    return logs;
  }

  // Posts the webhook named `name` until it is acknowledged (servers coming
  // back elect leaders first); nullopt after a minute.
  static std::optional<Ack> PostUntilAccepted(HttpClient& client,
                                              const GatewayProcess& gateway,
                                              const std::string& name) {
    std::optional<Ack> ack;
    Eventually(
        [&] {
          const HttpResponse response = PostWebhook(client, gateway, name);
          if (response.code == 200) ack = ParseAck(response.body);
          return ack.has_value();
        },
        absl::Seconds(60), absl::Milliseconds(200));
    return ack;
  }

  // Every event of `gateway`'s stream from the start through `through`:
  // exactly the sequences 1..through, once each, in order, and every
  // acknowledged one under the id its 200 named.
  void ExpectStreamHolds(const GatewayProcess& gateway, std::uint64_t through,
                         const std::map<std::uint64_t, std::string>& acked) {
    const std::vector<v1::Event> events = ReadStream(gateway, 0, through);
    ASSERT_EQ(events.size(), through) << gateway.log() << ClusterLogs();
    for (std::size_t i = 0; i < events.size(); ++i) {
      ASSERT_EQ(events[i].sequence(), i + 1);
    }
    for (const auto& [sequence, id] : acked) {
      ASSERT_LE(sequence, through);
      EXPECT_EQ(events[sequence - 1].id(), id)
          << "acknowledged sequence " << sequence;
    }
  }

  std::unique_ptr<NatsCluster> cluster_;
  std::vector<std::unique_ptr<GatewayProcess>> gateways_;
};

TEST_F(JetStreamHaTest, EveryReplicaStreamsEveryEventInOneOrder) {
  // One subscriber of everything per replica, and one of message_received
  // only; all registered before anything is posted.
  std::vector<std::unique_ptr<Subscriber>> all;
  for (const auto& gateway : gateways_) {
    all.push_back(std::make_unique<Subscriber>(gateway->grpc_port(),
                                               v1::SubscribeRequest()));
  }
  v1::SubscribeRequest messages_only;
  messages_only.add_event_types(v1::EVENT_TYPE_MESSAGE_RECEIVED);
  Subscriber messages(gateways_[1]->grpc_port(), messages_only);
  for (auto& subscriber : all) ASSERT_TRUE(subscriber->WaitStarted());
  ASSERT_TRUE(messages.WaitStarted());

  // Every sample and some distinct webhooks, spread over the replicas.
  std::vector<std::string> bodies;
  for (const std::string& name : SampleNames()) {
    bodies.push_back(ReadSample(name));
  }
  for (int n = 0; n < 30; ++n) bodies.push_back(Webhook(absl::StrCat("n", n)));
  HttpClient client;
  std::map<std::uint64_t, std::string> acked;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    const GatewayProcess& gateway = *gateways_[i % kReplicas];
    const HttpResponse response = OrNoResponse(
        client.PostJson(gateway.base_url() + "/webhooks", bodies[i]));
    ASSERT_EQ(response.code, 200) << response.body;
    const std::optional<Ack> ack = ParseAck(response.body);
    ASSERT_TRUE(ack.has_value()) << response.body;
    EXPECT_FALSE(ack->duplicate);
    acked.emplace(ack->sequence, ack->id);
  }
  ASSERT_EQ(acked.size(), bodies.size());
  const std::uint64_t last = acked.rbegin()->first;
  EXPECT_EQ(last, bodies.size());

  std::optional<std::vector<v1::Event>> first;
  for (int k = 0; k < kReplicas; ++k) {
    std::optional<std::vector<v1::Event>> events =
        all[k]->EventsUntilCaughtUpTo(last, absl::Seconds(30));
    ASSERT_TRUE(events.has_value()) << "replica " << k;
    ASSERT_EQ(events->size(), bodies.size()) << "replica " << k;
    for (const v1::Event& event : *events) {
      EXPECT_EQ(event.id(), acked.at(event.sequence()));
    }
    if (!first) {
      first = std::move(events);
      continue;
    }
    EXPECT_EQ(SequencesOf(*events), SequencesOf(*first)) << "replica " << k;
    for (std::size_t i = 0; i < events->size(); ++i) {
      // Not only the same ids: the same events, byte for byte.
      EXPECT_EQ((*events)[i].SerializeAsString(),
                (*first)[i].SerializeAsString())
          << "replica " << k << ", sequence " << (*events)[i].sequence();
    }
  }
  std::vector<std::uint64_t> expected_messages;
  for (const v1::Event& event : *first) {
    if (event.event_type() == v1::EVENT_TYPE_MESSAGE_RECEIVED) {
      expected_messages.push_back(event.sequence());
    }
  }
  ASSERT_GT(expected_messages.size(), 30u);
  std::optional<std::vector<v1::Event>> filtered =
      messages.EventsUntilCaughtUpTo(last, absl::Seconds(30));
  ASSERT_TRUE(filtered.has_value());
  EXPECT_EQ(SequencesOf(*filtered), expected_messages);
}

TEST_F(JetStreamHaTest, TheSameBodyToTwoReplicasIsStreamedOnce) {
  Subscriber subscriber(gateways_[2]->grpc_port(), v1::SubscribeRequest());
  ASSERT_TRUE(subscriber.WaitStarted());
  HttpClient client;
  const HttpResponse first = PostWebhook(client, *gateways_[0], "twice");
  ASSERT_EQ(first.code, 200) << first.body;
  const HttpResponse second = PostWebhook(client, *gateways_[1], "twice");
  ASSERT_EQ(second.code, 200) << second.body;
  const Ack first_ack = *ParseAck(first.body);
  const Ack second_ack = *ParseAck(second.body);
  EXPECT_FALSE(first_ack.duplicate);
  EXPECT_TRUE(second_ack.duplicate);
  EXPECT_EQ(second_ack.sequence, first_ack.sequence);
  EXPECT_EQ(second_ack.id, first_ack.id);
  const HttpResponse other = PostWebhook(client, *gateways_[2], "other");
  ASSERT_EQ(other.code, 200) << other.body;
  const Ack other_ack = *ParseAck(other.body);

  std::optional<std::vector<v1::Event>> events =
      subscriber.EventsUntilCaughtUpTo(other_ack.sequence);
  ASSERT_TRUE(events.has_value());
  EXPECT_EQ(SequencesOf(*events), (std::vector<std::uint64_t>{
                                      first_ack.sequence, other_ack.sequence}));
}

TEST_F(JetStreamHaTest, AReplicaKilledUnderLoadLosesNothingAcknowledged) {
  // A subscriber reads replica 0 until it dies, then resumes on replica 1.
  Subscriber on_victim(gateways_[0]->grpc_port(), v1::SubscribeRequest());
  ASSERT_TRUE(on_victim.WaitStarted());
  Load load(Gateways(), 6);
  const bool loaded = Eventually([&] { return load.acks() >= 300; });
  gateways_[0]->Signal(SIGKILL);
  const std::optional<int> exit_code = gateways_[0]->WaitForExit();
  // The other replicas go on acknowledging.
  const int at_kill = load.acks();
  const bool went_on = Eventually([&] { return load.acks() >= at_kill + 300; });
  load.Stop();
  ASSERT_TRUE(loaded) << gateways_[0]->log();
  ASSERT_EQ(exit_code, 128 + SIGKILL);
  ASSERT_TRUE(went_on) << gateways_[1]->log();
  EXPECT_EQ(load.bad_acks(), 0);
  for (const auto& [code, count] : load.codes()) {
    EXPECT_TRUE(code == 200 || code == 0)
        << count << " answers " << code << " with a quorum up";
  }

  // What the subscriber had read when its replica died...
  std::vector<v1::Event> before;
  while (std::optional<v1::Event> event =
             on_victim.NextEvent(absl::Seconds(5))) {
    before.push_back(*std::move(event));
  }
  ASSERT_FALSE(before.empty());
  const std::optional<grpc::Status> ended = on_victim.WaitFinished();
  ASSERT_TRUE(ended.has_value());
  EXPECT_FALSE(ended->ok());
  // ...and the rest from another replica, after its last sequence.
  const std::map<std::uint64_t, std::string> acked = load.acked();
  const std::uint64_t last = acked.rbegin()->first;
  ASSERT_GT(last, before.back().sequence());
  const std::vector<v1::Event> after =
      ReadStream(*gateways_[1], before.back().sequence(), last);
  std::vector<v1::Event> read = before;
  read.insert(read.end(), after.begin(), after.end());
  // No gap and no repeat: exactly 1..last, which holds every 200.
  ASSERT_EQ(read.size(), last);
  for (std::size_t i = 0; i < read.size(); ++i) {
    ASSERT_EQ(read[i].sequence(), i + 1);
  }
  for (const auto& [sequence, id] : acked) {
    EXPECT_EQ(read[sequence - 1].id(), id) << "sequence " << sequence;
  }
}

TEST_F(JetStreamHaTest, TheLeaderKilledUnderLoadLosesNothingAndNoQuorumIs503) {
  Load load(Gateways(), 6);
  ASSERT_TRUE(Eventually([&] { return load.acks() >= 300; }));
  absl::StatusOr<int> leader = cluster_->StreamLeader(kStream);
  ASSERT_TRUE(leader.ok()) << leader.status();
  cluster_->Kill(*leader);
  // Two of three remain: a new leader is elected and acks resume.
  const int at_kill = load.acks();
  const bool resumed = Eventually([&] { return load.acks() >= at_kill + 300; },
                                  absl::Seconds(60));
  load.Stop();
  ASSERT_TRUE(resumed) << ClusterLogs();
  EXPECT_EQ(load.bad_acks(), 0);
  for (const auto& [code, count] : load.codes()) {
    EXPECT_TRUE(code == 200 || code == 503) << count << " answers " << code;
  }

  // One of three: no quorum. Webhooks and readiness answer 503, never 200.
  const int second = (*leader + 1) % cluster_->size();
  cluster_->Kill(second);
  HttpClient client;
  for (const auto& gateway : gateways_) {
    HttpResponse readyz;
    ASSERT_TRUE(Eventually(
        [&] {
          readyz = OrNoResponse(client.Get(gateway->base_url() + "/readyz"));
          return readyz.code == 503;
        },
        absl::Seconds(40)))
        << gateway->log();
    // The reason names the engine: no leader, no quorum, or no server.
    EXPECT_THAT(readyz.body, AnyOf(HasSubstr("JetStream"), HasSubstr("NATS")));
  }
  for (int k = 0; k < kReplicas; ++k) {
    const HttpResponse response =
        PostWebhook(client, *gateways_[k], absl::StrCat("no-quorum-", k));
    EXPECT_EQ(response.code, 503) << response.body;
  }

  // Both back: ingest recovers by itself.
  ASSERT_TRUE(cluster_->Restart({*leader, second}).ok()) << ClusterLogs();
  const std::optional<Ack> recovered =
      PostUntilAccepted(client, *gateways_[2], "recovered");
  ASSERT_TRUE(recovered.has_value()) << ClusterLogs();
  for (const auto& gateway : gateways_) {
    EXPECT_TRUE(Eventually([&] { return Readyz(client, *gateway) == 200; }));
  }
  std::map<std::uint64_t, std::string> acked = load.acked();
  acked.emplace(recovered->sequence, recovered->id);
  ExpectStreamHolds(*gateways_[0], recovered->sequence, acked);
}

TEST_F(JetStreamHaTest, WithEveryServerDownTheReplicasAnswer503AndRecover) {
  HttpClient client;
  std::map<std::uint64_t, std::string> acked;
  for (int n = 0; n < 5; ++n) {
    const HttpResponse response =
        PostWebhook(client, *gateways_[n % kReplicas], absl::StrCat("b", n));
    ASSERT_EQ(response.code, 200) << response.body;
    const Ack ack = *ParseAck(response.body);
    acked.emplace(ack.sequence, ack.id);
  }
  for (int k = 0; k < cluster_->size(); ++k) cluster_->Kill(k);
  for (const auto& gateway : gateways_) {
    ASSERT_TRUE(Eventually([&] { return Readyz(client, *gateway) == 503; },
                           absl::Seconds(30)))
        << gateway->log();
    const HttpResponse response = PostWebhook(client, *gateway, "nobody");
    EXPECT_EQ(response.code, 503) << response.body;
    EXPECT_EQ(gateway->WaitForExit(absl::ZeroDuration()), std::nullopt)
        << "a replica exited without its servers";
  }
  ASSERT_TRUE(cluster_->Restart({0, 1, 2}, absl::Seconds(60)).ok())
      << ClusterLogs();
  Subscriber subscriber(gateways_[1]->grpc_port(), v1::SubscribeRequest());
  ASSERT_TRUE(subscriber.WaitStarted());
  const std::optional<Ack> ack =
      PostUntilAccepted(client, *gateways_[0], "servers-back");
  ASSERT_TRUE(ack.has_value()) << ClusterLogs();
  std::optional<std::vector<v1::Event>> events =
      subscriber.EventsUntilCaughtUpTo(ack->sequence, absl::Seconds(30));
  ASSERT_TRUE(events.has_value());
  ASSERT_FALSE(events->empty());
  EXPECT_EQ(events->back().id(), ack->id);
  for (const auto& gateway : gateways_) {
    EXPECT_TRUE(Eventually([&] { return Readyz(client, *gateway) == 200; }));
  }
  // What was stored before the servers went is still there.
  acked.emplace(ack->sequence, ack->id);
  ExpectStreamHolds(*gateways_[2], ack->sequence, acked);
}

}  // namespace
}  // namespace convocore::integration
