// Reads a convocore.webhooks.v1.SubscribeRequest into the hub's
// SubscribeOptions, validating it: the transport-independent half of the
// Subscribe RPC.
#ifndef SERVICES_HUB_SUBSCRIBE_REQUEST_H_
#define SERVICES_HUB_SUBSCRIBE_REQUEST_H_

#include "absl/status/statusor.h"
#include "convocore/webhooks/v1/event_stream_service.pb.h"
#include "services/hub/event_hub.h"

namespace convocore::hub {

// INVALID_ARGUMENT for an invalid filter value (see EventFilter::Create) or
// an out-of-range from_time. Range checks against the retained events happen
// in EventHub::Subscribe().
absl::StatusOr<SubscribeOptions> SubscribeOptionsFromRequest(
    const convocore::webhooks::v1::SubscribeRequest& request);

}  // namespace convocore::hub

#endif  // SERVICES_HUB_SUBSCRIBE_REQUEST_H_
