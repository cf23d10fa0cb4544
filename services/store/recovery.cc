#include "services/store/recovery.h"

#include <fcntl.h>

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/store/posix_file.h"

namespace convocore::store {

absl::StatusOr<RecoveryPlan> PlanRecovery(
    const MetaFinding& meta, const std::vector<SegmentFinding>& segments) {
  RecoveryPlan plan;
  // Needed only when no segment holds a record (see the end).
  absl::Status meta_damage;
  if (meta.bytes.has_value()) {
    absl::StatusOr<log_format::Meta> decoded =
        log_format::DecodeMeta(*meta.bytes);
    if (decoded.ok()) {
      plan.meta = *decoded;
    } else {
      meta_damage = decoded.status();
    }
  }

  std::uint64_t last_sequence = 0;
  // The segment with a torn tail, if any so far, and why.
  const SegmentFinding* torn = nullptr;
  for (const SegmentFinding& segment : segments) {
    if (segment.half_made) {
      plan.active = {
          .ordinal = segment.ordinal, .zero_tail = true, .half_made = true};
      continue;
    }
    const log_format::SegmentScan& scan = segment.scan;
    // A torn tail is the batch a crash interrupted only in the newest
    // segment with records (an older one took no batch before the one after
    // it was durable); the segments after it may be empty, made ahead.
    if (torn != nullptr && (!scan.records.empty() || !scan.torn_tail.empty())) {
      return absl::DataLossError(
          absl::StrCat(torn->path, " is damaged ", torn->scan.torn_tail,
                       ", and newer segments hold records"));
    }
    if (!scan.torn_tail.empty()) {
      torn = &segment;
      plan.discarded_tail_bytes = scan.torn_size;
    }
    for (const log_format::RecordLocation& record : scan.records) {
      const log_format::RecordHeader& header = record.header;
      if (header.sequence <= last_sequence) {
        return absl::DataLossError(absl::StrCat(
            segment.path, ": record ", header.sequence,
            " does not follow the previous segment's ", last_sequence));
      }
      last_sequence = header.sequence;
      plan.entries.push_back(IndexEntry{
          .sequence = header.sequence,
          .receive_time_ns = header.receive_time_ns,
          .offset = record.offset,
          .ordinal = segment.ordinal,
          .id_size = header.id_size,
          .event_size = header.event_size,
      });
    }
    plan.active = {.ordinal = segment.ordinal,
                   .end = scan.committed_size,
                   .salt = scan.salt,
                   .zero_tail = scan.zero_tail};
  }
  // The active segment's torn tail is cut when the writer opens it.
  if (torn != nullptr && torn->ordinal != plan.active.ordinal) {
    plan.cut = {.ordinal = torn->ordinal, .size = torn->scan.committed_size};
  }
  if (!meta_damage.ok()) {
    // Without log.meta every record is retained: retention trims again from
    // its bounds, and the newest record is the high-water mark.
    if (last_sequence == 0) {
      return absl::DataLossError(
          absl::StrCat(meta.path, ": ", meta_damage.message(),
                       ", and no segment holds an event: the log's "
                       "high-water mark is unknown"));
    }
    plan.discarded_damaged_meta = true;
  }
  return plan;
}

namespace {

// Reads segment `ordinal` whole and finds what it holds; its descriptor, for
// the reads to come, goes to `fd`.
absl::StatusOr<SegmentFinding> FindSegment(const LogDirectory& dir,
                                           std::uint32_t ordinal,
                                           ScopedFd& fd) {
  SegmentFinding finding;
  finding.ordinal = ordinal;
  finding.path = dir.SegmentPath(ordinal);
  absl::StatusOr<ScopedFd> opened = posix::Open(finding.path, O_RDONLY);
  if (!opened.ok()) return opened.status();
  absl::StatusOr<std::string> content =
      posix::ReadWhole(opened->get(), finding.path);
  if (!content.ok()) return content.status();
  fd = *std::move(opened);
  if (content->size() < log_format::kSegmentHeaderSize ||
      content->find_first_not_of('\0') == std::string::npos) {
    finding.half_made = true;
    return finding;
  }
  absl::StatusOr<log_format::SegmentScan> scan =
      log_format::ScanSegment(*content);
  if (!scan.ok()) {
    return absl::Status(
        scan.status().code(),
        absl::StrCat(finding.path, ": ", scan.status().message()));
  }
  finding.scan = *std::move(scan);
  return finding;
}

}  // namespace

absl::StatusOr<RecoveredLog> RecoverLog(const LogDirectory& dir) {
  absl::StatusOr<std::optional<std::string>> meta_bytes = dir.ReadMeta();
  if (!meta_bytes.ok()) return meta_bytes.status();
  absl::StatusOr<std::vector<std::uint32_t>> ordinals = dir.ListSegments();
  if (!ordinals.ok()) return ordinals.status();

  RecoveredLog log;
  std::vector<SegmentFinding> findings;
  for (const std::uint32_t ordinal : *ordinals) {
    ScopedFd fd;
    absl::StatusOr<SegmentFinding> finding = FindSegment(dir, ordinal, fd);
    if (!finding.ok()) return finding.status();
    log.segments[ordinal] = std::make_shared<const ReadableSegment>(
        ordinal, finding->path, std::move(fd),
        finding->half_made ? 0 : finding->scan.salt);
    findings.push_back(*std::move(finding));
  }
  absl::StatusOr<RecoveryPlan> plan = PlanRecovery(
      {.path = dir.MetaPath(), .bytes = *std::move(meta_bytes)}, findings);
  if (!plan.ok()) return plan.status();
  log.plan = *std::move(plan);
  return log;
}

}  // namespace convocore::store
