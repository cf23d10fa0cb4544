// The hub over a store whose engine assigns sequences (the JetStream store):
// events arrive through Replicate() with their sequences, and a subscriber
// may resume after a sequence another gateway has already streamed.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/hub/event_hub.h"
#include "services/hub/in_memory_event_store.h"
#include "tests/services/hub/test_events.h"

namespace convocore::hub {
namespace {

namespace v1 = convocore::webhooks::v1;
using testing::Drain;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::MakeEvent;
using testing::Parse;
using testing::PollingSink;
using testing::Received;

constexpr absl::Duration kTimeout = absl::Seconds(10);

// An in-memory window whose engine knows `newest` (what other gateways have
// stored), and which counts Close().
class SharedStore : public EventStore {
 public:
  explicit SharedStore(std::uint64_t last_at_open) : inner_({}) {
    absl::MutexLock lock(&mu_);
    newest_ = last_at_open;
    last_at_open_ = last_at_open;
  }

  absl::Status Append(absl::Span<const StoredEvent> batch) override {
    return inner_.Append(batch);
  }
  absl::StatusOr<std::vector<StoredEvent>> ReadAfter(
      std::uint64_t after, std::size_t max) const override {
    return inner_.ReadAfter(after, max);
  }
  absl::StatusOr<std::uint64_t> FirstSequenceAtOrAfter(
      absl::Time time) const override {
    return inner_.FirstSequenceAtOrAfter(time);
  }
  StoreStats Stats() const override {
    StoreStats stats = inner_.Stats();
    absl::MutexLock lock(&mu_);
    stats.last_sequence = std::max(stats.last_sequence, last_at_open_);
    return stats;
  }
  absl::Status Health() const override { return absl::OkStatus(); }
  absl::StatusOr<std::uint64_t> NewestSequence() const override {
    absl::MutexLock lock(&mu_);
    if (!newest_error_.ok()) return newest_error_;
    return newest_;
  }
  void Close() override { ++closed_; }

  void SetNewest(std::uint64_t newest) {
    absl::MutexLock lock(&mu_);
    newest_ = newest;
  }
  void SetNewestError(absl::Status error) {
    absl::MutexLock lock(&mu_);
    newest_error_ = std::move(error);
  }
  int closed() const { return closed_.load(); }

 private:
  InMemoryEventStore inner_;
  mutable absl::Mutex mu_;
  std::uint64_t newest_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t last_at_open_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status newest_error_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> closed_{0};
};

StoredEvent Stored(std::uint64_t sequence, const v1::Event& event) {
  v1::Event copy = event;
  copy.clear_sequence();
  return StoredEvent{sequence, absl::Now(), event.id(),
                     WithSequence(sequence, copy.SerializeAsString())};
}

class ReplicateTest : public ::testing::Test {
 protected:
  void Start(std::uint64_t last_at_open = 0) {
    auto store = std::make_unique<SharedStore>(last_at_open);
    store_ = store.get();
    auto hub = EventHub::Create(std::move(store),
                                HubOptions{.external_sequences = true});
    ASSERT_TRUE(hub.ok()) << hub.status();
    hub_ = *std::move(hub);
  }
  void TearDown() override {
    subscriptions_.clear();
    hub_.reset();
  }

  // Replicates events of `type` with these sequences.
  absl::Status Replicate(const std::vector<std::uint64_t>& sequences,
                         v1::EventType type = v1::EVENT_TYPE_MESSAGE_RECEIVED) {
    std::vector<StoredEvent> events;
    std::vector<EventKey> keys;
    for (std::uint64_t sequence : sequences) {
      v1::Event event = MakeEvent(type, "a");
      event.set_id(absl::StrCat("id-", sequence));
      keys.push_back(KeyOf(event));
      events.push_back(Stored(sequence, event));
    }
    return hub_->Replicate(std::move(events), std::move(keys));
  }

  absl::StatusOr<Subscription*> Subscribe(StartPosition start,
                                          EventFilter filter = {}) {
    auto subscription = hub_->Subscribe(SubscribeOptions{filter, start}, &sink_);
    if (!subscription.ok()) return subscription.status();
    subscriptions_.push_back(*std::move(subscription));
    return subscriptions_.back().get();
  }

  SharedStore* store_ = nullptr;
  std::unique_ptr<EventHub> hub_;
  PollingSink sink_;
  std::vector<std::unique_ptr<Subscription>> subscriptions_;
};

TEST_F(ReplicateTest, StreamsTheEnginesSequencesAndSkipsWhatItHas) {
  Start();
  auto subscription = Subscribe(StartPosition::Now());
  ASSERT_TRUE(subscription.ok()) << subscription.status();
  ASSERT_TRUE(Replicate({1, 2, 3}).ok());
  // A reader that re-reads after a reconnect hands some over again.
  ASSERT_TRUE(Replicate({2, 3, 4}).ok());
  Received received;
  Drain(**subscription, sink_, &received, 4, kTimeout);
  EXPECT_THAT(received.Sequences(), ElementsAre(1, 2, 3, 4));
  EXPECT_EQ(Parse(*received.deliveries[3]).sequence(), 4u);
  EXPECT_EQ(Parse(*received.deliveries[3]).id(), "id-4");
  EXPECT_EQ(hub_->last_sequence(), 4u);
  EXPECT_EQ(hub_->Stats().published_total, 4u);
}

TEST_F(ReplicateTest, ContinuesFromTheStreamsLastSequenceAtOpen) {
  Start(/*last_at_open=*/41);
  EXPECT_EQ(hub_->last_sequence(), 41u);
  auto subscription = Subscribe(StartPosition::Now());
  ASSERT_TRUE(subscription.ok());
  ASSERT_TRUE(Replicate({40, 41, 42}).ok());
  Received received;
  Drain(**subscription, sink_, &received, 1, kTimeout);
  EXPECT_THAT(received.Sequences(), ElementsAre(42));
}

TEST_F(ReplicateTest, FiltersAsForTheHubsOwnSequences) {
  Start();
  absl::StatusOr<EventFilter> leads =
      EventFilter::Create({v1::EVENT_TYPE_LEAD_CAPTURED}, {}, {});
  ASSERT_TRUE(leads.ok());
  auto subscription = Subscribe(StartPosition::Oldest(), *leads);
  ASSERT_TRUE(subscription.ok());
  ASSERT_TRUE(Replicate({1, 2}).ok());
  ASSERT_TRUE(Replicate({3}, v1::EVENT_TYPE_LEAD_CAPTURED).ok());
  Received received;
  Drain(**subscription, sink_, &received, 1, kTimeout);
  EXPECT_THAT(received.Sequences(), ElementsAre(3));
}

TEST_F(ReplicateTest, PublishingThroughTheHubIsRefused) {
  Start();
  absl::StatusOr<std::uint64_t> published =
      hub_->Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  ASSERT_FALSE(published.ok());
  EXPECT_EQ(published.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ReplicateTest, ReplicateNeedsExternalSequences) {
  auto hub = EventHub::Create(std::make_unique<InMemoryEventStore>(
      RetentionOptions{}));
  ASSERT_TRUE(hub.ok());
  absl::Status status = (*hub)->Replicate({}, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ReplicateTest, AKeyPerEventIsRequired) {
  Start();
  std::vector<StoredEvent> events = {
      Stored(1, MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST))};
  EXPECT_EQ(hub_->Replicate(std::move(events), {}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ReplicateTest, ResumesAfterASequenceOnlyAnotherGatewayHasStreamed) {
  Start();
  ASSERT_TRUE(Replicate({1, 2}).ok());
  // The client read up to 5 through another replica; this one has read 2.
  store_->SetNewest(6);
  auto subscription = Subscribe(StartPosition::AfterSequence(5));
  ASSERT_TRUE(subscription.ok()) << subscription.status();
  EXPECT_EQ((*subscription)->start_after(), 5u);
  ASSERT_TRUE(Replicate({3, 4, 5, 6, 7}).ok());
  Received received;
  Drain(**subscription, sink_, &received, 2, kTimeout);
  EXPECT_THAT(received.Sequences(), ElementsAre(6, 7));
}

TEST_F(ReplicateTest, ASequenceTheEngineDoesNotHoldIsStillRefused) {
  Start();
  ASSERT_TRUE(Replicate({1, 2}).ok());
  store_->SetNewest(3);
  auto subscription = Subscribe(StartPosition::AfterSequence(9));
  ASSERT_FALSE(subscription.ok());
  EXPECT_EQ(subscription.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(subscription.status().message(), HasSubstr("newest sequence, 3"));
}

TEST_F(ReplicateTest, AnEngineThatCannotTellItsNewestIsUnavailable) {
  Start();
  store_->SetNewestError(absl::UnavailableError("no leader"));
  auto subscription = Subscribe(StartPosition::AfterSequence(1));
  ASSERT_FALSE(subscription.ok());
  EXPECT_EQ(subscription.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(subscription.status().message(), HasSubstr("no leader"));
}

TEST_F(ReplicateTest, CatchUpReadsTheWindowThenGoesLive) {
  Start();
  ASSERT_TRUE(Replicate({1, 2, 3}).ok());
  auto subscription = Subscribe(StartPosition::AfterSequence(1));
  ASSERT_TRUE(subscription.ok());
  ASSERT_TRUE(Replicate({4}).ok());
  Received received;
  Drain(**subscription, sink_, &received, 3, kTimeout);
  EXPECT_THAT(received.Sequences(), ElementsAre(2, 3, 4));
}

TEST_F(ReplicateTest, ShutdownClosesTheStoreFirstAndRefusesReplication) {
  Start();
  hub_->Shutdown();
  EXPECT_EQ(store_->closed(), 1);
  EXPECT_EQ(Replicate({1}).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace convocore::hub
