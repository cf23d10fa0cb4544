// One consumer group: a server-held position over the events matching its
// filter, whose events are handed to its connected members one member at a
// time. Plain C++ over the hub: the group reads its events through an
// ordinary hub Subscription (its "feed"), so catch-up, retention and the
// store are the hub's; the gRPC service is a thin adapter over Join(),
// Take() and Settle().
//
// Guarantees (the contract's comments state them for clients):
// - An event taken from the feed stays the group's until a member acks it
//   or it is dead-lettered after `max_delivery_attempts` deliveries; one
//   member holds it at a time. A delivery ends with an ack, a nack, the ack
//   deadline passing, or the member leaving; all but the ack redeliver it.
// - First deliveries follow sequence order; redeliveries go first.
// - A member never holds more than its max_in_flight events.
// - The position (floor, settled set above it, dead letters) is what
//   Snapshot() writes; an ack is reported back to its member as durable
//   only after the snapshot holding it was saved (Confirm()).
// - The dead-letter list holds at most `max_dead_letters` events, since
//   every save writes it whole. An event that uses its last attempt while
//   the list is full waits, undelivered and unsettled, until a drop or a
//   replay makes room; it is never dropped. Its place below the floor keeps
//   it across a restart (it is then delivered again, attempts from 1).
#ifndef SERVICES_GROUPS_CONSUMER_GROUP_H_
#define SERVICES_GROUPS_CONSUMER_GROUP_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "convocore/webhooks/v1/event_stream_service.pb.h"
#include "services/groups/group_service.h"
#include "services/groups/group_settings.h"
#include "services/groups/group_state.pb.h"
#include "services/groups/sequence_set.h"
#include "services/hub/event_hub.h"

namespace convocore::groups {

// Acks to report as durable once a snapshot is saved, per member.
using Confirmations =
    std::vector<std::pair<std::uint64_t, std::vector<std::uint64_t>>>;

// Thread-safe.
class ConsumerGroup final : public GroupHandle {
 public:
  // A group at `state`'s position (a new group: an empty state). Call
  // Start() before anything else.
  ConsumerGroup(hub::EventHub* hub, GroupSettings settings, GroupState state,
                std::size_t max_members,
                std::size_t max_dead_letters = kMaxDeadLetters);
  ~ConsumerGroup() override;  // Close()
  ConsumerGroup(const ConsumerGroup&) = delete;
  ConsumerGroup& operator=(const ConsumerGroup&) = delete;

  // Subscribes the feed from `start` (Now(), Oldest(), a time or after a
  // sequence); the floor becomes where it resolved to, unless `keep_floor`
  // (a loaded group, whose feed starts after its floor). The hub's error
  // otherwise (OUT_OF_RANGE with the oldest available, INVALID_ARGUMENT);
  // for a loaded group an OUT_OF_RANGE is kept: members are refused with it
  // until a Seek().
  absl::Status Start(const hub::StartPosition& start, bool keep_floor);

  const GroupSettings& settings() const override { return settings_; }

  // Adds a member that holds at most `max_in_flight` events; its id.
  // OUT_OF_RANGE (position below retention), NOT_FOUND (deleted),
  // UNAVAILABLE (closed), RESOURCE_EXHAUSTED (too many members).
  absl::StatusOr<std::uint64_t> Join(std::uint32_t max_in_flight,
                                     MemberSink* sink) ABSL_LOCKS_EXCLUDED(mu_);
  // GroupHandle.
  void Leave(std::uint64_t member) override ABSL_LOCKS_EXCLUDED(mu_);
  bool Take(std::uint64_t member, std::size_t max_events, std::size_t max_bytes,
            MemberBatch* out) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Settle(std::uint64_t member,
                      absl::Span<const std::uint64_t> acks,
                      absl::Span<const NackRequest> nacks) override
      ABSL_LOCKS_EXCLUDED(mu_);

  // Periodic work: redelivers what passed its deadline, moves the position
  // past events the filter skipped, and resubscribes a feed the hub cut
  // off. Called by the manager's thread.
  void Tick(Clock::time_point now) ABSL_LOCKS_EXCLUDED(mu_);

  // When the position changed since the last snapshot: writes it to `state`,
  // moves the acks it holds to `confirm`, and returns true.
  bool Snapshot(GroupState* state, Confirmations* confirm)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The snapshot holding `confirm` was saved (tell the members), or not
  // (`saved` false: snapshot again next time, confirm then).
  void Confirm(Confirmations confirm, bool saved) ABSL_LOCKS_EXCLUDED(mu_);
  // The settings and state now.
  convocore::webhooks::v1::ConsumerGroup Info() const ABSL_LOCKS_EXCLUDED(mu_);
  // Events that used their last attempt and wait for room in the full
  // dead-letter list (counted in Info()'s in_flight_events too).
  std::size_t DeadLettersWaiting() const ABSL_LOCKS_EXCLUDED(mu_);

  // Restarts the group at `start` (see SeekConsumerGroup).
  absl::Status Seek(const hub::StartPosition& start) ABSL_LOCKS_EXCLUDED(mu_);

  // Dead letters with a sequence above `after`, oldest first, up to `limit`,
  // without their events.
  std::vector<convocore::webhooks::v1::DeadLetter> DeadLetters(
      std::uint64_t after, std::size_t limit) const ABSL_LOCKS_EXCLUDED(mu_);
  // `sequences` (empty: all) that are dead letters now.
  std::vector<std::uint64_t> DeadLetterSequences(
      absl::Span<const std::uint64_t> sequences) const ABSL_LOCKS_EXCLUDED(mu_);
  // Puts these dead letters back for delivery, attempts from 1; those no
  // longer dead letters are skipped. The sequences replayed.
  std::vector<std::uint64_t> Replay(
      std::vector<std::shared_ptr<const hub::Delivery>> events)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Removes dead letters; they stay settled. The sequences dropped.
  std::vector<std::uint64_t> Drop(absl::Span<const std::uint64_t> sequences)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Ends every member with `status` and the feed; refuses new members with
  // it. Idempotent.
  void Close(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Member;
  struct Feed;
  struct InFlight {
    std::shared_ptr<const hub::Delivery> delivery;
    std::uint32_t attempts = 0;     // deliveries so far
    std::uint64_t member = 0;       // the holder; 0 while waiting
    std::uint64_t delivery_id = 0;  // of the holder's delivery
    Clock::time_point deadline;     // of the holder's delivery
    std::string last_error;
    // Every member it was delivered to.
    absl::InlinedVector<std::uint64_t, 2> holders;
  };
  using Notify = std::vector<std::shared_ptr<Member>>;

  // Called by the feed's sink, on a hub thread.
  void OnFeedReady() ABSL_LOCKS_EXCLUDED(mu_);
  // Hands out events while some member has room.
  void DispatchLocked(Notify* notify) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The next member in turn with room, other than `avoid` if another has
  // room; null when none has.
  std::shared_ptr<Member>* MemberWithRoomLocked(std::uint64_t avoid)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands `entry` to `member` until `deadline`.
  void AssignLocked(const std::shared_ptr<Member>& member,
                    std::uint64_t sequence, InFlight& entry,
                    Clock::time_point deadline, Notify* notify)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The delivery of `entry` failed with `reason`: redeliver it, or
  // dead-letter it after its last attempt. `entry` is waiting afterwards
  // (or gone).
  void FailLocked(std::uint64_t sequence, InFlight& entry, std::string reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SettleLocked(std::uint64_t sequence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves `entry` into the dead-letter list and settles it.
  void DeadLetterLocked(std::uint64_t sequence, const InFlight& entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves what waits for dead-letter room into the list while it has room.
  void DrainWaitingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every matching event up to `through` was taken from the feed.
  void PassLocked(std::uint64_t through) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleFeedEndLocked(const absl::Status& status, Notify* notify)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndMembersLocked(const absl::Status& status, Notify* notify)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Member* FindLocked(std::uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // OUT_OF_RANGE for the position below retention, with a ResumeInfo
  // detail (last_sent_sequence: the floor).
  absl::Status OutOfRangeStatusLocked() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Subscribes a new feed from `start`, outside mu_.
  absl::StatusOr<std::unique_ptr<Feed>> Subscribe(
      const hub::StartPosition& start) ABSL_LOCKS_EXCLUDED(mu_);
  static void NotifyAll(const Notify& notify);

  hub::EventHub* const hub_;
  const GroupSettings settings_;
  const std::size_t max_members_;
  const std::size_t max_dead_letters_;

  mutable absl::Mutex mu_;
  absl::Status closed_ ABSL_GUARDED_BY(mu_);
  // Not OK: the position fell below retention; members get this.
  absl::Status out_of_range_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Feed> feed_ ABSL_GUARDED_BY(mu_);
  // The feed ended in a way a new one starting after `read_cursor_` fixes.
  bool resubscribe_ ABSL_GUARDED_BY(mu_) = false;
  Clock::time_point resubscribe_at_ ABSL_GUARDED_BY(mu_);

  std::uint64_t floor_ ABSL_GUARDED_BY(mu_) = 0;
  SequenceSet settled_ ABSL_GUARDED_BY(mu_);  // above floor_
  // Every matching event up to here was taken from the feed.
  std::uint64_t read_cursor_ ABSL_GUARDED_BY(mu_) = 0;
  absl::btree_map<std::uint64_t, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);
  std::deque<std::uint64_t> redeliver_ ABSL_GUARDED_BY(mu_);
  std::uint64_t next_delivery_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::btree_map<std::uint64_t, convocore::webhooks::v1::DeadLetter>
      dead_letters_ ABSL_GUARDED_BY(mu_);
  // In in_flight_, with no holder, oldest first: waiting for dead-letter
  // room.
  std::deque<std::uint64_t> dead_letter_waiting_ ABSL_GUARDED_BY(mu_);
  bool dirty_ ABSL_GUARDED_BY(mu_) = true;

  std::vector<std::shared_ptr<Member>> members_ ABSL_GUARDED_BY(mu_);
  std::size_t next_member_index_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t next_member_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace convocore::groups

#endif  // SERVICES_GROUPS_CONSUMER_GROUP_H_
