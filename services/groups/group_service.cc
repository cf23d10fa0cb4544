#include "services/groups/group_service.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace convocore::groups {

namespace v1 = convocore::webhooks::v1;

std::string DescribeFilter(const v1::SubscribeRequest& filter) {
  std::vector<std::string> parts;
  if (filter.event_types_size() > 0) {
    std::vector<std::string> types;
    for (int type : filter.event_types()) {
      types.push_back(v1::EventType_Name(static_cast<v1::EventType>(type)));
    }
    parts.push_back(
        absl::StrCat("event_types [", absl::StrJoin(types, ", "), "]"));
  }
  if (filter.agent_ids_size() > 0) {
    parts.push_back(absl::StrCat("agent_ids [",
                                 absl::StrJoin(filter.agent_ids(), ", "), "]"));
  }
  if (filter.channels_size() > 0) {
    std::vector<std::string> channels;
    for (int channel : filter.channels()) {
      channels.push_back(v1::Channel_Name(static_cast<v1::Channel>(channel)));
    }
    parts.push_back(
        absl::StrCat("channels [", absl::StrJoin(channels, ", "), "]"));
  }
  if (filter.workspaces_size() > 0) {
    parts.push_back(absl::StrCat(
        "workspaces [", absl::StrJoin(filter.workspaces(), ", "), "]"));
  }
  return parts.empty() ? "every event" : absl::StrJoin(parts, ", ");
}

absl::Status CheckJoin(const JoinRequest& join, const GroupSettings& settings,
                       const GroupAuthorizer& authorize) {
  v1::SubscribeRequest filter = settings.filter;
  if (join.filter_given) {
    // Compared as the group would have been created from it: narrowed to
    // what the caller may read.
    v1::SubscribeRequest asked = join.settings.filter;
    if (absl::Status allowed = authorize(&asked, true); !allowed.ok()) {
      return allowed;
    }
    CanonicalizeFilter(&asked);
    if (!SameFilter(asked, filter)) {
      return absl::FailedPreconditionError(
          absl::StrCat("consumer group \"", join.settings.name, "\" reads ",
                       DescribeFilter(filter), ", not ", DescribeFilter(asked),
                       "; join it with its filter or none"));
    }
  }
  if (absl::Status allowed = authorize(&filter, false); !allowed.ok()) {
    return allowed;
  }
  return absl::OkStatus();
}

}  // namespace convocore::groups
