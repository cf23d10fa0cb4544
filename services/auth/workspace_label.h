// The workspace labels of the gateway's secrets (`acme=<secret>`), as
// events, subscribe requests and subscriber tokens name them.
#ifndef SERVICES_AUTH_WORKSPACE_LABEL_H_
#define SERVICES_AUTH_WORKSPACE_LABEL_H_

#include "absl/strings/string_view.h"

namespace convocore::auth {

// A lowercase letter, then up to 62 of a-z, 0-9, '_' and '-'.
inline bool IsWorkspaceLabel(absl::string_view text) {
  if (text.empty() || text.size() > 63 || text[0] < 'a' || text[0] > 'z') {
    return false;
  }
  for (char c : text) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

}  // namespace convocore::auth

#endif  // SERVICES_AUTH_WORKSPACE_LABEL_H_
