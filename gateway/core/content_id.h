// The stable id of an event: the sender sends none, so it is derived from the
// event's content, its type and its payload without the secret.
//
// The payload is reduced to a canonical byte string (keys sorted by their
// bytes, every string and container length-prefixed, numbers by value), so
// key order, whitespace and escaping do not change the id, and that string
// is hashed with XXH3-128 (fixed seed: ids are the same across restarts and
// machines). Rendered as "evt_" followed by 32 lowercase hex digits.
#ifndef GATEWAY_CORE_CONTENT_ID_H_
#define GATEWAY_CORE_CONTENT_ID_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gateway/core/json_path.h"
#include "rapidjson/document.h"

namespace convocore::gateway {

// The id of an event of `type` whose payload is the object `payload`, whose
// member `skip_key` (the secret) is left out. Fails with kInvalidArgument
// naming the path of an object that has the same key twice: such a payload
// has no single meaning to derive an id from.
absl::StatusOr<std::string> ContentId(absl::string_view type,
                                      const rapidjson::Value& payload,
                                      const JsonPath& payload_path,
                                      absl::string_view skip_key);

}  // namespace convocore::gateway

#endif  // GATEWAY_CORE_CONTENT_ID_H_
