// With --durability=os_cache appends never fsync; maintenance does, in the
// background. When that fsync fails (the disk lost written pages) the store
// must refuse appends until a probe write and fsync succeed, even when the
// failure lands while an append is writing. This binary interposes libc's
// fdatasync() and pwrite() to make that happen on cue.
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/store/disk_event_store.h"
#include "tests/services/store/test_events.h"
#include "tests/support/eventually.h"

namespace {

// While set, fdatasync() fails with EIO on every thread but the test's
// (maintenance's background fsync, its probes, segments it makes ahead).
std::atomic<bool> g_fail_background_sync{false};
// While set, the first failing fdatasync() of the first segment (the active
// one: maintenance's background fsync, which holds no lock meanwhile) first
// waits, up to 10 s, until the test thread's write is held
// (g_test_write_held), so that it fails while an append is writing.
std::atomic<bool> g_sync_waits_for_write{false};
std::atomic<bool> g_sync_entered{false};
// While set, the test thread's next pwrite() waits, up to 10 s, until
// g_store reports itself unhealthy.
std::atomic<bool> g_hold_test_write{false};
std::atomic<bool> g_test_write_held{false};
pthread_t g_test_thread;
std::atomic<convocore::store::DiskEventStore*> g_store{nullptr};

bool OnTestThread() { return pthread_equal(pthread_self(), g_test_thread); }

bool IsFirstSegment(int fd) {
  char path[PATH_MAX];
  const ssize_t size =
      readlink(absl::StrCat("/proc/self/fd/", fd).c_str(), path, sizeof(path));
  return size > 0 && absl::EndsWith(absl::string_view(path, size),
                                    "/events-0000000001.log");
}

// Bounded waits for the interposed calls and the test: 10 s at most.
template <typename Condition>
bool WaitUntil(Condition done) {
  return convocore::testing::Eventually(done, absl::Seconds(10),
                                        absl::Milliseconds(1));
}

}  // namespace

extern "C" int fdatasync(int fd) {
  using Real = int (*)(int);
  static const Real real =
      reinterpret_cast<Real>(dlsym(RTLD_NEXT, "fdatasync"));
  if (g_fail_background_sync.load() && !OnTestThread()) {
    if (g_sync_waits_for_write.load() && IsFirstSegment(fd) &&
        g_sync_waits_for_write.exchange(false)) {
      g_sync_entered = true;
      WaitUntil([] { return g_test_write_held.load(); });
    }
    errno = EIO;
    return -1;
  }
  return real(fd);
}

extern "C" ssize_t pwrite(int fd, const void* bytes, size_t size,
                          off_t offset) {
  using Real = ssize_t (*)(int, const void*, size_t, off_t);
  static const Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "pwrite"));
  if (OnTestThread() && g_hold_test_write.exchange(false)) {
    g_test_write_held = true;
    WaitUntil([] { return !g_store.load()->Health().ok(); });
  }
  return real(fd, bytes, size, offset);
}

namespace convocore::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::MakeEvent;

class SyncFailureTest : public ::testing::Test {
 protected:
  static constexpr std::size_t kSegmentBytes = 64 << 10;

  void SetUp() override {
    // Every test starts from no fault, also when repeated in one process.
    g_fail_background_sync = false;
    g_sync_waits_for_write = false;
    g_sync_entered = false;
    g_hold_test_write = false;
    g_test_write_held = false;
    g_test_thread = pthread_self();
    std::string path =
        (std::filesystem::temp_directory_path() / "sync-failure-XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(path.data()), nullptr);
    dir_ = path;
    DiskStoreOptions options;
    options.data_dir = dir_.string();
    options.durability = Durability::kOsCache;
    options.retention = {.max_events = 0, .max_bytes = 0};
    options.maintenance_interval = absl::Milliseconds(10);
    options.segment_bytes = kSegmentBytes;
    absl::StatusOr<std::unique_ptr<DiskEventStore>> store =
        DiskEventStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    g_store = store_.get();
  }

  void TearDown() override {
    g_fail_background_sync = false;
    g_hold_test_write = false;
    g_store = nullptr;
    store_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  absl::Status Append(std::uint64_t sequence) {
    return store_->Append(std::vector<hub::StoredEvent>{MakeEvent(sequence)});
  }

  std::vector<std::uint64_t> Sequences() {
    absl::StatusOr<std::vector<hub::StoredEvent>> events =
        store_->ReadAfter(0, 100);
    EXPECT_TRUE(events.ok()) << events.status();
    std::vector<std::uint64_t> sequences;
    if (!events.ok()) return sequences;
    for (const hub::StoredEvent& event : *events) {
      sequences.push_back(event.sequence);
    }
    return sequences;
  }

  bool Healthy() { return store_->Health().ok(); }

  std::filesystem::path dir_;
  std::unique_ptr<DiskEventStore> store_;
};

TEST_F(SyncFailureTest, RefusesAppendsUntilAProbeSucceeds) {
  ASSERT_TRUE(Append(1).ok());
  g_fail_background_sync = true;
  ASSERT_TRUE(WaitUntil([] { return !g_store.load()->Health().ok(); }));
  EXPECT_THAT(store_->Health().message(), HasSubstr("cannot fsync"));
  const absl::Status refused = Append(2);
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;

  g_fail_background_sync = false;
  ASSERT_TRUE(WaitUntil([] { return g_store.load()->Health().ok(); }));
  ASSERT_TRUE(Append(2).ok());
  EXPECT_THAT(Sequences(), ElementsAre(1, 2));
}

// The failure lands while an append writes: that append's success must not
// clear it, or every later append would be answered without being written.
TEST_F(SyncFailureTest, AnAppendDuringTheFailureDoesNotClearIt) {
  ASSERT_TRUE(Append(1).ok());
  g_sync_waits_for_write = true;
  g_fail_background_sync = true;
  ASSERT_TRUE(WaitUntil([] { return g_sync_entered.load(); }));
  g_hold_test_write = true;
  const absl::Status during = Append(2);
  ASSERT_TRUE(g_test_write_held.load());
  // Its own write went through; the failure still stands.
  EXPECT_TRUE(during.ok()) << during;
  EXPECT_FALSE(Healthy());
  EXPECT_EQ(Append(3).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_->Stats().last_sequence, 2u);

  g_fail_background_sync = false;
  ASSERT_TRUE(WaitUntil([] { return g_store.load()->Health().ok(); }));
  ASSERT_TRUE(Append(3).ok());
  EXPECT_THAT(Sequences(), ElementsAre(1, 2, 3));
}

}  // namespace
}  // namespace convocore::store
