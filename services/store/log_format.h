// The on-disk format of the durable event log, with no I/O: how a segment
// file and its records are laid out, checksummed and parsed, and how a
// segment read back after a crash is split into what was committed and the
// torn tail that was not.
//
// A segment file is a 24-byte header (magic, version, salt, checksum) followed
// by records, each a 40-byte header, the event's de-duplication id and the
// serialized event. Every integer is little-endian. A record's checksum is
// seeded with its segment's random salt, so that no bytes but its own
// segment's records pass as records there: not an event's payload that
// embeds a record's image, nor stale blocks of another segment. The records of
// one Append() are written together; the first carries kStartsBatch and the
// last kEndsBatch: a batch whose last record is missing or damaged was never
// acknowledged, so recovery drops it whole. Records written with
// --durability=fsync also carry kWrittenAfterSync: everything before their
// batch in the segment was durable when it was written, so damage before the
// start of such a batch is corruption of acknowledged events, not a crash's
// torn batch.
//
// A segment of any other format version is refused, never converted.
//
//   segment header: 8 bytes "CVCEVLOG", u32 version (2), u32 salt,
//                   u64 XXH3-64 of the 16 bytes before it
//   record header: u64 checksum   XXH3-64 of the rest of the record,
//                                 seeded with the salt
//                  u32 id_size
//                  u32 event_size
//                  u64 sequence
//                  i64 receive_time_ns
//                  u32 flags      kEndsBatch | kWrittenAfterSync |
//                                 kStartsBatch
//                  u32 reserved   zero
#ifndef SERVICES_STORE_LOG_FORMAT_H_
#define SERVICES_STORE_LOG_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/hub/event_store.h"

namespace convocore::store::log_format {

// The only segment format version this binary reads and writes.
inline constexpr std::uint32_t kSegmentVersion = 2;
inline constexpr std::size_t kSegmentHeaderSize = 24;
inline constexpr std::size_t kRecordHeaderSize = 40;
// Bounds a damaged header's sizes before anything is allocated for them.
inline constexpr std::uint32_t kMaxIdSize = 64 << 10;
inline constexpr std::uint32_t kMaxEventSize = 256 << 20;
inline constexpr std::uint32_t kEndsBatch = 1;
inline constexpr std::uint32_t kWrittenAfterSync = 2;
inline constexpr std::uint32_t kStartsBatch = 4;

// The header every segment file starts with; `salt` seeds its records'
// checksums (0 only in tests).
std::string SegmentHeader(std::uint32_t salt);
// A random salt for a new segment, never 0.
std::uint32_t NewSalt();
// Checks the header at the start of `file` and returns its salt; records
// start right after it (kSegmentHeaderSize). kDataLoss when it is not a
// segment header or is damaged; kFailedPrecondition when it names a format
// version other than kSegmentVersion.
absl::StatusOr<std::uint32_t> CheckSegmentHeader(absl::string_view file);

struct RecordHeader {
  std::uint64_t checksum = 0;
  std::uint32_t id_size = 0;
  std::uint32_t event_size = 0;
  std::uint64_t sequence = 0;
  std::int64_t receive_time_ns = 0;
  std::uint32_t flags = 0;

  std::size_t RecordSize() const {
    return kRecordHeaderSize + id_size + event_size;
  }
};

// kInvalidArgument when `event` cannot be stored (no bytes, or an id or
// event larger than the format allows).
absl::Status CheckStorable(const hub::StoredEvent& event);

// Appends `event`'s record, with `flags` (kStartsBatch, kEndsBatch,
// kWrittenAfterSync), to `out`, checksummed for the segment of `salt`. The
// event must pass CheckStorable().
void AppendRecord(const hub::StoredEvent& event, std::uint32_t flags,
                  std::uint32_t salt, std::string* out);

// Parses the first kRecordHeaderSize bytes of `bytes`; kDataLoss when they
// are too few or describe an impossible record.
absl::StatusOr<RecordHeader> ParseRecordHeader(absl::string_view bytes);

// A whole record (header included) parsed and checksummed.
struct Record {
  RecordHeader header;
  absl::string_view id;
  absl::string_view event;
};
// kDataLoss when `bytes` does not start with a whole, intact record of the
// segment of `salt`.
absl::StatusOr<Record> ParseRecord(absl::string_view bytes, std::uint32_t salt);

// What a segment file holds, read back whole.
struct RecordLocation {
  RecordHeader header;
  std::uint64_t offset = 0;
};
struct SegmentScan {
  // The records of every complete batch, in file order.
  std::vector<RecordLocation> records;
  // Where the last complete batch ends: the file's committed length.
  std::uint64_t committed_size = 0;
  // Why the bytes after committed_size are not part of the log; empty when
  // there are none, or when they are all zeros.
  std::string torn_tail;
  // How many bytes of the torn tail are not trailing zeros.
  std::uint64_t torn_size = 0;
  // The segment's salt (from its header).
  std::uint32_t salt = 0;
  // The bytes after committed_size are zeros: space written ahead of the
  // appends (a preallocated segment), or a batch none of whose pages
  // reached the disk. Neither is damage.
  bool zero_tail = false;
};
// Splits `file` (a segment's whole content) into complete batches and a
// torn tail or a zero tail. kDataLoss when the segment header is wrong,
// records are out of sequence order, or a damaged record is followed by a
// batch written after a sync (the damaged bytes had been durable). Other damage
// ends the scan as a torn tail, whose caller decides whether that can be a
// crash's leftover (only in the newest segment with records).
absl::StatusOr<SegmentScan> ScanSegment(absl::string_view file);

// The log's trimming state, kept beside the segments because trimming may
// delete every segment that held events.
struct Meta {
  // Every event with sequence <= this was trimmed; the log's high-water
  // mark when nothing is retained.
  std::uint64_t trimmed_through = 0;
  std::uint64_t trimmed_events_total = 0;
};
std::string EncodeMeta(const Meta& meta);
// kDataLoss when `bytes` is not an intact EncodeMeta() result.
absl::StatusOr<Meta> DecodeMeta(absl::string_view bytes);

}  // namespace convocore::store::log_format

#endif  // SERVICES_STORE_LOG_FORMAT_H_
