#include "gateway/core/secret_verifier.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "services/auth/workspace_label.h"

namespace convocore::gateway {

// OpenSSL's SHA-256, fetched once: an implicit fetch on every call costs more
// than the digest itself.
struct SecretVerifier::Digester {
  EVP_MD* md = nullptr;
  ~Digester() { EVP_MD_free(md); }

  bool Compute(absl::string_view data, Digest& out) const {
    unsigned int length = 0;
    return EVP_Digest(data.data(), data.size(), out.data(), &length, md,
                      nullptr) == 1 &&
           length == out.size();
  }
};

SecretVerifier::SecretVerifier(std::shared_ptr<const Digester> digester,
                               std::vector<Digest> digests,
                               std::vector<std::string> labels)
    : digester_(std::move(digester)),
      digests_(std::move(digests)),
      labels_(std::move(labels)) {}

absl::StatusOr<SecretVerifier> SecretVerifier::Create(
    const std::vector<std::string>& secrets) {
  if (secrets.empty()) {
    return absl::InvalidArgumentError("no workspace secret is configured");
  }
  auto digester = std::make_shared<Digester>();
  digester->md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (digester->md == nullptr) {
    return absl::InternalError("OpenSSL provides no SHA-256");
  }
  std::vector<Digest> digests(secrets.size());
  std::vector<std::string> labels(secrets.size());
  for (std::size_t i = 0; i < secrets.size(); ++i) {
    absl::string_view secret = secrets[i];
    const std::size_t equals = secret.find('=');
    if (equals != absl::string_view::npos &&
        (equals == 0 || auth::IsWorkspaceLabel(secret.substr(0, equals)))) {
      labels[i] = std::string(secret.substr(0, equals));
      secret.remove_prefix(equals + 1);
    }
    if (secret.empty()) {
      return absl::InvalidArgumentError(
          labels[i].empty() ? "a configured workspace secret is empty"
                            : absl::StrCat("the workspace secret labelled \"",
                                           labels[i], "\" is empty"));
    }
    if (!digester->Compute(secret, digests[i])) {
      return absl::InternalError("SHA-256 failed");
    }
  }
  return SecretVerifier(std::move(digester), std::move(digests),
                        std::move(labels));
}

std::optional<std::string> SecretVerifier::Match(
    absl::string_view presented) const {
  Digest digest;
  if (!digester_->Compute(presented, digest)) return std::nullopt;
  // Every digest is compared in full, whatever the earlier ones gave.
  std::size_t matched = digests_.size();
  for (std::size_t i = 0; i < digests_.size(); ++i) {
    const bool same =
        CRYPTO_memcmp(digest.data(), digests_[i].data(), digest.size()) == 0;
    if (same) matched = i;
  }
  if (matched == digests_.size()) return std::nullopt;
  return labels_[matched];
}

}  // namespace convocore::gateway
