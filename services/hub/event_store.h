// The storage seam behind the event hub: where accepted events are kept for
// replay, and how durable they are when the hub acknowledges them.
//
// Two implementations: an in-memory window (services/hub, `--store=memory`)
// and the durable embedded log (services/store, `--store=disk`, the default).
// The hub does group commit itself: it batches the events published together
// and calls Append() once per batch, so an implementation makes one batch
// durable per call (one fsync for the disk store).
#ifndef SERVICES_HUB_EVENT_STORE_H_
#define SERVICES_HUB_EVENT_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace convocore::hub {

struct StoredEvent {
  std::uint64_t sequence = 0;
  // The gateway's receive time, for `from_time` start positions and age
  // retention.
  absl::Time receive_time;
  // The event's de-duplication id, so that a restart can restore the
  // de-duplication window without parsing every event.
  std::string id;
  // The serialized convocore.webhooks.v1.Event, `sequence` set. Shared, never
  // copied: every subscriber's write uses these bytes.
  std::shared_ptr<const std::string> event_bytes;
};

// Retention bounds; an event is trimmed once any bound is exceeded. Zero
// means no bound of that kind.
struct RetentionOptions {
  std::size_t max_events = 100'000;
  std::size_t max_bytes = 64 << 20;
  absl::Duration max_age = absl::ZeroDuration();
};

struct StoreStats {
  std::uint64_t first_sequence = 0;  // oldest retained; 0 when empty
  std::uint64_t last_sequence = 0;   // newest ever stored; survives trimming
  std::uint64_t retained_events = 0;
  std::uint64_t retained_bytes = 0;
  std::uint64_t trimmed_events_total = 0;
};

// Thread-safe. Append() is called by one committer at a time, in sequence
// order; reads may run concurrently with it.
class EventStore {
 public:
  virtual ~EventStore() = default;

  // Stores a batch whose sequences are strictly increasing and greater than
  // every stored one, all or nothing, durable per the store's mode on
  // return. kUnavailable when the store cannot persist now (disk full,
  // read-only, closed); the batch is then not stored.
  virtual absl::Status Append(absl::Span<const StoredEvent> batch) = 0;

  // Up to `max_events` retained events with sequence > `after_sequence`, in
  // order. An `after_sequence` whose successor was already trimmed is not an
  // error here: the caller compares with Stats().first_sequence.
  virtual absl::StatusOr<std::vector<StoredEvent>> ReadAfter(
      std::uint64_t after_sequence, std::size_t max_events) const = 0;

  // The sequence of the first retained event received at or after `time`;
  // Stats().last_sequence + 1 when there is none.
  virtual absl::StatusOr<std::uint64_t> FirstSequenceAtOrAfter(
      absl::Time time) const = 0;

  virtual StoreStats Stats() const = 0;

  // OK while the store can persist; the reason otherwise (readiness).
  virtual absl::Status Health() const = 0;

  // The newest sequence the store's engine holds, asked of the engine now.
  // Differs from Stats().last_sequence only for a store shared by several
  // gateways (JetStream), whose engine may hold events this gateway has not
  // read yet: a subscriber may resume after any of them.
  virtual absl::StatusOr<std::uint64_t> NewestSequence() const {
    return Stats().last_sequence;
  }

  // Stops background work that calls into the hub (a shared store's
  // reader); EventHub::Shutdown() calls it first. Idempotent.
  virtual void Close() {}
};

}  // namespace convocore::hub

#endif  // SERVICES_HUB_EVENT_STORE_H_
