#include "services/store/segment_index.h"

#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace convocore::store {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr std::uint32_t kEventSize = 100;

absl::Time At(std::uint64_t sequence) {
  return absl::FromUnixSeconds(1'700'000'000) + absl::Seconds(sequence);
}

// Records `first`..`last` of segment `ordinal`, contiguous from offset 24,
// received a second apart.
std::vector<IndexEntry> Entries(std::uint32_t ordinal, std::uint64_t first,
                                std::uint64_t last) {
  std::vector<IndexEntry> entries;
  std::uint64_t offset = log_format::kSegmentHeaderSize;
  for (std::uint64_t sequence = first; sequence <= last; ++sequence) {
    entries.push_back(
        IndexEntry{.sequence = sequence,
                   .receive_time_ns = absl::ToUnixNanos(At(sequence)),
                   .offset = offset,
                   .ordinal = ordinal,
                   .id_size = 10,
                   .event_size = kEventSize});
    offset += entries.back().RecordSize();
  }
  return entries;
}

std::vector<std::uint64_t> Sequences(const std::vector<IndexEntry>& entries) {
  std::vector<std::uint64_t> sequences;
  for (const IndexEntry& entry : entries) sequences.push_back(entry.sequence);
  return sequences;
}

hub::RetentionOptions NoBounds() {
  return {.max_events = 0, .max_bytes = 0, .max_age = absl::ZeroDuration()};
}

TEST(SegmentIndexTest, CountsWhatIsAdded) {
  SegmentIndex index(NoBounds(), {});
  EXPECT_EQ(index.Stats().last_sequence, 0u);
  EXPECT_EQ(index.Stats().first_sequence, 0u);
  index.Add(Entries(1, 1, 5));
  index.Add(Entries(2, 6, 8));
  const hub::StoreStats& stats = index.Stats();
  EXPECT_EQ(stats.first_sequence, 1u);
  EXPECT_EQ(stats.last_sequence, 8u);
  EXPECT_EQ(stats.retained_events, 8u);
  EXPECT_EQ(stats.retained_bytes, 8u * kEventSize);
  EXPECT_TRUE(index.HasRecords(1));
  EXPECT_TRUE(index.HasRecords(2));
  EXPECT_FALSE(index.HasRecords(3));
}

TEST(SegmentIndexTest, FindsEntriesAfterASequence) {
  SegmentIndex index(NoBounds(), {});
  index.Add(Entries(1, 1, 10));
  EXPECT_THAT(Sequences(index.After(3, 2)), ElementsAre(4, 5));
  EXPECT_THAT(Sequences(index.After(8, 100)), ElementsAre(9, 10));
  EXPECT_THAT(index.After(10, 100), IsEmpty());
  EXPECT_THAT(index.After(0, 0), IsEmpty());
  const std::vector<IndexEntry> first = index.After(0, 1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].offset, log_format::kSegmentHeaderSize);
  EXPECT_EQ(first[0].ordinal, 1u);
}

TEST(SegmentIndexTest, FindsTheFirstSequenceAtOrAfterATime) {
  SegmentIndex index(NoBounds(), {});
  index.Add(Entries(1, 1, 10));
  EXPECT_EQ(index.FirstSequenceAtOrAfter(absl::InfinitePast()), 1u);
  EXPECT_EQ(index.FirstSequenceAtOrAfter(At(4)), 4u);
  EXPECT_EQ(index.FirstSequenceAtOrAfter(At(4) + absl::Nanoseconds(1)), 5u);
  EXPECT_EQ(index.FirstSequenceAtOrAfter(absl::InfiniteFuture()), 11u);
}

// A clock stepped back across a restart: receive times are not ordered, and
// the first event at or after the time is still the one found.
TEST(SegmentIndexTest, FindsByTimeWhenTimesAreNotOrdered) {
  SegmentIndex index(NoBounds(), {});
  std::vector<IndexEntry> entries = Entries(1, 1, 4);
  entries[2].receive_time_ns = absl::ToUnixNanos(At(0));  // stepped back
  index.Add(entries);
  EXPECT_EQ(index.FirstSequenceAtOrAfter(At(2)), 2u);
  EXPECT_EQ(index.FirstSequenceAtOrAfter(At(4)), 4u);
}

TEST(SegmentIndexTest, TrimsByCountBytesAndAge) {
  {
    SegmentIndex index({.max_events = 3, .max_bytes = 0}, {});
    index.Add(Entries(1, 1, 10));
    index.Trim(absl::InfinitePast(), 1);
    EXPECT_THAT(Sequences(index.After(0, 100)), ElementsAre(8, 9, 10));
    EXPECT_EQ(index.Stats().first_sequence, 8u);
    EXPECT_EQ(index.Stats().trimmed_events_total, 7u);
    EXPECT_EQ(index.TrimPoint().trimmed_through, 7u);
    EXPECT_EQ(index.TrimPoint().trimmed_events_total, 7u);
  }
  {
    SegmentIndex index({.max_events = 0, .max_bytes = 2 * kEventSize + 1}, {});
    index.Add(Entries(1, 1, 10));
    index.Trim(absl::InfinitePast(), 1);
    EXPECT_THAT(Sequences(index.After(0, 100)), ElementsAre(9, 10));
    EXPECT_EQ(index.Stats().retained_bytes, 2u * kEventSize);
  }
  {
    SegmentIndex index(NoBounds(), {});
    index.Add(Entries(1, 1, 10));
    index.Trim(At(6), 1);
    EXPECT_THAT(Sequences(index.After(0, 100)), ElementsAre(6, 7, 8, 9, 10));
  }
}

// Everything trimmed: the high-water mark stays, and the next time lookup
// points past it.
TEST(SegmentIndexTest, KeepsTheHighWaterMarkWhenEverythingIsTrimmed) {
  SegmentIndex index(NoBounds(), {});
  index.Add(Entries(1, 1, 5));
  index.Trim(absl::InfiniteFuture(), 1);
  EXPECT_EQ(index.Stats().retained_events, 0u);
  EXPECT_EQ(index.Stats().first_sequence, 0u);
  EXPECT_EQ(index.Stats().last_sequence, 5u);
  EXPECT_EQ(index.Stats().retained_bytes, 0u);
  EXPECT_EQ(index.FirstSequenceAtOrAfter(absl::InfinitePast()), 6u);
}

// Recovery from a log whose trim record says how far retention went:
// records at or below it belong to their segment but are not retained.
TEST(SegmentIndexTest, StartsFromATrimPoint) {
  SegmentIndex index(NoBounds(),
                     {.trimmed_through = 4, .trimmed_events_total = 4});
  EXPECT_EQ(index.Stats().last_sequence, 4u);
  index.Add(Entries(1, 1, 6));
  EXPECT_THAT(Sequences(index.After(0, 100)), ElementsAre(5, 6));
  EXPECT_EQ(index.Stats().first_sequence, 5u);
  EXPECT_EQ(index.Stats().retained_events, 2u);
  EXPECT_EQ(index.Stats().retained_bytes, 2u * kEventSize);
  EXPECT_EQ(index.Stats().trimmed_events_total, 4u);
  EXPECT_TRUE(index.HasRecords(1));

  SegmentIndex empty(NoBounds(),
                     {.trimmed_through = 42, .trimmed_events_total = 40});
  EXPECT_EQ(empty.Stats().last_sequence, 42u);
  EXPECT_EQ(empty.FirstSequenceAtOrAfter(absl::InfinitePast()), 43u);
}

TEST(SegmentIndexTest, SaysWhenTheOldestSegmentBecameDeletable) {
  SegmentIndex index({.max_events = 4, .max_bytes = 0}, {});
  index.Add(Entries(1, 1, 3));
  index.Add(Entries(2, 4, 6));
  EXPECT_FALSE(index.Trim(absl::InfinitePast(), 2));  // 2 of segment 1 left
  index.Add(Entries(2, 7, 7));
  EXPECT_TRUE(index.Trim(absl::InfinitePast(), 2));  // segment 1 all trimmed
  // The active segment is never reported, however trimmed.
  SegmentIndex active({.max_events = 1, .max_bytes = 0}, {});
  active.Add(Entries(1, 1, 3));
  EXPECT_FALSE(active.Trim(absl::InfinitePast(), 1));
}

TEST(SegmentIndexTest, ListsTrimmedSegmentsOldestFirst) {
  SegmentIndex index({.max_events = 2, .max_bytes = 0}, {});
  index.Add(Entries(1, 1, 3));
  index.Add(Entries(3, 4, 6));  // segment 2: made ahead, no records
  index.Add(Entries(4, 7, 9));
  index.Trim(absl::InfinitePast(), 5);
  // Segments 1 and 3 hold only trimmed events, 2 none; 4 holds 8 and 9.
  EXPECT_THAT(index.TrimmedSegments({1, 2, 3, 4, 5}, 5), ElementsAre(1, 2, 3));
  index.Forget(1);
  EXPECT_FALSE(index.HasRecords(1));
  EXPECT_THAT(index.TrimmedSegments({2, 3, 4, 5}, 5), ElementsAre(2, 3));
}

// The newest segment with records holds the high-water mark on disk: never
// listed, even when all of it is trimmed, nor anything after it.
TEST(SegmentIndexTest, NeverListsTheNewestSegmentWithRecords) {
  SegmentIndex index(NoBounds(), {});
  index.Add(Entries(1, 1, 3));
  index.Add(Entries(2, 4, 6));
  index.Trim(absl::InfiniteFuture(), 3);
  EXPECT_EQ(index.Stats().retained_events, 0u);
  EXPECT_THAT(index.TrimmedSegments({1, 2, 3}, 3), ElementsAre(1));
}

// A partly trimmed segment stops the list: the ones after it are newer.
TEST(SegmentIndexTest, StopsAtAPartlyTrimmedSegment) {
  SegmentIndex index({.max_events = 5, .max_bytes = 0}, {});
  index.Add(Entries(1, 1, 3));
  index.Add(Entries(2, 4, 6));
  index.Add(Entries(3, 7, 9));
  index.Trim(absl::InfinitePast(), 3);  // 5..9 retained
  EXPECT_THAT(index.TrimmedSegments({1, 2, 3}, 3), ElementsAre(1));
  // Before the active one only, however trimmed.
  EXPECT_THAT(index.TrimmedSegments({1, 2, 3}, 1), IsEmpty());
}

}  // namespace
}  // namespace convocore::store
