// Who is calling, as the subscriber tokens see it: shared by every RPC of
// EventStreamService.
#ifndef SERVICES_GRPC_CALLER_GRANT_H_
#define SERVICES_GRPC_CALLER_GRANT_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "services/auth/subscriber_tokens.h"

namespace convocore::grpc_service {

// The caller's grant: its verified client certificate's when it sent no
// `authorization` metadata, else its bearer token's. UNAUTHENTICATED when
// neither names one; the message never holds the token.
absl::StatusOr<const auth::SubscriberGrant*> CallerGrant(
    const grpc::CallbackServerContext& context,
    const auth::SubscriberTokens& tokens);

}  // namespace convocore::grpc_service

#endif  // SERVICES_GRPC_CALLER_GRANT_H_
