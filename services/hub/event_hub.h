// The event hub: sequences accepted events, makes them durable through the
// EventStore with group commit, and fans them out to subscribers, each with
// its own filter, start position and bounded queue. Plain C++; the gRPC
// service (services/grpc) is a thin adapter over Subscribe().
//
// Guarantees:
// - Acknowledged events get consecutive, strictly increasing sequences,
//   continuing after the store's last_sequence; a sequence is given to an
//   event only as its batch is written, and a batch the store failed to
//   persist uses none up, so failed writes leave no gap.
// - An acknowledged event is in the store and queued for every matching live
//   subscriber, in sequence order; an unacknowledged one is never streamed.
// - Each event is serialized once; every subscriber's Delivery shares those
//   bytes.
// - A subscriber receives exactly its matching events after its start
//   position, in order, with no gap and no duplicate, across the switch from
//   catch-up (store reads) to live fan-out; or its subscription ends with a
//   status that says why and where to resume.
// - Publishing never waits for a subscriber: one whose queue exceeds the
//   limit is cut off with RESOURCE_EXHAUSTED.
// - Group commit runs on the hub's own committer thread: a publisher hands
//   its event over and is called back once the batch holding it is durable,
//   so that a batch can hold every event that arrived during the previous
//   fsync, however few threads publish.
#ifndef SERVICES_HUB_EVENT_HUB_H_
#define SERVICES_HUB_EVENT_HUB_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>  // std::call_once
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/events.pb.h"
#include "services/hub/event_filter.h"
#include "services/hub/event_store.h"
#include "services/hub/resume_info.h"

namespace convocore::hub {

struct HubOptions {
  // Events a subscriber may have queued but not yet taken; one more and it
  // is cut off with RESOURCE_EXHAUSTED. During catch-up from the store the
  // queue is filled up to this bound and no further (no cut-off).
  std::size_t subscriber_queue_limit = 4096;
  // Events read from the store per catch-up step; steps of different
  // subscribers take turns on the hub's one catch-up thread.
  std::size_t catch_up_chunk = 512;
  // Upper bound on the events of one EventStore::Append (group commit).
  std::size_t max_batch_events = 1024;
  // Called on the committer after each EventStore::Append, successful or
  // not, with how long it took and how many events it held: the store's
  // write (and fsync) latency is most of a durable acknowledgement's, so an
  // operator needs to see it. Must be cheap and must not call the hub.
  std::function<void(absl::Duration took, std::size_t events)> on_append =
      nullptr;
  // The store's engine assigns sequences (the JetStream store, shared by
  // several gateways): PublishAsync() is refused, and events arrive through
  // Replicate() with the sequences the engine gave them.
  bool external_sequences = false;
};

struct HubStats {
  // Newest acknowledged sequence (0 before the first), and the store's
  // retention window.
  std::uint64_t last_sequence = 0;
  std::uint64_t first_sequence = 0;  // oldest retained; 0 when none
  std::uint64_t retained_events = 0;
  std::uint64_t retained_bytes = 0;
  std::uint64_t trimmed_total = 0;
  // Publishing since this hub started.
  std::uint64_t published_total = 0;         // acknowledged
  std::uint64_t publish_failures_total = 0;  // refused: store or shutdown
  std::uint64_t commit_batches_total = 0;    // Append calls that succeeded
  std::uint64_t pending_publishes = 0;  // waiting for the batch being written
  // Subscriptions.
  std::uint64_t subscribers_open = 0;  // neither ended nor cancelled
  std::uint64_t subscribers_catching_up = 0;
  std::uint64_t subscribers_cut_off_total = 0;  // fell behind their bound
  // The longest subscriber queue now: how close the slowest is to its bound.
  std::uint64_t subscriber_queue_max = 0;
  // Queued events discarded when a subscriber was cut off or the hub shut
  // down; the subscriber gets them again by resuming.
  std::uint64_t events_dropped_total = 0;
};

// Where a subscription starts.
struct StartPosition {
  enum class Kind { kNow, kAfterSequence, kOldest, kFromTime };
  Kind kind = Kind::kNow;
  std::uint64_t after_sequence = 0;  // kAfterSequence
  absl::Time time;                   // kFromTime

  static StartPosition Now() { return {}; }
  static StartPosition AfterSequence(std::uint64_t sequence) {
    return {Kind::kAfterSequence, sequence, absl::Time()};
  }
  static StartPosition Oldest() { return {Kind::kOldest, 0, absl::Time()}; }
  static StartPosition FromTime(absl::Time time) {
    return {Kind::kFromTime, 0, time};
  }
};

struct SubscribeOptions {
  EventFilter filter;
  StartPosition start;
};

// Turns an event's bytes into what a transport writes (for the gRPC service,
// one slice holding the whole SubscribeResponse).
using EventEncoder =
    std::shared_ptr<const void> (*)(const std::string& event_bytes);

// One event as subscribers get it: immutable, one per event, shared by
// every subscriber's queue.
class Delivery {
 public:
  Delivery(std::uint64_t sequence,
           std::shared_ptr<const std::string> event_bytes)
      : sequence(sequence), event_bytes(std::move(event_bytes)) {}
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;

  // encoder(*event_bytes), computed by the first subscriber that asks and
  // shared by all the others, so that a transport frames each event once,
  // on its own threads, whatever the number of subscribers. Null when
  // another encoder got there first. Thread-safe.
  const void* Encoded(EventEncoder encoder) const {
    std::call_once(encode_once_, [&] {
      encoder_ = encoder;
      encoded_ = encoder(*event_bytes);
    });
    return encoder_ == encoder ? encoded_.get() : nullptr;
  }

  const std::uint64_t sequence;
  // The serialized convocore.webhooks.v1.Event, shared with the store.
  const std::shared_ptr<const std::string> event_bytes;

 private:
  mutable std::once_flag encode_once_;
  mutable EventEncoder encoder_ = nullptr;
  mutable std::shared_ptr<const void> encoded_;
};

// The bytes of an event with `sequence` set, from `body`, its serialization
// without one: field 1 comes first in canonical order, so prepending its tag
// and varint yields exactly what SerializeAsString() would with the field
// set. Every store's events carry these bytes.
std::shared_ptr<const std::string> WithSequence(std::uint64_t sequence,
                                                absl::string_view body);

// The status that ends a subscription: `reason`, then the last sequence sent
// and how to resume after it, in the message and as a ResumeInfo detail
// (resume_info.h). Every end of a stream uses this wording.
absl::Status SubscriptionEndStatus(absl::StatusCode code,
                                   absl::string_view reason,
                                   const ResumePoint& at);

// Implemented by the consumer of a subscription (the gRPC reactor).
class SubscriptionSink {
 public:
  virtual ~SubscriptionSink() = default;

  // Something arrived since Subscription::Next() last returned nothing, or
  // the subscription ended: call Next(). Called on a publisher's thread or
  // the hub's catch-up thread with hub locks held, so it must not block and
  // must call nothing of the hub but Next(). Never called once Cancel() has
  // returned.
  virtual void OnReady() = 0;
};

class EventHub;

// A live subscription; Cancel()led on destruction. Must be destroyed before
// the hub that made it.
class Subscription {
 public:
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription();

  // The next queued event; null when none is queued (the sink's OnReady()
  // follows when one is); or why the subscription ended:
  // RESOURCE_EXHAUSTED (fell behind), OUT_OF_RANGE (fell behind the store's
  // retention while catching up), UNAVAILABLE (hub shut down, store read
  // failed), CANCELLED (Cancel()). Every message names the sequence to
  // resume after, and every status carries it as a ResumeInfo detail. `more`,
  // when given, tells whether another event is queued behind the one returned.
  // Thread-safe; never blocks on I/O.
  absl::StatusOr<std::shared_ptr<const Delivery>> Next(bool* more = nullptr);

  // Every event matching the filter with a sequence up to this one has been
  // returned by Next() (or was before the start position): a consumer that
  // keeps a position may count the non-matching ones below it as passed.
  // Once the subscription ended: the last sequence Next() returned (or the
  // start), since an end drops what was queued. Thread-safe.
  std::uint64_t ConsideredThrough() const;

  // Ends the subscription and frees its queue at once; idempotent. Must not
  // be called from inside OnReady().
  void Cancel();

  // The sequence the subscription started after (its resolved start
  // position).
  std::uint64_t start_after() const { return start_after_; }

  // The hub's side of a subscription; defined in event_hub.cc.
  struct State;

 private:
  friend class EventHub;
  Subscription(EventHub* hub, std::shared_ptr<State> state,
               std::uint64_t start_after);

  EventHub* const hub_;
  const std::shared_ptr<State> state_;
  const std::uint64_t start_after_;
};

// Told the outcome of one PublishAsync(): the event's sequence once durable
// and queued for its subscribers, or why it was not stored.
using PublishCallback =
    absl::AnyInvocable<void(absl::StatusOr<std::uint64_t>) &&>;

// Thread-safe.
class EventHub {
 public:
  // Reads the store's stats once, to continue its sequence; starts the
  // catch-up and committer threads.
  static absl::StatusOr<std::unique_ptr<EventHub>> Create(
      std::unique_ptr<EventStore> store, HubOptions options = {});
  ~EventHub();  // Shutdown()

  // Sequences `event` (its `sequence` field is overwritten; a missing
  // `receive_time` is set to now), serializes it once and appends it with
  // the events published concurrently in one EventStore::Append, then calls
  // `done` with the sequence once the store made it durable and it is queued
  // for the matching subscribers; or with UNAVAILABLE when the store cannot
  // persist it or the hub is shutting down (the event is then not
  // acknowledged and never streamed), INVALID_ARGUMENT when it cannot be
  // serialized. Never waits for the store or a subscriber.
  //
  // `done` runs exactly once: on the calling thread before PublishAsync()
  // returns when the event is refused at once, otherwise on the hub's
  // committer thread, in sequence order, with no hub lock held. It must be
  // quick and must not block (the next batch waits for it); it may publish.
  void PublishAsync(convocore::webhooks::v1::Event event, PublishCallback done)
      ABSL_LOCKS_EXCLUDED(mu_);

  // With external_sequences only: takes events the engine already stored
  // and sequenced, in increasing sequence order, into the store's window
  // (EventStore::Append) and fans them out, on the calling thread, before it
  // returns. Events at or below the newest one held are skipped, so that a
  // reader that re-reads after a reconnect does no harm; a jump in
  // sequences is taken as it is (the engine's retention or deletes), and a
  // subscriber that needed the missing ones sees it as a gap (OUT_OF_RANGE).
  // `keys[k]` is `events[k]`'s filter key. UNAVAILABLE after Shutdown() or
  // when the store refuses the batch; FAILED_PRECONDITION without
  // external_sequences. One caller at a time.
  absl::Status Replicate(std::vector<StoredEvent> events,
                         std::vector<EventKey> keys)
      ABSL_LOCKS_EXCLUDED(replicate_mu_, mu_, fan_mu_);

  // PublishAsync() and wait for its outcome; for callers that have a thread
  // to spare (tests, tools).
  absl::StatusOr<std::uint64_t> Publish(convocore::webhooks::v1::Event event)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Registers `sink` for the events matching `options.filter` after
  // `options.start`. INVALID_ARGUMENT for an after_sequence beyond the newest
  // acknowledged sequence; OUT_OF_RANGE, naming the oldest sequence still
  // available in the message and in a ResumeInfo detail, when the events
  // right after it are no longer retained;
  // UNAVAILABLE after Shutdown(). May read the store's index once
  // (from_time); catch-up reads happen on the hub's thread.
  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(
      const SubscribeOptions& options, SubscriptionSink* sink)
      ABSL_LOCKS_EXCLUDED(fan_mu_);

  // The retained event with `sequence`, read from the store: NOT_FOUND when
  // it was never acknowledged, OUT_OF_RANGE when it is no longer retained,
  // UNAVAILABLE when the store cannot be read. For consumers that hold
  // sequences (consumer groups' dead letters); may read the disk.
  absl::StatusOr<std::shared_ptr<const Delivery>> ReadEvent(
      std::uint64_t sequence) const;

  HubStats Stats() const ABSL_LOCKS_EXCLUDED(mu_, fan_mu_);
  // The store's health: OK while it can persist (readiness).
  absl::Status Health() const;
  // Where a stream that sent up to `last_sent` can resume, as of now: the
  // store's retention and the newest acknowledged sequence. Cheap: the
  // store's Stats() never waits for I/O.
  ResumePoint ResumePointAfter(std::uint64_t last_sent) const;

  // Newest acknowledged sequence; cheap (heartbeats).
  std::uint64_t last_sequence() const {
    return last_sequence_.load(std::memory_order_acquire);
  }

  // Refuses further publishes (those not yet being written fail with
  // UNAVAILABLE), waits for the batch being written and its callbacks, and
  // ends every subscription with UNAVAILABLE. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(shutdown_mu_, mu_, fan_mu_, catch_up_mu_);

 private:
  using State = Subscription::State;
  friend class Subscription;

  // A published event waiting for its batch.
  struct PendingInfo {
    EventKey key;
    PublishCallback done;
  };

  EventHub(std::unique_ptr<EventStore> store, HubOptions options,
           std::uint64_t last_sequence);

  // The committer thread: writes the oldest pending events as one batch,
  // fans them out and calls their callbacks, one batch at a time, in
  // sequence order, until Shutdown().
  void CommitLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Takes up to max_batch_events pending events and releases mu_ while it
  // writes, fans out and calls back; holds mu_ again on return.
  void CommitBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What the committer waits for: pending events, or shutdown.
  bool CommitWanted() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !pending_events_.empty() || shutting_down_;
  }
  // Queues `events` for the live subscribers that match `key_of(k)` of
  // `events[k]`.
  void FanOut(absl::Span<const StoredEvent> events,
              absl::FunctionRef<const EventKey&(std::size_t)> key_of)
      ABSL_LOCKS_EXCLUDED(fan_mu_);

  void Unsubscribe(State* state) ABSL_LOCKS_EXCLUDED(fan_mu_);

  // Catch-up: subscriptions that start behind the live head read the store
  // on this thread until they reach it, then join live_ under fan_mu_.
  void CatchUpLoop() ABSL_LOCKS_EXCLUDED(catch_up_mu_);
  // What the catch-up thread waits for: a subscription to step, or stop.
  bool CatchUpWanted() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(catch_up_mu_) {
    return catch_up_stop_ || !catch_up_ready_.empty();
  }
  void ScheduleCatchUp(std::shared_ptr<State> state)
      ABSL_LOCKS_EXCLUDED(catch_up_mu_);
  // One step for `state`: true to schedule it again.
  bool CatchUpStep(const std::shared_ptr<State>& state)
      ABSL_LOCKS_EXCLUDED(fan_mu_);
  // Reads up to `max_events` after `state`'s cursor and queues the matching
  // ones. False when the subscription ended (gap, store error) or not
  // everything read could be queued; sets `*at_end` when the store had
  // fewer than asked.
  bool ReadIntoQueue(State& state, std::size_t max_events, bool* at_end);
  bool TrySwitchToLive(const std::shared_ptr<State>& state)
      ABSL_LOCKS_EXCLUDED(fan_mu_);

  const std::unique_ptr<EventStore> store_;
  const HubOptions options_;

  absl::Mutex shutdown_mu_;  // serializes Shutdown()
  // Serializes Replicate(); held across its store write and fan-out.
  absl::Mutex replicate_mu_ ABSL_ACQUIRED_AFTER(shutdown_mu_);

  // Publishing: sequence assignment and group commit. The committer waits on
  // mu_ for CommitWanted(); whoever releases mu_ wakes it when that holds.
  mutable absl::Mutex mu_ ABSL_ACQUIRED_AFTER(shutdown_mu_, replicate_mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // Events taken by the committer and not yet called back.
  std::size_t committing_events_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t last_assigned_ ABSL_GUARDED_BY(mu_);
  absl::Time last_receive_time_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Waiting for a batch: no sequence yet, `event_bytes` without one.
  std::vector<StoredEvent> pending_events_ ABSL_GUARDED_BY(mu_);
  std::vector<PendingInfo> pending_infos_ ABSL_GUARDED_BY(mu_);
  std::uint64_t published_total_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t publish_failures_total_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t commit_batches_total_ ABSL_GUARDED_BY(mu_) = 0;

  // Fan-out and the subscriber registry. Lock order: fan_mu_, then a
  // subscription's sink_mu, then its mu; catch_up_mu_ is a leaf. mu_ is never
  // held with any of them.
  mutable absl::Mutex fan_mu_ ABSL_ACQUIRED_AFTER(shutdown_mu_, replicate_mu_);
  bool subscriptions_closed_ ABSL_GUARDED_BY(fan_mu_) = false;
  std::uint64_t last_fanned_out_ ABSL_GUARDED_BY(fan_mu_);
  absl::flat_hash_map<State*, std::shared_ptr<State>> subscriptions_
      ABSL_GUARDED_BY(fan_mu_);
  std::vector<std::shared_ptr<State>> live_ ABSL_GUARDED_BY(fan_mu_);
  std::uint64_t cut_off_total_ ABSL_GUARDED_BY(fan_mu_) = 0;
  std::atomic<std::uint64_t> dropped_total_{0};
  std::atomic<std::uint64_t> last_sequence_;

  // The catch-up thread waits on it for CatchUpWanted().
  absl::Mutex catch_up_mu_ ABSL_ACQUIRED_AFTER(fan_mu_);
  bool catch_up_stop_ ABSL_GUARDED_BY(catch_up_mu_) = false;
  std::deque<std::shared_ptr<State>> catch_up_ready_
      ABSL_GUARDED_BY(catch_up_mu_);
  std::thread catch_up_thread_;
  std::thread commit_thread_;
};

}  // namespace convocore::hub

#endif  // SERVICES_HUB_EVENT_HUB_H_
