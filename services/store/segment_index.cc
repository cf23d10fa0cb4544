#include "services/store/segment_index.h"

#include <algorithm>

namespace convocore::store {

SegmentIndex::SegmentIndex(hub::RetentionOptions retention,
                           log_format::Meta trimmed)
    : retention_(retention), trimmed_through_(trimmed.trimmed_through) {
  stats_.last_sequence = trimmed.trimmed_through;
  stats_.trimmed_events_total = trimmed.trimmed_events_total;
}

void SegmentIndex::Add(absl::Span<const IndexEntry> entries) {
  if (entries.empty()) return;
  for (const IndexEntry& entry : entries) {
    last_in_segment_[entry.ordinal] = entry.sequence;
    if (entry.sequence <= trimmed_through_) continue;
    entries_.push_back(entry);
    stats_.retained_bytes += entry.event_size;
  }
  stats_.retained_events = entries_.size();
  stats_.first_sequence = entries_.empty() ? 0 : entries_.front().sequence;
  stats_.last_sequence =
      std::max(stats_.last_sequence, entries.back().sequence);
}

bool SegmentIndex::Trim(absl::Time too_old, std::uint32_t active_ordinal) {
  const std::int64_t too_old_ns = absl::ToUnixNanos(too_old);
  std::uint64_t dropped = 0;
  while (!entries_.empty()) {
    const IndexEntry& oldest = entries_.front();
    const bool over_count = retention_.max_events > 0 &&
                            entries_.size() > retention_.max_events;
    const bool over_bytes = retention_.max_bytes > 0 &&
                            stats_.retained_bytes > retention_.max_bytes;
    if (!over_count && !over_bytes && oldest.receive_time_ns >= too_old_ns) {
      break;
    }
    stats_.retained_bytes -= oldest.event_size;
    trimmed_through_ = oldest.sequence;
    entries_.pop_front();
    ++dropped;
  }
  if (dropped == 0) return false;
  stats_.retained_events = entries_.size();
  stats_.first_sequence = entries_.empty() ? 0 : entries_.front().sequence;
  stats_.trimmed_events_total += dropped;
  const auto oldest_segment = last_in_segment_.begin();
  return oldest_segment != last_in_segment_.end() &&
         oldest_segment->first != active_ordinal &&
         oldest_segment->second <= trimmed_through_;
}

std::vector<IndexEntry> SegmentIndex::After(std::uint64_t after_sequence,
                                            std::size_t max_events) const {
  const auto first =
      std::upper_bound(entries_.begin(), entries_.end(), after_sequence,
                       [](std::uint64_t sequence, const IndexEntry& entry) {
                         return sequence < entry.sequence;
                       });
  const std::size_t available =
      static_cast<std::size_t>(entries_.end() - first);
  return std::vector<IndexEntry>(first,
                                 first + std::min(available, max_events));
}

std::uint64_t SegmentIndex::FirstSequenceAtOrAfter(absl::Time time) const {
  const std::int64_t time_ns = absl::ToUnixNanos(time);
  // The hub hands over receive times that never decrease, but a clock
  // stepped back across a restart breaks that; a scan (4 MB of index for
  // 100,000 events, once per subscription from a time) is right regardless,
  // a binary search would not be.
  for (const IndexEntry& entry : entries_) {
    if (entry.receive_time_ns >= time_ns) return entry.sequence;
  }
  return stats_.last_sequence + 1;
}

std::vector<std::uint32_t> SegmentIndex::TrimmedSegments(
    absl::Span<const std::uint32_t> ordinals,
    std::uint32_t active_ordinal) const {
  const std::uint32_t newest_with_records =
      last_in_segment_.empty() ? 0 : last_in_segment_.rbegin()->first;
  std::vector<std::uint32_t> trimmed;
  for (const std::uint32_t ordinal : ordinals) {
    if (ordinal >= newest_with_records || ordinal == active_ordinal) break;
    const auto last = last_in_segment_.find(ordinal);
    if (last != last_in_segment_.end() && last->second > trimmed_through_) {
      break;
    }
    trimmed.push_back(ordinal);
  }
  return trimmed;
}

}  // namespace convocore::store
