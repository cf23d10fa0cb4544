#include "services/hub/event_hub.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "convocore/webhooks/v1/event_stream_service.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/hub/in_memory_event_store.h"
#include "tests/services/hub/controlled_store.h"
#include "tests/services/hub/test_events.h"

namespace convocore::hub {
namespace {

namespace v1 = convocore::webhooks::v1;
using testing::ControlledStore;
using testing::Drain;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::MakeEvent;
using testing::PollingSink;
using testing::Received;

constexpr absl::Duration kTimeout = absl::Seconds(10);

// A subscriber as the tests use it: the subscription and its sink.
struct TestSubscriber {
  PollingSink sink;
  std::unique_ptr<Subscription> subscription;
  Received received;

  void DrainUntil(std::size_t count) {
    Drain(*subscription, sink, &received, count, kTimeout);
  }
};

class EventHubTest : public ::testing::Test {
 protected:
  void Start(RetentionOptions retention = {}, HubOptions options = {}) {
    auto store = std::make_unique<ControlledStore>(retention);
    store_ = store.get();
    auto hub = EventHub::Create(std::move(store), options);
    ASSERT_TRUE(hub.ok()) << hub.status();
    hub_ = *std::move(hub);
  }

  void TearDown() override {
    subscribers_.clear();  // subscriptions go before the hub
    hub_.reset();
  }

  std::uint64_t Publish(v1::Event event) {
    auto sequence = hub_->Publish(std::move(event));
    EXPECT_TRUE(sequence.ok()) << sequence.status();
    return sequence.ok() ? *sequence : 0;
  }

  std::uint64_t PublishAt(absl::Time time) {
    v1::Event event = MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a");
    event.mutable_receive_time()->set_seconds(absl::ToUnixSeconds(time));
    return Publish(std::move(event));
  }

  absl::StatusOr<TestSubscriber*> Subscribe(StartPosition start,
                                            EventFilter filter = {}) {
    auto subscriber = std::make_unique<TestSubscriber>();
    auto subscription =
        hub_->Subscribe(SubscribeOptions{filter, start}, &subscriber->sink);
    if (!subscription.ok()) return subscription.status();
    subscriber->subscription = *std::move(subscription);
    subscribers_.push_back(std::move(subscriber));
    return subscribers_.back().get();
  }

  TestSubscriber* MustSubscribe(StartPosition start, EventFilter filter = {}) {
    auto subscriber = Subscribe(start, std::move(filter));
    EXPECT_TRUE(subscriber.ok()) << subscriber.status();
    return subscriber.ok() ? *subscriber : nullptr;
  }

  ControlledStore* store_ = nullptr;
  std::unique_ptr<EventHub> hub_;
  std::vector<std::unique_ptr<TestSubscriber>> subscribers_;
};

TEST_F(EventHubTest, AssignsIncreasingSequencesAfterTheStoresLast) {
  auto store = std::make_unique<ControlledStore>();
  ASSERT_TRUE(store->inner()
                  .Append({StoredEvent{7, absl::Now(), "x",
                                       std::make_shared<std::string>("")}})
                  .ok());
  auto hub = EventHub::Create(std::move(store));
  ASSERT_TRUE(hub.ok());
  EXPECT_EQ(*(*hub)->Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST)), 8u);
  EXPECT_EQ(*(*hub)->Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST)), 9u);
  EXPECT_EQ((*hub)->Stats().last_sequence, 9u);
  EXPECT_EQ((*hub)->Stats().published_total, 2u);
}

TEST_F(EventHubTest, SerializesOnceWithTheSequenceSetAndSharesTheBytes) {
  Start();
  TestSubscriber* a = MustSubscribe(StartPosition::Now());
  TestSubscriber* b = MustSubscribe(StartPosition::Now());
  v1::Event event =
      MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "agent", v1::CHANNEL_VOICE);
  event.set_sequence(999);  // overwritten
  const std::uint64_t sequence = Publish(event);

  a->DrainUntil(1);
  b->DrainUntil(1);
  ASSERT_EQ(a->received.deliveries.size(), 1u);
  ASSERT_EQ(b->received.deliveries.size(), 1u);
  const Delivery& delivery = *a->received.deliveries[0];
  EXPECT_EQ(delivery.sequence, sequence);
  EXPECT_EQ(delivery.event_bytes.get(),
            b->received.deliveries[0]->event_bytes.get());

  v1::Event expected = event;
  expected.set_sequence(sequence);
  v1::Event parsed = testing::Parse(delivery);
  // Publish filled in the receive time; the bytes are exactly the canonical
  // serialization with the sequence set.
  EXPECT_TRUE(parsed.has_receive_time());
  *expected.mutable_receive_time() = parsed.receive_time();
  EXPECT_EQ(*delivery.event_bytes, expected.SerializeAsString());
}

std::atomic<int> encoder_calls{0};
std::shared_ptr<const void> CountingEncoder(const std::string& bytes) {
  ++encoder_calls;
  return std::make_shared<const std::string>("framed:" + bytes);
}
std::shared_ptr<const void> OtherEncoder(const std::string& bytes) {
  return nullptr;
}

TEST_F(EventHubTest, ADeliveryIsEncodedOnceForAllSubscribers) {
  Start();
  TestSubscriber* a = MustSubscribe(StartPosition::Now());
  TestSubscriber* b = MustSubscribe(StartPosition::Now());
  Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  a->DrainUntil(1);
  b->DrainUntil(1);
  ASSERT_EQ(a->received.deliveries.size(), 1u);
  ASSERT_EQ(b->received.deliveries.size(), 1u);
  const Delivery& da = *a->received.deliveries[0];
  const Delivery& db = *b->received.deliveries[0];
  encoder_calls = 0;
  const void* ea = da.Encoded(&CountingEncoder);
  const void* eb = db.Encoded(&CountingEncoder);
  EXPECT_EQ(encoder_calls.load(), 1);
  EXPECT_EQ(ea, eb);
  EXPECT_EQ(*static_cast<const std::string*>(ea), "framed:" + *da.event_bytes);
  // Another encoder does not get the first one's result.
  EXPECT_EQ(da.Encoded(&OtherEncoder), nullptr);
}

TEST_F(EventHubTest, FromNowReceivesOnlyLaterEvents) {
  Start();
  Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  TestSubscriber* s = MustSubscribe(StartPosition::Now());
  EXPECT_EQ(s->subscription->start_after(), 1u);
  Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  s->DrainUntil(1);
  EXPECT_THAT(s->received.Sequences(), ElementsAre(2));
}

TEST_F(EventHubTest, StartPositionsReplayFromTheStoreThenGoLive) {
  Start();
  const absl::Time t0 = absl::FromUnixSeconds(1'700'000'000);
  for (int i = 0; i < 10; ++i) PublishAt(t0 + absl::Seconds(i));

  TestSubscriber* oldest = MustSubscribe(StartPosition::Oldest());
  TestSubscriber* after7 = MustSubscribe(StartPosition::AfterSequence(7));
  TestSubscriber* after10 = MustSubscribe(StartPosition::AfterSequence(10));
  TestSubscriber* from_time =
      MustSubscribe(StartPosition::FromTime(t0 + absl::Seconds(5)));
  PublishAt(t0 + absl::Seconds(20));

  oldest->DrainUntil(11);
  after7->DrainUntil(4);
  after10->DrainUntil(1);
  from_time->DrainUntil(6);
  EXPECT_THAT(oldest->received.Sequences(),
              ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11));
  EXPECT_THAT(after7->received.Sequences(), ElementsAre(8, 9, 10, 11));
  EXPECT_THAT(after10->received.Sequences(), ElementsAre(11));
  EXPECT_THAT(from_time->received.Sequences(), ElementsAre(6, 7, 8, 9, 10, 11));
}

TEST_F(EventHubTest, AFutureSequenceIsInvalid) {
  Start();
  Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  auto s = Subscribe(StartPosition::AfterSequence(2));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("newest sequence, 1"));
  EXPECT_TRUE(Subscribe(StartPosition::AfterSequence(1)).ok());
}

TEST_F(EventHubTest, AnEvictedStartIsOutOfRangeNamingTheOldestAvailable) {
  Start(RetentionOptions{5, 0, absl::ZeroDuration()});
  for (int i = 0; i < 10; ++i) Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));

  auto evicted = Subscribe(StartPosition::AfterSequence(2));
  EXPECT_EQ(evicted.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(evicted.status().message(),
              HasSubstr("the oldest sequence available is 6"));

  TestSubscriber* after5 = MustSubscribe(StartPosition::AfterSequence(5));
  TestSubscriber* oldest = MustSubscribe(StartPosition::Oldest());
  after5->DrainUntil(5);
  oldest->DrainUntil(5);
  EXPECT_THAT(after5->received.Sequences(), ElementsAre(6, 7, 8, 9, 10));
  EXPECT_THAT(oldest->received.Sequences(), ElementsAre(6, 7, 8, 9, 10));
}

TEST_F(EventHubTest, FiltersApplyToReplayAndLive) {
  Start();
  auto filter = EventFilter::Create({v1::EVENT_TYPE_MESSAGE_RECEIVED}, {"a1"},
                                    {v1::CHANNEL_OTHER});
  ASSERT_TRUE(filter.ok());
  auto publish_mix = [&] {
    Publish(
        MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a1", v1::CHANNEL_OTHER));
    Publish(
        MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a2", v1::CHANNEL_OTHER));
    Publish(
        MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a1", v1::CHANNEL_VOICE));
    Publish(MakeEvent(v1::EVENT_TYPE_AGENT_CREATED, "a1"));
  };
  publish_mix();  // 1..4
  TestSubscriber* replay = MustSubscribe(StartPosition::Oldest(), *filter);
  TestSubscriber* live = MustSubscribe(StartPosition::Now(), *filter);
  publish_mix();  // 5..8
  replay->DrainUntil(2);
  live->DrainUntil(1);
  EXPECT_THAT(replay->received.Sequences(), ElementsAre(1, 5));
  EXPECT_THAT(live->received.Sequences(), ElementsAre(5));
}

TEST_F(EventHubTest, ASlowSubscriberIsCutOffWhileAFastOneGetsEverything) {
  Start({}, HubOptions{.subscriber_queue_limit = 4});
  TestSubscriber* fast = MustSubscribe(StartPosition::Now());
  TestSubscriber* slow = MustSubscribe(StartPosition::Now());
  for (int i = 0; i < 2; ++i) Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  slow->DrainUntil(2);  // then it stops taking
  for (int i = 0; i < 20; ++i) {
    Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
    fast->DrainUntil(i + 3);
  }
  EXPECT_EQ(fast->received.deliveries.size(), 22u);
  EXPECT_FALSE(fast->received.end);

  slow->DrainUntil(100);
  ASSERT_TRUE(slow->received.end);
  EXPECT_EQ(slow->received.end->code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(slow->received.end->message(),
              HasSubstr("the last sequence sent was 2"));
  EXPECT_THAT(slow->received.end->message(), HasSubstr("after_sequence=2"));
  EXPECT_THAT(slow->received.Sequences(), ElementsAre(1, 2));
  // The same resume point, typed, for the gRPC edge's status details.
  const absl::optional<absl::Cord> detail =
      slow->received.end->GetPayload(kResumeInfoTypeUrl);
  ASSERT_TRUE(detail.has_value());
  v1::ResumeInfo info;
  ASSERT_TRUE(info.ParseFromString(std::string(*detail)));
  EXPECT_EQ(info.last_sent_sequence(), 2u);
  EXPECT_EQ(info.oldest_available_sequence(), 1u);
  EXPECT_GE(info.last_sequence(), 2u);

  HubStats stats = hub_->Stats();
  EXPECT_EQ(stats.subscribers_cut_off_total, 1u);
  EXPECT_EQ(stats.events_dropped_total, 4u);
  // Cut off but not yet cancelled by its consumer: no longer streaming.
  EXPECT_EQ(stats.subscribers_open, 1u);
}

TEST_F(EventHubTest, GroupCommitWritesConcurrentPublishesAsOneBatch) {
  Start();
  TestSubscriber* s = MustSubscribe(StartPosition::Now());
  store_->SetBlocked(true);
  std::thread first([&] { Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST)); });
  // The first publisher is writing its batch of one; the next ones wait.
  const absl::Time deadline = absl::Now() + kTimeout;
  while (store_->batch_sizes().empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  constexpr int kWaiting = 20;
  std::vector<std::thread> publishers;
  for (int i = 0; i < kWaiting; ++i) {
    publishers.emplace_back(
        [&] { Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST)); });
  }
  // (Whether the batch being written counts as pending or not, at least
  // kWaiting - 1 publishers are then queued behind it.)
  while (hub_->Stats().pending_publishes < kWaiting && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  store_->SetBlocked(false);
  first.join();
  for (std::thread& t : publishers) t.join();

  // One batch of one, then one of (nearly) all the others: the last
  // publisher may still have been on its way in when the store unblocked.
  const std::vector<std::size_t> batches = store_->batch_sizes();
  ASSERT_GE(batches.size(), 2u);
  ASSERT_LE(batches.size(), 3u);
  EXPECT_EQ(batches[0], 1u);
  EXPECT_GE(batches[1], kWaiting - 1u);
  std::size_t total = 0;
  for (std::size_t b : batches) total += b;
  EXPECT_EQ(total, kWaiting + 1u);
  EXPECT_EQ(hub_->Stats().commit_batches_total, batches.size());
  s->DrainUntil(kWaiting + 1);
  std::vector<std::uint64_t> expected(kWaiting + 1);
  for (int i = 0; i <= kWaiting; ++i) expected[i] = i + 1;
  EXPECT_EQ(s->received.Sequences(), expected);
}

// What PublishAsync() called back with, and on which thread.
struct Outcomes {
  absl::Mutex mu;
  std::vector<absl::StatusOr<std::uint64_t>> results ABSL_GUARDED_BY(mu);
  std::vector<std::thread::id> threads ABSL_GUARDED_BY(mu);

  PublishCallback Callback() {
    return [this](absl::StatusOr<std::uint64_t> result) {
      absl::MutexLock lock(&mu);
      results.push_back(std::move(result));
      threads.push_back(std::this_thread::get_id());
    };
  }
  std::size_t size() {
    absl::MutexLock lock(&mu);
    return results.size();
  }
  bool WaitFor(std::size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) {
      return results.size() >= n;
    };
    return mu.AwaitWithTimeout(absl::Condition(&enough), kTimeout);
  }
};

TEST_F(EventHubTest, PublishAsyncReturnsAtOnceAndAnswersFromTheCommitter) {
  Start();
  store_->SetBlocked(true);
  Outcomes outcomes;
  for (int i = 0; i < 3; ++i) {
    hub_->PublishAsync(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST),
                       outcomes.Callback());
  }
  // Returned while the store is still writing.
  EXPECT_EQ(outcomes.size(), 0u);
  store_->SetBlocked(false);
  ASSERT_TRUE(outcomes.WaitFor(3));
  absl::MutexLock lock(&outcomes.mu);
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(outcomes.results[i].ok()) << outcomes.results[i].status();
    EXPECT_EQ(*outcomes.results[i], i + 1);  // in sequence order
    EXPECT_NE(outcomes.threads[i], std::this_thread::get_id());
  }
}

TEST_F(EventHubTest, ShutdownAnswersPublishesNotYetWrittenAndFinishesTheBatch) {
  Start();
  store_->SetBlocked(true);
  Outcomes being_written;
  hub_->PublishAsync(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST),
                     being_written.Callback());
  const absl::Time deadline = absl::Now() + kTimeout;
  while (store_->batch_sizes().empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  Outcomes pending;
  hub_->PublishAsync(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST),
                     pending.Callback());
  std::thread shutdown([&] { hub_->Shutdown(); });
  ASSERT_TRUE(pending.WaitFor(1));
  {
    absl::MutexLock lock(&pending.mu);
    EXPECT_EQ(pending.results[0].status().code(),
              absl::StatusCode::kUnavailable);
  }
  store_->SetBlocked(false);
  shutdown.join();
  // Shutdown() returned after the batch being written was answered.
  ASSERT_EQ(being_written.size(), 1u);
  absl::MutexLock lock(&being_written.mu);
  EXPECT_TRUE(being_written.results[0].ok());
}

TEST_F(EventHubTest, AFailedWriteIsUnavailableNeverStreamedAndLeavesNoGap) {
  Start();
  TestSubscriber* s = MustSubscribe(StartPosition::Now());
  store_->SetFail(true);
  auto failed = hub_->Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(failed.status().message(), HasSubstr("disk full"));
  EXPECT_EQ(hub_->Health().code(), absl::StatusCode::kUnavailable);
  store_->SetFail(false);

  // The failed batch used no sequence up: the stream has no gap.
  EXPECT_EQ(Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST)), 1u);
  s->DrainUntil(1);
  EXPECT_THAT(s->received.Sequences(), ElementsAre(1));
  // Nothing else is queued.
  auto next = s->subscription->Next();
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, nullptr);
  HubStats stats = hub_->Stats();
  EXPECT_EQ(stats.publish_failures_total, 1u);
  EXPECT_EQ(stats.published_total, 1u);
  EXPECT_EQ(stats.last_sequence, 1u);
}

TEST_F(EventHubTest, FailedBatchesBetweenGoodOnesLeaveConsecutiveSequences) {
  Start();
  TestSubscriber* s = MustSubscribe(StartPosition::Now());
  std::vector<std::uint64_t> acknowledged;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 3; ++i) {
      acknowledged.push_back(Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST)));
    }
    store_->SetFail(true);
    for (int i = 0; i < 2; ++i) {
      EXPECT_FALSE(hub_->Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST)).ok());
    }
    store_->SetFail(false);
  }
  std::vector<std::uint64_t> want(acknowledged.size());
  std::iota(want.begin(), want.end(), 1);
  EXPECT_EQ(acknowledged, want);
  s->DrainUntil(want.size());
  EXPECT_EQ(s->received.Sequences(), want);
  EXPECT_EQ(hub_->Stats().publish_failures_total, 10u);
}

TEST_F(EventHubTest, ReportsEachAppendWithItsDurationAndSizeFailedOnesToo) {
  struct Append {
    absl::Duration took;
    std::size_t events;
  };
  absl::Mutex mu;
  std::vector<Append> appends;
  HubOptions options;
  options.on_append = [&](absl::Duration took, std::size_t events) {
    absl::MutexLock lock(&mu);
    appends.push_back({took, events});
  };
  Start({}, options);

  // A write held up for 30 ms reports at least that.
  store_->SetBlocked(true);
  std::thread publisher(
      [&] { Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST)); });
  const absl::Time deadline = absl::Now() + kTimeout;
  while (store_->batch_sizes().empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  absl::SleepFor(absl::Milliseconds(30));
  store_->SetBlocked(false);
  publisher.join();

  store_->SetFail(true);
  EXPECT_FALSE(hub_->Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST)).ok());
  store_->SetFail(false);

  absl::MutexLock lock(&mu);
  ASSERT_EQ(appends.size(), 2u);
  EXPECT_GE(appends[0].took, absl::Milliseconds(30));
  EXPECT_LT(appends[0].took, kTimeout);
  EXPECT_EQ(appends[0].events, 1u);
  EXPECT_EQ(appends[1].events, 1u);
}

TEST_F(EventHubTest, CatchUpIsFlowControlledNotCutOff) {
  Start({}, HubOptions{.subscriber_queue_limit = 8, .catch_up_chunk = 3});
  for (int i = 0; i < 200; ++i) Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  // 200 behind with a bound of 8: catch-up fills the queue and waits for
  // room instead of cutting the subscriber off.
  TestSubscriber* s = MustSubscribe(StartPosition::Oldest());
  s->DrainUntil(200);
  for (int i = 0; i < 5; ++i) Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  s->DrainUntil(205);
  ASSERT_FALSE(s->received.end) << *s->received.end;
  std::vector<std::uint64_t> expected(205);
  for (int i = 0; i < 205; ++i) expected[i] = i + 1;
  EXPECT_EQ(s->received.Sequences(), expected);
  // The catch-up thread switches the subscription to live after its last
  // read, which the subscriber may have drained already.
  const absl::Time deadline = absl::Now() + kTimeout;
  while (hub_->Stats().subscribers_catching_up != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(hub_->Stats().subscribers_catching_up, 0u);
}

TEST_F(EventHubTest, CatchUpThatFallsBehindRetentionEndsOutOfRange) {
  Start(RetentionOptions{50, 0, absl::ZeroDuration()},
        HubOptions{.subscriber_queue_limit = 8, .catch_up_chunk = 4});
  for (int i = 0; i < 50; ++i) Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  TestSubscriber* s = MustSubscribe(StartPosition::AfterSequence(0));
  // Catch-up queues up to 8 and waits for room; meanwhile retention trims
  // past its position.
  for (int i = 0; i < 100; ++i) Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  s->DrainUntil(1000);
  ASSERT_TRUE(s->received.end);
  EXPECT_EQ(s->received.end->code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(s->received.end->message(),
              HasSubstr("the oldest sequence available is "));
  // What arrived is a gap-free prefix, and the message says where it ends.
  const std::vector<std::uint64_t> got = s->received.Sequences();
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], i + 1);
  EXPECT_THAT(s->received.end->message(),
              HasSubstr(absl::StrCat("after_sequence=", got.size())));
}

TEST_F(EventHubTest, CancelFreesAtOnceAndStopsNotifications) {
  Start();
  class CountingSink : public SubscriptionSink {
   public:
    void OnReady() override { ++calls; }
    std::atomic<int> calls{0};
  } sink;
  auto subscription = hub_->Subscribe({}, &sink);
  ASSERT_TRUE(subscription.ok());
  EXPECT_EQ(hub_->Stats().subscribers_open, 1u);
  auto next = (*subscription)->Next();  // arms OnReady
  ASSERT_TRUE(next.ok() && *next == nullptr);
  (*subscription)->Cancel();
  EXPECT_EQ(hub_->Stats().subscribers_open, 0u);
  Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  EXPECT_EQ(sink.calls.load(), 0);
  EXPECT_EQ((*subscription)->Next().status().code(),
            absl::StatusCode::kCancelled);
}

TEST_F(EventHubTest, ShutdownEndsSubscriptionsAndRefusesPublishes) {
  Start();
  Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  TestSubscriber* s = MustSubscribe(StartPosition::Now());
  hub_->Shutdown();
  s->DrainUntil(1);
  ASSERT_TRUE(s->received.end);
  EXPECT_EQ(s->received.end->code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s->received.end->message(), HasSubstr("after_sequence=1"));
  EXPECT_EQ(
      hub_->Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST)).status().code(),
      absl::StatusCode::kUnavailable);
  EXPECT_EQ(Subscribe(StartPosition::Now()).status().code(),
            absl::StatusCode::kUnavailable);
  hub_->Shutdown();  // idempotent
}

// Many publishers and subscribers at once, subscribers joining mid-stream at
// every kind of start position while catch-up and live fan-out race: each
// gets exactly its matching events after its start, in order.
TEST_F(EventHubTest, ConcurrentPublishersAndSubscribersSeeNoGapNoDuplicate) {
  Start({}, HubOptions{.subscriber_queue_limit = 1 << 20, .catch_up_chunk = 7});
  constexpr int kPublishers = 4;
  constexpr int kPerPublisher = 2000;
  constexpr int kSubscribers = 12;
  const std::vector<v1::EventType> types = {
      v1::EVENT_TYPE_MESSAGE_RECEIVED, v1::EVENT_TYPE_AGENT_CREATED,
      v1::EVENT_TYPE_ORGANISATION_CREATED};
  // (No EVENT_TYPE_OTHER here: its Struct payload crashes protobuf 3.21's
  // maps under ThreadSanitizer, a header/library mismatch, and this test is
  // the one worth running under it.)
  // Guards `published` and the fixture's subscriber list until the threads
  // are joined (thread-safety attributes do not apply to local variables).
  absl::Mutex mu;
  std::vector<std::pair<std::uint64_t, EventKey>> published;

  std::vector<std::thread> threads;
  for (int p = 0; p < kPublishers; ++p) {
    threads.emplace_back([&, p] {
      std::mt19937 rng(p);
      for (int i = 0; i < kPerPublisher; ++i) {
        v1::Event event =
            MakeEvent(types[rng() % types.size()], absl::StrCat("a", rng() % 3),
                      v1::CHANNEL_WHATSAPP);
        EventKey key = KeyOf(event);
        auto sequence = hub_->Publish(std::move(event));
        ASSERT_TRUE(sequence.ok());
        absl::MutexLock lock(&mu);
        published.emplace_back(*sequence, key);
      }
    });
  }
  std::vector<EventFilter> filters(kSubscribers);
  std::vector<TestSubscriber*> subscribers(kSubscribers);
  std::atomic<bool> publishing_done{false};
  for (int k = 0; k < kSubscribers; ++k) {
    threads.emplace_back([&, k] {
      std::mt19937 rng(100 + k);
      absl::SleepFor(absl::Microseconds(rng() % 20000));  // join mid-stream
      if (k % 2 == 1) {
        filters[k] = *EventFilter::Create({types[k % types.size()]}, {}, {});
      }
      StartPosition start;
      switch (k % 4) {
        case 0:
          start = StartPosition::Now();
          break;
        case 1:
          start = StartPosition::Oldest();
          break;
        default:
          start =
              StartPosition::AfterSequence(rng() % (hub_->last_sequence() + 1));
      }
      TestSubscriber* s;
      {
        absl::MutexLock lock(&mu);
        s = MustSubscribe(start, filters[k]);
        subscribers[k] = s;
      }
      // Consume concurrently with publishing.
      while (!publishing_done.load()) {
        Drain(*s->subscription, s->sink, &s->received, SIZE_MAX,
              absl::Milliseconds(5));
      }
    });
  }
  for (int p = 0; p < kPublishers; ++p) threads[p].join();
  publishing_done = true;
  for (std::size_t t = kPublishers; t < threads.size(); ++t) threads[t].join();

  std::sort(published.begin(), published.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  ASSERT_EQ(published.size(), kPublishers * kPerPublisher);
  for (int k = 0; k < kSubscribers; ++k) {
    TestSubscriber* s = subscribers[k];
    std::vector<std::uint64_t> expected;
    for (const auto& [sequence, key] : published) {
      if (sequence > s->subscription->start_after() &&
          filters[k].Matches(key)) {
        expected.push_back(sequence);
      }
    }
    s->DrainUntil(expected.size());
    ASSERT_FALSE(s->received.end) << *s->received.end;
    EXPECT_EQ(s->received.Sequences(), expected) << "subscriber " << k;
  }
}

}  // namespace
}  // namespace convocore::hub
