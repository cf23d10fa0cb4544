#include "services/store/segment_reader.h"

#include <cstddef>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "services/store/posix_file.h"

namespace convocore::store {
namespace {

// Contiguous records are gathered into preads of about this size.
constexpr std::size_t kReadChunk = 1 << 20;

}  // namespace

absl::Status ReadRecords(
    absl::Span<const IndexEntry> entries, const SegmentMap& segments,
    absl::FunctionRef<void(const log_format::Record&)> visit) {
  std::string buffer;
  for (std::size_t first = 0; first < entries.size();) {
    std::size_t end = first + 1;
    std::uint64_t span = entries[first].RecordSize();
    while (end < entries.size() && span < kReadChunk &&
           entries[end].ordinal == entries[first].ordinal &&
           entries[end].offset == entries[first].offset + span) {
      span += entries[end].RecordSize();
      ++end;
    }
    const auto segment_it = segments.find(entries[first].ordinal);
    if (segment_it == segments.end()) {
      return absl::InternalError(absl::StrCat(
          "no open segment ", entries[first].ordinal, " for record ",
          entries[first].sequence));
    }
    const ReadableSegment& segment = *segment_it->second;
    buffer.resize(span);
    if (absl::Status read =
            posix::ReadAll(segment.fd.get(), buffer.data(), span,
                           entries[first].offset, segment.path);
        !read.ok()) {
      return read;
    }
    absl::string_view rest = buffer;
    for (std::size_t i = first; i < end; ++i) {
      absl::StatusOr<log_format::Record> record =
          log_format::ParseRecord(rest, segment.salt);
      if (!record.ok() || record->header.sequence != entries[i].sequence) {
        return absl::DataLossError(absl::StrCat(
            segment.path, " at offset ", entries[i].offset, ": ",
            record.ok()
                ? absl::StrCat("record ", record->header.sequence, " where ",
                               entries[i].sequence, " was written")
                : record.status().message()));
      }
      visit(*record);
      rest.remove_prefix(entries[i].RecordSize());
    }
    first = end;
  }
  return absl::OkStatus();
}

}  // namespace convocore::store
