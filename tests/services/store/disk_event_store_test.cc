#include "services/store/disk_event_store.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/services/store/fault_injection.h"
#include "tests/services/store/test_events.h"

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
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

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

// Polls `done` until it holds or a generous deadline passes; for background
// work whose completion the store does not signal.
bool Eventually(const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
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
  options.trim_chunk = 4;
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

// Under steady appends a background (passive) checkpoint never finds the
// log wholly copied, so SQLite would never start it over; the store must
// bound it anyway. Before the fix the log grew by every commit (9.7 GB in a
// 5-minute soak) and the database file was never written at all.
TEST_F(DiskEventStoreTest, WriteAheadLogStaysBoundedUnderSteadyAppends) {
  DiskStoreOptions options = Options();
  options.durability = Durability::kOsCache;  // many commits, quickly
  options.retention.max_events = 500;
  options.checkpoint_pages = 20;
  options.wal_reset_pages = 100;  // 400 KiB
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  const std::filesystem::path wal = dir_ / "events.db-wal";
  const std::filesystem::path db = dir_ / "events.db";

  // ~4,000 commits of at least two pages each: 30+ MiB written to the log.
  // The pause paces the writer like steady traffic; it synchronises nothing.
  constexpr std::uint64_t kCommits = 4000;
  std::uintmax_t largest_wal = 0;
  for (std::uint64_t sequence = 1; sequence <= kCommits; ++sequence) {
    ASSERT_TRUE(store->Append(Batch(sequence, 1)).ok());
    std::this_thread::sleep_for(std::chrono::microseconds(100));
    if (sequence % 100 == 0) {
      std::error_code ignored;
      largest_wal =
          std::max(largest_wal, std::filesystem::file_size(wal, ignored));
    }
  }
  // The log was copied into the database and started over: it stays within
  // a few resets' worth of pages, far below what was written through it.
  EXPECT_GT(std::filesystem::file_size(db), 16u * 4096);
  EXPECT_LT(largest_wal, 8u << 20) << "the write-ahead log kept growing";
  EXPECT_EQ(store->Stats().last_sequence, kCommits);
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
  options.trim_chunk = 50;
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

TEST_F(DiskEventStoreTest, RefusesACorruptLog) {
  std::filesystem::create_directories(dir_);
  std::ofstream(dir_ / "events.db") << std::string(8192, 'x');
  absl::StatusOr<std::unique_ptr<DiskEventStore>> store =
      DiskEventStore::Open(Options());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
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
  EXPECT_EQ(AbslUnparseFlag(durability), "os_cache");
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
  const std::string mode_arg = AbslUnparseFlag(durability);
  char* argv[] = {const_cast<char*>(DISK_STORE_CRASH_CHILD),
                  const_cast<char*>(dir_arg.c_str()),
                  const_cast<char*>(mode_arg.c_str()), nullptr};
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
  std::filesystem::create_directories(dir_);
  ScopedMount mount;
  if (const int error = mount.MountTmpfs(dir_, "size=2m"); error != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs to fill (needs root with "
                    "CAP_SYS_ADMIN): "
                 << std::strerror(error);
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
  const std::filesystem::path wal = dir_ / "events.db-wal";
  if (const int error = SetImmutable(wal, true); error != 0) {
    GTEST_SKIP() << "cannot set the immutable attribute on " << wal
                 << " (needs root and a file system like ext4): "
                 << std::strerror(error);
  }
  absl::Cleanup writable = [&] { SetImmutable(wal, false); };

  EXPECT_EQ(store->Append(Batch(4, 3)).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->Health().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->Stats().last_sequence, 3u);

  ASSERT_EQ(SetImmutable(wal, false), 0);
  ASSERT_TRUE(Eventually([&] { return store->Health().ok(); }))
      << store->Health();
  ASSERT_TRUE(store->Append(Batch(4, 3)).ok());
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAreArray(Range(1, 6)));
  store.reset();
  store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(Sequences(ReadAll(*store)), ElementsAreArray(Range(1, 6)));
}

}  // namespace
}  // namespace convocore::store
