// The in-memory EventStore (`--store=memory`): a bounded window of recent
// events for replay, lost on restart. "Durable" on Append's return means
// "retained in this process".
#ifndef SERVICES_HUB_IN_MEMORY_EVENT_STORE_H_
#define SERVICES_HUB_IN_MEMORY_EVENT_STORE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/hub/event_store.h"

namespace convocore::hub {

// Thread-safe. Retention is applied on every call, so that age-bounded events
// go even when nothing new arrives. Expects receive times not to decrease
// along sequences (EventHub guarantees it), so that FirstSequenceAtOrAfter is
// a binary search.
class InMemoryEventStore final : public EventStore {
 public:
  using Clock = std::function<absl::Time()>;

  explicit InMemoryEventStore(RetentionOptions retention,
                              Clock clock = &absl::Now);

  // INVALID_ARGUMENT for a batch that is not strictly increasing above every
  // stored sequence (a caller bug; nothing is stored).
  absl::Status Append(absl::Span<const StoredEvent> batch) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<StoredEvent>> ReadAfter(
      std::uint64_t after_sequence, std::size_t max_events) const override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::uint64_t> FirstSequenceAtOrAfter(
      absl::Time time) const override ABSL_LOCKS_EXCLUDED(mu_);
  StoreStats Stats() const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Health() const override { return absl::OkStatus(); }

 private:
  // Drops events from the front while any retention bound is exceeded.
  void TrimLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RetentionOptions retention_;
  const Clock clock_;

  // Trimming by age happens in const readers too, hence mutable.
  mutable absl::Mutex mu_;
  mutable std::deque<StoredEvent> events_ ABSL_GUARDED_BY(mu_);
  mutable std::uint64_t retained_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  mutable std::uint64_t trimmed_total_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t last_sequence_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace convocore::hub

#endif  // SERVICES_HUB_IN_MEMORY_EVENT_STORE_H_
