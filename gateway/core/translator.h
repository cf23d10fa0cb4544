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
#ifndef GATEWAY_CORE_TRANSLATOR_H_
#define GATEWAY_CORE_TRANSLATOR_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/events.pb.h"

namespace convocore::gateway {

// Bounds against hostile input. The defaults are safe for the sender's
// documented payloads with a wide margin.
struct TranslatorLimits {
  std::size_t max_body_bytes = 1 << 20;
  int max_depth = 32;
  std::size_t max_keys = 10'000;  // object members in the whole document
  std::size_t max_string_bytes = 256 << 10;
};

struct TranslatorOptions {
  // Every secret currently accepted; more than one during a rotation.
  // Must not be empty.
  std::vector<std::string> secrets;
  TranslatorLimits limits;
};

// What a translation saw that the contract does not know, for metrics. The
// translator keeps no counters itself.
struct Observations {
  bool unknown_type = false;
  // Names of unknown fields, as "payload.<key>" or "<key>" for the envelope.
  std::vector<std::string> unknown_fields;
  // Enum fields whose value the spec does not list, as their JSON path
  // ("payload.channel"); the value itself is kept in the event.
  std::vector<std::string> unknown_enum_values;
};

struct Translation {
  // Fully set but for `sequence`, which the hub assigns.
  convocore::webhooks::v1::Event event;
  Observations observations;
};

class Translator {
 public:
  // Fails if `options` is unusable (no secret, an empty secret).
  static absl::StatusOr<std::unique_ptr<Translator>> Create(
      TranslatorOptions options);

  // Thread-safe; may be called concurrently from every HTTP worker.
  absl::StatusOr<Translation> Translate(std::string_view body,
                                        absl::Time receive_time) const;

 private:
  explicit Translator(TranslatorOptions options);
  TranslatorOptions options_;
};

}  // namespace convocore::gateway

#endif  // GATEWAY_CORE_TRANSLATOR_H_
