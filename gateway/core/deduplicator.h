// Recognises the same webhook delivered twice within a window, so that it is
// acknowledged both times but streamed once.
//
// The first delivery of an id gets a Ticket and publishes; a second delivery
// that arrives while the first is still being stored waits for that outcome
// instead of answering early, so that a duplicate is never acknowledged for an
// event that then failed to be stored. Check-and-insert is atomic.
#ifndef GATEWAY_CORE_DEDUPLICATOR_H_
#define GATEWAY_CORE_DEDUPLICATOR_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace convocore::gateway {

struct DeduplicatorOptions {
  // An id is remembered for at most this many later ids and this long.
  std::size_t max_entries = 100'000;
  absl::Duration max_age = absl::Hours(1);
};

// Outcome of Deduplicator::Claim() for one delivery.
class ClaimTicket {
 public:
  ClaimTicket(ClaimTicket&&) noexcept;
  ClaimTicket& operator=(ClaimTicket&&) noexcept;
  // An uncompleted new ticket fails itself with kAborted on destruction, so
  // that waiting duplicates never hang.
  ~ClaimTicket();

  // True for the first delivery of an id: the caller publishes the event,
  // then calls Complete() or Fail().
  bool is_new() const;
  // For a duplicate: the sequence the first delivery was stored under.
  std::uint64_t sequence() const;

  // The first delivery was stored under `sequence`; duplicates waiting in
  // Claim() return with it.
  void Complete(std::uint64_t sequence);
  // The first delivery failed: the id is forgotten (a later delivery is new)
  // and duplicates waiting in Claim() return `error`.
  void Fail(absl::Status error);

 private:
  friend class Deduplicator;
  struct State;
  ClaimTicket(/* implementation-defined */);
  // Implementation-defined members.
};

// Thread-safe. Memory is bounded by max_entries.
class Deduplicator {
 public:
  explicit Deduplicator(DeduplicatorOptions options);

  // Atomically checks and records `id` seen at `now`. Returns a new ticket
  // for the first delivery within the window; for a duplicate, blocks until
  // the first delivery is stored or failed and returns its sequence or its
  // error.
  absl::StatusOr<ClaimTicket> Claim(std::string_view id, absl::Time now);

  // Records an id already stored (after a restart, from the durable log), so
  // that its redelivery within the window is recognised.
  void Restore(std::string_view id, std::uint64_t sequence, absl::Time seen);

  // Ids currently remembered, for metrics.
  std::size_t size() const;
};

}  // namespace convocore::gateway

#endif  // GATEWAY_CORE_DEDUPLICATOR_H_
