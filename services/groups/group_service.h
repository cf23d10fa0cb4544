// What the gRPC adapter needs of consumer groups, whichever store keeps
// them: the local engine (GroupManager over ConsumerGroup, for the disk and
// memory stores) or JetStream's durable consumers (jetstream::
// JetStreamGroups). The guarantees are the contract's; each implementation
// states how it keeps them.
#ifndef SERVICES_GROUPS_GROUP_SERVICE_H_
#define SERVICES_GROUPS_GROUP_SERVICE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "convocore/webhooks/v1/event_stream_service.pb.h"
#include "services/groups/group_settings.h"
#include "services/hub/event_hub.h"

namespace convocore::groups {

using Clock = std::chrono::steady_clock;

// Implemented by a member's transport (the gRPC reactor).
class MemberSink {
 public:
  virtual ~MemberSink() = default;
  // Take() has something since it last returned nothing. Called with no
  // group lock held, possibly on a hub or NATS thread: must not block; may
  // call Take(). Never called once Leave() has returned.
  virtual void OnReady() = 0;
};

// An event handed to a member.
struct Assignment {
  std::shared_ptr<const hub::Delivery> delivery;
  std::uint32_t attempt = 0;
  // Unique per delivery in the group, so that what a replay or a seek made
  // stale is never taken for the delivery of now.
  std::uint64_t id = 0;
};

// What Take() gives a member.
struct MemberBatch {
  std::vector<Assignment> events;
  // This member's acks that are now durable.
  std::vector<std::uint64_t> acknowledged;
  // Not OK: the member's stream ends with it; nothing else is set.
  absl::Status end;
};

struct NackRequest {
  std::uint64_t sequence = 0;
  std::string error;
};

// A group as its members see it. Thread-safe.
class GroupHandle {
 public:
  virtual ~GroupHandle() = default;
  virtual const GroupSettings& settings() const = 0;
  // Up to `max_events` events for `member` (fewer once they hold
  // `max_bytes`; always one when one is there) and its confirmed acks, or
  // its end. False when there is nothing: OnReady() follows when there is.
  virtual bool Take(std::uint64_t member, std::size_t max_events,
                    std::size_t max_bytes, MemberBatch* out) = 0;
  // Acks and nacks of `member`. INVALID_ARGUMENT naming the first sequence
  // that was never delivered to it (those before it are applied).
  virtual absl::Status Settle(std::uint64_t member,
                              absl::Span<const std::uint64_t> acks,
                              absl::Span<const NackRequest> nacks) = 0;
  // Removes the member; what it held is redelivered (or dead-lettered when
  // that was its last attempt). Its sink is not called once this returns.
  virtual void Leave(std::uint64_t member) = 0;
};

struct Membership {
  std::shared_ptr<GroupHandle> group;
  std::uint64_t member = 0;
};

// What a caller may do with a group whose filter is `filter`: when
// `creating`, narrows it to what the caller may read (an empty type list
// becomes the caller's types) or refuses; otherwise only checks. Returns
// PERMISSION_DENIED (or UNAUTHENTICATED) to refuse.
using GroupAuthorizer = std::function<absl::Status(
    convocore::webhooks::v1::SubscribeRequest* filter, bool creating)>;

struct GroupServiceStats {
  std::uint64_t groups = 0;
  std::uint64_t members = 0;
  std::uint64_t in_flight_events = 0;
  std::uint64_t dead_letters = 0;
  // Events past their last attempt that wait for room in a full
  // dead-letter list.
  std::uint64_t dead_letters_waiting = 0;
  std::uint64_t saves_total = 0;
  std::uint64_t save_failures_total = 0;
};

// The registry behind the Consume and group RPCs. Thread-safe.
class GroupService {
 public:
  virtual ~GroupService() = default;

  // Joins (creating on first use) the group `join` names; see the Consume
  // RPC for the errors.
  virtual absl::StatusOr<Membership> Join(const JoinRequest& join,
                                          const GroupAuthorizer& authorize,
                                          MemberSink* sink) = 0;
  // A member's acks and nacks (GroupHandle::Settle()).
  virtual absl::Status Settle(const Membership& membership,
                              absl::Span<const std::uint64_t> acks,
                              absl::Span<const NackRequest> nacks) = 0;

  // The unary RPCs; NOT_FOUND for an unknown group.
  virtual absl::StatusOr<convocore::webhooks::v1::ConsumerGroup> CreateGroup(
      const convocore::webhooks::v1::CreateConsumerGroupRequest& request,
      const GroupAuthorizer& authorize) = 0;
  virtual absl::StatusOr<convocore::webhooks::v1::ConsumerGroup> GetGroup(
      const std::string& name, const GroupAuthorizer& authorize) = 0;
  virtual absl::StatusOr<std::vector<convocore::webhooks::v1::ConsumerGroup>>
  ListGroups(const GroupAuthorizer& authorize) = 0;
  virtual absl::Status DeleteGroup(const std::string& name,
                                   const GroupAuthorizer& authorize) = 0;
  virtual absl::StatusOr<convocore::webhooks::v1::ConsumerGroup> SeekGroup(
      const convocore::webhooks::v1::SeekConsumerGroupRequest& request,
      const GroupAuthorizer& authorize) = 0;
  virtual absl::StatusOr<convocore::webhooks::v1::ListDeadLettersResponse>
  ListDeadLetters(
      const convocore::webhooks::v1::ListDeadLettersRequest& request,
      const GroupAuthorizer& authorize) = 0;
  virtual absl::StatusOr<convocore::webhooks::v1::ReplayDeadLettersResponse>
  ReplayDeadLetters(
      const convocore::webhooks::v1::ReplayDeadLettersRequest& request,
      const GroupAuthorizer& authorize) = 0;
  virtual absl::StatusOr<convocore::webhooks::v1::DropDeadLettersResponse>
  DropDeadLetters(
      const convocore::webhooks::v1::DropDeadLettersRequest& request,
      const GroupAuthorizer& authorize) = 0;

  virtual GroupServiceStats Stats() const = 0;
  // OK unless groups cannot keep positions now (readiness).
  virtual absl::Status Health() const = 0;
  // Ends every member with UNAVAILABLE, after making what can be durable
  // durable. Idempotent.
  virtual void Shutdown() = 0;
};

// Shared by the implementations: the filter's values as a message names
// them, for errors ("event_types [EVENT_TYPE_LEAD_CAPTURED], ...").
std::string DescribeFilter(
    const convocore::webhooks::v1::SubscribeRequest& filter);

// Shared by the implementations: whether a member that asked for `join`
// may join a group of `settings`, as GroupService::Join() decides it after
// finding or creating the group. FAILED_PRECONDITION for another filter,
// or the authorizer's refusal.
absl::Status CheckJoin(const JoinRequest& join, const GroupSettings& settings,
                       const GroupAuthorizer& authorize);

}  // namespace convocore::groups

#endif  // SERVICES_GROUPS_GROUP_SERVICE_H_
