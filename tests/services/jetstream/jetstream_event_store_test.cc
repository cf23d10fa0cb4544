// The JetStream store against a real nats-server started by the test (one
// node; tests/integration/jetstream_ha_test.cc covers three): the stream's
// creation and checks, PubAcks and duplicates, two stores on one stream
// streaming the same sequences, catch-up from JetStream beyond the memory
// window, retention, start by time, and health following the server.
#include "services/jetstream/jetstream_event_store.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/hub/event_hub.h"
#include "tests/support/eventually.h"
#include "tests/support/nats_cluster.h"

namespace convocore::jetstream {
namespace {

namespace v1 = convocore::webhooks::v1;
using ::convocore::testing::Eventually;
using ::convocore::testing::NatsCluster;
using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(15);

v1::Event MakeEvent(int n) {
  v1::Event event;
  event.set_id(absl::StrCat("evt_", n));
  event.set_event_type(v1::EVENT_TYPE_WEBHOOK_TEST);
  event.set_type_raw("webhook_test");
  event.mutable_webhook_test()->set_message(absl::StrCat("message ", n));
  // To the nanosecond, as the translator stamps it: time-based starts
  // compare against it.
  const absl::Time now = absl::Now();
  event.mutable_receive_time()->set_seconds(absl::ToUnixSeconds(now));
  event.mutable_receive_time()->set_nanos(
      static_cast<std::int32_t>(absl::ToInt64Nanoseconds(
          now - absl::FromUnixSeconds(absl::ToUnixSeconds(now)))));
  return event;
}

// A sink that collects what a subscription delivers.
class Collector : public hub::SubscriptionSink {
 public:
  void OnReady() override {
    absl::MutexLock lock(&mu_);
    ready_ = true;
  }

  // Drains `subscription` until `count` events arrived or it ended.
  std::vector<std::uint64_t> Take(hub::Subscription& subscription,
                                  std::size_t count,
                                  absl::Status* end = nullptr) {
    std::vector<std::uint64_t> sequences;
    const absl::Time deadline = absl::Now() + kTimeout;
    while (sequences.size() < count && absl::Now() < deadline) {
      auto next = subscription.Next();
      if (!next.ok()) {
        if (end != nullptr) *end = next.status();
        break;
      }
      if (*next != nullptr) {
        v1::Event event;
        EXPECT_TRUE(event.ParseFromString(*(*next)->event_bytes));
        EXPECT_EQ(event.sequence(), (*next)->sequence);
        sequences.push_back((*next)->sequence);
        continue;
      }
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&ready_), absl::Milliseconds(100));
      ready_ = false;
    }
    return sequences;
  }

 private:
  absl::Mutex mu_;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
};

class JetStreamStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<NatsCluster>> cluster =
        NatsCluster::Start(1);
    if (absl::IsFailedPrecondition(cluster.status())) {
      GTEST_SKIP() << cluster.status();
    }
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
  }

  JetStreamOptions Options() const {
    JetStreamOptions options;
    options.servers = {cluster_->url()};
    options.stream = StreamRequirements{.stream = "TEST",
                                        .subject_prefix = "test.events",
                                        .replicas = 1,
                                        .retention = {},
                                        .duplicate_window = absl::Minutes(5)};
    options.publish_timeout = absl::Seconds(2);
    options.start_timeout = absl::Seconds(10);
    options.probe_interval = absl::Milliseconds(200);
    return options;
  }

  static absl::StatusOr<PublishAck> Publish(JetStreamEventStore& store,
                                            const v1::Event& event) {
    v1::Event copy = event;
    copy.clear_sequence();
    absl::Notification done;
    absl::StatusOr<PublishAck> result;
    store.Publish("test.events.webhook_test", event.id(),
                  copy.SerializeAsString(),
                  [&](absl::StatusOr<PublishAck> ack) {
                    result = std::move(ack);
                    done.Notify();
                  });
    done.WaitForNotification();
    return result;
  }

  // A store and the hub that reads it, as a gateway replica has.
  struct Replica {
    JetStreamEventStore* store = nullptr;
    std::unique_ptr<hub::EventHub> hub;
  };
  static Replica OpenReplica(const JetStreamOptions& options) {
    Replica replica;
    auto store = JetStreamEventStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return replica;
    replica.store = store->get();
    auto hub =
        hub::EventHub::Create(*std::move(store), {.external_sequences = true});
    EXPECT_TRUE(hub.ok()) << hub.status();
    replica.hub = *std::move(hub);
    EXPECT_TRUE(replica.store->StartReading(replica.hub.get()).ok());
    return replica;
  }

  std::unique_ptr<NatsCluster> cluster_;
};

TEST_F(JetStreamStoreTest, PubAcksCarryTheStreamsSequenceAndDuplicates) {
  auto store = JetStreamEventStore::Open(Options());
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<PublishAck> first = Publish(**store, MakeEvent(1));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->sequence, 1u);
  EXPECT_FALSE(first->duplicate);
  absl::StatusOr<PublishAck> second = Publish(**store, MakeEvent(2));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->sequence, 2u);
  absl::StatusOr<PublishAck> again = Publish(**store, MakeEvent(1));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->sequence, 1u);
  const JetStreamCounters counters = (*store)->Counters();
  EXPECT_EQ(counters.publishes_total, 3u);
  EXPECT_EQ(counters.duplicates_total, 1u);
  EXPECT_EQ(counters.pending_publishes, 0u);
}

TEST_F(JetStreamStoreTest, AnExistingStreamIsCheckedAndAMismatchRefused) {
  {
    auto store = JetStreamEventStore::Open(Options());
    ASSERT_TRUE(store.ok()) << store.status();
  }
  // The same settings: accepted as they are.
  EXPECT_TRUE(JetStreamEventStore::Open(Options()).ok());
  JetStreamOptions other = Options();
  other.stream.retention.max_events = 10;
  other.stream.duplicate_window = absl::Minutes(1);
  auto refused = JetStreamEventStore::Open(other);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("--retention_events"));
  EXPECT_THAT(refused.status().message(), HasSubstr("--dedup_window_age"));
}

TEST_F(JetStreamStoreTest, MoreReplicasThanServersIsAClearStartError) {
  JetStreamOptions options = Options();
  options.stream.replicas = 3;
  options.start_timeout = absl::Seconds(1);
  auto store = JetStreamEventStore::Open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(store.status().message(), HasSubstr("--nats_replicas"));
  EXPECT_THAT(store.status().message(), HasSubstr("--nats_start_timeout"));
}

TEST_F(JetStreamStoreTest, TwoReplicasStreamTheSameSequences) {
  Replica a = OpenReplica(Options());
  Replica b = OpenReplica(Options());
  ASSERT_NE(a.hub, nullptr);
  ASSERT_NE(b.hub, nullptr);
  Collector on_a, on_b;
  auto sub_a = a.hub->Subscribe(
      {.filter = {}, .start = hub::StartPosition::Now()}, &on_a);
  auto sub_b = b.hub->Subscribe(
      {.filter = {}, .start = hub::StartPosition::Now()}, &on_b);
  ASSERT_TRUE(sub_a.ok() && sub_b.ok());
  std::vector<std::uint64_t> acked;
  for (int n = 0; n < 20; ++n) {
    absl::StatusOr<PublishAck> ack =
        Publish(n % 2 == 0 ? *a.store : *b.store, MakeEvent(n));
    ASSERT_TRUE(ack.ok()) << ack.status();
    acked.push_back(ack->sequence);
  }
  EXPECT_EQ(on_a.Take(**sub_a, 20), acked);
  EXPECT_EQ(on_b.Take(**sub_b, 20), acked);
  EXPECT_EQ(a.hub->last_sequence(), 20u);
  EXPECT_EQ(b.hub->last_sequence(), 20u);
}

TEST_F(JetStreamStoreTest, CatchUpReadsJetStreamBeyondTheWindow) {
  {
    auto writer = JetStreamEventStore::Open(Options());
    ASSERT_TRUE(writer.ok());
    for (int n = 1; n <= 30; ++n)
      ASSERT_TRUE(Publish(**writer, MakeEvent(n)).ok());
  }
  // A replica started afterwards holds none of them in memory, and keeps
  // only 4 of what it reads.
  JetStreamOptions options = Options();
  options.window_events = 4;
  Replica late = OpenReplica(options);
  ASSERT_NE(late.hub, nullptr);
  EXPECT_EQ(late.hub->last_sequence(), 30u);
  for (int n = 31; n <= 40; ++n) {
    absl::StatusOr<PublishAck> ack = Publish(*late.store, MakeEvent(n));
    ASSERT_TRUE(ack.ok()) << ack.status() << "\n" << cluster_->log(0);
  }
  ASSERT_TRUE(
      Eventually([&] { return late.hub->last_sequence() == 40; }, kTimeout));
  Collector collector;
  auto all = late.hub->Subscribe(
      {.filter = {}, .start = hub::StartPosition::Oldest()}, &collector);
  ASSERT_TRUE(all.ok()) << all.status();
  std::vector<std::uint64_t> expected(40);
  for (int k = 0; k < 40; ++k) expected[k] = k + 1;
  EXPECT_EQ(collector.Take(**all, 40), expected);
  Collector from_10;
  auto resumed = late.hub->Subscribe(
      {.filter = {}, .start = hub::StartPosition::AfterSequence(10)}, &from_10);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(from_10.Take(**resumed, 30).front(), 11u);
}

TEST_F(JetStreamStoreTest, ASubscriberBelowRetentionGetsOutOfRange) {
  JetStreamOptions options = Options();
  options.stream.retention.max_events = 5;
  Replica replica = OpenReplica(options);
  ASSERT_NE(replica.hub, nullptr);
  for (int n = 1; n <= 12; ++n) {
    ASSERT_TRUE(Publish(*replica.store, MakeEvent(n)).ok());
  }
  ASSERT_TRUE(
      Eventually([&] { return replica.hub->last_sequence() == 12; }, kTimeout));
  // The probe learns the stream's first sequence within its interval.
  ASSERT_TRUE(Eventually(
      [&] { return replica.store->Stats().first_sequence == 8; }, kTimeout));
  Collector collector;
  auto subscription = replica.hub->Subscribe(
      {.filter = {}, .start = hub::StartPosition::AfterSequence(2)},
      &collector);
  ASSERT_FALSE(subscription.ok());
  EXPECT_EQ(subscription.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(subscription.status().message(),
              HasSubstr("the oldest sequence available is 8"));
}

TEST_F(JetStreamStoreTest, FromTimeStartsAtTheFirstEventStoredThen) {
  Replica replica = OpenReplica(Options());
  ASSERT_NE(replica.hub, nullptr);
  for (int n = 1; n <= 3; ++n)
    ASSERT_TRUE(Publish(*replica.store, MakeEvent(n)).ok());
  absl::SleepFor(absl::Milliseconds(20));
  const absl::Time between = absl::Now();
  absl::SleepFor(absl::Milliseconds(20));
  for (int n = 4; n <= 5; ++n)
    ASSERT_TRUE(Publish(*replica.store, MakeEvent(n)).ok());
  // "None yet" means the next sequence this replica will fan out.
  ASSERT_TRUE(
      Eventually([&] { return replica.hub->last_sequence() == 5; }, kTimeout));
  absl::StatusOr<std::uint64_t> first =
      replica.store->FirstSequenceAtOrAfter(between);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 4u);
  absl::StatusOr<std::uint64_t> none =
      replica.store->FirstSequenceAtOrAfter(absl::Now() + absl::Hours(1));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 6u);
}

TEST_F(JetStreamStoreTest, APublishNoStreamTakesIsRetriedUntilItsDeadline) {
  JetStreamOptions options = Options();
  options.publish_timeout = absl::Milliseconds(800);
  auto store = JetStreamEventStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  // No stream listens there: JetStream answers "no responders", as while a
  // stream's leader is being elected.
  absl::Notification done;
  absl::StatusOr<PublishAck> result;
  const absl::Time start = absl::Now();
  (*store)->Publish("nowhere.webhook_test", "evt_x",
                    MakeEvent(1).SerializeAsString(),
                    [&](absl::StatusOr<PublishAck> ack) {
                      result = std::move(ack);
                      done.Notify();
                    });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(result.status().message(), HasSubstr("No responders"));
  // Sent again meanwhile, and answered within the deadline's reach.
  EXPECT_GE((*store)->Counters().publish_retries_total, 3u);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(500));
  // The store goes on: a publish to its stream is stored.
  EXPECT_TRUE(Publish(**store, MakeEvent(2)).ok());
}

TEST_F(JetStreamStoreTest, HealthFollowsTheServerAndPublishesFailFast) {
  auto store = JetStreamEventStore::Open(Options());
  ASSERT_TRUE(store.ok());
  EXPECT_TRUE((*store)->Health().ok());
  cluster_->Kill(0);
  ASSERT_TRUE(Eventually([&] { return !(*store)->Health().ok(); }, kTimeout));
  const absl::Time start = absl::Now();
  absl::StatusOr<PublishAck> refused = Publish(**store, MakeEvent(1));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(cluster_->Restart(0).ok());
  ASSERT_TRUE(Eventually([&] { return (*store)->Health().ok(); }, kTimeout));
  absl::StatusOr<PublishAck> stored = Publish(**store, MakeEvent(1));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->sequence, 1u);
  EXPECT_GE((*store)->Counters().reconnects_total, 1u);
}

TEST_F(JetStreamStoreTest, ClosingFailsWhatWaitsAndRefusesMore) {
  auto store = JetStreamEventStore::Open(Options());
  ASSERT_TRUE(store.ok());
  (*store)->Close();
  absl::StatusOr<PublishAck> refused = Publish(**store, MakeEvent(1));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace convocore::jetstream
