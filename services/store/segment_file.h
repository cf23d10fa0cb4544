// Making and cutting segment files: a new segment is made whole (header,
// zeros ahead of the appends, data and directory entry durable) before any
// batch goes into it, and a segment is cut back durably.
#ifndef SERVICES_STORE_SEGMENT_FILE_H_
#define SERVICES_STORE_SEGMENT_FILE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/store/log_directory.h"
#include "services/store/scoped_fd.h"

namespace convocore::store {

// A segment file made by MakeSegmentFile(), with its header and not yet
// appended to.
struct MadeSegment {
  std::uint32_t ordinal = 0;
  ScopedFd fd;  // open for reading and writing
  std::uint32_t salt = 0;
};

struct ZeroFill {
  // The file's size once filled; nothing is filled when it is no larger than
  // a segment header.
  std::size_t size = 0;
  // The zeros go to the disk 64 KiB at a time with a pause between, because
  // a concurrent fdatasync waits behind whatever is in the disk's queue; 8
  // MiB take about 0.2 s this way. Unpaced, they are written 1 MiB at a time.
  bool paced = false;
  // Paced only: when it becomes true the making stops (kCancelled).
  const std::atomic<bool>* cancel = nullptr;
};

// Creates segment `ordinal` in `dir` (kUnavailable, among others, when it
// exists already) with a fresh salt and its header, zero-filled per `fill`,
// its data and its directory entry durable. On failure the file is removed.
absl::StatusOr<MadeSegment> MakeSegmentFile(const LogDirectory& dir,
                                            std::uint32_t ordinal,
                                            const ZeroFill& fill);

// Cuts segment `ordinal` back to `size` bytes, durably.
absl::Status CutSegmentFile(const LogDirectory& dir, std::uint32_t ordinal,
                            std::uint64_t size);

}  // namespace convocore::store

#endif  // SERVICES_STORE_SEGMENT_FILE_H_
