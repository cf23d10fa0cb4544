#include "gateway/core/deduplicator.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace convocore::gateway {

// The outcome of a first delivery, shared by its ticket, its entry and the
// duplicates waiting for it. Written once, before `done` is notified.
struct ClaimTicket::State {
  absl::Notification done;
  absl::Status status;
  std::uint64_t sequence = 0;
};

struct Deduplicator::Entry {
  std::string id;
  absl::Time seen;
  // Set while the first delivery is in flight.
  std::shared_ptr<ClaimTicket::State> in_flight;
  std::uint64_t sequence = 0;
};

ClaimTicket::ClaimTicket(Deduplicator* owner, std::string id,
                         std::shared_ptr<State> state)
    : owner_(owner),
      id_(std::move(id)),
      state_(std::move(state)),
      is_new_(true) {}

ClaimTicket::ClaimTicket(std::uint64_t sequence) : sequence_(sequence) {}

ClaimTicket::ClaimTicket(ClaimTicket&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)),
      id_(std::move(other.id_)),
      state_(std::move(other.state_)),
      is_new_(other.is_new_),
      sequence_(other.sequence_) {}

ClaimTicket& ClaimTicket::operator=(ClaimTicket&& other) noexcept {
  if (this != &other) {
    Abandon();
    owner_ = std::exchange(other.owner_, nullptr);
    id_ = std::move(other.id_);
    state_ = std::move(other.state_);
    is_new_ = other.is_new_;
    sequence_ = other.sequence_;
  }
  return *this;
}

ClaimTicket::~ClaimTicket() { Abandon(); }

void ClaimTicket::Abandon() {
  if (owner_ != nullptr) {
    Settle(absl::AbortedError(
               "the first delivery of this event was abandoned unstored"),
           0);
  }
}

bool ClaimTicket::is_new() const { return is_new_; }

std::uint64_t ClaimTicket::sequence() const { return sequence_; }

void ClaimTicket::Complete(std::uint64_t sequence) {
  if (owner_ != nullptr) Settle(absl::OkStatus(), sequence);
}

void ClaimTicket::Fail(absl::Status error) {
  if (owner_ == nullptr) return;
  if (error.ok()) {
    error = absl::UnknownError("the first delivery failed without a reason");
  }
  Settle(std::move(error), 0);
}

void ClaimTicket::Settle(absl::Status status, std::uint64_t sequence) {
  Deduplicator* owner = std::exchange(owner_, nullptr);
  const bool stored = status.ok();
  if (stored) sequence_ = sequence;
  owner->Settle(id_, state_.get(), stored, sequence);
  state_->status = std::move(status);
  state_->sequence = sequence;
  state_->done.Notify();
}

Deduplicator::Deduplicator(DeduplicatorOptions options)
    : options_([&] {
        options.max_entries = std::max<std::size_t>(options.max_entries, 1);
        return options;
      }()) {}

Deduplicator::~Deduplicator() = default;

absl::StatusOr<ClaimTicket> Deduplicator::Claim(std::string_view id,
                                                absl::Time now) {
  std::shared_ptr<ClaimTicket::State> first;
  {
    absl::MutexLock lock(&mu_);
    ExpireLocked(now);
    if (auto it = index_.find(id); it != index_.end()) {
      Entry& entry = *it->second;
      if (now - entry.seen >= options_.max_age) {
        // Out of the window but not yet at the front of the expiry order.
        EraseLocked(it->second);
      } else if (entry.in_flight == nullptr) {
        return ClaimTicket(entry.sequence);
      } else {
        first = entry.in_flight;
      }
    }
    if (first == nullptr) {
      auto state = std::make_shared<ClaimTicket::State>();
      InsertLocked(Entry{std::string(id), now, state});
      return ClaimTicket(this, std::string(id), std::move(state));
    }
  }
  // A duplicate of a delivery in flight: wait for it without the lock.
  waiting_.fetch_add(1, std::memory_order_relaxed);
  const bool settled =
      first->done.WaitForNotificationWithTimeout(options_.max_wait);
  waiting_.fetch_sub(1, std::memory_order_relaxed);
  if (!settled) {
    return absl::UnavailableError(
        "the first delivery of this event is still being stored");
  }
  if (!first->status.ok()) return first->status;
  return ClaimTicket(first->sequence);
}

void Deduplicator::Restore(std::string_view id, std::uint64_t sequence,
                           absl::Time seen) {
  absl::MutexLock lock(&mu_);
  if (auto it = index_.find(id); it != index_.end()) {
    if (it->second->in_flight != nullptr) return;
    EraseLocked(it->second);
  }
  InsertLocked(Entry{std::string(id), seen, nullptr, sequence});
}

std::size_t Deduplicator::size() const {
  absl::MutexLock lock(&mu_);
  return index_.size();
}

std::size_t Deduplicator::waiting() const {
  return waiting_.load(std::memory_order_relaxed);
}

void Deduplicator::Settle(std::string_view id, const ClaimTicket::State* state,
                          bool stored, std::uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(id);
  // The entry may have been evicted, or replaced after it expired.
  if (it == index_.end() || it->second->in_flight.get() != state) return;
  if (stored) {
    it->second->in_flight = nullptr;
    it->second->sequence = sequence;
  } else {
    EraseLocked(it->second);
  }
}

void Deduplicator::ExpireLocked(absl::Time now) {
  while (!entries_.empty() && now - entries_.front().seen >= options_.max_age) {
    EraseLocked(entries_.begin());
  }
}

void Deduplicator::EraseLocked(Entries::iterator entry) {
  index_.erase(std::string_view(entry->id));
  entries_.erase(entry);
}

void Deduplicator::InsertLocked(Entry entry) {
  entries_.push_back(std::move(entry));
  index_.emplace(std::string_view(entries_.back().id),
                 std::prev(entries_.end()));
  while (index_.size() > options_.max_entries) EraseLocked(entries_.begin());
}

}  // namespace convocore::gateway
