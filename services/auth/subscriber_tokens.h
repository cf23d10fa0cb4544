// Who may read the event stream: the subscriber tokens of
// --subscriber_tokens_file and what each may read. Pure logic, no I/O: the
// gRPC service asks it, the gateway reads and reloads the file.
//
// The file names each token by the hex SHA-256 of the token, never the token
// itself:
//
//   {"tokens": [{"name": "crm",
//                "sha256": "<64 hex digits>",
//                "event_types": ["lead_captured", "form_submitted"]}]}
//
// `event_types` holds the sender's type strings; "*" means every type,
// types this contract does not know yet (EVENT_TYPE_OTHER) included, which
// no list of names grants. An optional `workspaces` list limits the token to
// the events of those workspace labels (Event.workspace). With mTLS an entry
// may give `"certificate": "<identity>"` instead of `sha256`: a client whose
// verified certificate has that identity (a SAN DNS name, or else its common
// name) gets the entry's grant without a bearer token.
#ifndef SERVICES_AUTH_SUBSCRIBER_TOKENS_H_
#define SERVICES_AUTH_SUBSCRIBER_TOKENS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "convocore/webhooks/v1/event_stream_service.pb.h"
#include "convocore/webhooks/v1/events.pb.h"

namespace convocore::auth {

using TokenDigest = std::array<std::uint8_t, 32>;  // SHA-256

// SHA-256 of `token`.
TokenDigest DigestOf(absl::string_view token);

// What one token may read.
struct SubscriberGrant {
  std::string name;
  TokenDigest digest{};  // unset for a certificate's entry
  // The client certificate identity this entry is for; empty for a token.
  std::string certificate;
  // "*": every type, unknown ones included; `types` is then empty.
  bool all_types = false;
  std::vector<convocore::webhooks::v1::EventType> types;  // sorted, unique
  // Empty: every workspace. Else only these labels (sorted, unique).
  std::vector<std::string> workspaces;

  bool Allows(convocore::webhooks::v1::EventType type) const;
  bool AllowsWorkspace(const std::string& workspace) const;
};

class SubscriberTokens {
 public:
  // Parses the file's text. INVALID_ARGUMENT naming the line and the reason
  // for malformed JSON, an unknown key or type, a digest that is not 64 hex
  // digits, a name or digest given twice, or an empty type list.
  static absl::StatusOr<SubscriberTokens> Parse(absl::string_view json);

  // The grant of the token presented (the token itself, not its digest),
  // or nullptr. Takes the same time whichever grant matches, or none.
  const SubscriberGrant* Find(absl::string_view token) const;
  // The grant whose token has `digest`, or nullptr: what a reload checks
  // open streams against.
  const SubscriberGrant* FindByDigest(const TokenDigest& digest) const;
  // The grant of a client certificate with one of `identities`, or nullptr.
  const SubscriberGrant* FindByCertificate(
      const std::vector<std::string>& identities) const;

  const std::vector<SubscriberGrant>& grants() const { return grants_; }

 private:
  explicit SubscriberTokens(std::vector<SubscriberGrant> grants)
      : grants_(std::move(grants)) {}

  std::vector<SubscriberGrant> grants_;
};

// The token of an `authorization` metadata value ("Bearer <token>", the
// scheme in any case). UNAUTHENTICATED when absent or of another scheme; the
// message never holds the value.
absl::StatusOr<absl::string_view> BearerToken(const std::string* authorization);

// Narrows `request` to what `grant` may read: an empty `event_types` becomes
// the grant's types (left empty, meaning everything, only for "*"), an
// empty `workspaces` the grant's workspaces. PERMISSION_DENIED naming the
// first type or workspace asked for that the grant does not allow.
absl::Status Authorize(const SubscriberGrant& grant,
                       convocore::webhooks::v1::SubscribeRequest* request);

// Whether a stream authorized for `event_types` and `workspaces` (as
// Authorize() left them) may go on under `grant`, the token's grant after a
// reload: OK, or PERMISSION_DENIED naming what it may no longer read.
absl::Status StillAllowed(
    const SubscriberGrant& grant,
    const std::vector<convocore::webhooks::v1::EventType>& event_types,
    const std::vector<std::string>& workspaces = {});

// The sender's string of `type` ("lead_captured"); "other" for
// EVENT_TYPE_OTHER.
std::string TypeString(convocore::webhooks::v1::EventType type);

}  // namespace convocore::auth

#endif  // SERVICES_AUTH_SUBSCRIBER_TOKENS_H_
