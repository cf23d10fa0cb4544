// Recognises the same webhook delivered twice within a window, so that it is
// acknowledged both times but streamed once.
//
// The first delivery of an id gets a Ticket and publishes; a second delivery
// that arrives while the first is still being stored waits for that outcome
// instead of answering early, so that a duplicate is never acknowledged for an
// event that then failed to be stored. Check-and-insert is atomic.
#ifndef GATEWAY_CORE_DEDUPLICATOR_H_
#define GATEWAY_CORE_DEDUPLICATOR_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace convocore::gateway {

struct DeduplicatorOptions {
  // An id is remembered for at most this many later ids and this long.
  std::size_t max_entries = 100'000;
  absl::Duration max_age = absl::Hours(1);
  // How long a duplicate waits in Claim() for the first delivery's outcome
  // before giving up with kUnavailable, so that a stuck first delivery
  // cannot hold every worker that receives its duplicates.
  absl::Duration max_wait = absl::Seconds(30);
};

class Deduplicator;

// Outcome of Deduplicator::Claim() for one delivery. A new ticket must not
// outlive the Deduplicator that issued it.
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
  // For a duplicate: the sequence the first delivery was stored under. For a
  // new ticket: the sequence given to Complete(), 0 before.
  std::uint64_t sequence() const;

  // The first delivery was stored under `sequence`; duplicates waiting in
  // Claim() return with it. Only the first Complete() or Fail() of a new
  // ticket counts; later calls, and calls on a duplicate's ticket, do nothing.
  void Complete(std::uint64_t sequence);
  // The first delivery failed: the id is forgotten (a later delivery is new)
  // and duplicates waiting in Claim() return `error` (kUnknown if `error` is
  // OK, which is a caller's bug).
  void Fail(absl::Status error);

 private:
  friend class Deduplicator;
  struct State;

  // The ticket of the first delivery of `id`.
  ClaimTicket(Deduplicator* owner, std::string id,
              std::shared_ptr<State> state);
  // The ticket of a duplicate of a delivery stored under `sequence`.
  explicit ClaimTicket(std::uint64_t sequence);

  void Settle(absl::Status status, std::uint64_t sequence);
  // Settles an unsettled new ticket with kAborted.
  void Abandon();

  // Set while a new ticket is not yet settled.
  Deduplicator* owner_ = nullptr;
  std::string id_;
  std::shared_ptr<State> state_;
  bool is_new_ = false;
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
  // for the first delivery within the window; for a duplicate, blocks until
  // the first delivery is stored or failed and returns its sequence or its
  // error (kAborted if its ticket was dropped unsettled, kUnavailable after
  // max_wait).
  absl::StatusOr<ClaimTicket> Claim(std::string_view id, absl::Time now);

  // Records an id already stored (after a restart, from the durable log), so
  // that its redelivery within the window is recognised. An id whose first
  // delivery is in flight is left alone.
  void Restore(std::string_view id, std::uint64_t sequence, absl::Time seen);

  // Ids currently remembered, for metrics.
  std::size_t size() const;
  // Duplicates currently blocked in Claim(), for metrics.
  std::size_t waiting() const;

 private:
  friend class ClaimTicket;
  struct Entry;
  using Entries = std::list<Entry>;

  // Called by a new ticket when it is settled.
  void Settle(std::string_view id, const ClaimTicket::State* state, bool stored,
              std::uint64_t sequence);
  void ExpireLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(Entries::iterator entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void InsertLocked(Entry entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const DeduplicatorOptions options_;
  mutable absl::Mutex mu_;
  // Oldest first; expiry and eviction take from the front.
  Entries entries_ ABSL_GUARDED_BY(mu_);
  // Keys view the ids held by `entries_`.
  absl::flat_hash_map<std::string_view, Entries::iterator> index_
      ABSL_GUARDED_BY(mu_);
  std::atomic<std::size_t> waiting_{0};
};

}  // namespace convocore::gateway

#endif  // GATEWAY_CORE_DEDUPLICATOR_H_
