#include "services/jetstream/nats_calls.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace convocore::jetstream::internal {

absl::Status NatsError(absl::string_view what, natsStatus status,
                       jsErrCode js_error) {
  std::string text = absl::StrCat(what, ": ", natsStatus_GetText(status));
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  if (detail != nullptr && *detail != '\0' && last == status) {
    absl::StrAppend(&text, " (", detail, ")");
  }
  if (js_error != 0) {
    absl::StrAppend(&text, " [JetStream error ", js_error, "]");
  }
  return absl::UnavailableError(text);
}

jsOptions ApiOptions(absl::Duration wait) {
  jsOptions options;
  jsOptions_Init(&options);
  options.Wait = Millis(wait);
  return options;
}

}  // namespace convocore::jetstream::internal
