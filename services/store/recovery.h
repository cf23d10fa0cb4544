// Opening the log: what the data directory holds, what a crash left half
// written and is cut off, and when the log cannot be trusted and is refused.
//
// PlanRecovery() decides from what was read, with no I/O, so that every
// case has a unit test; RecoverLog() reads the directory and asks it. Neither
// writes: the store carries the plan out (cuts the torn tail, writes a
// half-made segment's header) once it can write.
#ifndef SERVICES_STORE_RECOVERY_H_
#define SERVICES_STORE_RECOVERY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/store/log_directory.h"
#include "services/store/log_format.h"
#include "services/store/segment_index.h"
#include "services/store/segment_reader.h"

namespace convocore::store {

// What one segment file held.
struct SegmentFinding {
  std::uint32_t ordinal = 0;
  std::string path;
  // Zeros, or shorter than a header: being made at a crash (before its
  // fsync), so no batch went into it.
  bool half_made = false;
  // Its records and tail; when not half made.
  log_format::SegmentScan scan;
};

struct RecoveryPlan {
  // The trim point to start from: log.meta's, or zero when there was none
  // or it was damaged and did without.
  log_format::Meta meta;
  // log.meta was damaged and is done without: the newest record holds the
  // high-water mark, and retention trims again from its bounds.
  bool discarded_damaged_meta = false;
  // Every record of a complete batch, in log order (trimmed ones too: the
  // index sorts them out against `meta`).
  std::vector<IndexEntry> entries;

  // The newest segment, which appends continue; ordinal 0 when there is no
  // segment at all (a new log).
  struct Active {
    std::uint32_t ordinal = 0;
    // Where its complete batches end.
    std::uint64_t end = 0;
    std::uint32_t salt = 0;
    // Its bytes past `end` are zeros written ahead of the appends: kept.
    // Otherwise they are a torn batch, cut off when the writer opens it.
    bool zero_tail = false;
    // It has no header yet (`end` is 0), which the writer writes with a new
    // salt; what follows is zeros, kept.
    bool half_made = false;
  } active;

  // A segment before the active one whose torn tail must be cut off
  // (ordinal 0: none), and the size to cut it to.
  struct Cut {
    std::uint32_t ordinal = 0;
    std::uint64_t size = 0;
  } cut;

  // How many bytes of torn tail the newest segment with records had: a
  // batch whose write a crash interrupted (never acknowledged with fsync
  // durability), or damage at its end. 0 normally.
  std::uint64_t discarded_tail_bytes = 0;
};

// What log.meta held.
struct MetaFinding {
  std::string path;
  std::optional<std::string> bytes;  // nullopt: there is none
};

// Decides from log.meta and every segment file's finding, ascending by
// ordinal. kDataLoss, naming the file, when
// records are out of order across segments, when a segment before the
// newest with records ends in a torn tail, or when log.meta is damaged and
// no record holds the high-water mark (which guessing could reuse).
absl::StatusOr<RecoveryPlan> PlanRecovery(
    const MetaFinding& meta, const std::vector<SegmentFinding>& segments);

struct RecoveredLog {
  RecoveryPlan plan;
  // Every segment file, open for reading; a half-made one's salt is 0 until
  // the writer gives it a header.
  SegmentMap segments;
};

// Reads log.meta and every segment of `dir` (whole, one at a time) and plans
// their recovery. Errors as PlanRecovery's, ScanSegment's (prefixed with the
// segment's path) and the I/O's.
absl::StatusOr<RecoveredLog> RecoverLog(const LogDirectory& dir);

}  // namespace convocore::store

#endif  // SERVICES_STORE_RECOVERY_H_
