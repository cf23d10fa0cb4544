// Where a subscription that ended can resume, carried as a typed detail of
// the absl::Status that ends it (convocore.webhooks.v1.ResumeInfo, as a
// status payload), so that the gRPC edge turns it into a google.rpc.Status
// detail and clients read it without parsing the message.
#ifndef SERVICES_HUB_RESUME_INFO_H_
#define SERVICES_HUB_RESUME_INFO_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace convocore::hub {

// The fields of convocore.webhooks.v1.ResumeInfo; see the contract.
struct ResumePoint {
  std::uint64_t last_sent_sequence = 0;
  std::uint64_t oldest_available_sequence = 0;
  std::uint64_t last_sequence = 0;
};

// The payload's type URL: the one a google.protobuf.Any of a ResumeInfo has.
inline constexpr absl::string_view kResumeInfoTypeUrl =
    "type.googleapis.com/convocore.webhooks.v1.ResumeInfo";

// `status` with `point` attached (replacing any attached before). An OK
// status is returned as it is: it carries no payload.
absl::Status WithResumeInfo(absl::Status status, const ResumePoint& point);

}  // namespace convocore::hub

#endif  // SERVICES_HUB_RESUME_INFO_H_
