#include "services/store/segment_file.h"

#include <fcntl.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/log/logger.h"
#include "services/store/log_format.h"
#include "services/store/posix_file.h"

namespace convocore::store {
namespace {

constexpr std::size_t kPacedChunk = 64 << 10;
constexpr std::size_t kUnpacedChunk = 1 << 20;
constexpr absl::Duration kPause = absl::Milliseconds(1);

absl::Status FillWithZeros(int fd, const std::string& path,
                           const ZeroFill& fill) {
  if (fill.size <= log_format::kSegmentHeaderSize) return absl::OkStatus();
  const std::string zeros(
      std::min(fill.size, fill.paced ? kPacedChunk : kUnpacedChunk), '\0');
  for (std::size_t at = log_format::kSegmentHeaderSize; at < fill.size;
       at += zeros.size()) {
    if (fill.paced && at > log_format::kSegmentHeaderSize) {
      if (fill.cancel != nullptr &&
          fill.cancel->load(std::memory_order_relaxed)) {
        return absl::CancelledError("the store is closing");
      }
      absl::SleepFor(kPause);
    }
    const absl::string_view chunk =
        absl::string_view(zeros).substr(0, fill.size - at);
    if (absl::Status written = posix::WriteAll(fd, chunk, at, path);
        !written.ok()) {
      return written;
    }
    // Written back as it goes, one chunk at a time: flushed at once, 8 MiB
    // would hold a concurrent fdatasync for tens of milliseconds. A failure
    // is a write error that the fdatasync after the fill would report too.
    if (absl::Status written_back =
            posix::WriteBackRange(fd, at, chunk.size(), path);
        !written_back.ok()) {
      return written_back;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MadeSegment> MakeSegmentFile(const LogDirectory& dir,
                                            std::uint32_t ordinal,
                                            const ZeroFill& fill) {
  const std::string path = dir.SegmentPath(ordinal);
  absl::StatusOr<ScopedFd> fd =
      posix::Open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
  if (!fd.ok()) return fd.status();
  const std::uint32_t salt = log_format::NewSalt();
  absl::Status status =
      posix::WriteAll(fd->get(), log_format::SegmentHeader(salt), 0, path);
  if (status.ok()) status = FillWithZeros(fd->get(), path, fill);
  if (status.ok()) status = posix::SyncData(fd->get(), path);
  if (status.ok()) status = dir.Sync();
  if (status.ok()) {
    return MadeSegment{.ordinal = ordinal, .fd = *std::move(fd), .salt = salt};
  }
  // Not yet part of the log: no batch went into it. Left behind (the
  // removal failing too), the next start finds it empty or half made and
  // removes or completes it.
  if (absl::Status removed = posix::Unlink(path);
      !removed.ok() && !absl::IsNotFound(removed)) {
    log::Warning("cannot remove a segment file whose making failed",
                 {{"path", path}, {"error", removed}});
  }
  return status;
}

absl::Status CutSegmentFile(const LogDirectory& dir, std::uint32_t ordinal,
                            std::uint64_t size) {
  const std::string path = dir.SegmentPath(ordinal);
  absl::StatusOr<ScopedFd> fd = posix::Open(path, O_RDWR);
  if (!fd.ok()) return fd.status();
  absl::Status status = posix::Truncate(fd->get(), size, path);
  if (status.ok()) status = posix::SyncData(fd->get(), path);
  if (absl::Status closed = fd->Close(path); status.ok()) status = closed;
  return status;
}

}  // namespace convocore::store
