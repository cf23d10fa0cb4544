// Which events a subscription wants: the filter of a SubscribeRequest
// (event types, agent ids, channels), compiled once so that fan-out can test
// every event against every subscriber cheaply.
#ifndef SERVICES_HUB_EVENT_FILTER_H_
#define SERVICES_HUB_EVENT_FILTER_H_

#include <bitset>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "convocore/webhooks/v1/events.pb.h"

namespace convocore::hub {

// What a filter looks at in an event, extracted once per event.
struct EventKey {
  // An EventType value; a value this build does not know is EVENT_TYPE_OTHER.
  int event_type = convocore::webhooks::v1::EVENT_TYPE_UNSPECIFIED;
  // The payload's agent id; empty when the payload has none.
  std::string agent_id;
  // A Channel value; CHANNEL_UNSPECIFIED when the payload has none, and
  // CHANNEL_OTHER for a value this build does not know.
  int channel = convocore::webhooks::v1::CHANNEL_UNSPECIFIED;
  // Event.workspace: the label of the secret the webhook carried; empty for
  // an unlabelled one.
  std::string workspace;
};

// The filter-relevant facts of `event`. Events of EVENT_TYPE_OTHER carry their
// payload as a Struct: its string `agentId` and `channel` keys are used, the
// channel mapped to the enum as the translator does ("web-chat" ->
// CHANNEL_WEB_CHAT, unlisted -> CHANNEL_OTHER).
EventKey KeyOf(const convocore::webhooks::v1::Event& event);

// An immutable, validated filter. Within one criterion the values are
// alternatives; the criteria combine with AND; an empty criterion accepts
// everything, including events that lack the field.
class EventFilter {
 public:
  // Accepts every event.
  EventFilter() = default;

  // INVALID_ARGUMENT for EVENT_TYPE_UNSPECIFIED, CHANNEL_UNSPECIFIED, a value
  // this build does not know, or an empty agent id or workspace: a filter
  // that can never match is a client bug better reported than silently
  // honoured.
  static absl::StatusOr<EventFilter> Create(
      const std::vector<int>& event_types,
      const std::vector<std::string>& agent_ids,
      const std::vector<int>& channels,
      const std::vector<std::string>& workspaces = {});

  bool Matches(const EventKey& key) const;
  bool matches_everything() const { return matches_everything_; }

 private:
  // Valid EventType and Channel values are below 128 (OTHER is 100).
  static constexpr int kMaxEnumValue = 128;

  bool matches_everything_ = true;
  bool any_event_type_ = true;
  bool any_channel_ = true;
  std::bitset<kMaxEnumValue> event_types_;
  std::bitset<kMaxEnumValue> channels_;
  absl::flat_hash_set<std::string> agent_ids_;
  absl::flat_hash_set<std::string> workspaces_;
};

}  // namespace convocore::hub

#endif  // SERVICES_HUB_EVENT_FILTER_H_
