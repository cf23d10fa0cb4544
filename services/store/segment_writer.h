// Appending to the active segment: batches written after its committed
// records, each all or nothing, and a probe that proves the disk takes
// writes again. Not thread-safe: the store's writer lock guards it.
#ifndef SERVICES_STORE_SEGMENT_WRITER_H_
#define SERVICES_STORE_SEGMENT_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/hub/event_store.h"
#include "services/store/log_directory.h"
#include "services/store/scoped_fd.h"

namespace convocore::store {

class SegmentWriter {
 public:
  // Appends to segment `ordinal`, open read-write as `fd`, whose committed
  // records end at `end` and whose records are checksummed with `salt`.
  SegmentWriter(std::uint32_t ordinal, std::string path, ScopedFd fd,
                std::uint64_t end, std::uint32_t salt);

  // Opens existing segment `ordinal` of `dir` to append after `end`. When
  // `half_made` (no header yet), writes one with a new salt, else keeps
  // `salt`. Cuts whatever follows `end` off unless `zero_tail` (zeros
  // written ahead, kept). Durable, the directory entry of a half-made
  // segment too, before it returns. kUnavailable when the directory cannot
  // be written.
  static absl::StatusOr<SegmentWriter> Resume(const LogDirectory& dir,
                                              std::uint32_t ordinal,
                                              std::uint64_t end,
                                              std::uint32_t salt,
                                              bool zero_tail, bool half_made);

  SegmentWriter(SegmentWriter&&) = default;
  SegmentWriter& operator=(SegmentWriter&&) = default;

  std::uint32_t ordinal() const { return ordinal_; }
  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  std::uint32_t salt() const { return salt_; }
  // Where the committed records end: the next batch goes there.
  std::uint64_t end() const { return end_; }

  // Writes `batch` (each event CheckStorable()) as one batch after the
  // committed records, each record carrying `flags` (kWrittenAfterSync or
  // 0) besides its batch marks; fdatasynced first when `sync`. Returns the
  // offset of its first record. On failure the file is cut back, durably,
  // so that the batch is absent; when even that fails, the next Write() or
  // Repair() tries again first.
  absl::StatusOr<std::uint64_t> Write(
      absl::Span<const hub::StoredEvent> batch, std::uint32_t flags,
      bool sync);
  // Cuts off what a failed write left after end(), durably; OK when there
  // is nothing to cut.
  absl::Status Repair();
  // Writes `size` zeros after end(), fdatasyncs them, then cuts them off
  // again: proves that the disk takes (as much as) a batch.
  absl::Status Probe(std::size_t size);
  // fdatasync of the segment.
  absl::Status Sync();
  // OK while the file is still linked in a directory (st_nlink > 0);
  // kNotFound once it was deleted while open; kUnavailable when fstat fails.
  absl::Status CheckStillLinked() const;
  // Closes the segment; the error close() reports.
  absl::Status Close();

 private:
  std::uint32_t ordinal_;
  std::string path_;
  ScopedFd fd_;
  std::uint64_t end_;
  std::uint32_t salt_;
  // A failed write may have left bytes past end_.
  bool needs_repair_ = false;
  std::string buffer_;
};

}  // namespace convocore::store

#endif  // SERVICES_STORE_SEGMENT_WRITER_H_
