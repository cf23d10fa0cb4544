#include "services/hub/resume_info.h"

#include <string>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/types/optional.h"
#include "convocore/webhooks/v1/event_stream_service.pb.h"

namespace convocore::hub {

namespace v1 = convocore::webhooks::v1;

absl::Status WithResumeInfo(absl::Status status, const ResumePoint& point) {
  if (status.ok()) return status;
  v1::ResumeInfo info;
  info.set_last_sent_sequence(point.last_sent_sequence);
  info.set_oldest_available_sequence(point.oldest_available_sequence);
  info.set_last_sequence(point.last_sequence);
  status.SetPayload(kResumeInfoTypeUrl, absl::Cord(info.SerializeAsString()));
  return status;
}

std::optional<ResumePoint> ResumeInfoOf(const absl::Status& status) {
  const absl::optional<absl::Cord> payload =
      status.GetPayload(kResumeInfoTypeUrl);
  if (!payload) return std::nullopt;
  v1::ResumeInfo info;
  if (!info.ParseFromString(std::string(*payload))) return std::nullopt;
  return ResumePoint{info.last_sent_sequence(),
                     info.oldest_available_sequence(), info.last_sequence()};
}

}  // namespace convocore::hub
