// A consumer group's settings as the group keeps them, read from and written
// to the contract's messages with their validation: the
// transport-independent half of the group RPCs.
#ifndef SERVICES_GROUPS_GROUP_SETTINGS_H_
#define SERVICES_GROUPS_GROUP_SETTINGS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/event_stream_service.pb.h"
#include "services/hub/event_hub.h"

namespace convocore::groups {

inline constexpr absl::Duration kDefaultAckDeadline = absl::Seconds(30);
inline constexpr absl::Duration kMinAckDeadline = absl::Seconds(1);
inline constexpr absl::Duration kMaxAckDeadline = absl::Hours(1);
inline constexpr std::uint32_t kDefaultMaxDeliveryAttempts = 5;
inline constexpr std::uint32_t kMaxDeliveryAttempts = 100;
inline constexpr std::uint32_t kDefaultMaxInFlight = 100;
inline constexpr std::uint32_t kMaxInFlight = 1000;
inline constexpr std::size_t kMaxErrorBytes = 1024;
// Per group: with errors of up to kMaxErrorBytes, at most about 10 MiB of
// saved state.
inline constexpr std::size_t kMaxDeadLetters = 10'000;

struct GroupSettings {
  std::string name;
  // The filter, as a SubscribeRequest holding only event_types, agent_ids,
  // channels and workspaces, each sorted and unique.
  convocore::webhooks::v1::SubscribeRequest filter;
  absl::Duration ack_deadline = kDefaultAckDeadline;
  std::uint32_t max_delivery_attempts = kDefaultMaxDeliveryAttempts;
  absl::Time create_time;
};

// What the first ConsumeRequest of a stream asks for.
struct JoinRequest {
  // The group as it would be created; `create_time` unset.
  GroupSettings settings;
  hub::StartPosition start;
  // Whether the request named any filter value (else it joins whatever
  // filter the group has).
  bool filter_given = false;
  std::uint32_t max_in_flight = kDefaultMaxInFlight;
};

// INVALID_ARGUMENT unless `name` is 1 to 64 letters, digits, '.', '_' or
// '-', starting with a letter or digit.
absl::Status ValidateGroupName(absl::string_view name);

// The settings of `group` (name, filter, deadline, attempts, create_time),
// defaults applied; INVALID_ARGUMENT naming the field that is wrong.
absl::StatusOr<GroupSettings> SettingsFromProto(
    const convocore::webhooks::v1::ConsumerGroup& group);
// Writes the settings' fields of `out`; leaves the output-only ones.
void SettingsToProto(const GroupSettings& settings,
                     convocore::webhooks::v1::ConsumerGroup* out);

// The first request of a Consume stream; INVALID_ARGUMENT naming the field.
absl::StatusOr<JoinRequest> JoinRequestFromProto(
    const convocore::webhooks::v1::ConsumeRequest& request);

// A start position from the `start_position` oneof of `message` (which has
// after_sequence, from_oldest and from_time); Now() when unset.
// INVALID_ARGUMENT for an out-of-range from_time.
template <typename Message>
absl::StatusOr<hub::StartPosition> StartPositionOf(const Message& message);

// The hub's options for reading `settings`' filter from `start`.
absl::StatusOr<hub::SubscribeOptions> FeedOptions(
    const GroupSettings& settings, const hub::StartPosition& start);

// Sorts and de-duplicates each of the filter's lists, as GroupSettings
// keeps them.
void CanonicalizeFilter(convocore::webhooks::v1::SubscribeRequest* filter);

// Whether two filters (as GroupSettings::filter) select the same events.
bool SameFilter(const convocore::webhooks::v1::SubscribeRequest& a,
                const convocore::webhooks::v1::SubscribeRequest& b);

}  // namespace convocore::groups

#endif  // SERVICES_GROUPS_GROUP_SETTINGS_H_
