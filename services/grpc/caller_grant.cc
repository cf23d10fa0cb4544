#include "services/grpc/caller_grant.h"

#include <optional>
#include <string>
#include <vector>

namespace convocore::grpc_service {

namespace {

// The identities of the client's verified certificate (its SAN DNS names
// and its common name); none without mTLS.
std::vector<std::string> CertificateIdentities(
    const grpc::CallbackServerContext& context) {
  std::vector<std::string> identities;
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return identities;
  for (const char* property :
       {"x509_subject_alternative_name", "x509_common_name"}) {
    for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
      identities.emplace_back(value.data(), value.size());
    }
  }
  return identities;
}

}  // namespace

absl::StatusOr<const auth::SubscriberGrant*> CallerGrant(
    const grpc::CallbackServerContext& context,
    const auth::SubscriberTokens& tokens) {
  std::optional<std::string> header;
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    header.emplace(it->second.data(), it->second.size());
  }
  if (!header.has_value()) {
    // With mTLS, a verified client certificate may name its grant.
    if (const auth::SubscriberGrant* grant =
            tokens.FindByCertificate(CertificateIdentities(context))) {
      return grant;
    }
  }
  absl::StatusOr<absl::string_view> token =
      auth::BearerToken(header.has_value() ? &*header : nullptr);
  if (!token.ok()) return token.status();
  const auth::SubscriberGrant* grant = tokens.Find(*token);
  if (grant == nullptr) {
    return absl::UnauthenticatedError("the subscriber token is not valid");
  }
  return grant;
}

}  // namespace convocore::grpc_service
