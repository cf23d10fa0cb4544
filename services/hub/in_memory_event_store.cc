#include "services/hub/in_memory_event_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace convocore::hub {
namespace {

std::uint64_t SizeOf(const StoredEvent& event) {
  return event.event_bytes ? event.event_bytes->size() : 0;
}

}  // namespace

InMemoryEventStore::InMemoryEventStore(RetentionOptions retention, Clock clock)
    : retention_(retention), clock_(std::move(clock)) {}

absl::Status InMemoryEventStore::Append(absl::Span<const StoredEvent> batch) {
  absl::MutexLock lock(&mu_);
  std::uint64_t previous = last_sequence_;
  for (const StoredEvent& event : batch) {
    if (event.sequence <= previous) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", event.sequence, " does not follow ",
                       previous, "; nothing of the batch was stored"));
    }
    previous = event.sequence;
  }
  for (const StoredEvent& event : batch) {
    events_.push_back(event);
    retained_bytes_ += SizeOf(event);
  }
  last_sequence_ = previous;
  TrimLocked();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredEvent>> InMemoryEventStore::ReadAfter(
    std::uint64_t after_sequence, std::size_t max_events) const {
  absl::MutexLock lock(&mu_);
  TrimLocked();
  auto first = std::upper_bound(
      events_.begin(), events_.end(), after_sequence,
      [](std::uint64_t s, const StoredEvent& e) { return s < e.sequence; });
  std::size_t n = std::min<std::size_t>(max_events, events_.end() - first);
  return std::vector<StoredEvent>(first, first + n);
}

absl::StatusOr<std::uint64_t> InMemoryEventStore::FirstSequenceAtOrAfter(
    absl::Time time) const {
  absl::MutexLock lock(&mu_);
  TrimLocked();
  auto it = std::lower_bound(
      events_.begin(), events_.end(), time,
      [](const StoredEvent& e, absl::Time t) { return e.receive_time < t; });
  return it == events_.end() ? last_sequence_ + 1 : it->sequence;
}

StoreStats InMemoryEventStore::Stats() const {
  absl::MutexLock lock(&mu_);
  TrimLocked();
  StoreStats stats;
  stats.first_sequence = events_.empty() ? 0 : events_.front().sequence;
  stats.last_sequence = last_sequence_;
  stats.retained_events = events_.size();
  stats.retained_bytes = retained_bytes_;
  stats.trimmed_events_total = trimmed_total_;
  return stats;
}

void InMemoryEventStore::TrimLocked() const {
  const bool by_age = retention_.max_age > absl::ZeroDuration();
  const absl::Time oldest_kept =
      by_age ? clock_() - retention_.max_age : absl::InfinitePast();
  while (!events_.empty()) {
    const bool over =
        (retention_.max_events > 0 && events_.size() > retention_.max_events) ||
        (retention_.max_bytes > 0 && retained_bytes_ > retention_.max_bytes) ||
        (by_age && events_.front().receive_time < oldest_kept);
    if (!over) break;
    retained_bytes_ -= SizeOf(events_.front());
    events_.pop_front();
    ++trimmed_total_;
  }
}

}  // namespace convocore::hub
