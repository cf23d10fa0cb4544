// Converts absl::Status to grpc::Status at the gRPC edge. The canonical codes
// are the same numbers in both. Payloads of the absl::Status (typed details
// such as hub::ResumePoint's ResumeInfo) become the details of a
// google.rpc.Status, which gRPC sends in the `grpc-status-details-bin`
// trailer, where every gRPC library's status helpers read them.
#ifndef SERVICES_GRPC_GRPC_STATUS_H_
#define SERVICES_GRPC_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace convocore::grpc_service {

grpc::Status ToGrpcStatus(const absl::Status& status);

// The serialized google.rpc.Status of `status`: its code, message and each
// payload as a google.protobuf.Any whose type URL is the payload's.
std::string EncodeRpcStatus(const absl::Status& status);

}  // namespace convocore::grpc_service

#endif  // SERVICES_GRPC_GRPC_STATUS_H_
