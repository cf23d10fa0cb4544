#include "services/hub/resume_info.h"

#include "absl/strings/cord.h"
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

}  // namespace convocore::hub
