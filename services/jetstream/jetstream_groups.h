// Consumer groups on `--store=jetstream`: each group is a JetStream durable
// pull consumer on the events stream, shared by every gateway replica, laid
// out as group_layout.h says (docs/decisions/0024).
//
// - JetStream holds the position (the consumer's ack floor and acked set),
//   replicated like the stream: it survives the restart of any replica.
// - Each replica with members of a group fetches from its consumer only
//   what those members have room for, and hands each event to one member
//   (round robin). JetStream gives each message to one fetcher at a time,
//   so across replicas an event is held by one member at a time until its
//   ack deadline (the consumer's AckWait) passes.
// - Acks go in runs ending with one AckSync, and are reported in
//   acknowledged_sequences only once JetStream confirmed them. A nack is a Nak;
//   the last failed attempt writes the dead letter to KV, then Terms the
//   message. Replays go through a work-queue stream read by a second consumer
//   per group.
// - A delivery's attempt is JetStream's delivery count. Unlike the local
//   engine, attempts survive restarts; an event fetched for a member that
//   leaves before it was written to it still used one.
//
// Thread-safe.
#ifndef SERVICES_JETSTREAM_JETSTREAM_GROUPS_H_
#define SERVICES_JETSTREAM_JETSTREAM_GROUPS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/groups/group_service.h"
#include "services/jetstream/jetstream_event_store.h"

struct __kvStore;

namespace convocore::jetstream {

struct JetStreamGroupsOptions {
  std::size_t max_groups = 100;
  std::size_t max_members_per_group = 100;
  // The long poll of one fetch when nothing waits.
  absl::Duration fetch_wait = absl::Milliseconds(500);
  // How often a replica checks its groups' positions against retention.
  absl::Duration position_check = absl::Seconds(1);
  // One JetStream API request (consumer info, KV, AckSync) at most.
  absl::Duration api_wait = absl::Seconds(5);
};

class JetStreamGroups final : public groups::GroupService {
 public:
  // Makes sure the replay stream and the KV bucket exist. `store` must
  // outlive this and stay open until Shutdown().
  static absl::StatusOr<std::unique_ptr<JetStreamGroups>> Open(
      JetStreamEventStore* store, JetStreamGroupsOptions options = {});
  ~JetStreamGroups() override;  // Shutdown()

  // groups::GroupService.
  absl::StatusOr<groups::Membership> Join(
      const groups::JoinRequest& join, const groups::GroupAuthorizer& authorize,
      groups::MemberSink* sink) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Settle(const groups::Membership& membership,
                      absl::Span<const std::uint64_t> acks,
                      absl::Span<const groups::NackRequest> nacks) override;
  absl::StatusOr<convocore::webhooks::v1::ConsumerGroup> CreateGroup(
      const convocore::webhooks::v1::CreateConsumerGroupRequest& request,
      const groups::GroupAuthorizer& authorize) override;
  absl::StatusOr<convocore::webhooks::v1::ConsumerGroup> GetGroup(
      const std::string& name,
      const groups::GroupAuthorizer& authorize) override;
  absl::StatusOr<std::vector<convocore::webhooks::v1::ConsumerGroup>>
  ListGroups(const groups::GroupAuthorizer& authorize) override;
  absl::Status DeleteGroup(const std::string& name,
                           const groups::GroupAuthorizer& authorize) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<convocore::webhooks::v1::ConsumerGroup> SeekGroup(
      const convocore::webhooks::v1::SeekConsumerGroupRequest& request,
      const groups::GroupAuthorizer& authorize) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<convocore::webhooks::v1::ListDeadLettersResponse>
  ListDeadLetters(
      const convocore::webhooks::v1::ListDeadLettersRequest& request,
      const groups::GroupAuthorizer& authorize) override;
  absl::StatusOr<convocore::webhooks::v1::ReplayDeadLettersResponse>
  ReplayDeadLetters(
      const convocore::webhooks::v1::ReplayDeadLettersRequest& request,
      const groups::GroupAuthorizer& authorize) override;
  absl::StatusOr<convocore::webhooks::v1::DropDeadLettersResponse>
  DropDeadLetters(
      const convocore::webhooks::v1::DropDeadLettersRequest& request,
      const groups::GroupAuthorizer& authorize) override;
  // This replica's groups with members, their members and what they hold.
  groups::GroupServiceStats Stats() const override ABSL_LOCKS_EXCLUDED(mu_);
  // The store's: groups work while the stream does.
  absl::Status Health() const override;
  // Ends every member with UNAVAILABLE and gives back (Nak) what they held,
  // so that other replicas' members get it at once.
  void Shutdown() override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Group;
  struct Found;  // a group's settings and consumer state, as JetStream says

  JetStreamGroups(JetStreamEventStore* store, JetStreamGroupsOptions options);
  absl::Status EnsureReplayStreamAndBucket();

  // The group named `name`: NOT_FOUND, or its state.
  absl::StatusOr<Found> Lookup(const std::string& name) const;
  // Lookup() if `authorize` lets the caller at it.
  absl::StatusOr<Found> Authorized(
      const std::string& name, const groups::GroupAuthorizer& authorize) const;
  // Makes the group's two consumers from `start`; ALREADY_EXISTS when its
  // consumer exists.
  absl::Status MakeConsumers(const groups::GroupSettings& settings,
                             const hub::StartPosition& start) const;
  absl::StatusOr<convocore::webhooks::v1::ConsumerGroup> Info(
      const Found& found) const ABSL_LOCKS_EXCLUDED(mu_);
  // The stream's first and last sequences now, as JetStream reports them
  // (first is last + 1 once retention emptied it, 0 for a new stream).
  struct Bounds {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
  };
  absl::StatusOr<Bounds> StreamBounds() const;
  // OUT_OF_RANGE when `start` lies below the stream's retention.
  absl::Status CheckStart(const std::string& name,
                          const hub::StartPosition& start) const;
  // The dead letters' sequences of `group`, in order.
  absl::StatusOr<std::vector<std::uint64_t>> DeadLetterSequences(
      const std::string& group) const;
  // The dead letters of `group`, if `authorize` lets the caller at it,
  // among `sequences` (empty: all), in order and without repeats.
  absl::StatusOr<std::vector<std::uint64_t>> ChosenDeadLetters(
      const std::string& group, absl::Span<const std::uint64_t> sequences,
      const groups::GroupAuthorizer& authorize) const;
  // The event at `sequence` of the events stream.
  absl::StatusOr<std::string> EventBody(std::uint64_t sequence) const;
  // The replica's instance of a group, made and started on first use (or
  // when the group was made again elsewhere since).
  absl::StatusOr<std::shared_ptr<Group>> Local(const Found& found)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Ends and forgets the replica's instance, if any.
  void DropLocal(const std::string& name, absl::Status why)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::size_t CountGroups() const;

  // Used by Group. Writes the dead letter of `sequence` (its error
  // truncated as the local engine does).
  absl::Status PutDeadLetter(const std::string& group, std::uint64_t sequence,
                             std::uint32_t attempts,
                             const std::string& error) const;
  __jsCtx* js() const;
  const std::string& subject_prefix() const;

  JetStreamEventStore* const store_;
  const JetStreamGroupsOptions options_;
  const std::string stream_;
  __kvStore* kv_ = nullptr;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Group>> local_
      ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace convocore::jetstream

#endif  // SERVICES_JETSTREAM_JETSTREAM_GROUPS_H_
