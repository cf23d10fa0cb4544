#include "gateway/core/deduplicator.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "xxhash.h"

namespace convocore::gateway {

// The outcome of a first delivery, shared by its ticket, its entry and its
// pending duplicates.
struct ClaimTicket::State {
  absl::Mutex mu;
  bool settled ABSL_GUARDED_BY(mu) = false;
  absl::Status status ABSL_GUARDED_BY(mu);
  std::uint64_t sequence ABSL_GUARDED_BY(mu) = 0;
  // Pending duplicates' callbacks, called once settled.
  std::vector<OutcomeCallback> waiters ABSL_GUARDED_BY(mu);
};

ClaimTicket::ClaimTicket(Deduplicator* owner, std::string id,
                         std::shared_ptr<State> state)
    : kind_(Kind::kNew),
      owner_(owner),
      id_(std::move(id)),
      state_(std::move(state)) {}

ClaimTicket::ClaimTicket(std::uint64_t sequence)
    : kind_(Kind::kStored), sequence_(sequence) {}

ClaimTicket::ClaimTicket(Deduplicator* owner, std::shared_ptr<State> first)
    : kind_(Kind::kPending), owner_(owner), state_(std::move(first)) {}

ClaimTicket::ClaimTicket(ClaimTicket&& other) noexcept
    : kind_(other.kind_),
      owner_(std::exchange(other.owner_, nullptr)),
      id_(std::move(other.id_)),
      state_(std::move(other.state_)),
      sequence_(other.sequence_) {}

ClaimTicket& ClaimTicket::operator=(ClaimTicket&& other) noexcept {
  if (this != &other) {
    Abandon();
    kind_ = other.kind_;
    owner_ = std::exchange(other.owner_, nullptr);
    id_ = std::move(other.id_);
    state_ = std::move(other.state_);
    sequence_ = other.sequence_;
  }
  return *this;
}

ClaimTicket::~ClaimTicket() { Abandon(); }

void ClaimTicket::Abandon() {
  if (kind_ == Kind::kNew && owner_ != nullptr) {
    Settle(absl::AbortedError(
               "the first delivery of this event was abandoned unstored"),
           0);
  }
}

bool ClaimTicket::is_new() const { return kind_ == Kind::kNew; }

bool ClaimTicket::is_pending() const { return kind_ == Kind::kPending; }

std::uint64_t ClaimTicket::sequence() const { return sequence_; }

void ClaimTicket::Complete(std::uint64_t sequence) {
  if (kind_ == Kind::kNew && owner_ != nullptr) {
    Settle(absl::OkStatus(), sequence);
  }
}

void ClaimTicket::Fail(absl::Status error) {
  if (kind_ != Kind::kNew || owner_ == nullptr) return;
  if (error.ok()) {
    error = absl::UnknownError("the first delivery failed without a reason");
  }
  Settle(std::move(error), 0);
}

void ClaimTicket::Settle(absl::Status status, std::uint64_t sequence) {
  Deduplicator* owner = std::exchange(owner_, nullptr);
  const bool stored = status.ok();
  if (stored) sequence_ = sequence;
  // The window first, so that a delivery claimed from now on sees the
  // outcome there; then the pending duplicates, outside every lock.
  owner->Settle(id_, state_.get(), stored, sequence);
  std::vector<OutcomeCallback> waiters;
  {
    absl::MutexLock lock(&state_->mu);
    state_->settled = true;
    state_->status = status;
    state_->sequence = sequence;
    waiters.swap(state_->waiters);
  }
  for (OutcomeCallback& waiter : waiters) {
    if (stored) {
      std::move(waiter)(sequence);
    } else {
      std::move(waiter)(status);
    }
  }
}

void ClaimTicket::WhenFirstSettled(OutcomeCallback done) && {
  switch (kind_) {
    case Kind::kStored:
      std::move(done)(sequence_);
      return;
    case Kind::kNew:
      std::move(done)(absl::FailedPreconditionError(
          "a first delivery has no first delivery to wait for"));
      return;
    case Kind::kPending:
      break;
  }
  Deduplicator* owner = std::exchange(owner_, nullptr);
  if (owner == nullptr) {
    std::move(done)(absl::FailedPreconditionError(
        "this pending ticket's outcome was already asked for"));
    return;
  }
  std::atomic<std::size_t>* waiting = &owner->waiting_;
  absl::StatusOr<std::uint64_t> outcome;
  {
    absl::MutexLock lock(&state_->mu);
    if (!state_->settled) {
      waiting->fetch_add(1, std::memory_order_relaxed);
      state_->waiters.push_back(
          [waiting, done = std::move(done)](
              absl::StatusOr<std::uint64_t> result) mutable {
            waiting->fetch_sub(1, std::memory_order_relaxed);
            std::move(done)(std::move(result));
          });
      return;
    }
    if (state_->status.ok()) {
      outcome = state_->sequence;
    } else {
      outcome = state_->status;
    }
  }
  std::move(done)(std::move(outcome));
}

namespace {

// The arrival order starts with room for this many keys (or the window, if
// smaller) and doubles as needed; the window's records likewise.
constexpr std::size_t kInitialReserve = 1 << 20;

// Record::sequence of an id whose first delivery is in flight; no stored
// sequence comes near it.
constexpr std::uint64_t kInFlight = ~std::uint64_t{0};

}  // namespace

Deduplicator::Deduplicator(DeduplicatorOptions options)
    : options_([&] {
        options.max_entries = std::max<std::size_t>(options.max_entries, 1);
        return options;
      }()) {
  // Sized once for the window, so that filling it does not reallocate the
  // table again and again on the way up.
  const std::size_t reserve =
      std::min<std::size_t>(options_.max_entries, kInitialReserve);
  records_.reserve(reserve);
  order_.resize(reserve);
}

Deduplicator::~Deduplicator() = default;

Deduplicator::Key Deduplicator::KeyOf(std::string_view id) {
  const XXH128_hash_t hash = XXH3_128bits(id.data(), id.size());
  return absl::MakeUint128(hash.high64, hash.low64);
}

ClaimTicket Deduplicator::Claim(std::string_view id, absl::Time now) {
  const Key key = KeyOf(id);
  absl::MutexLock lock(&mu_);
  ExpireLocked(now);
  if (auto it = records_.find(key); it != records_.end()) {
    const Record& record = it->second;
    if (now - absl::FromUnixNanos(record.seen_unix_ns) >= options_.max_age) {
      // Out of the window but not yet at the front of the arrival order.
      EraseLocked(key);
    } else if (record.sequence != kInFlight) {
      return ClaimTicket(record.sequence);
    } else {
      return ClaimTicket(this, in_flight_.at(key));
    }
  }
  auto state = std::make_shared<ClaimTicket::State>();
  InsertLocked(key, Record{.sequence = kInFlight,
                           .seen_unix_ns = absl::ToUnixNanos(now)});
  in_flight_[key] = state;
  return ClaimTicket(this, std::string(id), std::move(state));
}

void Deduplicator::Restore(std::string_view id, std::uint64_t sequence,
                           absl::Time seen) {
  const Key key = KeyOf(id);
  absl::MutexLock lock(&mu_);
  if (in_flight_.contains(key)) return;
  InsertLocked(key, Record{.sequence = sequence,
                           .seen_unix_ns = absl::ToUnixNanos(seen)});
}

std::size_t Deduplicator::size() const {
  absl::MutexLock lock(&mu_);
  return records_.size();
}

std::size_t Deduplicator::waiting() const {
  return waiting_.load(std::memory_order_relaxed);
}

void Deduplicator::Settle(std::string_view id, const ClaimTicket::State* state,
                          bool stored, std::uint64_t sequence) {
  const Key key = KeyOf(id);
  absl::MutexLock lock(&mu_);
  auto it = in_flight_.find(key);
  // The record may have been evicted, or replaced after it expired.
  if (it == in_flight_.end() || it->second.get() != state) return;
  in_flight_.erase(it);
  if (stored) {
    records_.at(key).sequence = sequence;
  } else {
    records_.erase(key);
  }
}

void Deduplicator::ExpireLocked(absl::Time now) {
  const std::int64_t expired_before = absl::ToUnixNanos(now - options_.max_age);
  while (order_size_ > 0) {
    const auto it = records_.find(order_[order_start_]);
    if (it != records_.end() && it->second.position == oldest_position_ &&
        it->second.seen_unix_ns > expired_before) {
      return;
    }
    PopOldestLocked();
  }
}

void Deduplicator::EraseLocked(const Key& key) {
  records_.erase(key);
  in_flight_.erase(key);
}

void Deduplicator::InsertLocked(const Key& key, Record record) {
  if (order_size_ == order_.size()) MakeRoomLocked();
  record.position = oldest_position_ + order_size_;
  order_[(order_start_ + order_size_) % order_.size()] = key;
  ++order_size_;
  // Replacing a record leaves its old key in the order, to be skipped.
  records_[key] = record;
  while (records_.size() > options_.max_entries) PopOldestLocked();
}

void Deduplicator::MakeRoomLocked() {
  // Mostly keys of erased or replaced records (failed deliveries, say, while
  // the store is down): dropped in place, so that they never push live ids
  // out of the window. Otherwise the ring doubles.
  const bool compact = records_.size() <= order_size_ / 2;
  std::vector<Key> next(compact ? order_.size()
                                : std::max<std::size_t>(order_.size() * 2, 16));
  // New positions start past every old one, so that no leftover matches.
  const std::uint64_t base = oldest_position_ + order_size_;
  std::size_t kept = 0;
  for (std::size_t i = 0; i < order_size_; ++i) {
    const Key& key = order_[(order_start_ + i) % order_.size()];
    const auto it = records_.find(key);
    if (it == records_.end() || it->second.position != oldest_position_ + i) {
      continue;
    }
    it->second.position = base + kept;
    next[kept++] = key;
  }
  order_ = std::move(next);
  order_start_ = 0;
  order_size_ = kept;
  oldest_position_ = base;
}

void Deduplicator::PopOldestLocked() {
  const Key& key = order_[order_start_];
  const auto it = records_.find(key);
  if (it != records_.end() && it->second.position == oldest_position_) {
    EraseLocked(key);
  }
  order_start_ = (order_start_ + 1) % order_.size();
  --order_size_;
  ++oldest_position_;
}

}  // namespace convocore::gateway
