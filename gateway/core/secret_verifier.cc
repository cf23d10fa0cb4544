#include "gateway/core/secret_verifier.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

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
                               std::vector<Digest> digests)
    : digester_(std::move(digester)), digests_(std::move(digests)) {}

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
  for (std::size_t i = 0; i < secrets.size(); ++i) {
    if (secrets[i].empty()) {
      return absl::InvalidArgumentError(
          "a configured workspace secret is empty");
    }
    if (!digester->Compute(secrets[i], digests[i])) {
      return absl::InternalError("SHA-256 failed");
    }
  }
  return SecretVerifier(std::move(digester), std::move(digests));
}

bool SecretVerifier::Matches(absl::string_view presented) const {
  Digest digest;
  if (!digester_->Compute(presented, digest)) return false;
  // Every digest is compared in full, whatever the earlier ones gave.
  int matched = 0;
  for (const Digest& d : digests_) {
    matched |= CRYPTO_memcmp(digest.data(), d.data(), d.size()) == 0;
  }
  return matched != 0;
}

}  // namespace convocore::gateway
