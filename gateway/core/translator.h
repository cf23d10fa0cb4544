// Translation of one Convocore webhook body into a verified, typed Event.
//
// Pure logic: no I/O, no HTTP, no gRPC. The HTTP adapter hands it the raw
// body and the receive time; it returns the Event of our contract, or an
// error whose code the adapter maps to an HTTP status:
//   kInvalidArgument   -> 400 (malformed JSON, invalid field, limits other
//                               than size)
//   kUnauthenticated   -> 401 (missing or wrong workspaceSecret)
//   kResourceExhausted -> 413 (body larger than the configured limit)
// Messages name the JSON path of the offending field and what was expected,
// and never contain the secret.
//
// Also derives the event's stable `id` (see content_id.h), keeps unknown
// keys in the event's extras and unknown types in `other`, and reports what
// it did not know in Observations for metrics.
#ifndef GATEWAY_CORE_TRANSLATOR_H_
#define GATEWAY_CORE_TRANSLATOR_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/events.pb.h"
#include "gateway/core/json_document.h"
#include "gateway/core/payload_schema.h"
#include "gateway/core/secret_verifier.h"

namespace convocore::gateway {

// Bounds against hostile input. The defaults are safe for the sender's
// documented payloads with a wide margin. Exceeding max_body_bytes is
// kResourceExhausted; every other limit is kInvalidArgument.
struct TranslatorLimits {
  std::size_t max_body_bytes = 1 << 20;
  // Containers nested in one another; the top-level object is at depth 1.
  // At most kMaxDepth: the writers of kept JSON and the content id recurse
  // once per level.
  int max_depth = 32;
  std::size_t max_keys = 10'000;  // object members in the whole document
  std::size_t max_string_bytes = 256 << 10;  // one string or key, unescaped
  // Values (scalars, objects, arrays) in the whole document: bounds the
  // memory a small body of many tiny values (`[0,0,0,...]`) can cost.
  std::size_t max_values = 100'000;

  static constexpr int kMaxDepth = 32;
};

struct TranslatorOptions {
  // Every secret currently accepted; more than one during a rotation.
  // Must not be empty.
  std::vector<std::string> secrets = {};
  TranslatorLimits limits = {};
};

// What a translation saw that the contract does not know, for metrics. The
// translator keeps no counters itself.
struct Observations {
  bool unknown_type = false;
  // Names of unknown fields, as "payload.<key>" or "<key>" for the envelope,
  // in the order of the body. The keys are the sender's: a metrics layer
  // should bound how many distinct names it keeps. A top-level
  // "workspaceSecret" is reported here and dropped, never kept in extras.
  std::vector<std::string> unknown_fields;
  // Enum fields whose value the spec does not list, as their JSON path
  // ("payload.channel"); the value itself is kept in the event.
  std::vector<std::string> unknown_enum_values;
  // The secret also appeared somewhere else in the body (in a message, a
  // key, an extra field) and was replaced there by "[redacted]".
  bool secret_redacted = false;
};

struct Translation {
  // Fully set but for `sequence`, which the hub assigns. Of the payload,
  // every documented key is in its typed field, every other key in
  // `payload_extras_json` (`other_json` for an unknown type), and the secret
  // nowhere.
  convocore::webhooks::v1::Event event;
  Observations observations;
};

class Translator {
 public:
  // Fails if `options` is unusable (no secret, an empty secret, a limit
  // that is zero or beyond what the translator supports). Keeps only
  // digests of the secrets, not the secrets themselves.
  static absl::StatusOr<std::unique_ptr<Translator>> Create(
      TranslatorOptions options);

  // Thread-safe; may be called concurrently from every HTTP worker.
  //
  // Checks run in this order, so that a caller without the secret learns
  // nothing about the validity of its payload beyond what it takes to find
  // the secret: body size (413); JSON syntax, UTF-8 and limits (400); the
  // top-level object and its `payload` object (400); the secret (401); then
  // everything else (400). A `receive_time` outside the range of
  // google.protobuf.Timestamp is kInternal (a bug of the caller's clock).
  absl::StatusOr<Translation> Translate(std::string_view body,
                                        absl::Time receive_time) const;

  // Replaces the secrets webhooks must carry, atomically: every Translate()
  // checks against the old set or the new one, never against neither. On
  // error (as Create() would fail) the secrets in force stay. Thread-safe.
  absl::Status SetSecrets(const std::vector<std::string>& secrets);

 private:
  Translator(TranslatorLimits limits, SecretVerifier verifier,
             const PayloadSchema& schema);

  TranslatorLimits limits_;
  JsonLimits json_limits_;
  mutable absl::Mutex verifier_mu_;
  std::shared_ptr<const SecretVerifier> verifier_ ABSL_GUARDED_BY(verifier_mu_);
  const PayloadSchema& schema_;
};

}  // namespace convocore::gateway

#endif  // GATEWAY_CORE_TRANSLATOR_H_
