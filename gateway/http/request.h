// One HTTP request as the server's routing sees it, apart from the parser
// that read it.
#ifndef GATEWAY_HTTP_REQUEST_H_
#define GATEWAY_HTTP_REQUEST_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace convocore::http {

enum class HttpVersion { kHttp10, kHttp11 };

// "HTTP/1.0" or "HTTP/1.1".
std::string_view VersionString(HttpVersion version);

struct HttpRequest {
  std::string method;
  // The path, without the query string.
  std::string path;
  HttpVersion version = HttpVersion::kHttp11;
  // In the order received, names as sent.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The value of the first header named `name` (ASCII case-insensitive),
  // without surrounding whitespace.
  std::optional<std::string_view> Header(std::string_view name) const;
};

}  // namespace convocore::http

#endif  // GATEWAY_HTTP_REQUEST_H_
