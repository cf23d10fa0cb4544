// How an event's stored bytes become a response's bytes without being parsed
// or copied per stream: shared by Subscribe and Consume.
#ifndef SERVICES_GRPC_EVENT_FRAMING_H_
#define SERVICES_GRPC_EVENT_FRAMING_H_

#include <grpcpp/support/slice.h>

#include <memory>
#include <string>

#include "services/hub/event_hub.h"

namespace convocore::grpc_service {

// SubscribeResponse{events: [<event_bytes>]} as one slice: a field 1,
// length-delimited, holding the event. The same bytes are
// ConsumedEvent{event: <event_bytes>}.
grpc::Slice SubscribeResponseSlice(const std::string& event_bytes);

// The hub::EventEncoder of the gRPC service: SubscribeResponseSlice() in a
// grpc::Slice, made once per event by the first stream that writes it.
std::shared_ptr<const void> EncodeSubscribeResponse(
    const std::string& event_bytes);

// The slice of `delivery` as SubscribeResponseSlice() makes it, shared with
// every other stream when it can be.
grpc::Slice EventSlice(const hub::Delivery& delivery);

}  // namespace convocore::grpc_service

#endif  // SERVICES_GRPC_EVENT_FRAMING_H_
