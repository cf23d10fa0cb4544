#include "services/grpc/event_framing.h"

#include <grpc/slice.h>

#include <cstdint>
#include <cstring>

#include "convocore/webhooks/v1/event_stream_service.pb.h"
#include "google/protobuf/io/coded_stream.h"

namespace convocore::grpc_service {
namespace {

namespace v1 = convocore::webhooks::v1;

// The serialize-once fast path writes SubscribeResponse bytes by hand: each
// event is one `events` entry (field 1, length-delimited), so a response
// with N events is N such entries back to back, and every event's entry is
// made once and shared by every stream. These tie the hand-written tags to
// the contract.
static_assert(v1::SubscribeResponse::kEventsFieldNumber == 1,
              "kEventsTag is SubscribeResponse.events");
constexpr std::uint8_t kEventsTag = (1 << 3) | 2;  // field 1, length-delimited

}  // namespace

// Made once per event (see hub::Delivery::Encoded), so that every stream's
// write only takes a reference to it: building a buffer per write cost as
// much again as gRPC's own work per message.
grpc::Slice SubscribeResponseSlice(const std::string& event_bytes) {
  std::uint8_t header[1 + 5];
  header[0] = kEventsTag;
  const std::uint8_t* end =
      google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(
          static_cast<std::uint32_t>(event_bytes.size()), header + 1);
  const std::size_t header_size = end - header;
  grpc_slice slice = grpc_slice_malloc(header_size + event_bytes.size());
  std::memcpy(GRPC_SLICE_START_PTR(slice), header, header_size);
  std::memcpy(GRPC_SLICE_START_PTR(slice) + header_size, event_bytes.data(),
              event_bytes.size());
  return grpc::Slice(slice, grpc::Slice::STEAL_REF);
}

std::shared_ptr<const void> EncodeSubscribeResponse(
    const std::string& event_bytes) {
  return std::make_shared<const grpc::Slice>(
      SubscribeResponseSlice(event_bytes));
}

grpc::Slice EventSlice(const hub::Delivery& delivery) {
  if (const void* encoded = delivery.Encoded(&EncodeSubscribeResponse)) {
    return *static_cast<const grpc::Slice*>(encoded);
  }
  return SubscribeResponseSlice(*delivery.event_bytes);
}

}  // namespace convocore::grpc_service
