// Writes JSON whose shape the contract does not know (extras, formData, the
// payload of an unknown type) as JSON text for the contract's `*_json`
// fields: members in the order sent, every number exactly as sent (a
// JsonDocument keeps number text, see json_path.h), strings re-escaped as
// RapidJSON writes them (UTF-8 kept, control characters escaped).
#ifndef GATEWAY_CORE_JSON_TEXT_H_
#define GATEWAY_CORE_JSON_TEXT_H_

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "gateway/core/json_path.h"
#include "rapidjson/document.h"

namespace convocore::gateway {

// One JSON object built member by member. Fails with kInvalidArgument,
// naming the path, on a key added twice or an object anywhere inside a value
// that has the same key twice: consumers' JSON libraries disagree on which
// of two values they keep, so neither is passed on. Recursion is bounded by
// the parse's depth limit.
class JsonObjectText {
 public:
  // Adds `value` under `key`; `parent` is the path of the object it came
  // from, for messages.
  absl::Status Add(absl::string_view key, const rapidjson::Value& value,
                   const JsonPath& parent);

  // Adds every member of the object `object` but one named `skip_key` (when
  // not empty).
  absl::Status AddMembers(const rapidjson::Value& object, const JsonPath& path,
                          absl::string_view skip_key = {});

  // Whether nothing was added.
  bool empty() const { return text_.empty(); }

  // The object's text ("{}" when nothing was added).
  std::string Finish() &&;

 private:
  absl::flat_hash_set<std::string> keys_;
  std::string text_;
};

}  // namespace convocore::gateway

#endif  // GATEWAY_CORE_JSON_TEXT_H_
