// The gateway's consumer groups: the registry behind the group RPCs, and the
// one thread that keeps positions durable and deadlines honest.
//
// The committer thread saves every group whose position changed (group
// commit: the acks that arrive while one save runs go into the next), then
// tells the members whose acks it held that they are durable; between saves
// it redelivers events whose ack deadline passed. A graceful Shutdown()
// saves every position before it closes the groups.
#ifndef SERVICES_GROUPS_GROUP_MANAGER_H_
#define SERVICES_GROUPS_GROUP_MANAGER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "convocore/webhooks/v1/event_stream_service.pb.h"
#include "services/groups/consumer_group.h"
#include "services/groups/group_service.h"
#include "services/groups/group_state_store.h"
#include "services/hub/event_hub.h"

namespace convocore::groups {

struct GroupManagerOptions {
  std::size_t max_groups = 100;
  std::size_t max_members_per_group = 100;
  std::size_t max_dead_letters_per_group = kMaxDeadLetters;
  // How often the committer looks at deadlines when nothing wakes it.
  absl::Duration tick = absl::Milliseconds(10);
  // The least time between two saves: a longer one makes fewer saves (and
  // fewer confirmations) under load, at the cost of ack latency.
  absl::Duration commit_interval = absl::Milliseconds(5);
};

using GroupManagerStats = GroupServiceStats;

// The local engine behind the disk and memory stores. Thread-safe.
class GroupManager final : public GroupService {
 public:
  // Loads every saved group and resumes it after its floor; starts the
  // committer. An error names a state that could not be read or resumed.
  static absl::StatusOr<std::unique_ptr<GroupManager>> Create(
      hub::EventHub* hub, std::unique_ptr<GroupStateStore> store,
      GroupManagerOptions options = {});
  ~GroupManager() override;  // Shutdown()

  // GroupService. Settle() wakes the committer.
  absl::StatusOr<Membership> Join(const JoinRequest& join,
                                  const GroupAuthorizer& authorize,
                                  MemberSink* sink) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Settle(const Membership& membership,
                      absl::Span<const std::uint64_t> acks,
                      absl::Span<const NackRequest> nacks) override;
  absl::StatusOr<convocore::webhooks::v1::ConsumerGroup> CreateGroup(
      const convocore::webhooks::v1::CreateConsumerGroupRequest& request,
      const GroupAuthorizer& authorize) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<convocore::webhooks::v1::ConsumerGroup> GetGroup(
      const std::string& name, const GroupAuthorizer& authorize) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<convocore::webhooks::v1::ConsumerGroup>>
  ListGroups(const GroupAuthorizer& authorize) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status DeleteGroup(const std::string& name,
                           const GroupAuthorizer& authorize) override
      ABSL_LOCKS_EXCLUDED(save_mu_, mu_);
  absl::StatusOr<convocore::webhooks::v1::ConsumerGroup> SeekGroup(
      const convocore::webhooks::v1::SeekConsumerGroupRequest& request,
      const GroupAuthorizer& authorize) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<convocore::webhooks::v1::ListDeadLettersResponse>
  ListDeadLetters(
      const convocore::webhooks::v1::ListDeadLettersRequest& request,
      const GroupAuthorizer& authorize) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<convocore::webhooks::v1::ReplayDeadLettersResponse>
  ReplayDeadLetters(
      const convocore::webhooks::v1::ReplayDeadLettersRequest& request,
      const GroupAuthorizer& authorize) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<convocore::webhooks::v1::DropDeadLettersResponse>
  DropDeadLetters(
      const convocore::webhooks::v1::DropDeadLettersRequest& request,
      const GroupAuthorizer& authorize) override ABSL_LOCKS_EXCLUDED(mu_);

  GroupServiceStats Stats() const override ABSL_LOCKS_EXCLUDED(mu_);
  // OK unless the last save failed (readiness).
  absl::Status Health() const override ABSL_LOCKS_EXCLUDED(mu_);

  // Stops the committer, saves every changed position, and ends every
  // member with UNAVAILABLE. Idempotent.
  void Shutdown() override ABSL_LOCKS_EXCLUDED(save_mu_, mu_);

 private:
  GroupManager(hub::EventHub* hub, std::unique_ptr<GroupStateStore> store,
               GroupManagerOptions options);

  // Creates, saves and registers a group; ALREADY_EXISTS when taken.
  absl::StatusOr<std::shared_ptr<ConsumerGroup>> CreateLocked(
      GroupSettings settings, const hub::StartPosition& start)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The group named `name` if `authorize` lets the caller at it.
  absl::StatusOr<std::shared_ptr<ConsumerGroup>> Find(
      const std::string& name, const GroupAuthorizer& authorize)
      ABSL_LOCKS_EXCLUDED(mu_);
  void CommitLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Saves every changed group once and confirms the acks saved.
  void SaveChanged() ABSL_LOCKS_EXCLUDED(save_mu_, mu_);
  std::vector<std::shared_ptr<ConsumerGroup>> Groups() const
      ABSL_LOCKS_EXCLUDED(mu_);

  hub::EventHub* const hub_;
  const std::unique_ptr<GroupStateStore> store_;
  const GroupManagerOptions options_;

  // Held across a save, so that a deleted group is not saved again.
  absl::Mutex save_mu_;
  mutable absl::Mutex mu_ ABSL_ACQUIRED_AFTER(save_mu_);
  absl::btree_map<std::string, std::shared_ptr<ConsumerGroup>> groups_
      ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status last_save_ ABSL_GUARDED_BY(mu_);
  std::uint64_t saves_total_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t save_failures_total_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread committer_;
};

}  // namespace convocore::groups

#endif  // SERVICES_GROUPS_GROUP_MANAGER_H_
