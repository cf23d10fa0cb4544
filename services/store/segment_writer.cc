#include "services/store/segment_writer.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "services/store/log_format.h"
#include "services/store/posix_file.h"

namespace convocore::store {
namespace {

// The write buffer is given back after a batch larger than this.
constexpr std::size_t kKeptBufferBytes = 4 << 20;

}  // namespace

SegmentWriter::SegmentWriter(std::uint32_t ordinal, std::string path,
                             ScopedFd fd, std::uint64_t end,
                             std::uint32_t salt)
    : ordinal_(ordinal),
      path_(std::move(path)),
      fd_(std::move(fd)),
      end_(end),
      salt_(salt) {}

absl::StatusOr<SegmentWriter> SegmentWriter::Resume(
    const LogDirectory& dir, std::uint32_t ordinal, std::uint64_t end,
    std::uint32_t salt, bool zero_tail, bool half_made) {
  const std::string path = dir.SegmentPath(ordinal);
  absl::StatusOr<ScopedFd> fd = posix::Open(path, O_RDWR);
  if (!fd.ok()) return fd.status();
  // The caller's `end` moves only once the header is durable: a failure
  // here (a full disk at start) is retried whole, never skipped.
  absl::Status status;
  if (half_made) {
    end = log_format::kSegmentHeaderSize;
    salt = log_format::NewSalt();
    status =
        posix::WriteAll(fd->get(), log_format::SegmentHeader(salt), 0, path);
  }
  if (status.ok() && !zero_tail) status = posix::Truncate(fd->get(), end, path);
  if (status.ok()) status = posix::SyncData(fd->get(), path);
  // Neither may its directory entry be, if a crash cut its making short.
  if (status.ok() && half_made) status = dir.Sync();
  if (!status.ok()) return status;
  return SegmentWriter(ordinal, path, *std::move(fd), end, salt);
}

absl::StatusOr<std::uint64_t> SegmentWriter::Write(
    absl::Span<const hub::StoredEvent> batch, std::uint32_t flags,
    bool sync) {
  if (absl::Status repaired = Repair(); !repaired.ok()) return repaired;
  buffer_.clear();
  for (std::size_t i = 0; i < batch.size(); ++i) {
    log_format::AppendRecord(
        batch[i],
        flags | (i == 0 ? log_format::kStartsBatch : 0) |
            (i + 1 == batch.size() ? log_format::kEndsBatch : 0),
        salt_, &buffer_);
  }
  absl::Status status = posix::WriteAll(fd_.get(), buffer_, end_, path_);
  if (status.ok() && sync) status = posix::SyncData(fd_.get(), path_);
  const std::uint64_t start = end_;
  const std::uint64_t size = buffer_.size();
  if (buffer_.capacity() > kKeptBufferBytes) std::string().swap(buffer_);
  if (!status.ok()) {
    // After a failed fsync the kernel may have dropped the pages: only a
    // truncation that is itself synced proves the batch gone. A failed cut
    // is retried before the next write; the batch's error is the answer.
    needs_repair_ = true;
    if (absl::Status repaired = Repair(); !repaired.ok()) {
      return absl::Status(
          status.code(),
          absl::StrCat(status.message(), "; and then ", repaired.message()));
    }
    return status;
  }
  end_ += size;
  return start;
}

absl::Status SegmentWriter::Repair() {
  if (!needs_repair_) return absl::OkStatus();
  if (absl::Status cut = posix::Truncate(fd_.get(), end_, path_); !cut.ok()) {
    return cut;
  }
  if (absl::Status synced = posix::SyncData(fd_.get(), path_); !synced.ok()) {
    return synced;
  }
  needs_repair_ = false;
  return absl::OkStatus();
}

absl::Status SegmentWriter::Probe(std::size_t size) {
  if (absl::Status repaired = Repair(); !repaired.ok()) return repaired;
  needs_repair_ = true;  // from here on the probe may leave bytes
  absl::Status status =
      posix::WriteAll(fd_.get(), std::string(size, '\0'), end_, path_);
  if (status.ok()) status = posix::SyncData(fd_.get(), path_);
  const absl::Status repaired = Repair();
  return status.ok() ? repaired : status;
}

absl::Status SegmentWriter::Sync() {
  return posix::SyncData(fd_.get(), path_);
}

absl::Status SegmentWriter::CheckStillLinked() const {
  absl::StatusOr<struct stat> info = posix::StatFd(fd_.get(), path_);
  if (!info.ok()) return info.status();
  if (info->st_nlink == 0) {
    return absl::NotFoundError(
        absl::StrCat("the active segment ", path_,
                     " was deleted while the log had it open"));
  }
  return absl::OkStatus();
}

absl::Status SegmentWriter::Close() { return fd_.Close(path_); }

}  // namespace convocore::store
