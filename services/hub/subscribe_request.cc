#include "services/hub/subscribe_request.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace convocore::hub {

namespace v1 = convocore::webhooks::v1;

absl::StatusOr<SubscribeOptions> SubscribeOptionsFromRequest(
    const v1::SubscribeRequest& request) {
  SubscribeOptions options;
  absl::StatusOr<EventFilter> filter = EventFilter::Create(
      std::vector<int>(request.event_types().begin(),
                       request.event_types().end()),
      std::vector<std::string>(request.agent_ids().begin(),
                               request.agent_ids().end()),
      std::vector<int>(request.channels().begin(), request.channels().end()),
      std::vector<std::string>(request.workspaces().begin(),
                               request.workspaces().end()));
  if (!filter.ok()) return filter.status();
  options.filter = *std::move(filter);

  switch (request.start_position_case()) {
    case v1::SubscribeRequest::kAfterSequence:
      options.start = StartPosition::AfterSequence(request.after_sequence());
      break;
    case v1::SubscribeRequest::kFromOldest:
      // from_oldest=false is the same as no start position: from now.
      options.start = request.from_oldest() ? StartPosition::Oldest()
                                            : StartPosition::Now();
      break;
    case v1::SubscribeRequest::kFromTime: {
      // google.protobuf.Timestamp's documented range.
      constexpr std::int64_t kMinSeconds = -62'135'596'800;
      constexpr std::int64_t kMaxSeconds = 253'402'300'799;
      const auto& t = request.from_time();
      if (t.seconds() < kMinSeconds || t.seconds() > kMaxSeconds ||
          t.nanos() < 0 || t.nanos() > 999'999'999) {
        return absl::InvalidArgumentError("from_time is not a valid timestamp");
      }
      options.start = StartPosition::FromTime(
          absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos()));
      break;
    }
    case v1::SubscribeRequest::START_POSITION_NOT_SET:
      options.start = StartPosition::Now();
      break;
  }
  return options;
}

}  // namespace convocore::hub
