#include "services/hub/event_filter.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "rapidjson/document.h"
#include "services/json/huge_numbers.h"

namespace convocore::hub {
namespace {

namespace v1 = convocore::webhooks::v1;

int NormalizedEventType(int value) {
  return v1::EventType_IsValid(value) ? value : v1::EVENT_TYPE_OTHER;
}

int NormalizedChannel(int value) {
  return v1::Channel_IsValid(value) ? value : v1::CHANNEL_OTHER;
}

// The enum value of a channel string as sent ("web-chat" -> CHANNEL_WEB_CHAT):
// every listed channel's enum name is its string upper-cased with '-' as '_'.
int ChannelFromString(const std::string& raw) {
  if (raw.empty()) return v1::CHANNEL_UNSPECIFIED;
  std::string name = "CHANNEL_";
  for (char c : raw) {
    name.push_back(c == '-' ? '_' : absl::ascii_toupper(c));
  }
  v1::Channel channel;
  if (!v1::Channel_Parse(name, &channel) || channel == v1::CHANNEL_OTHER ||
      channel == v1::CHANNEL_UNSPECIFIED) {
    return v1::CHANNEL_OTHER;
  }
  return channel;
}

// The filter keys of a payload of an unknown type: its top-level "agentId"
// and "channel", where they are strings.
void SetFromJson(const std::string& json, EventKey* key) {
  // Numbers RapidJSON would refuse are swapped out first: they are not
  // needed here, and must not hide the keys that are.
  std::string text = json;
  if (json::MightHoldHugeNumber(text)) {
    absl::flat_hash_map<std::size_t, std::string> swapped;
    json::SwapHugeNumbers(text.data(), text.size(), &swapped);
  }
  rapidjson::Document document;
  document.Parse(text.data(), text.size());
  if (document.HasParseError() || !document.IsObject()) return;
  // Const iterators: C++20 finds RapidJSON's mutable ones ambiguous to
  // compare.
  const rapidjson::Document& object = document;
  const auto agent = object.FindMember("agentId");
  if (agent != object.MemberEnd() && agent->value.IsString()) {
    key->agent_id.assign(agent->value.GetString(),
                         agent->value.GetStringLength());
  }
  const auto channel = object.FindMember("channel");
  if (channel != object.MemberEnd() && channel->value.IsString()) {
    key->channel = ChannelFromString(std::string(
        channel->value.GetString(), channel->value.GetStringLength()));
  }
}

template <typename Payload>
void SetAgent(const Payload& payload, EventKey* key) {
  key->agent_id = payload.agent_id();
}

template <typename Payload>
void SetAgentAndChannel(const Payload& payload, EventKey* key) {
  key->agent_id = payload.agent_id();
  key->channel = NormalizedChannel(payload.channel());
}

absl::Status CheckEnum(int value, int unspecified, bool (*is_valid)(int),
                       const char* what) {
  if (value == unspecified || !is_valid(value) || value < 0 || value >= 128) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid ", what, " filter value ", value));
  }
  return absl::OkStatus();
}

}  // namespace

EventKey KeyOf(const v1::Event& event) {
  EventKey key;
  key.event_type = NormalizedEventType(event.event_type());
  key.workspace = event.workspace();
  switch (event.payload_case()) {
    case v1::Event::kMessageReceived:
      SetAgentAndChannel(event.message_received(), &key);
      break;
    case v1::Event::kChatDelegated:
      SetAgentAndChannel(event.chat_delegated(), &key);
      break;
    case v1::Event::kBugReported:
      SetAgentAndChannel(event.bug_reported(), &key);
      break;
    case v1::Event::kLeadCaptured:
      SetAgentAndChannel(event.lead_captured(), &key);
      break;
    case v1::Event::kFormSubmitted:
      SetAgentAndChannel(event.form_submitted(), &key);
      break;
    case v1::Event::kAgentCreated:
      SetAgent(event.agent_created(), &key);
      break;
    case v1::Event::kAgentUpdated:
      SetAgent(event.agent_updated(), &key);
      break;
    case v1::Event::kAgentDeleted:
      SetAgent(event.agent_deleted(), &key);
      break;
    case v1::Event::kOtherJson:
      SetFromJson(event.other_json(), &key);
      break;
    default:
      // Organisation, client and webhook_test payloads have neither.
      break;
  }
  return key;
}

absl::StatusOr<EventFilter> EventFilter::Create(
    const std::vector<int>& event_types,
    const std::vector<std::string>& agent_ids, const std::vector<int>& channels,
    const std::vector<std::string>& workspaces) {
  EventFilter filter;
  for (int type : event_types) {
    absl::Status status = CheckEnum(type, v1::EVENT_TYPE_UNSPECIFIED,
                                    v1::EventType_IsValid, "event_types");
    if (!status.ok()) return status;
    filter.event_types_.set(type);
  }
  for (int channel : channels) {
    absl::Status status = CheckEnum(channel, v1::CHANNEL_UNSPECIFIED,
                                    v1::Channel_IsValid, "channels");
    if (!status.ok()) return status;
    filter.channels_.set(channel);
  }
  for (const std::string& agent : agent_ids) {
    if (agent.empty()) {
      return absl::InvalidArgumentError("invalid empty agent_ids filter value");
    }
    filter.agent_ids_.insert(agent);
  }
  for (const std::string& workspace : workspaces) {
    if (workspace.empty()) {
      return absl::InvalidArgumentError(
          "invalid empty workspaces filter value");
    }
    filter.workspaces_.insert(workspace);
  }
  filter.any_event_type_ = event_types.empty();
  filter.any_channel_ = channels.empty();
  filter.matches_everything_ = filter.any_event_type_ && filter.any_channel_ &&
                               agent_ids.empty() && workspaces.empty();
  return filter;
}

bool EventFilter::Matches(const EventKey& key) const {
  if (matches_everything_) return true;
  if (!any_event_type_ &&
      !event_types_.test(NormalizedEventType(key.event_type))) {
    return false;
  }
  if (!any_channel_) {
    if (key.channel == v1::CHANNEL_UNSPECIFIED) return false;
    if (!channels_.test(NormalizedChannel(key.channel))) return false;
  }
  if (!agent_ids_.empty() &&
      (key.agent_id.empty() || !agent_ids_.contains(key.agent_id))) {
    return false;
  }
  if (!workspaces_.empty() && !workspaces_.contains(key.workspace)) {
    return false;
  }
  return true;
}

}  // namespace convocore::hub
