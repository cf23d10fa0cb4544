#include "services/grpc/grpc_status.h"

#include <string>

namespace convocore::grpc_service {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace convocore::grpc_service
