#include "services/store/log_format.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/services/store/test_events.h"

namespace convocore::store::log_format {
namespace {

using ::convocore::store::testing::EventBytes;
using ::convocore::store::testing::EventId;
using ::convocore::store::testing::EventTime;
using ::convocore::store::testing::MakeEvent;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::uint32_t Load32(const std::string& bytes, std::size_t at) {
  std::uint32_t value;
  std::memcpy(&value, bytes.data() + at, sizeof(value));
  return value;
}

// Any salt but 0: every test then checks that it is used.
constexpr std::uint32_t kSalt = 0x5a17ed42;

// A segment holding `batches`, each a list of sequences, as the store writes
// them: every record with `flags`, the first of each batch with kStartsBatch
// and the last with kEndsBatch.
std::string Segment(std::initializer_list<std::initializer_list<int>> batches,
                    std::uint32_t flags = 0) {
  std::string file = SegmentHeader(kSalt);
  for (const auto& batch : batches) {
    int index = 0;
    for (const int sequence : batch) {
      const bool first = index == 0;
      const bool last = ++index == static_cast<int>(batch.size());
      AppendRecord(
          MakeEvent(sequence),
          flags | (first ? kStartsBatch : 0u) | (last ? kEndsBatch : 0u), kSalt,
          &file);
    }
  }
  return file;
}

// The offset of the record of `sequence` in `file`, a Segment().
std::size_t OffsetOf(const std::string& file, std::uint64_t sequence) {
  std::size_t offset = kSegmentHeaderSize;
  while (true) {
    absl::StatusOr<RecordHeader> header =
        ParseRecordHeader(absl::string_view(file).substr(offset));
    if (!header.ok() || header->sequence == sequence) return offset;
    offset += header->RecordSize();
  }
}

std::vector<std::uint64_t> ScannedSequences(const SegmentScan& scan) {
  std::vector<std::uint64_t> sequences;
  for (const RecordLocation& record : scan.records) {
    sequences.push_back(record.header.sequence);
  }
  return sequences;
}

TEST(LogFormatTest, RecordsRoundTrip) {
  std::string bytes;
  AppendRecord(MakeEvent(7), kEndsBatch, kSalt, &bytes);
  ASSERT_EQ(bytes.size(),
            kRecordHeaderSize + EventId(7).size() + EventBytes(7).size());
  absl::StatusOr<Record> record = ParseRecord(bytes, kSalt);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->header.sequence, 7u);
  EXPECT_EQ(record->header.receive_time_ns, absl::ToUnixNanos(EventTime(7)));
  EXPECT_EQ(record->header.flags, kEndsBatch);
  EXPECT_EQ(record->id, EventId(7));
  EXPECT_EQ(record->event, EventBytes(7));
  EXPECT_EQ(record->header.RecordSize(), bytes.size());
}

TEST(LogFormatTest, EveryDamagedByteFailsTheRecord) {
  std::string bytes;
  AppendRecord(MakeEvent(3), kEndsBatch, kSalt, &bytes);
  for (std::size_t at = 0; at < bytes.size(); ++at) {
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x01);
    EXPECT_EQ(ParseRecord(damaged, kSalt).status().code(),
              absl::StatusCode::kDataLoss)
        << "byte " << at;
  }
  EXPECT_EQ(
      ParseRecord(bytes.substr(0, bytes.size() - 1), kSalt).status().code(),
      absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseRecord(bytes.substr(0, 10), kSalt).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(LogFormatTest, RefusesEventsTheFormatCannotHold) {
  hub::StoredEvent event = MakeEvent(1);
  EXPECT_TRUE(CheckStorable(event).ok());
  event.id.assign(kMaxIdSize + 1, 'i');
  EXPECT_EQ(CheckStorable(event).code(), absl::StatusCode::kInvalidArgument);
  event = MakeEvent(1);
  event.event_bytes = nullptr;
  EXPECT_EQ(CheckStorable(event).code(), absl::StatusCode::kInvalidArgument);
}

TEST(LogFormatTest, ScansCompleteBatches) {
  const std::string file = Segment({{1, 2, 3}, {4}, {5, 6}});
  absl::StatusOr<SegmentScan> scan = ScanSegment(file);
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_THAT(ScannedSequences(*scan),
              ::testing::ElementsAre(1, 2, 3, 4, 5, 6));
  EXPECT_EQ(scan->committed_size, file.size());
  EXPECT_THAT(scan->torn_tail, IsEmpty());
  EXPECT_EQ(scan->records[1].offset,
            kSegmentHeaderSize + scan->records[0].header.RecordSize());
}

TEST(LogFormatTest, AnEmptySegmentHasNoRecords) {
  absl::StatusOr<SegmentScan> scan = ScanSegment(SegmentHeader(kSalt));
  ASSERT_TRUE(scan.ok());
  EXPECT_THAT(scan->records, IsEmpty());
  EXPECT_EQ(scan->committed_size, kSegmentHeaderSize);
}

// The batch being written at a crash: intact records without the one that
// ends the batch are dropped with it.
TEST(LogFormatTest, DropsABatchWithoutItsLastRecord) {
  const std::string committed = Segment({{1, 2}});
  std::string file = committed;
  AppendRecord(MakeEvent(3), /*flags=*/0, kSalt, &file);
  AppendRecord(MakeEvent(4), /*flags=*/0, kSalt, &file);
  absl::StatusOr<SegmentScan> scan = ScanSegment(file);
  ASSERT_TRUE(scan.ok());
  EXPECT_THAT(ScannedSequences(*scan), ::testing::ElementsAre(1, 2));
  EXPECT_EQ(scan->committed_size, committed.size());
  EXPECT_THAT(scan->torn_tail, HasSubstr("without its last record"));
}

TEST(LogFormatTest, StopsAtHalfARecordOrGarbage) {
  const std::string committed = Segment({{1}, {2}});
  for (const std::string& tail :
       {Segment({{3}}).substr(kSegmentHeaderSize, 30),
        Segment({{3}}).substr(kSegmentHeaderSize, 300),
        Segment({{3}}).substr(kSegmentHeaderSize, 300) +
            std::string(4096, '\0'),
        std::string(4096, 'x')}) {
    absl::StatusOr<SegmentScan> scan = ScanSegment(committed + tail);
    ASSERT_TRUE(scan.ok());
    EXPECT_THAT(ScannedSequences(*scan), ::testing::ElementsAre(1, 2));
    EXPECT_EQ(scan->committed_size, committed.size());
    EXPECT_THAT(scan->torn_tail,
                HasSubstr(absl::StrCat("at offset ", committed.size())));
    EXPECT_FALSE(scan->zero_tail);
    EXPECT_EQ(scan->torn_size,
              tail.substr(0, tail.find_last_not_of('\0') + 1).size());
  }
}

// With fsync durability a batch is written only once everything before it
// is durable: damage followed by a batch's end and then such a record hit
// acknowledged events, and is no crash's torn tail.
TEST(LogFormatTest, DamageBeforeALaterSyncedBatchIsCorruption) {
  std::string file = Segment({{1, 2}, {3, 4}, {5}}, kWrittenAfterSync);
  file[OffsetOf(file, 1) + kRecordHeaderSize + 2] ^= 0x01;
  absl::StatusOr<SegmentScan> scan = ScanSegment(file);
  EXPECT_EQ(scan.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(scan.status().message(),
              HasSubstr(absl::StrCat("record 3 at offset ", OffsetOf(file, 3),
                                     " is intact")));
}

// Damage to the last record of a batch leaves no intact end before the next
// batch; that batch's start, written after a sync, is the proof.
TEST(LogFormatTest, DamageToTheEndOfAnEarlierBatchIsCorruption) {
  std::string file = Segment({{1, 2}, {3, 4}, {5, 6}}, kWrittenAfterSync);
  file[OffsetOf(file, 4) + kRecordHeaderSize + 2] ^= 0x01;
  const absl::Status status = ScanSegment(file).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(),
              HasSubstr(absl::StrCat("record 5 at offset ", OffsetOf(file, 5),
                                     " is intact")));
}

// Power can fail with only some of the last batch's pages on disk: its own
// intact end proves nothing, since no batch follows it.
TEST(LogFormatTest, DamageInTheLastBatchIsATornTail) {
  std::string file = Segment({{1, 2}, {3, 4, 5}}, kWrittenAfterSync);
  file[OffsetOf(file, 3) + kRecordHeaderSize + 2] ^= 0x01;
  absl::StatusOr<SegmentScan> scan = ScanSegment(file);
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_THAT(ScannedSequences(*scan), ::testing::ElementsAre(1, 2));
  EXPECT_THAT(scan->torn_tail,
              HasSubstr(absl::StrCat("at offset ", OffsetOf(file, 3))));
}

// os_cache writes batches without syncing between them, so after a power
// loss any of the recent ones may have holes: cut, not refused.
TEST(LogFormatTest, DamageBeforeBatchesNotWrittenAfterSyncIsATornTail) {
  std::string file = Segment({{1, 2}, {3, 4}, {5}});
  file[OffsetOf(file, 3) + kRecordHeaderSize + 2] ^= 0x01;
  absl::StatusOr<SegmentScan> scan = ScanSegment(file);
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_THAT(ScannedSequences(*scan), ::testing::ElementsAre(1, 2));
  EXPECT_FALSE(scan->torn_tail.empty());
}

// Zeros after the last batch are space written ahead of the appends, not
// damage.
TEST(LogFormatTest, AZeroTailIsNotTorn) {
  const std::string committed = Segment({{1, 2}});
  absl::StatusOr<SegmentScan> scan =
      ScanSegment(committed + std::string(1 << 20, '\0'));
  ASSERT_TRUE(scan.ok());
  EXPECT_THAT(ScannedSequences(*scan), ::testing::ElementsAre(1, 2));
  EXPECT_EQ(scan->committed_size, committed.size());
  EXPECT_THAT(scan->torn_tail, IsEmpty());
  EXPECT_TRUE(scan->zero_tail);

  scan = ScanSegment(SegmentHeader(kSalt) + std::string(4096, '\0'));
  ASSERT_TRUE(scan.ok());
  EXPECT_THAT(scan->records, IsEmpty());
  EXPECT_TRUE(scan->zero_tail);
}

TEST(LogFormatTest, RefusesRecordsOutOfSequenceOrder) {
  EXPECT_EQ(ScanSegment(Segment({{1, 3}, {2}})).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ScanSegment(Segment({{5}, {5}})).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(LogFormatTest, ChecksTheSegmentHeader) {
  EXPECT_EQ(ScanSegment("not a segment at all").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ScanSegment("").status().code(), absl::StatusCode::kDataLoss);
  std::string newer = SegmentHeader(kSalt);
  newer[8] = 3;  // the version field
  const absl::Status status = CheckSegmentHeader(newer).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("version 3"));
  EXPECT_EQ(*CheckSegmentHeader(SegmentHeader(kSalt)), kSalt);
  EXPECT_NE(NewSalt(), 0u);
}

// Damage to the salt would fail every record in the segment, which would
// then look like one long torn tail: the header's checksum catches it.
TEST(LogFormatTest, ADamagedSegmentHeaderIsDataLoss) {
  const std::string file = Segment({{1, 2}, {3}}, kWrittenAfterSync);
  for (std::size_t at = 8; at < kSegmentHeaderSize; ++at) {
    std::string damaged = file;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x01);
    const absl::Status status = ScanSegment(damaged).status();
    if (at >= 8 && at < 12 && Load32(damaged, 8) > 2) {
      EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << at;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << "byte " << at;
    }
  }
}

// The format has one version: a segment of any other is refused, with its
// version named, whatever its records would say.
TEST(LogFormatTest, RefusesEveryOtherFormatVersion) {
  for (const std::uint32_t version : {0u, 1u, 3u}) {
    // Magic, the version, and what follows as version 2 lays it out.
    std::string file = Segment({{1, 2}}, kWrittenAfterSync);
    std::memcpy(file.data() + 8, &version, sizeof(version));
    const absl::Status status = ScanSegment(file).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << version;
    EXPECT_THAT(status.message(),
                HasSubstr(absl::StrCat("format version ", version,
                                       "; this binary reads only version 2")));
  }
  // An earlier layout: a 16-byte header, version 1, no salt, no checksum.
  std::string file = SegmentHeader(kSalt).substr(0, 16);
  file[8] = 1;
  file.replace(12, 4, 4, '\0');
  AppendRecord(MakeEvent(1), kEndsBatch, /*salt=*/0, &file);
  EXPECT_EQ(ScanSegment(file).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// A record is only valid in the segment whose salt it was written with: an
// event's payload that embeds a record's image (the sender chooses the
// payload) or another segment's stale blocks never pass as one.
TEST(LogFormatTest, RecordsOfAnotherSaltAreNotRecords) {
  std::string bytes;
  AppendRecord(MakeEvent(7), kEndsBatch, kSalt, &bytes);
  EXPECT_TRUE(ParseRecord(bytes, kSalt).ok());
  EXPECT_EQ(ParseRecord(bytes, kSalt + 1).status().code(),
            absl::StatusCode::kDataLoss);

  // The batch being written at a crash lost its first page; its payload
  // holds images of two later "batches" (as a crafted event could), which
  // prove nothing.
  std::string file = Segment({{1, 2}}, kWrittenAfterSync);
  std::string images;
  AppendRecord(MakeEvent(1000), kWrittenAfterSync | kEndsBatch, kSalt + 1,
               &images);
  AppendRecord(MakeEvent(1001), kWrittenAfterSync | kEndsBatch, kSalt + 1,
               &images);
  hub::StoredEvent carrier = MakeEvent(3);
  carrier.event_bytes = std::make_shared<const std::string>(images);
  std::string torn;
  AppendRecord(carrier, kWrittenAfterSync | kEndsBatch, kSalt, &torn);
  std::fill(torn.begin(), torn.begin() + kRecordHeaderSize, '\0');
  absl::StatusOr<SegmentScan> scan = ScanSegment(file + torn);
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_THAT(ScannedSequences(*scan), ::testing::ElementsAre(1, 2));
  EXPECT_FALSE(scan->torn_tail.empty());
}

// Bytes that look like record headers claiming large records: each costs a
// checksum over the rest of the file. The search past damage stops at a
// budget (unbounded, this scan took about 2 s) and refuses: cutting could
// lose acknowledged batches it did not get to.
TEST(LogFormatTest, PseudoHeadersPastDamageExhaustTheSearchAndAreRefused) {
  constexpr std::size_t kPayload = 2 << 20;
  std::string payload(kPayload, '\0');
  for (std::size_t at = 0; at + kRecordHeaderSize <= kPayload;
       at += kRecordHeaderSize) {
    const std::uint32_t claimed = 1 << 20;
    const std::uint64_t sequence = std::uint64_t{1} << 40;
    std::memcpy(&payload[at + 12], &claimed, sizeof(claimed));
    std::memcpy(&payload[at + 16], &sequence, sizeof(sequence));
    payload[at] = 1;
  }
  hub::StoredEvent carrier = MakeEvent(2);
  carrier.event_bytes = std::make_shared<const std::string>(payload);
  std::string file = Segment({{1}}, kWrittenAfterSync);
  std::string torn;
  AppendRecord(carrier, kWrittenAfterSync | kEndsBatch, kSalt, &torn);
  torn[0] = static_cast<char>(torn[0] ^ 1);
  const absl::Status status = ScanSegment(file + torn).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("cannot be established"));
}

TEST(LogFormatTest, MetaRoundTripsAndDetectsDamage) {
  const std::string bytes =
      EncodeMeta({.trimmed_through = 1234, .trimmed_events_total = 99});
  absl::StatusOr<Meta> meta = DecodeMeta(bytes);
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->trimmed_through, 1234u);
  EXPECT_EQ(meta->trimmed_events_total, 99u);
  for (std::size_t at = 0; at < bytes.size(); ++at) {
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x10);
    EXPECT_EQ(DecodeMeta(damaged).status().code(), absl::StatusCode::kDataLoss);
  }
  EXPECT_EQ(DecodeMeta("").status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace convocore::store::log_format
