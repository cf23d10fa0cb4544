#include "services/store/recovery.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/store/log_directory.h"
#include "services/store/log_format.h"
#include "tests/services/store/test_events.h"
#include "tests/support/temp_dir.h"

namespace convocore::store {
namespace {

using ::convocore::store::testing::MakeEvent;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::uint32_t kSalt = 0x0badcafe;

// A segment file's bytes holding `batches` of sequences, written as with
// fsync durability.
std::string SegmentBytes(
    std::initializer_list<std::initializer_list<int>> batches) {
  std::string file = log_format::SegmentHeader(kSalt);
  for (const auto& batch : batches) {
    std::size_t index = 0;
    for (const int sequence : batch) {
      const bool first = index == 0;
      const bool last = ++index == batch.size();
      log_format::AppendRecord(
          MakeEvent(sequence),
          log_format::kWrittenAfterSync |
              (first ? log_format::kStartsBatch : 0u) |
              (last ? log_format::kEndsBatch : 0u),
          kSalt, &file);
    }
  }
  return file;
}

// The records of a batch whose last record never reached the disk.
std::string TornBatch(std::initializer_list<int> sequences) {
  std::string bytes;
  for (const int sequence : sequences) {
    log_format::AppendRecord(MakeEvent(sequence),
                             log_format::kWrittenAfterSync, kSalt, &bytes);
  }
  return bytes;
}

SegmentFinding Found(std::uint32_t ordinal, const std::string& bytes) {
  absl::StatusOr<log_format::SegmentScan> scan = log_format::ScanSegment(bytes);
  EXPECT_TRUE(scan.ok()) << scan.status();
  SegmentFinding finding;
  finding.ordinal = ordinal;
  finding.path = absl::StrCat("/d/", SegmentFileName(ordinal));
  if (scan.ok()) finding.scan = *scan;
  return finding;
}

SegmentFinding HalfMade(std::uint32_t ordinal) {
  SegmentFinding finding;
  finding.ordinal = ordinal;
  finding.path = absl::StrCat("/d/", SegmentFileName(ordinal));
  finding.half_made = true;
  return finding;
}

MetaFinding NoMeta() { return {.path = "/d/log.meta", .bytes = std::nullopt}; }

MetaFinding Meta(std::uint64_t trimmed_through, std::uint64_t total) {
  return {.path = "/d/log.meta",
          .bytes = log_format::EncodeMeta({.trimmed_through = trimmed_through,
                                           .trimmed_events_total = total})};
}

std::vector<std::uint64_t> Sequences(const RecoveryPlan& plan) {
  std::vector<std::uint64_t> sequences;
  for (const IndexEntry& entry : plan.entries) {
    sequences.push_back(entry.sequence);
  }
  return sequences;
}

TEST(PlanRecoveryTest, ANewLogHasNothing) {
  absl::StatusOr<RecoveryPlan> plan = PlanRecovery(NoMeta(), {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->active.ordinal, 0u);
  EXPECT_THAT(plan->entries, IsEmpty());
  EXPECT_EQ(plan->cut.ordinal, 0u);
  EXPECT_EQ(plan->discarded_tail_bytes, 0u);
  EXPECT_FALSE(plan->discarded_damaged_meta);
}

TEST(PlanRecoveryTest, IndexesEverySegmentAndResumesTheNewest) {
  const std::string first = SegmentBytes({{1, 2}, {3}});
  const std::string second = SegmentBytes({{4, 5}});
  absl::StatusOr<RecoveryPlan> plan =
      PlanRecovery(Meta(0, 0), {Found(1, first), Found(2, second)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Sequences(*plan), ElementsAre(1, 2, 3, 4, 5));
  EXPECT_EQ(plan->entries[3].ordinal, 2u);
  EXPECT_EQ(plan->entries[3].offset, log_format::kSegmentHeaderSize);
  EXPECT_EQ(plan->active.ordinal, 2u);
  EXPECT_EQ(plan->active.end, second.size());
  EXPECT_EQ(plan->active.salt, kSalt);
  EXPECT_FALSE(plan->active.half_made);
  EXPECT_EQ(plan->cut.ordinal, 0u);
}

TEST(PlanRecoveryTest, CarriesTheTrimPoint) {
  absl::StatusOr<RecoveryPlan> plan =
      PlanRecovery(Meta(42, 40), {Found(7, SegmentBytes({{41, 42, 43}}))});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->meta.trimmed_through, 42u);
  EXPECT_EQ(plan->meta.trimmed_events_total, 40u);
  // The index, not the plan, leaves out what was trimmed.
  EXPECT_THAT(Sequences(*plan), ElementsAre(41, 42, 43));
}

// The batch a crash interrupted in the segment appended to: dropped, and
// cut off when the writer opens that segment.
TEST(PlanRecoveryTest, DropsATornBatchAtTheEnd) {
  const std::string committed = SegmentBytes({{1, 2}});
  const std::string torn = TornBatch({3, 4});
  absl::StatusOr<RecoveryPlan> plan =
      PlanRecovery(NoMeta(), {Found(1, committed + torn)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Sequences(*plan), ElementsAre(1, 2));
  EXPECT_EQ(plan->active.ordinal, 1u);
  EXPECT_EQ(plan->active.end, committed.size());
  EXPECT_FALSE(plan->active.zero_tail);
  EXPECT_EQ(plan->discarded_tail_bytes, torn.size());
  EXPECT_EQ(plan->cut.ordinal, 0u);  // the writer's own cut
}

// Maintenance made the next segment ahead before the crash: the torn batch
// is in the segment before it, which is cut separately.
TEST(PlanRecoveryTest, CutsATornBatchBeforeASegmentMadeAhead) {
  const std::string committed = SegmentBytes({{1, 2}});
  const std::string torn = TornBatch({3});
  const std::string ahead =
      log_format::SegmentHeader(kSalt) + std::string(4096, '\0');
  absl::StatusOr<RecoveryPlan> plan =
      PlanRecovery(NoMeta(), {Found(1, committed + torn), Found(2, ahead)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Sequences(*plan), ElementsAre(1, 2));
  EXPECT_EQ(plan->cut.ordinal, 1u);
  EXPECT_EQ(plan->cut.size, committed.size());
  EXPECT_EQ(plan->active.ordinal, 2u);
  EXPECT_EQ(plan->active.end, log_format::kSegmentHeaderSize);
  EXPECT_TRUE(plan->active.zero_tail);
  EXPECT_EQ(plan->discarded_tail_bytes, torn.size());
}

// Records after a torn tail prove it is no crash's leftover: acknowledged
// events would be cut, so the log is refused, naming the damaged file.
TEST(PlanRecoveryTest, RefusesATornTailFollowedByRecords) {
  const absl::Status status =
      PlanRecovery(NoMeta(), {Found(1, SegmentBytes({{1}}) + TornBatch({2})),
                              Found(2, SegmentBytes({{3}}))})
          .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(SegmentFileName(1)));
  EXPECT_THAT(status.message(), HasSubstr("newer segments hold records"));
}

TEST(PlanRecoveryTest, RefusesSegmentsOutOfSequenceOrder) {
  const absl::Status status =
      PlanRecovery(NoMeta(), {Found(1, SegmentBytes({{1, 2, 3}})),
                              Found(2, SegmentBytes({{3, 4}}))})
          .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(SegmentFileName(2)));
  EXPECT_THAT(status.message(), HasSubstr("record 3"));
}

// A crash while a segment was being made: no batch went into it. As the
// newest it is resumed (with a header written then); before another it
// only takes room.
TEST(PlanRecoveryTest, ResumesAHalfMadeSegment) {
  absl::StatusOr<RecoveryPlan> plan =
      PlanRecovery(NoMeta(), {Found(1, SegmentBytes({{1, 2}})), HalfMade(2)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->active.ordinal, 2u);
  EXPECT_TRUE(plan->active.half_made);
  EXPECT_TRUE(plan->active.zero_tail);
  EXPECT_THAT(Sequences(*plan), ElementsAre(1, 2));

  plan = PlanRecovery(NoMeta(), {HalfMade(1), Found(2, SegmentBytes({{1}}))});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->active.ordinal, 2u);
  EXPECT_FALSE(plan->active.half_made);
}

// log.meta only says how far retention trimmed: damaged, it is done
// without when a record holds the high-water mark...
TEST(PlanRecoveryTest, DoesWithoutADamagedMetaWhenRecordsHoldTheMark) {
  absl::StatusOr<RecoveryPlan> plan =
      PlanRecovery({.path = "/d/log.meta", .bytes = "garbage"},
                   {Found(1, SegmentBytes({{5, 6}}))});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->discarded_damaged_meta);
  EXPECT_EQ(plan->meta.trimmed_through, 0u);
  EXPECT_THAT(Sequences(*plan), ElementsAre(5, 6));
}

// ...and refused when it alone did: a guess could reuse sequences.
TEST(PlanRecoveryTest, RefusesADamagedMetaThatAloneHoldsTheMark) {
  for (const std::vector<SegmentFinding>& segments :
       {std::vector<SegmentFinding>{},
        std::vector<SegmentFinding>{Found(3, SegmentBytes({}))}}) {
    const absl::Status status =
        PlanRecovery({.path = "/d/log.meta", .bytes = ""}, segments).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(status.message(), HasSubstr("/d/log.meta"));
    EXPECT_THAT(status.message(), HasSubstr("high-water mark"));
  }
}

// --- RecoverLog: the same, read from a directory.

class RecoverLogTest : public ::testing::Test {
 protected:

  void Write(const std::string& name, const std::string& bytes) {
    std::ofstream out(root_ / name, std::ios::binary);
    out << bytes;
    ASSERT_TRUE(out.good());
  }

  convocore::testing::TempDir temp_{"recovery_test"};
  const std::filesystem::path root_ = temp_.path();
};

TEST_F(RecoverLogTest, ReadsTheDirectoryWithoutWritingIt) {
  const std::string committed = SegmentBytes({{1, 2}});
  const std::string torn = TornBatch({3});
  Write(SegmentFileName(1), committed + torn);
  Write(SegmentFileName(2), "");  // half made
  Write("log.meta", log_format::EncodeMeta({.trimmed_through = 1,
                                            .trimmed_events_total = 1}));
  Write("unrelated.txt", "not a segment");
  absl::StatusOr<LogDirectory> dir = LogDirectory::Open(root_.string());
  ASSERT_TRUE(dir.ok()) << dir.status();
  absl::StatusOr<RecoveredLog> log = RecoverLog(*dir);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(log->plan.meta.trimmed_through, 1u);
  EXPECT_THAT(Sequences(log->plan), ElementsAre(1, 2));
  EXPECT_EQ(log->plan.cut.ordinal, 1u);
  EXPECT_EQ(log->plan.cut.size, committed.size());
  EXPECT_EQ(log->plan.active.ordinal, 2u);
  EXPECT_TRUE(log->plan.active.half_made);
  // Both segments are open for reading, with their salts.
  ASSERT_EQ(log->segments.size(), 2u);
  EXPECT_EQ(log->segments.at(1)->salt, kSalt);
  EXPECT_TRUE(log->segments.at(1)->fd.valid());
  EXPECT_EQ(log->segments.at(1)->path, dir->SegmentPath(1));
  EXPECT_EQ(log->segments.at(2)->salt, 0u);
  // Nothing was cut yet: that is the writer's, once it can write.
  EXPECT_EQ(std::filesystem::file_size(root_ / SegmentFileName(1)),
            committed.size() + torn.size());
}

TEST_F(RecoverLogTest, NamesTheSegmentItCannotRead) {
  Write(SegmentFileName(1), SegmentBytes({{1}}));
  std::string other_version = SegmentBytes({{2}});
  other_version[8] = 1;
  Write(SegmentFileName(2), other_version);
  absl::StatusOr<LogDirectory> dir = LogDirectory::Open(root_.string());
  ASSERT_TRUE(dir.ok()) << dir.status();
  const absl::Status status = RecoverLog(*dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr(dir->SegmentPath(2)));
  EXPECT_THAT(status.message(), HasSubstr("format version 1"));
}

TEST_F(RecoverLogTest, ADirectoryIsLockedByOneHolder) {
  absl::StatusOr<LogDirectory> first = LogDirectory::Open(root_.string());
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<LogDirectory> second = LogDirectory::Open(root_.string());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
}

// What the store checks while running: the directory it opened is still the
// one at its path.
TEST_F(RecoverLogTest, NoticesTheDirectoryGoneOrReplaced) {
  const std::filesystem::path data = root_ / "data";
  absl::StatusOr<LogDirectory> dir = LogDirectory::Open(data.string());
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_TRUE(dir->CheckStillInPlace().ok());
  std::filesystem::remove_all(data);
  EXPECT_EQ(dir->CheckStillInPlace().code(), absl::StatusCode::kNotFound);
  std::filesystem::create_directories(data);
  EXPECT_EQ(dir->CheckStillInPlace().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace convocore::store
