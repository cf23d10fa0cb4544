// Checks a presented workspaceSecret against the configured secrets in time
// that does not depend on where, or whether, it matches.
//
// Only SHA-256 digests of the configured secrets are kept. A presented value
// is digested and compared with every configured digest, in full and without
// an early exit, so the time taken depends only on the presented value's own
// length (which its sender knows) and on the number of configured secrets,
// never on their contents or lengths.
//
// A configured secret may carry a workspace label, `acme=<secret>` (the
// label a lowercase letter, then up to 62 of [a-z0-9_-]); a match then
// names it. Anything else, `=` or not, is one unlabelled secret; `=<secret>`
// makes a secret that looks labelled unlabelled.
#ifndef GATEWAY_CORE_SECRET_VERIFIER_H_
#define GATEWAY_CORE_SECRET_VERIFIER_H_

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace convocore::gateway {

class SecretVerifier {
 public:
  // Fails if `secrets` is empty or holds an empty string, or if the digest
  // is unavailable.
  static absl::StatusOr<SecretVerifier> Create(
      const std::vector<std::string>& secrets);

  // Thread-safe.
  bool Matches(absl::string_view presented) const {
    return Match(presented).has_value();
  }
  // The label of the secret `presented` matches ("" when unlabelled), or
  // nullopt. Thread-safe.
  std::optional<std::string> Match(absl::string_view presented) const;

  // The labels of the configured secrets, "" for unlabelled ones.
  const std::vector<std::string>& labels() const { return labels_; }

 private:
  struct Digester;
  using Digest = std::array<unsigned char, 32>;

  SecretVerifier(std::shared_ptr<const Digester> digester,
                 std::vector<Digest> digests, std::vector<std::string> labels);

  std::shared_ptr<const Digester> digester_;
  std::vector<Digest> digests_;
  std::vector<std::string> labels_;  // one per digest
};

}  // namespace convocore::gateway

#endif  // GATEWAY_CORE_SECRET_VERIFIER_H_
