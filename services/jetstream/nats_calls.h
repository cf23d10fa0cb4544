// Internal to services/jetstream: how its cnats calls wait and report
// failures, shared by the store and the consumer groups.
#ifndef SERVICES_JETSTREAM_NATS_CALLS_H_
#define SERVICES_JETSTREAM_NATS_CALLS_H_

#include <nats/nats.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace convocore::jetstream::internal {

inline std::int64_t Millis(absl::Duration d) {
  return absl::ToInt64Milliseconds(d);
}
inline std::int64_t Nanos(absl::Duration d) {
  return absl::ToInt64Nanoseconds(d);
}

// UNAVAILABLE: what went wrong in a NATS call, with cnats' own words and
// JetStream's error code when there is one.
absl::Status NatsError(absl::string_view what, natsStatus status,
                       jsErrCode js_error = static_cast<jsErrCode>(0));

// JetStream API options that wait `wait` for an answer.
jsOptions ApiOptions(absl::Duration wait);

}  // namespace convocore::jetstream::internal

#endif  // SERVICES_JETSTREAM_NATS_CALLS_H_
