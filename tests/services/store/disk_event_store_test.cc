#include "services/store/disk_event_store.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/log/logger.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/store/log_format.h"
#include "tests/services/store/fault_injection.h"
#include "tests/services/store/test_events.h"
#include "tests/support/eventually.h"

extern char** environ;

namespace convocore::store {
namespace {

using ::convocore::hub::StoredEvent;
using ::convocore::store::testing::EventBytes;
using ::convocore::store::testing::EventId;
using ::convocore::store::testing::EventTime;
using ::convocore::store::testing::FillFileSystem;
using ::convocore::store::testing::MakeEvent;
using ::convocore::store::testing::ScopedMount;
using ::convocore::store::testing::SetImmutable;
using ::convocore::testing::Eventually;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::vector<StoredEvent> Batch(std::uint64_t first, std::size_t count,
                               std::optional<absl::Time> time = {}) {
  std::vector<StoredEvent> batch;
  for (std::uint64_t sequence = first; sequence < first + count; ++sequence) {
    batch.push_back(time ? MakeEvent(sequence, *time) : MakeEvent(sequence));
  }
  return batch;
}

std::vector<std::uint64_t> Range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> sequences;
  for (std::uint64_t s = first; s <= last; ++s) sequences.push_back(s);
  return sequences;
}

std::vector<std::uint64_t> Sequences(const std::vector<StoredEvent>& events) {
  std::vector<std::uint64_t> sequences;
  for (const StoredEvent& event : events) sequences.push_back(event.sequence);
  return sequences;
}

// Every event is the one the generator made for its sequence.
void ExpectGenerated(const std::vector<StoredEvent>& events) {
  for (const StoredEvent& event : events) {
    ASSERT_NE(event.event_bytes, nullptr);
    EXPECT_EQ(*event.event_bytes, EventBytes(event.sequence)) << event.sequence;
    EXPECT_EQ(event.id, EventId(event.sequence));
  }
}

class DiskEventStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string path =
        (std::filesystem::temp_directory_path() / "disk_store_test.XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(path.data()), nullptr) << std::strerror(errno);
    root_ = path;
    dir_ = root_ / "data";
  }

  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  DiskStoreOptions Options() const {
    DiskStoreOptions options;
    options.data_dir = dir_.string();
    options.retention = {.max_events = 0, .max_bytes = 0};
    options.maintenance_interval = absl::Milliseconds(10);
    return options;
  }

  std::unique_ptr<DiskEventStore> Open(const DiskStoreOptions& options) {
    absl::StatusOr<std::unique_ptr<DiskEventStore>> store =
        DiskEventStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  std::unique_ptr<DiskEventStore> Open() { return Open(Options()); }

  // The log's segment files, oldest first.
  std::vector<std::filesystem::path> SegmentFiles() const {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      if (entry.path().extension() == ".log") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    return files;
  }

  // Where a segment's records end: segments are zero-filled ahead of the
  // appends, so the file's size does not tell.
  static std::uintmax_t DataEnd(const std::filesystem::path& file) {
    std::ifstream stream(file, std::ios::binary);
    const std::string content((std::istreambuf_iterator<char>(stream)),
                              std::istreambuf_iterator<char>());
    return content.find_last_not_of('\0') + 1;
  }

  // Writes `bytes` where the records end, as a crash mid-Append leaves them.
  static void WriteAtDataEnd(const std::filesystem::path& file,
                             const std::string& bytes) {
    const std::uintmax_t end = DataEnd(file);
    std::fstream stream(file, std::ios::binary | std::ios::in | std::ios::out);
    stream.seekp(static_cast<std::streamoff>(end));
    stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(stream.good()) << "cannot write to " << file;
  }

  // Mounts a 2 MiB tmpfs on the data directory, for a disk that fills;
  // empty, or why it could not.
  std::string MountSmallTmpfs(ScopedMount& mount) {
    std::filesystem::create_directories(dir_);
    if (const int error = mount.MountTmpfs(dir_, "size=2m"); error != 0) {
      return absl::StrCat(
          "cannot mount a small tmpfs to fill (needs root with "
          "CAP_SYS_ADMIN): ",
          std::strerror(error));
    }
    return "";
  }

  // The salt the records of segment `file` are checksummed with.
  static std::uint32_t SaltOf(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::string header(log_format::kSegmentHeaderSize, '\0');
    in.read(header.data(), static_cast<std::streamsize>(header.size()));
    absl::StatusOr<std::uint32_t> salt = log_format::CheckSegmentHeader(header);
    EXPECT_TRUE(salt.ok()) << file << ": " << salt.status();
    return salt.ok() ? *salt : 0;
  }

  static void FlipByte(const std::filesystem::path& file, std::uintmax_t at) {
    std::fstream stream(file, std::ios::binary | std::ios::in | std::ios::out);
    stream.seekg(static_cast<std::streamoff>(at));
    const char byte = static_cast<char>(stream.get() ^ 0x5a);
    stream.seekp(static_cast<std::streamoff>(at));
    stream.put(byte);
    ASSERT_TRUE(stream.good()) << "cannot damage " << file;
  }

  std::vector<StoredEvent> ReadAll(const DiskEventStore& store) {
    absl::StatusOr<std::vector<StoredEvent>> events =
        store.ReadAfter(0, 1'000'000);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<StoredEvent>{};
  }

  std::filesystem::path root_;
  std::filesystem::path dir_;
};

TEST_F(DiskEventStoreTest, AppendsAndReadsBack) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Health().ok());
  ASSERT_TRUE(store->Append(Batch(1, 3)).ok());
  ASSERT_TRUE(store->Append(Batch(4, 5)).ok());

  const std::vector<StoredEvent> all = ReadAll(*store);
  EXPECT_THAT(Sequences(all), ElementsAreArray(Range(1, 8)));
  ExpectGenerated(all);
  EXPECT_EQ(all[3].receive_time, EventTime(4));

  absl::StatusOr<std::vector<StoredEvent>> page = store->ReadAfter(3, 2);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Sequences(*page), ElementsAre(4, 5));
  page = store->ReadAfter(8, 10);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->empty());
  page = store->ReadAfter(0, 0);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->empty());

  const hub::StoreStats stats = store->Stats();
  EXPECT_EQ(stats.first_sequence, 1u);
  EXPECT_EQ(stats.last_sequence, 8u);
  EXPECT_EQ(stats.retained_events, 8u);
  EXPECT_EQ(stats.retained_bytes, 8u * EventBytes(1).size());
  EXPECT_EQ(stats.trimmed_events_total, 0u);
}

TEST_F(DiskEventStoreTest, EmptyStoreHasNothingToRead) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Stats().last_sequence, 0u);
  EXPECT_EQ(store->Stats().first_sequence, 0u);
  EXPECT_TRUE(ReadAll(*store).empty());
  EXPECT_EQ(*store->FirstSequenceAtOrAfter(absl::InfinitePast()), 1u);
  EXPECT_TRUE(store->Append({}).ok());
}

TEST_F(DiskEventStoreTest, RejectsSequencesThatDoNotIncrease) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Batch(1, 3)).ok());

  EXPECT_EQ(store->Append(Batch(3, 1)).code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<StoredEvent> backwards = {MakeEvent(5), MakeEvent(4)};
  EXPECT_EQ(store->Append(backwards).code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<StoredEvent> no_bytes = {MakeEvent(4)};
  no_bytes[0].event_bytes = nullptr;
  EXPECT_EQ(store->Append(no_bytes).code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(store->Stats().last_sequence, 3u);
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAre(1, 2, 3));
}

TEST_F(DiskEventStoreTest, SequencesAndReadsContinueAcrossRestart) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Append(Batch(1, 4)).ok());
    ASSERT_TRUE(store->Append(Batch(5, 6)).ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const hub::StoreStats stats = store->Stats();
  EXPECT_EQ(stats.first_sequence, 1u);
  EXPECT_EQ(stats.last_sequence, 10u);
  EXPECT_EQ(stats.retained_events, 10u);
  EXPECT_EQ(stats.retained_bytes, 10u * EventBytes(1).size());

  absl::StatusOr<std::vector<StoredEvent>> after = store->ReadAfter(5, 100);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_THAT(Sequences(*after), ElementsAreArray(Range(6, 10)));
  ExpectGenerated(*after);

  EXPECT_EQ(store->Append(Batch(10, 1)).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store->Append(Batch(11, 2)).ok());
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAreArray(Range(1, 12)));
}

TEST_F(DiskEventStoreTest, ReadsIdsForTheDeduplicationWindow) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Batch(1, 6)).ok());
  absl::StatusOr<std::vector<StoredEventId>> ids = store->ReadIdsAfter(3, 2);
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_EQ(ids->size(), 2u);
  EXPECT_EQ((*ids)[0].sequence, 4u);
  EXPECT_EQ((*ids)[0].id, EventId(4));
  EXPECT_EQ((*ids)[0].receive_time, EventTime(4));
  EXPECT_EQ((*ids)[1].sequence, 5u);
  ids = store->ReadIdsAfter(6, 10);
  ASSERT_TRUE(ids.ok());
  EXPECT_TRUE(ids->empty());
}

TEST_F(DiskEventStoreTest, VisitsTheIdsOfTheDeduplicationWindow) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Batch(1, 5000)).ok());  // 1 ms apart
  auto visited = [&](std::size_t max_entries, absl::Time since) {
    std::vector<std::uint64_t> sequences;
    const absl::Status status = ForEachRecentId(
        *store, max_entries, since, [&](const StoredEventId& id) {
          EXPECT_EQ(id.id, EventId(id.sequence));
          EXPECT_EQ(id.receive_time, EventTime(id.sequence));
          sequences.push_back(id.sequence);
        });
    EXPECT_TRUE(status.ok()) << status;
    return sequences;
  };
  // Bounded by count, in chunks...
  EXPECT_THAT(visited(4500, absl::InfinitePast()),
              ElementsAreArray(Range(501, 5000)));
  // ...by age...
  EXPECT_THAT(visited(4500, EventTime(4990)),
              ElementsAreArray(Range(4990, 5000)));
  // ...or by nothing at all.
  EXPECT_EQ(visited(0, absl::InfinitePast()).size(), 5000u);
  EXPECT_TRUE(visited(10, absl::InfiniteFuture()).empty());
}

TEST_F(DiskEventStoreTest, FindsTheFirstSequenceAtOrAfterATime) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Batch(1, 10)).ok());  // 1 ms apart

  EXPECT_EQ(*store->FirstSequenceAtOrAfter(absl::InfinitePast()), 1u);
  EXPECT_EQ(*store->FirstSequenceAtOrAfter(EventTime(4)), 4u);
  EXPECT_EQ(*store->FirstSequenceAtOrAfter(EventTime(4) - absl::Nanoseconds(1)),
            4u);
  EXPECT_EQ(*store->FirstSequenceAtOrAfter(EventTime(4) + absl::Nanoseconds(1)),
            5u);
  EXPECT_EQ(*store->FirstSequenceAtOrAfter(EventTime(10) + absl::Seconds(1)),
            11u);
  EXPECT_EQ(*store->FirstSequenceAtOrAfter(absl::InfiniteFuture()), 11u);
}

TEST_F(DiskEventStoreTest, TrimsByCountInTheBackground) {
  DiskStoreOptions options = Options();
  options.retention.max_events = 10;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  for (std::uint64_t first = 1; first <= 25; first += 5) {
    ASSERT_TRUE(store->Append(Batch(first, 5)).ok());
  }
  ASSERT_TRUE(Eventually([&] { return store->Stats().retained_events == 10; }))
      << store->Stats().retained_events;
  const hub::StoreStats stats = store->Stats();
  EXPECT_EQ(stats.first_sequence, 16u);
  EXPECT_EQ(stats.last_sequence, 25u);
  EXPECT_EQ(stats.trimmed_events_total, 15u);
  EXPECT_EQ(stats.retained_bytes, 10u * EventBytes(1).size());
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAreArray(Range(16, 25)));
  EXPECT_EQ(*store->FirstSequenceAtOrAfter(absl::InfinitePast()), 16u);
}

// Retention frees disk by deleting whole segments once every event in them
// is trimmed; the trim point it records first keeps the counts and the
// high-water mark across a restart.
TEST_F(DiskEventStoreTest, RetentionDeletesWholeSegments) {
  DiskStoreOptions options = Options();
  options.segment_bytes = 8 << 10;  // ~14 events of ~560 bytes
  options.retention.max_events = 50;
  std::uintmax_t log_bytes = 0;
  {
    auto store = Open(options);
    ASSERT_NE(store, nullptr);
    for (std::uint64_t first = 1; first <= 2000; first += 5) {
      ASSERT_TRUE(store->Append(Batch(first, 5)).ok());
    }
    EXPECT_EQ(store->Stats().retained_events, 50u);
    // 2,000 events went through ~140 segments; a handful remain.
    ASSERT_TRUE(Eventually([&] { return SegmentFiles().size() <= 6; }))
        << SegmentFiles().size() << " segments left";
    // Maintenance may delete a listed segment before it is measured: gone,
    // it takes no disk.
    for (const std::filesystem::path& segment : SegmentFiles()) {
      std::error_code gone;
      const std::uintmax_t size = std::filesystem::file_size(segment, gone);
      if (!gone) log_bytes += size;
    }
    // The retained events, plus at most three segments' worth (each up to
    // a batch over its size): the oldest partly trimmed, the active one's
    // zero-filled rest, and the next one made ahead.
    EXPECT_LT(log_bytes, 50u * 600 + 3 * (options.segment_bytes + 5 * 600));
    EXPECT_THAT(Sequences(ReadAll(*store)),
                ElementsAreArray(Range(1951, 2000)));
  }
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  const hub::StoreStats stats = store->Stats();
  EXPECT_EQ(stats.first_sequence, 1951u);
  EXPECT_EQ(stats.last_sequence, 2000u);
  EXPECT_EQ(stats.retained_events, 50u);
  EXPECT_EQ(stats.trimmed_events_total, 1950u);
  const std::vector<StoredEvent> events = ReadAll(*store);
  EXPECT_THAT(Sequences(events), ElementsAreArray(Range(1951, 2000)));
  ExpectGenerated(events);
}

TEST_F(DiskEventStoreTest, TrimsByBytesInTheBackground) {
  DiskStoreOptions options = Options();
  options.retention.max_bytes = 7 * EventBytes(1).size() + 100;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Batch(1, 20)).ok());
  ASSERT_TRUE(Eventually([&] { return store->Stats().retained_events == 7; }))
      << store->Stats().retained_events;
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAreArray(Range(14, 20)));
}

TEST_F(DiskEventStoreTest, TrimsByAgeInTheBackground) {
  DiskStoreOptions options = Options();
  options.retention.max_age = absl::Hours(1);
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Batch(1, 5, absl::Now() - absl::Hours(2))).ok());
  ASSERT_TRUE(store->Append(Batch(6, 3, absl::Now())).ok());
  ASSERT_TRUE(Eventually([&] { return store->Stats().retained_events == 3; }))
      << store->Stats().retained_events;
  EXPECT_EQ(store->Stats().first_sequence, 6u);
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAre(6, 7, 8));
}

TEST_F(DiskEventStoreTest, HighWaterMarkSurvivesTrimmingEverything) {
  DiskStoreOptions options = Options();
  options.retention.max_age = absl::Hours(1);
  {
    auto store = Open(options);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Append(Batch(1, 5, absl::Now() - absl::Hours(2))).ok());
    ASSERT_TRUE(
        Eventually([&] { return store->Stats().retained_events == 0; }));
    EXPECT_EQ(store->Stats().last_sequence, 5u);
    EXPECT_EQ(store->Stats().first_sequence, 0u);
    EXPECT_EQ(*store->FirstSequenceAtOrAfter(absl::InfinitePast()), 6u);
  }
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  const hub::StoreStats stats = store->Stats();
  EXPECT_EQ(stats.last_sequence, 5u);
  EXPECT_EQ(stats.retained_events, 0u);
  EXPECT_EQ(stats.trimmed_events_total, 5u);
  EXPECT_EQ(store->Append(Batch(5, 1)).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store->Append(Batch(6, 1, absl::Now())).ok());
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAre(6));
}

TEST_F(DiskEventStoreTest,
       ReadersSeeContiguousEventsWhileAppendingAndTrimming) {
  DiskStoreOptions options = Options();
  options.retention.max_events = 300;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);

  constexpr std::uint64_t kEvents = 3000;
  std::atomic<bool> writing{true};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (writing.load()) {
        const std::uint64_t first = store->Stats().first_sequence;
        absl::StatusOr<std::vector<StoredEvent>> events =
            store->ReadAfter(first > 0 ? first - 1 : 0, 100);
        if (!events.ok()) {
          ++failures;
          continue;
        }
        for (std::size_t i = 0; i < events->size(); ++i) {
          const StoredEvent& event = (*events)[i];
          if ((i > 0 && event.sequence != (*events)[i - 1].sequence + 1) ||
              *event.event_bytes != EventBytes(event.sequence)) {
            ++failures;
          }
        }
      }
    });
  }
  std::uint64_t next = 1;
  for (int round = 0; next <= kEvents; ++round) {
    const std::size_t size = 1 + round % 20;
    ASSERT_TRUE(store->Append(Batch(next, size)).ok());
    next += size;
  }
  writing = false;
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(
      Eventually([&] { return store->Stats().retained_events == 300; }));
  EXPECT_THAT(Sequences(ReadAll(*store)),
              ElementsAreArray(Range(next - 300, next - 1)));
}

TEST_F(DiskEventStoreTest, RefusesADirectoryAnotherStoreHolds) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::unique_ptr<DiskEventStore>> second =
      DiskEventStore::Open(Options());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition)
      << second.status();
}

TEST_F(DiskEventStoreTest, RefusesAFileThatIsNotASegment) {
  std::filesystem::create_directories(dir_);
  std::ofstream(dir_ / "events-0000000001.log") << std::string(8192, 'x');
  absl::StatusOr<std::unique_ptr<DiskEventStore>> store =
      DiskEventStore::Open(Options());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
}

// A segment of another format version (an unreleased development one, or a
// newer binary's) is refused with the file and the version named; nothing is
// cut or rewritten.
TEST_F(DiskEventStoreTest, RefusesASegmentOfAnotherFormatVersion) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Append(Batch(1, 3)).ok());
  }
  const std::filesystem::path segment = SegmentFiles()[0];
  const std::uintmax_t end = DataEnd(segment);
  {
    std::fstream stream(segment,
                        std::ios::binary | std::ios::in | std::ios::out);
    stream.seekp(8);
    stream.put('\1');  // the version field's low byte: 2 becomes 1
    ASSERT_TRUE(stream.good());
  }
  absl::StatusOr<std::unique_ptr<DiskEventStore>> store =
      DiskEventStore::Open(Options());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
      << store.status();
  EXPECT_THAT(store.status().message(),
              HasSubstr(segment.filename().string()));
  EXPECT_THAT(store.status().message(), HasSubstr("format version 1"));
  EXPECT_EQ(DataEnd(segment), end);
}

// Damage followed by newer segments is not a crash's torn tail: the log
// cannot say which acknowledged events it lost, so it does not open.
TEST_F(DiskEventStoreTest, RefusesALogWhoseOlderSegmentIsDamaged) {
  DiskStoreOptions options = Options();
  options.segment_bytes = 8 << 10;
  {
    auto store = Open(options);
    ASSERT_NE(store, nullptr);
    for (std::uint64_t first = 1; first <= 100; first += 5) {
      ASSERT_TRUE(store->Append(Batch(first, 5)).ok());
    }
  }
  ASSERT_GE(SegmentFiles().size(), 3u);
  FlipByte(SegmentFiles()[1], 1000);
  absl::StatusOr<std::unique_ptr<DiskEventStore>> store =
      DiskEventStore::Open(options);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
  EXPECT_THAT(std::string(store.status().message()),
              ::testing::HasSubstr(SegmentFiles()[1].filename().string()));
}

// What a crash leaves after the last complete batch (records of a batch
// whose Append() never returned, half a record) is cut off on open, and the
// log goes on from the last acknowledged batch.
TEST_F(DiskEventStoreTest, CutsATornTailOffTheNewestSegment) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Append(Batch(1, 3)).ok());
    ASSERT_TRUE(store->Append(Batch(4, 3)).ok());
  }
  ASSERT_FALSE(SegmentFiles().empty());
  const std::uint32_t salt = SaltOf(SegmentFiles()[0]);
  std::string torn;
  for (std::uint64_t sequence = 7; sequence <= 8; ++sequence) {
    log_format::AppendRecord(MakeEvent(sequence), /*flags=*/0, salt, &torn);
  }
  std::string last;
  log_format::AppendRecord(MakeEvent(9), log_format::kEndsBatch, salt, &last);
  torn.append(last, 0, last.size() / 2);
  // The first segment holds the batches; a second may be made ahead.
  ASSERT_FALSE(SegmentFiles().empty());
  const std::uintmax_t committed = DataEnd(SegmentFiles()[0]);
  WriteAtDataEnd(SegmentFiles()[0], torn);
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->DiscardedTailBytes(), torn.size());
    EXPECT_EQ(DataEnd(SegmentFiles()[0]), committed);
    EXPECT_EQ(store->Stats().last_sequence, 6u);
    EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAreArray(Range(1, 6)));
    ASSERT_TRUE(store->Append(Batch(7, 3)).ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->DiscardedTailBytes(), 0u);
  const std::vector<StoredEvent> events = ReadAll(*store);
  EXPECT_THAT(Sequences(events), ElementsAreArray(Range(1, 9)));
  ExpectGenerated(events);
}

// Maintenance makes the next segment ahead of time; a crash can then leave
// the torn batch in the segment before it, which is no damage either.
TEST_F(DiskEventStoreTest, CutsATornTailOffASegmentFollowedByAPreparedOne) {
  DiskStoreOptions options = Options();
  options.segment_bytes = 16 << 10;  // prepared once 8 KiB are written
  {
    auto store = Open(options);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Append(Batch(1, 20)).ok());  // ~11 KiB
    // Made ahead and wholly zero-filled.
    ASSERT_TRUE(Eventually([&] {
      const std::vector<std::filesystem::path> files = SegmentFiles();
      std::error_code ignored;
      return files.size() == 2 &&
             std::filesystem::file_size(files[1], ignored) ==
                 options.segment_bytes;
    }));
  }
  std::string torn;
  log_format::AppendRecord(MakeEvent(21), /*flags=*/0,
                           SaltOf(SegmentFiles()[0]), &torn);
  WriteAtDataEnd(SegmentFiles()[0], torn);
  {
    auto store = Open(options);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->DiscardedTailBytes(), torn.size());
    EXPECT_EQ(store->Stats().last_sequence, 20u);
    ASSERT_TRUE(store->Append(Batch(21, 5)).ok());
  }
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->DiscardedTailBytes(), 0u);
  const std::vector<StoredEvent> events = ReadAll(*store);
  EXPECT_THAT(Sequences(events), ElementsAreArray(Range(1, 25)));
  ExpectGenerated(events);
  // The new batch went into the prepared segment, written ahead with zeros.
  EXPECT_EQ(std::filesystem::file_size(SegmentFiles()[1]),
            options.segment_bytes);
}

// Each start makes a next segment ahead; a sidecar restarted again and again
// without traffic must not pile up the empty ones the starts before made.
TEST_F(DiskEventStoreTest, RestartsWithoutTrafficDoNotPileUpEmptySegments) {
  DiskStoreOptions options = Options();
  options.segment_bytes = 16 << 10;
  auto prepared = [&] {
    const std::vector<std::filesystem::path> files = SegmentFiles();
    std::error_code ignored;
    return !files.empty() &&
           std::filesystem::file_size(files.back(), ignored) ==
               options.segment_bytes;
  };
  {
    auto store = Open(options);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Append(Batch(1, 3)).ok());
    ASSERT_TRUE(Eventually([&] { return SegmentFiles().size() == 2; }));
    ASSERT_TRUE(Eventually(prepared));
  }
  for (int restart = 0; restart < 4; ++restart) {
    const std::filesystem::path newest = SegmentFiles().back();
    auto store = Open(options);
    ASSERT_NE(store, nullptr);
    // This start made its own next segment.
    ASSERT_TRUE(Eventually(
        [&] { return SegmentFiles().back() != newest && prepared(); }));
    EXPECT_EQ(store->Stats().last_sequence, 3u);
  }
  // The segment with the events, the empty one appended to next, and the
  // one made ahead.
  EXPECT_LE(SegmentFiles().size(), 3u);
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAre(1, 2, 3));
  ASSERT_TRUE(store->Append(Batch(4, 2)).ok());
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAre(1, 2, 3, 4, 5));
}

// Acknowledged batches after damage in the newest segment prove it is no
// crash's torn tail: cutting it would lose them and reuse their sequences.
TEST_F(DiskEventStoreTest, RefusesDamageFollowedByAcknowledgedBatches) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Append(Batch(1, 3)).ok());
    ASSERT_TRUE(store->Append(Batch(4, 3)).ok());
    ASSERT_TRUE(store->Append(Batch(7, 3)).ok());
  }
  const std::uintmax_t end = DataEnd(SegmentFiles()[0]);
  FlipByte(SegmentFiles()[0], log_format::kSegmentHeaderSize + 60);
  absl::StatusOr<std::unique_ptr<DiskEventStore>> store =
      DiskEventStore::Open(Options());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
  EXPECT_THAT(store.status().message(),
              HasSubstr(SegmentFiles()[0].filename().string()));
  EXPECT_THAT(store.status().message(), HasSubstr("record 4 at offset"));
  EXPECT_EQ(DataEnd(SegmentFiles()[0]), end);  // nothing was cut
}

// The salt in a segment's header seeds every record's checksum: damaged, it
// would make every acknowledged record look like a torn tail.
TEST_F(DiskEventStoreTest, RefusesANewestSegmentWhoseHeaderIsDamaged) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Append(Batch(1, 3)).ok());
    ASSERT_TRUE(store->Append(Batch(4, 3)).ok());
  }
  const std::uintmax_t end = DataEnd(SegmentFiles()[0]);
  FlipByte(SegmentFiles()[0], 13);  // in the salt
  absl::StatusOr<std::unique_ptr<DiskEventStore>> store =
      DiskEventStore::Open(Options());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("header is damaged"));
  EXPECT_EQ(DataEnd(SegmentFiles()[0]), end);  // nothing was cut
}

// A crash while the first segment after a rollover was being made leaves
// it empty; if the disk is then full at start, writing its header fails.
// Maintenance must write it again once there is room, not skip it: appends
// behind 16 zero bytes would be acknowledged into a file no start can read.
TEST_F(DiskEventStoreTest, WritesAHalfMadeSegmentsHeaderAgainAfterAFullDisk) {
  ScopedMount mount;
  if (const std::string why = MountSmallTmpfs(mount); !why.empty()) {
    GTEST_SKIP() << why;
  }
  DiskStoreOptions options = Options();
  options.segment_bytes = 64 << 10;
  {
    auto store = Open(options);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Append(Batch(1, 4)).ok());
  }
  for (const auto& file : SegmentFiles()) {
    if (file != SegmentFiles().front()) std::filesystem::remove(file);
  }
  std::ofstream(dir_ / "events-0000000002.log").close();  // 0 bytes
  const std::filesystem::path filler = dir_ / "filler";
  ASSERT_TRUE(FillFileSystem(filler));
  {
    auto store = Open(options);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->Health().code(), absl::StatusCode::kUnavailable);
    std::filesystem::remove(filler);
    ASSERT_TRUE(Eventually([&] { return store->Health().ok(); }))
        << store->Health();
    ASSERT_TRUE(store->Append(Batch(5, 4)).ok());
  }
  {
    auto store = Open(options);
    ASSERT_NE(store, nullptr);
    EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAreArray(Range(1, 8)));
  }
}

// log.meta only says how far retention trimmed: when it is damaged and a
// segment holds records (which carry the high-water mark), the log opens
// and retention trims again.
TEST_F(DiskEventStoreTest,
       DoesWithoutADamagedTrimRecordWhenSegmentsHoldEvents) {
  DiskStoreOptions options = Options();
  options.retention.max_events = 5;
  {
    auto store = Open(options);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Append(Batch(1, 10)).ok());
    ASSERT_TRUE(
        Eventually([&] { return std::filesystem::exists(dir_ / "log.meta"); }));
  }
  std::filesystem::resize_file(dir_ / "log.meta", 0);
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->DiscardedDamagedMeta());
  EXPECT_EQ(store->Stats().last_sequence, 10u);
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAreArray(Range(6, 10)));
  ASSERT_TRUE(store->Append(Batch(11, 1)).ok());
}

// ...but when no segment holds one, log.meta alone has the high-water mark,
// and guessing it could reuse sequences.
TEST_F(DiskEventStoreTest, RefusesADamagedTrimRecordThatAloneHoldsTheMark) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
  }
  {
    std::ofstream meta(dir_ / "log.meta", std::ios::binary);
    meta << log_format::EncodeMeta(
        {.trimmed_through = 7, .trimmed_events_total = 7});
  }
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_FALSE(store->DiscardedDamagedMeta());
    EXPECT_EQ(store->Stats().last_sequence, 7u);
  }
  FlipByte(dir_ / "log.meta", 9);
  absl::StatusOr<std::unique_ptr<DiskEventStore>> store =
      DiskEventStore::Open(Options());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("high-water mark"));
}

// Damage after open is caught by the record's checksum when it is read,
// instead of streaming wrong bytes.
TEST_F(DiskEventStoreTest, ReadsFailOnARecordDamagedOnDisk) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Batch(1, 3)).ok());
  FlipByte(SegmentFiles()[0], DataEnd(SegmentFiles()[0]) - 10);
  absl::StatusOr<std::vector<StoredEvent>> events = store->ReadAfter(0, 10);
  EXPECT_EQ(events.status().code(), absl::StatusCode::kDataLoss)
      << events.status();
  absl::StatusOr<std::vector<StoredEvent>> intact = store->ReadAfter(0, 2);
  ASSERT_TRUE(intact.ok()) << intact.status();
  EXPECT_THAT(Sequences(*intact), ElementsAre(1, 2));
}

TEST_F(DiskEventStoreTest, RefusesADataDirThatIsAFile) {
  std::filesystem::create_directories(root_);
  std::ofstream(dir_) << "not a directory";
  EXPECT_FALSE(DiskEventStore::Open(Options()).ok());
}

TEST(DurabilityTest, ParsesAndPrintsFlagValues) {
  Durability durability = Durability::kFsync;
  std::string error;
  EXPECT_TRUE(AbslParseFlag("os_cache", &durability, &error));
  EXPECT_EQ(durability, Durability::kOsCache);
  EXPECT_EQ(DurabilityName(durability), "os_cache");
  EXPECT_TRUE(AbslParseFlag("fsync", &durability, &error));
  EXPECT_EQ(durability, Durability::kFsync);
  EXPECT_FALSE(AbslParseFlag("sometimes", &durability, &error));
  EXPECT_FALSE(error.empty());
}

// --- Crash recovery: a child process appends and is SIGKILLed mid-stream.

// Reads "begin FIRST LAST" / "ack FIRST LAST" lines from the crash child.
class ChildReport {
 public:
  explicit ChildReport(int fd) : fd_(fd) {}
  ~ChildReport() { close(fd_); }

  // The next line; nullopt at end of stream.
  std::optional<std::string> Next() {
    for (;;) {
      const std::size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      char chunk[4096];
      const ssize_t n = read(fd_, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buffer_;
};

struct Report {
  std::uint64_t max_acked = 0;
  std::vector<std::uint64_t> batch_ends;  // LAST of every begun batch
  int acks = 0;
};

void Record(const std::string& line, Report& report) {
  std::istringstream in(line);
  std::string verb;
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  in >> verb >> first >> last;
  if (verb == "begin") report.batch_ends.push_back(last);
  if (verb == "ack") {
    report.max_acked = std::max(report.max_acked, last);
    ++report.acks;
  }
}

// Starts the crash child on `dir`, kills it with SIGKILL once it has
// acknowledged `acks` batches, and returns what it reported.
Report RunAndKillChild(const std::filesystem::path& dir, Durability durability,
                       int acks) {
  int fds[2];
  EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  const std::string dir_arg = dir.string();
  const std::string mode_arg(DurabilityName(durability));
  std::string segment_arg = "65536";
  char* argv[] = {const_cast<char*>(DISK_STORE_CRASH_CHILD),
                  const_cast<char*>(dir_arg.c_str()),
                  const_cast<char*>(mode_arg.c_str()), segment_arg.data(),
                  nullptr};
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, DISK_STORE_CRASH_CHILD, &actions,
                                  nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  ChildReport lines(fds[0]);
  Report report;
  EXPECT_EQ(spawned, 0) << std::strerror(spawned);
  if (spawned != 0) return report;
  // Whatever happens below, the child does not outlive the test.
  absl::Cleanup reap = [pid] {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  };

  while (report.acks < acks) {
    std::optional<std::string> line = lines.Next();
    if (!line) {
      ADD_FAILURE() << "the crash child stopped early";
      return report;
    }
    Record(*line, report);
  }
  kill(pid, SIGKILL);
  int wait_status = 0;
  EXPECT_EQ(waitpid(pid, &wait_status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL);
  std::move(reap).Cancel();
  // Lines written before the kill are still in the pipe.
  while (std::optional<std::string> line = lines.Next()) Record(*line, report);
  return report;
}

class CrashRecoveryTest : public DiskEventStoreTest,
                          public ::testing::WithParamInterface<Durability> {};

TEST_P(CrashRecoveryTest, KeepsEveryAcknowledgedBatchAfterSigkill) {
  std::uint64_t recovered = 0;
  std::vector<std::uint64_t> batch_ends = {0};
  for (int crash = 0; crash < 3; ++crash) {
    const Report report = RunAndKillChild(dir_, GetParam(), 60);
    ASSERT_GE(report.acks, 60);
    batch_ends.insert(batch_ends.end(), report.batch_ends.begin(),
                      report.batch_ends.end());

    DiskStoreOptions options = Options();
    options.durability = GetParam();
    auto store = Open(options);
    ASSERT_NE(store, nullptr);
    const std::vector<StoredEvent> events = ReadAll(*store);
    ASSERT_FALSE(events.empty());
    const std::uint64_t last = events.back().sequence;
    // Every acknowledged batch is there, with nothing missing before it...
    EXPECT_GE(last, report.max_acked);
    EXPECT_THAT(Sequences(events), ElementsAreArray(Range(1, last)));
    ExpectGenerated(events);
    EXPECT_EQ(store->Stats().last_sequence, last);
    // ...and the batch being written at the kill is all there or absent.
    EXPECT_THAT(batch_ends, ::testing::Contains(last));
    EXPECT_GT(last, recovered);
    recovered = last;
  }
}

INSTANTIATE_TEST_SUITE_P(Durability, CrashRecoveryTest,
                         ::testing::Values(Durability::kFsync,
                                           Durability::kOsCache),
                         [](const ::testing::TestParamInfo<Durability>& info) {
                           return std::string(DurabilityName(info.param));
                         });

// --- Faults: full disk and unwritable directories, then recovery.

TEST_F(DiskEventStoreTest, FullDiskIsUnavailableThenRecovers) {
  ScopedMount mount;
  if (const std::string why = MountSmallTmpfs(mount); !why.empty()) {
    GTEST_SKIP() << why;
  }
  const std::filesystem::path filler = dir_ / "filler";
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Batch(1, 4)).ok());

  ASSERT_TRUE(FillFileSystem(filler));
  std::uint64_t next = 5;
  absl::Status status;
  // The log may still have a few pages of room; it fills within a few
  // batches.
  for (int i = 0; i < 1000 && status.ok(); ++i) {
    status = store->Append(Batch(next, 8));
    if (status.ok()) next += 8;
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(store->Health().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->Stats().last_sequence, next - 1);

  std::filesystem::remove(filler);
  ASSERT_TRUE(Eventually([&] { return store->Health().ok(); }))
      << store->Health();
  ASSERT_TRUE(store->Append(Batch(next, 8)).ok());
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAreArray(Range(1, next + 7)));
  store.reset();  // before the unmount
}

TEST_F(DiskEventStoreTest, ReadOnlyDirectoryAtStartIsUnavailableThenRecovers) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Append(Batch(1, 5)).ok());
  }
  // chmod would not do: root, which runs this test, ignores permission bits.
  ScopedMount mount;
  if (const int error = mount.BindReadOnly(dir_); error != 0) {
    GTEST_SKIP() << "cannot bind-mount the data directory read-only (needs "
                    "root with CAP_SYS_ADMIN): "
                 << std::strerror(error);
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Health().code(), absl::StatusCode::kUnavailable);
  // It knows where the sequences continue, though it cannot write.
  EXPECT_EQ(store->Stats().last_sequence, 5u);
  EXPECT_EQ(store->Stats().retained_events, 5u);
  EXPECT_EQ(store->Append(Batch(6, 1)).code(), absl::StatusCode::kUnavailable);
  // Reads still work: subscribers catch up, a restart restores its window.
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAreArray(Range(1, 5)));
  EXPECT_EQ(*store->FirstSequenceAtOrAfter(EventTime(3)), 3u);
  std::size_t ids = 0;
  EXPECT_TRUE(ForEachRecentId(*store, 100, absl::InfinitePast(),
                              [&](const StoredEventId&) { ++ids; })
                  .ok());
  EXPECT_EQ(ids, 5u);

  ASSERT_EQ(mount.RemountBind(0), 0) << "cannot remount read-write";
  ASSERT_TRUE(Eventually([&] { return store->Health().ok(); }))
      << store->Health();
  ASSERT_TRUE(store->Append(Batch(6, 1)).ok());
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAreArray(Range(1, 6)));
  store.reset();  // before the unmount
}

TEST_F(DiskEventStoreTest, UnwritableLogAtRuntimeIsUnavailableThenRecovers) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Batch(1, 3)).ok());

  // A file system remounted read-only cannot be simulated while the log is
  // open (the remount is refused), and root ignores permission bits; the
  // immutable attribute makes every write to the open log fail instead.
  // The first segment is the one appended to; a second may be made ahead.
  ASSERT_FALSE(SegmentFiles().empty());
  const std::filesystem::path segment = SegmentFiles()[0];
  if (const int error = SetImmutable(segment, true); error != 0) {
    GTEST_SKIP() << "cannot set the immutable attribute on " << segment
                 << " (needs root and a file system like ext4): "
                 << std::strerror(error);
  }
  absl::Cleanup writable = [&] { SetImmutable(segment, false); };

  EXPECT_EQ(store->Append(Batch(4, 3)).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->Health().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->Stats().last_sequence, 3u);

  ASSERT_EQ(SetImmutable(segment, false), 0);
  ASSERT_TRUE(Eventually([&] { return store->Health().ok(); }))
      << store->Health();
  ASSERT_TRUE(store->Append(Batch(4, 3)).ok());
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAreArray(Range(1, 6)));
  store.reset();
  store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAreArray(Range(1, 6)));
}

// --- Storage that goes away while the store runs.

// Collects the lines the store logs.
class LogLines {
 public:
  LogLines() {
    log::SetSinkForTesting([this](std::string_view line) {
      absl::MutexLock lock(&mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogLines() { log::SetSinkForTesting(nullptr); }

  int Count(absl::string_view text) const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(
        std::count_if(lines_.begin(), lines_.end(), [&](const std::string& l) {
          return absl::StrContains(l, text);
        }));
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

// `rm -rf` of the data directory under a running store: what it appends
// next would be in no directory a start reads, so it refuses, with the
// reason, and says so once in the log. It stays so, even once a directory
// of that name is back; the retained events stay readable.
TEST_F(DiskEventStoreTest, RemovedDataDirectoryMakesItUnavailableForGood) {
  LogLines lines;
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Batch(1, 3)).ok());
  std::filesystem::remove_all(dir_);

  ASSERT_TRUE(Eventually([&] { return !store->Health().ok(); }));
  EXPECT_EQ(store->Health().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(store->Health().message(), HasSubstr(dir_.string()));
  EXPECT_THAT(store->Health().message(), HasSubstr("was removed"));
  const absl::Status refused = store->Append(Batch(4, 1));
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("was removed"));
  EXPECT_EQ(store->Stats().last_sequence, 3u);
  const std::vector<StoredEvent> events = ReadAll(*store);
  EXPECT_THAT(Sequences(events), ElementsAre(1, 2, 3));
  ExpectGenerated(events);

  // A directory of the same name is another one: still unavailable, and
  // nothing is written into it.
  std::filesystem::create_directories(dir_);
  const int ticks_before = lines.Count("storage is gone");
  absl::SleepFor(absl::Milliseconds(100));  // ten maintenance intervals
  EXPECT_EQ(store->Health().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->Append(Batch(4, 1)).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
  EXPECT_EQ(ticks_before, 1);
  EXPECT_EQ(lines.Count("storage is gone"), 1);
  store.reset();
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(DiskEventStoreTest, ReplacedDataDirectoryMakesItUnavailable) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Batch(1, 3)).ok());
  std::filesystem::rename(dir_, root_ / "moved");
  std::filesystem::create_directories(dir_);
  ASSERT_TRUE(Eventually([&] { return !store->Health().ok(); }));
  EXPECT_THAT(store->Health().message(), HasSubstr("replaced"));
  EXPECT_EQ(store->Append(Batch(4, 1)).code(),
            absl::StatusCode::kUnavailable);
}

// Between maintenance ticks the next Append() notices: the batch it wrote
// into the removed directory is refused, not acknowledged.
TEST_F(DiskEventStoreTest, AppendAfterTheDataDirectoryIsRemovedIsRefused) {
  DiskStoreOptions options = Options();
  options.maintenance_interval = absl::Hours(1);  // only Append() checks
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Batch(1, 3)).ok());
  std::filesystem::remove_all(dir_);
  const absl::Status refused = store->Append(Batch(4, 2));
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("was removed"));
  EXPECT_EQ(store->Health().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->Stats().last_sequence, 3u);
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAre(1, 2, 3));
}

// The active segment alone deleted: its later batches would be in no file.
TEST_F(DiskEventStoreTest, DeletedActiveSegmentMakesItUnavailable) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Batch(1, 3)).ok());
  ASSERT_FALSE(SegmentFiles().empty());
  std::filesystem::remove(SegmentFiles()[0]);
  ASSERT_TRUE(Eventually([&] { return !store->Health().ok(); }));
  EXPECT_THAT(store->Health().message(), HasSubstr("was deleted"));
  EXPECT_EQ(store->Append(Batch(4, 1)).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAre(1, 2, 3));
}

}  // namespace
}  // namespace convocore::store
