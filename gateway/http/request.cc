#include "gateway/http/request.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace convocore::http {

std::string_view VersionString(HttpVersion version) {
  return version == HttpVersion::kHttp10 ? "HTTP/1.0" : "HTTP/1.1";
}

std::optional<std::string_view> HttpRequest::Header(
    std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(absl::string_view(key.data(), key.size()),
                               absl::string_view(name.data(), name.size()))) {
      absl::string_view stripped = absl::StripAsciiWhitespace(value);
      return std::string_view(stripped.data(), stripped.size());
    }
  }
  return std::nullopt;
}

}  // namespace convocore::http
