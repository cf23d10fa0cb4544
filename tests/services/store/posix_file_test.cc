#include "services/store/posix_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/store/log_directory.h"
#include "services/store/log_format.h"
#include "services/store/scoped_fd.h"
#include "services/store/segment_file.h"
#include "tests/support/temp_dir.h"

namespace convocore::store {
namespace {

using ::testing::HasSubstr;

class PosixFileTest : public ::testing::Test {
 protected:

  std::string PathOf(const std::string& name) const {
    return (root_ / name).string();
  }

  convocore::testing::TempDir temp_{"posix_file_test"};
  const std::filesystem::path root_ = temp_.path();
};

TEST_F(PosixFileTest, FailuresNameThePathAndTheError) {
  const std::string missing = PathOf("missing");
  absl::StatusOr<ScopedFd> fd = posix::Open(missing, O_RDONLY);
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(fd.status().message(), HasSubstr(missing));
  EXPECT_THAT(fd.status().message(), HasSubstr(std::strerror(ENOENT)));
  EXPECT_EQ(posix::Unlink(missing).code(), absl::StatusCode::kNotFound);
  const absl::Status unavailable =
      posix::ErrnoError(ENOSPC, "write", "/some/file");
  EXPECT_EQ(unavailable.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(unavailable.message(),
            absl::StrCat("cannot write /some/file: ", std::strerror(ENOSPC)));
}

TEST_F(PosixFileTest, WritesAndReadsWholeRanges) {
  const std::string path = PathOf("file");
  absl::StatusOr<ScopedFd> fd = posix::Open(path, O_RDWR | O_CREAT, 0644);
  ASSERT_TRUE(fd.ok()) << fd.status();
  ASSERT_TRUE(posix::WriteAll(fd->get(), "hello world", 0, path).ok());
  ASSERT_TRUE(posix::SyncData(fd->get(), path).ok());
  std::string back(5, '\0');
  ASSERT_TRUE(posix::ReadAll(fd->get(), back.data(), 5, 6, path).ok());
  EXPECT_EQ(back, "world");
  absl::StatusOr<std::string> whole = posix::ReadWhole(fd->get(), path);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(*whole, "hello world");
  ASSERT_TRUE(posix::WriteBackRange(fd->get(), 0, 11, path).ok());
  ASSERT_TRUE(posix::Truncate(fd->get(), 5, path).ok());
  // The file now ends before what is asked: the index promised more.
  const absl::Status short_read =
      posix::ReadAll(fd->get(), back.data(), 5, 3, path);
  EXPECT_EQ(short_read.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(short_read.message(), HasSubstr(path));
  EXPECT_TRUE(fd->Close(path).ok());
  EXPECT_FALSE(fd->valid());
  EXPECT_TRUE(fd->Close(path).ok());  // closing nothing is no error
}

TEST_F(PosixFileTest, AScopedFdClosesOnce) {
  const int raw = open(PathOf("f").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(raw, 0);
  {
    ScopedFd fd(raw);
    ScopedFd moved = std::move(fd);
    EXPECT_FALSE(fd.valid());  // NOLINT(bugprone-use-after-move): the point
    EXPECT_EQ(moved.get(), raw);
  }
  EXPECT_EQ(fcntl(raw, F_GETFD), -1);  // closed by `moved` alone
  EXPECT_EQ(errno, EBADF);
}

// A segment is made whole before any batch goes into it: header, zeros to
// the size asked, durable.
TEST_F(PosixFileTest, MakesASegmentWithItsHeaderAndZeros) {
  absl::StatusOr<LogDirectory> dir = LogDirectory::Open(root_.string());
  ASSERT_TRUE(dir.ok()) << dir.status();
  absl::StatusOr<MadeSegment> made =
      MakeSegmentFile(*dir, 3, {.size = 200 << 10, .paced = true});
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->ordinal, 3u);
  EXPECT_NE(made->salt, 0u);
  absl::StatusOr<std::string> content =
      posix::ReadWhole(made->fd.get(), dir->SegmentPath(3));
  ASSERT_TRUE(content.ok()) << content.status();
  EXPECT_EQ(content->size(), 200u << 10);
  EXPECT_EQ(*log_format::CheckSegmentHeader(*content), made->salt);
  EXPECT_EQ(content->find_first_not_of('\0', log_format::kSegmentHeaderSize),
            std::string::npos);

  // Never over an existing file.
  EXPECT_FALSE(MakeSegmentFile(*dir, 3, {}).ok());
  EXPECT_TRUE(std::filesystem::exists(dir->SegmentPath(3)));

  ASSERT_TRUE(CutSegmentFile(*dir, 3, log_format::kSegmentHeaderSize).ok());
  EXPECT_EQ(std::filesystem::file_size(dir->SegmentPath(3)),
            log_format::kSegmentHeaderSize);
}

// A paced fill stops when the store closes, and leaves no file behind.
TEST_F(PosixFileTest, ACancelledSegmentIsRemoved) {
  absl::StatusOr<LogDirectory> dir = LogDirectory::Open(root_.string());
  ASSERT_TRUE(dir.ok()) << dir.status();
  const std::atomic<bool> cancel{true};
  absl::StatusOr<MadeSegment> made = MakeSegmentFile(
      *dir, 1, {.size = 1 << 20, .paced = true, .cancel = &cancel});
  EXPECT_EQ(made.status().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(std::filesystem::exists(dir->SegmentPath(1)));
}

}  // namespace
}  // namespace convocore::store
