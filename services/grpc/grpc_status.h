// Converts absl::Status to grpc::Status at the gRPC edge. The canonical codes
// are the same numbers in both.
#ifndef SERVICES_GRPC_GRPC_STATUS_H_
#define SERVICES_GRPC_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace convocore::grpc_service {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace convocore::grpc_service

#endif  // SERVICES_GRPC_GRPC_STATUS_H_
