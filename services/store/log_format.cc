#include "services/store/log_format.h"

#include <xxhash.h>

#include <bit>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace convocore::store::log_format {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the log is written in the host's byte order, little-endian");

constexpr char kSegmentMagic[8] = {'C', 'V', 'C', 'E', 'V', 'L', 'O', 'G'};
constexpr char kMetaMagic[8] = {'C', 'V', 'C', 'E', 'V', 'M', 'E', 'T'};
constexpr std::size_t kMetaSize = 8 + 8 + 8 + 8;  // magic, fields, checksum

// Field offsets in a record header.
constexpr std::size_t kChecksumAt = 0;
constexpr std::size_t kIdSizeAt = 8;
constexpr std::size_t kEventSizeAt = 12;
constexpr std::size_t kSequenceAt = 16;
constexpr std::size_t kReceiveTimeAt = 24;
constexpr std::size_t kFlagsAt = 32;
constexpr std::size_t kReservedAt = 36;

template <typename T>
T Load(const char* at) {
  T value;
  std::memcpy(&value, at, sizeof(value));
  return value;
}

template <typename T>
void Store(char* at, T value) {
  std::memcpy(at, &value, sizeof(value));
}

// The checksum covers everything after itself, so that a header whose sizes
// were damaged cannot vouch for the bytes it points at.
std::uint64_t Checksum(const char* record, std::size_t size,
                       std::uint32_t salt) {
  return XXH3_64bits_withSeed(record + sizeof(std::uint64_t),
                              size - sizeof(std::uint64_t), salt);
}

}  // namespace

std::string SegmentHeader(std::uint32_t salt) {
  std::string header(kSegmentHeaderSize, '\0');
  std::memcpy(header.data(), kSegmentMagic, sizeof(kSegmentMagic));
  Store(header.data() + 8, kSegmentVersion);
  Store(header.data() + 12, salt);
  Store(header.data() + 16, XXH3_64bits(header.data(), 16));
  return header;
}

std::uint32_t NewSalt() {
  std::random_device random;
  std::uint32_t salt = 0;
  while (salt == 0) salt = random();
  return salt;
}

absl::StatusOr<std::uint32_t> CheckSegmentHeader(absl::string_view file) {
  constexpr std::size_t kVersionEnd = sizeof(kSegmentMagic) + 4;
  if (file.size() < kVersionEnd ||
      std::memcmp(file.data(), kSegmentMagic, sizeof(kSegmentMagic)) != 0) {
    return absl::DataLossError("not an event log segment (bad header)");
  }
  const auto version = Load<std::uint32_t>(file.data() + 8);
  if (version != kSegmentVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("the event log segment has format version ", version,
                     "; this binary reads only version ", kSegmentVersion));
  }
  // A damaged salt would fail every record's checksum, and the whole segment
  // would look like a torn tail: the header vouches for itself.
  if (file.size() < kSegmentHeaderSize ||
      Load<std::uint64_t>(file.data() + 16) != XXH3_64bits(file.data(), 16)) {
    return absl::DataLossError("the segment header is damaged");
  }
  return Load<std::uint32_t>(file.data() + 12);
}

absl::Status CheckStorable(const hub::StoredEvent& event) {
  if (event.event_bytes == nullptr) {
    return absl::InvalidArgumentError("an event without bytes");
  }
  if (event.id.size() > kMaxIdSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("an event id of ", event.id.size(),
                     " bytes; the log stores at most ", kMaxIdSize));
  }
  if (event.event_bytes->size() > kMaxEventSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("an event of ", event.event_bytes->size(),
                     " bytes; the log stores at most ", kMaxEventSize));
  }
  return absl::OkStatus();
}

void AppendRecord(const hub::StoredEvent& event, std::uint32_t flags,
                  std::uint32_t salt, std::string* out) {
  const std::size_t start = out->size();
  const std::size_t size =
      kRecordHeaderSize + event.id.size() + event.event_bytes->size();
  out->resize(start + size);
  char* record = out->data() + start;
  Store(record + kIdSizeAt, static_cast<std::uint32_t>(event.id.size()));
  Store(record + kEventSizeAt,
        static_cast<std::uint32_t>(event.event_bytes->size()));
  Store(record + kSequenceAt, event.sequence);
  Store(record + kReceiveTimeAt,
        static_cast<std::int64_t>(absl::ToUnixNanos(event.receive_time)));
  Store(record + kFlagsAt, flags);
  Store(record + kReservedAt, std::uint32_t{0});
  std::memcpy(record + kRecordHeaderSize, event.id.data(), event.id.size());
  std::memcpy(record + kRecordHeaderSize + event.id.size(),
              event.event_bytes->data(), event.event_bytes->size());
  Store(record + kChecksumAt, Checksum(record, size, salt));
}

absl::StatusOr<RecordHeader> ParseRecordHeader(absl::string_view bytes) {
  if (bytes.size() < kRecordHeaderSize) {
    return absl::DataLossError(
        absl::StrCat("a record header cut short at ", bytes.size(), " bytes"));
  }
  const char* at = bytes.data();
  RecordHeader header{
      .checksum = Load<std::uint64_t>(at + kChecksumAt),
      .id_size = Load<std::uint32_t>(at + kIdSizeAt),
      .event_size = Load<std::uint32_t>(at + kEventSizeAt),
      .sequence = Load<std::uint64_t>(at + kSequenceAt),
      .receive_time_ns = Load<std::int64_t>(at + kReceiveTimeAt),
      .flags = Load<std::uint32_t>(at + kFlagsAt),
  };
  if (header.id_size > kMaxIdSize || header.event_size > kMaxEventSize ||
      (header.flags & ~(kEndsBatch | kWrittenAfterSync | kStartsBatch)) != 0 ||
      Load<std::uint32_t>(at + kReservedAt) != 0) {
    return absl::DataLossError("a record header with impossible fields");
  }
  return header;
}

absl::StatusOr<Record> ParseRecord(absl::string_view bytes,
                                   std::uint32_t salt) {
  absl::StatusOr<RecordHeader> header = ParseRecordHeader(bytes);
  if (!header.ok()) return header.status();
  if (bytes.size() < header->RecordSize()) {
    return absl::DataLossError(
        absl::StrCat("record ", header->sequence, " cut short: ", bytes.size(),
                     " of ", header->RecordSize(), " bytes"));
  }
  if (Checksum(bytes.data(), header->RecordSize(), salt) != header->checksum) {
    return absl::DataLossError(
        absl::StrCat("record ", header->sequence, " fails its checksum"));
  }
  const absl::string_view body = bytes.substr(kRecordHeaderSize);
  return Record{
      .header = *header,
      .id = body.substr(0, header->id_size),
      .event = body.substr(header->id_size, header->event_size),
  };
}

namespace {

// Looks past damage at `damaged` for proof that the damaged bytes had been
// durable: a batch written after a sync that starts past the damage (its
// first record, or any record after the end of a batch). A batch torn by a
// crash is the last one written, so no batch can follow it. Tries
// every offset, since the damaged record's size cannot be trusted; zeros
// (space made ahead) are passed over cheaply, as no record has a sequence
// at or below `previous_sequence`. Bytes that only look like record headers
// could each make it checksum up to the rest of the file: past a budget of
// a few times the file's size it gives up, and refuses.
absl::Status CheckDamageIsTornTail(absl::string_view file, std::uint32_t salt,
                                   std::uint64_t damaged,
                                   std::uint64_t previous_sequence) {
  bool batch_ended = false;
  std::uint64_t budget = 4 * file.size();
  std::uint64_t offset = damaged + 1;
  while (offset + kRecordHeaderSize <= file.size()) {
    const char* at = file.data() + offset;
    if (Load<std::uint64_t>(at + kSequenceAt) <= previous_sequence ||
        Load<std::uint32_t>(at + kReservedAt) != 0) {
      ++offset;
      continue;
    }
    absl::StatusOr<RecordHeader> header =
        ParseRecordHeader(file.substr(offset));
    if (!header.ok() || header->RecordSize() > file.size() - offset) {
      ++offset;
      continue;
    }
    if (header->RecordSize() > budget) {
      // Refused rather than cut: cutting would lose acknowledged events if
      // a later synced batch were there to be found.
      return absl::DataLossError(absl::StrCat(
          "damaged at offset ", damaged,
          ", and whether acknowledged batches follow cannot be established"));
    }
    budget -= header->RecordSize();
    absl::StatusOr<Record> record = ParseRecord(file.substr(offset), salt);
    if (!record.ok()) {
      ++offset;
      continue;
    }
    const std::uint32_t flags = record->header.flags;
    if ((flags & kWrittenAfterSync) != 0 &&
        (batch_ended || (flags & kStartsBatch) != 0)) {
      return absl::DataLossError(absl::StrCat(
          "damaged at offset ", damaged, ", but record ",
          record->header.sequence, " at offset ", offset,
          " is intact and was written after the damaged bytes were durable: "
          "acknowledged events are corrupt, not cut short by a crash"));
    }
    if ((flags & kEndsBatch) != 0) batch_ended = true;
    offset += record->header.RecordSize();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SegmentScan> ScanSegment(absl::string_view file) {
  absl::StatusOr<std::uint32_t> salt = CheckSegmentHeader(file);
  if (!salt.ok()) return salt.status();
  SegmentScan scan;
  scan.salt = *salt;
  scan.committed_size = kSegmentHeaderSize;
  std::size_t batch_start = 0;  // index in scan.records of the open batch
  std::uint64_t offset = kSegmentHeaderSize;
  std::uint64_t previous_sequence = 0;
  while (offset < file.size()) {
    absl::StatusOr<Record> record = ParseRecord(file.substr(offset), scan.salt);
    if (!record.ok()) {
      if (absl::Status torn =
              CheckDamageIsTornTail(file, scan.salt, offset, previous_sequence);
          !torn.ok()) {
        return torn;
      }
      scan.torn_tail =
          absl::StrCat("at offset ", offset, ": ", record.status().message());
      break;
    }
    if (!scan.records.empty() && record->header.sequence <= previous_sequence) {
      return absl::DataLossError(
          absl::StrCat("record ", record->header.sequence, " at offset ",
                       offset, " does not follow record ", previous_sequence));
    }
    previous_sequence = record->header.sequence;
    scan.records.push_back({.header = record->header, .offset = offset});
    offset += record->header.RecordSize();
    if ((record->header.flags & kEndsBatch) != 0) {
      scan.committed_size = offset;
      batch_start = scan.records.size();
    }
  }
  if (batch_start < scan.records.size() && scan.torn_tail.empty()) {
    scan.torn_tail = absl::StrCat("at offset ", scan.committed_size,
                                  ": a batch without its last record");
  }
  scan.records.resize(batch_start);
  if (!scan.torn_tail.empty()) {
    const std::size_t last_data = file.find_last_not_of('\0');
    if (last_data == absl::string_view::npos ||
        last_data < scan.committed_size) {
      scan.torn_tail.clear();
      scan.zero_tail = true;
    } else {
      scan.torn_size = last_data + 1 - scan.committed_size;
    }
  }
  return scan;
}

std::string EncodeMeta(const Meta& meta) {
  std::string bytes(kMetaSize, '\0');
  std::memcpy(bytes.data(), kMetaMagic, sizeof(kMetaMagic));
  Store(bytes.data() + 8, meta.trimmed_through);
  Store(bytes.data() + 16, meta.trimmed_events_total);
  Store(bytes.data() + 24, XXH3_64bits(bytes.data(), 24));
  return bytes;
}

absl::StatusOr<Meta> DecodeMeta(absl::string_view bytes) {
  if (bytes.size() != kMetaSize ||
      std::memcmp(bytes.data(), kMetaMagic, sizeof(kMetaMagic)) != 0 ||
      Load<std::uint64_t>(bytes.data() + 24) != XXH3_64bits(bytes.data(), 24)) {
    return absl::DataLossError("the event log's trim record is damaged");
  }
  return Meta{
      .trimmed_through = Load<std::uint64_t>(bytes.data() + 8),
      .trimmed_events_total = Load<std::uint64_t>(bytes.data() + 16),
  };
}

}  // namespace convocore::store::log_format
