// Recognises the same webhook delivered twice within a window, so that it is
// acknowledged both times but streamed once.
//
// The first delivery of an id gets a new ticket and publishes; a second
// delivery that arrives while the first is still being stored gets a pending
// ticket and learns the first's outcome through a callback, so that a
// duplicate is never acknowledged for an event that then failed to be
// stored, and no thread waits for it. Check-and-insert is atomic.
//
// Ids are remembered by their 128-bit XXH3 hash, in fixed-size records with
// no allocation per id (about 70 bytes each): a window of 100,000 ids takes
// about 7 MiB, and its steady turnover does not fragment the heap. Two different ids share
// a hash with a probability of about 2^-128 per pair, so that mistaking a new
// webhook for a duplicate within a window of 10^5 ids has odds below 10^-28.
#ifndef GATEWAY_CORE_DEDUPLICATOR_H_
#define GATEWAY_CORE_DEDUPLICATOR_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace convocore::gateway {

struct DeduplicatorOptions {
  // An id is remembered for at most this many later ids and this long.
  std::size_t max_entries = 100'000;
  absl::Duration max_age = absl::Hours(1);
};

class Deduplicator;

// Outcome of Deduplicator::Claim() for one delivery: new (the first
// delivery), stored (a duplicate of a stored one) or pending (a duplicate of
// one still being stored). A ticket must not outlive the Deduplicator that
// issued it.
class ClaimTicket {
 public:
  // The first delivery's sequence once stored, or why it was not.
  using OutcomeCallback =
      absl::AnyInvocable<void(absl::StatusOr<std::uint64_t>) &&>;

  ClaimTicket(ClaimTicket&&) noexcept;
  ClaimTicket& operator=(ClaimTicket&&) noexcept;
  // An unsettled new ticket fails itself with kAborted on destruction, so
  // that pending duplicates are always answered.
  ~ClaimTicket();

  // True for the first delivery of an id: the caller publishes the event,
  // then calls Complete() or Fail().
  bool is_new() const;
  // True for a duplicate whose first delivery is still being stored: its
  // outcome comes through WhenFirstSettled().
  bool is_pending() const;
  // For a stored duplicate: the sequence the first delivery was stored
  // under. For a new ticket: the sequence given to Complete(), 0 before. 0
  // for a pending one.
  std::uint64_t sequence() const;

  // The first delivery was stored under `sequence`; pending duplicates learn
  // it. Only the first Complete() or Fail() of a new ticket counts; later
  // calls, and calls on a duplicate's ticket, do nothing.
  void Complete(std::uint64_t sequence);
  // The first delivery failed: the id is forgotten (a later delivery is new)
  // and pending duplicates get `error` (kUnknown if `error` is OK, which is a
  // caller's bug): their copies are not stored either.
  void Fail(absl::Status error);

  // For a pending ticket: calls `done` exactly once with the first
  // delivery's outcome (kAborted if its ticket was dropped unsettled) - at
  // once on this thread if it is already known, otherwise on the thread that
  // settles the first delivery, with no lock of the Deduplicator held.
  // `done` must not block. Called on a ticket that is not pending, it calls
  // `done` at once: with the sequence of a stored duplicate, with
  // kFailedPrecondition for a new ticket (a caller's bug).
  void WhenFirstSettled(OutcomeCallback done) &&;

 private:
  friend class Deduplicator;
  struct State;
  enum class Kind { kNew, kStored, kPending };

  // The ticket of the first delivery of `id`.
  ClaimTicket(Deduplicator* owner, std::string id,
              std::shared_ptr<State> state);
  // The ticket of a duplicate of a delivery stored under `sequence`.
  explicit ClaimTicket(std::uint64_t sequence);
  // The ticket of a duplicate of the delivery in flight whose outcome is
  // `first`.
  ClaimTicket(Deduplicator* owner, std::shared_ptr<State> first);

  void Settle(absl::Status status, std::uint64_t sequence);
  // Settles an unsettled new ticket with kAborted.
  void Abandon();

  Kind kind_ = Kind::kStored;
  // A new ticket: set until it is settled. A pending one: set until
  // WhenFirstSettled().
  Deduplicator* owner_ = nullptr;
  std::string id_;
  std::shared_ptr<State> state_;
  std::uint64_t sequence_ = 0;
};

// Thread-safe. Memory is bounded by max_entries.
class Deduplicator {
 public:
  explicit Deduplicator(DeduplicatorOptions options);
  Deduplicator(const Deduplicator&) = delete;
  Deduplicator& operator=(const Deduplicator&) = delete;
  ~Deduplicator();

  // Atomically checks and records `id` seen at `now`. Returns a new ticket
  // for the first delivery within the window, a stored ticket with its
  // sequence for a duplicate of a stored delivery, and a pending ticket for
  // a duplicate of a delivery still being stored. Never waits.
  ClaimTicket Claim(std::string_view id, absl::Time now);

  // Records an id already stored (after a restart, from the durable log), so
  // that its redelivery within the window is recognised. An id whose first
  // delivery is in flight is left alone.
  void Restore(std::string_view id, std::uint64_t sequence, absl::Time seen);

  // Ids currently remembered, for metrics.
  std::size_t size() const;
  // Pending duplicates waiting in WhenFirstSettled() for their first
  // delivery's outcome, for metrics.
  std::size_t waiting() const;

 private:
  friend class ClaimTicket;
  using Key = absl::uint128;
  // What is remembered of an id.
  struct Record {
    // The stored event's sequence, or kInFlight (deduplicator.cc) while the
    // first delivery is in flight, whose State is then in in_flight_.
    std::uint64_t sequence = 0;
    // Where its key is in the arrival order (see order_); a key found at
    // another position there is a leftover of an erased or replaced record.
    std::uint64_t position = 0;
    std::int64_t seen_unix_ns = 0;
  };

  static Key KeyOf(std::string_view id);

  // Called by a new ticket when it is settled.
  void Settle(std::string_view id, const ClaimTicket::State* state, bool stored,
              std::uint64_t sequence);
  void ExpireLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(const Key& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void InsertLocked(const Key& key, Record record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes room in the full arrival order: drops the leftovers, or doubles.
  void MakeRoomLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the oldest key of the arrival order, and its record unless that
  // was erased or replaced since.
  void PopOldestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const DeduplicatorOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<Key, Record> records_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Key, std::shared_ptr<ClaimTicket::State>> in_flight_
      ABSL_GUARDED_BY(mu_);
  // Keys in arrival order, oldest first, as a ring buffer: expiry and
  // eviction take from the front. The key at ring index i has position
  // oldest_position_ + i.
  std::vector<Key> order_ ABSL_GUARDED_BY(mu_);
  std::size_t order_start_ ABSL_GUARDED_BY(mu_) = 0;
  std::size_t order_size_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t oldest_position_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<std::size_t> waiting_{0};
};

}  // namespace convocore::gateway

#endif  // GATEWAY_CORE_DEDUPLICATOR_H_
