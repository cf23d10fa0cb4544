#include "services/hub/in_memory_event_store.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace convocore::hub {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

StoredEvent Event(std::uint64_t sequence, absl::Time time,
                  std::size_t size = 10) {
  return StoredEvent{sequence, time, "id" + std::to_string(sequence),
                     std::make_shared<const std::string>(size, 'x')};
}

std::vector<std::uint64_t> Sequences(const std::vector<StoredEvent>& events) {
  std::vector<std::uint64_t> out;
  for (const StoredEvent& e : events) out.push_back(e.sequence);
  return out;
}

class FakeClock {
 public:
  absl::Time Now() const { return now_; }
  void Advance(absl::Duration d) { now_ += d; }
  InMemoryEventStore::Clock AsClock() {
    return [this] { return Now(); };
  }

 private:
  absl::Time now_ = kStart;
};

TEST(InMemoryEventStoreTest, ReadsAfterASequenceInOrder) {
  InMemoryEventStore store(RetentionOptions{});
  ASSERT_TRUE(store.Append({Event(1, kStart), Event(2, kStart)}).ok());
  ASSERT_TRUE(store.Append({Event(5, kStart)}).ok());  // a skipped sequence

  EXPECT_EQ(Sequences(*store.ReadAfter(0, 10)),
            (std::vector<std::uint64_t>{1, 2, 5}));
  EXPECT_EQ(Sequences(*store.ReadAfter(1, 1)), (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(Sequences(*store.ReadAfter(2, 10)),
            (std::vector<std::uint64_t>{5}));
  EXPECT_TRUE(store.ReadAfter(5, 10)->empty());

  StoreStats stats = store.Stats();
  EXPECT_EQ(stats.first_sequence, 1u);
  EXPECT_EQ(stats.last_sequence, 5u);
  EXPECT_EQ(stats.retained_events, 3u);
  EXPECT_EQ(stats.retained_bytes, 30u);
}

TEST(InMemoryEventStoreTest, RejectsABatchThatDoesNotFollowAllOrNothing) {
  InMemoryEventStore store(RetentionOptions{});
  ASSERT_TRUE(store.Append({Event(3, kStart)}).ok());
  EXPECT_EQ(store.Append({Event(4, kStart), Event(3, kStart)}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Append({Event(2, kStart)}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Stats().retained_events, 1u);
  EXPECT_EQ(store.Stats().last_sequence, 3u);
}

TEST(InMemoryEventStoreTest, TrimsByCount) {
  InMemoryEventStore store(RetentionOptions{3, 0, absl::ZeroDuration()});
  for (std::uint64_t s = 1; s <= 5; ++s) {
    ASSERT_TRUE(store.Append({Event(s, kStart)}).ok());
  }
  StoreStats stats = store.Stats();
  EXPECT_EQ(stats.first_sequence, 3u);
  EXPECT_EQ(stats.last_sequence, 5u);
  EXPECT_EQ(stats.retained_events, 3u);
  EXPECT_EQ(stats.trimmed_events_total, 2u);
  EXPECT_EQ(Sequences(*store.ReadAfter(0, 10)),
            (std::vector<std::uint64_t>{3, 4, 5}));
}

TEST(InMemoryEventStoreTest, TrimsByBytes) {
  InMemoryEventStore store(RetentionOptions{0, 250, absl::ZeroDuration()});
  ASSERT_TRUE(
      store.Append({Event(1, kStart, 100), Event(2, kStart, 100)}).ok());
  EXPECT_EQ(store.Stats().retained_events, 2u);
  ASSERT_TRUE(store.Append({Event(3, kStart, 100)}).ok());
  StoreStats stats = store.Stats();
  EXPECT_EQ(stats.first_sequence, 2u);
  EXPECT_EQ(stats.retained_bytes, 200u);
}

TEST(InMemoryEventStoreTest, TrimsByAgeEvenWithoutNewEvents) {
  FakeClock clock;
  InMemoryEventStore store(RetentionOptions{0, 0, absl::Minutes(10)},
                           clock.AsClock());
  ASSERT_TRUE(store.Append({Event(1, kStart)}).ok());
  clock.Advance(absl::Minutes(5));
  ASSERT_TRUE(store.Append({Event(2, clock.Now())}).ok());
  clock.Advance(absl::Minutes(6));
  EXPECT_EQ(store.Stats().first_sequence, 2u);
  clock.Advance(absl::Minutes(5));
  StoreStats stats = store.Stats();
  EXPECT_EQ(stats.first_sequence, 0u);
  EXPECT_EQ(stats.last_sequence, 2u);  // survives trimming
  EXPECT_EQ(stats.trimmed_events_total, 2u);
  EXPECT_TRUE(store.ReadAfter(0, 10)->empty());
}

TEST(InMemoryEventStoreTest, FindsTheFirstSequenceAtOrAfterATime) {
  InMemoryEventStore store(RetentionOptions{});
  ASSERT_TRUE(
      store
          .Append({Event(1, kStart), Event(2, kStart + absl::Seconds(1)),
                   Event(3, kStart + absl::Seconds(1)),
                   Event(4, kStart + absl::Seconds(3))})
          .ok());
  EXPECT_EQ(*store.FirstSequenceAtOrAfter(kStart - absl::Hours(1)), 1u);
  EXPECT_EQ(*store.FirstSequenceAtOrAfter(kStart + absl::Seconds(1)), 2u);
  EXPECT_EQ(*store.FirstSequenceAtOrAfter(kStart + absl::Seconds(2)), 4u);
  EXPECT_EQ(*store.FirstSequenceAtOrAfter(kStart + absl::Seconds(4)), 5u);
}

}  // namespace
}  // namespace convocore::hub
