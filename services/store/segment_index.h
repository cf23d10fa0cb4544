// Where the retained events of the log are, in memory, with no I/O: one
// entry per record (40 bytes), the store's counts, how far retention trimmed,
// and the newest sequence in each segment, which decides when a segment
// holds only trimmed events and may be deleted. Not thread-safe: the store
// guards it.
#ifndef SERVICES_STORE_SEGMENT_INDEX_H_
#define SERVICES_STORE_SEGMENT_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/hub/event_store.h"
#include "services/store/log_format.h"

namespace convocore::store {

// Where one record is.
struct IndexEntry {
  std::uint64_t sequence = 0;
  std::int64_t receive_time_ns = 0;
  std::uint64_t offset = 0;  // in its segment file
  std::uint32_t ordinal = 0;
  std::uint32_t id_size = 0;
  std::uint32_t event_size = 0;

  std::uint64_t RecordSize() const {
    return log_format::kRecordHeaderSize + id_size + event_size;
  }
};

class SegmentIndex {
 public:
  // An empty index of a log that retention trimmed through
  // `trimmed.trimmed_through`: the high-water mark until records are added.
  SegmentIndex(hub::RetentionOptions retention, log_format::Meta trimmed);

  // Adds records, in order, every sequence above Stats().last_sequence and
  // every ordinal at or above the last one added. Records at or below the
  // trim point (recovered from a segment that retention had started to
  // trim) count as their segment's but are not retained.
  void Add(absl::Span<const IndexEntry> entries);

  // Drops the oldest events beyond the count and byte bounds, and those
  // received before `too_old`. True when this made the oldest segment with
  // records, if it is not `active_ordinal`, hold only trimmed events.
  bool Trim(absl::Time too_old, std::uint32_t active_ordinal);

  // Up to `max_events` entries with sequence > `after_sequence`, in order.
  std::vector<IndexEntry> After(std::uint64_t after_sequence,
                                std::size_t max_events) const;
  // The first retained event received at or after `time`;
  // Stats().last_sequence + 1 when none is.
  std::uint64_t FirstSequenceAtOrAfter(absl::Time time) const;

  const hub::StoreStats& Stats() const { return stats_; }
  // What log.meta must hold for a restart to trim as far.
  log_format::Meta TrimPoint() const {
    return {.trimmed_through = trimmed_through_,
            .trimmed_events_total = stats_.trimmed_events_total};
  }

  // Whether segment `ordinal` holds records (trimmed or not).
  bool HasRecords(std::uint32_t ordinal) const {
    return last_in_segment_.contains(ordinal);
  }
  // Of `ordinals` (segment files, ascending), the oldest ones that may be
  // deleted: before `active_ordinal` and before the newest segment with
  // records (which keeps the high-water mark on disk), holding no record
  // or only trimmed ones. Stops at the first that may not.
  std::vector<std::uint32_t> TrimmedSegments(
      absl::Span<const std::uint32_t> ordinals,
      std::uint32_t active_ordinal) const;
  // Forgets segment `ordinal`, deleted.
  void Forget(std::uint32_t ordinal) { last_in_segment_.erase(ordinal); }

 private:
  const hub::RetentionOptions retention_;
  std::deque<IndexEntry> entries_;
  hub::StoreStats stats_;
  std::uint64_t trimmed_through_ = 0;
  // The newest sequence in each segment that has records.
  std::map<std::uint32_t, std::uint64_t> last_in_segment_;
};

}  // namespace convocore::store

#endif  // SERVICES_STORE_SEGMENT_INDEX_H_
