// Reading records back from segment files by their index entries, each
// checked against its checksum, contiguous records with one pread.
#ifndef SERVICES_STORE_SEGMENT_READER_H_
#define SERVICES_STORE_SEGMENT_READER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "services/store/log_format.h"
#include "services/store/scoped_fd.h"
#include "services/store/segment_index.h"

namespace convocore::store {

// One segment file, open for reading for as long as anyone may read it
// (shared): a segment that retention deletes stays readable by the reads
// already under way.
struct ReadableSegment {
  ReadableSegment(std::uint32_t ordinal, std::string path, ScopedFd fd,
                  std::uint32_t salt)
      : ordinal(ordinal),
        path(std::move(path)),
        fd(std::move(fd)),
        salt(salt) {}

  const std::uint32_t ordinal;
  const std::string path;
  const ScopedFd fd;
  const std::uint32_t salt;  // of its records' checksums
};

using SegmentMap =
    std::map<std::uint32_t, std::shared_ptr<const ReadableSegment>>;

// Reads the records of `entries` (in order) from `segments`, which holds
// every ordinal they name, and hands each to `visit`. kDataLoss when a
// record is not the intact record of the entry's sequence; the I/O error
// otherwise. The records visited before an error are valid.
absl::Status ReadRecords(
    absl::Span<const IndexEntry> entries, const SegmentMap& segments,
    absl::FunctionRef<void(const log_format::Record&)> visit);

}  // namespace convocore::store

#endif  // SERVICES_STORE_SEGMENT_READER_H_
