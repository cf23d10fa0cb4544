// A test EventStore: the in-memory store, whose Append can be made to fail
// (UNAVAILABLE, as a full disk) or to block, and which records the size of
// every batch it was given. For tests of the hub and of what publishes
// through it.
#ifndef TESTS_SERVICES_HUB_CONTROLLED_STORE_H_
#define TESTS_SERVICES_HUB_CONTROLLED_STORE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/hub/event_store.h"
#include "services/hub/in_memory_event_store.h"

namespace convocore::hub::testing {

class ControlledStore : public EventStore {
 public:
  explicit ControlledStore(RetentionOptions retention = {})
      : inner_(retention) {}

  absl::Status Append(absl::Span<const StoredEvent> batch) override
      ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      batch_sizes_.push_back(batch.size());
      mu_.Await(absl::Condition(
          +[](bool* blocked) { return !*blocked; }, &blocked_));
      if (fail_) return absl::UnavailableError("disk full");
    }
    return inner_.Append(batch);
  }
  absl::StatusOr<std::vector<StoredEvent>> ReadAfter(
      std::uint64_t after, std::size_t max) const override {
    return inner_.ReadAfter(after, max);
  }
  absl::StatusOr<std::uint64_t> FirstSequenceAtOrAfter(
      absl::Time time) const override {
    return inner_.FirstSequenceAtOrAfter(time);
  }
  StoreStats Stats() const override { return inner_.Stats(); }
  absl::Status Health() const override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return fail_ ? absl::UnavailableError("disk full") : absl::OkStatus();
  }

  void SetFail(bool fail) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    fail_ = fail;
  }
  // While blocked, Append() waits (after recording its batch's size).
  void SetBlocked(bool blocked) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    blocked_ = blocked;
  }
  std::vector<std::size_t> batch_sizes() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return batch_sizes_;
  }
  InMemoryEventStore& inner() { return inner_; }

 private:
  InMemoryEventStore inner_;
  mutable absl::Mutex mu_;
  bool fail_ ABSL_GUARDED_BY(mu_) = false;
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::size_t> batch_sizes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace convocore::hub::testing

#endif  // TESTS_SERVICES_HUB_CONTROLLED_STORE_H_
