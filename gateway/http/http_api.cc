#include "gateway/http/http_api.h"

#include <cctype>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gateway/log/json_string.h"

namespace convocore::http {
namespace {

using ::convocore::log::AppendJsonString;

// Debian's Abseil has its own string_view; this converts for absl calls.
absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }

std::string_view StatusName(int code) {
  switch (code) {
    case 400:
      return "INVALID_ARGUMENT";
    case 401:
      return "UNAUTHENTICATED";
    case 404:
      return "NOT_FOUND";
    case 405:
      return "METHOD_NOT_ALLOWED";
    case 408:
      return "REQUEST_TIMEOUT";
    case 413:
      return "PAYLOAD_TOO_LARGE";
    case 414:
      return "URI_TOO_LONG";
    case 415:
      return "UNSUPPORTED_MEDIA_TYPE";
    case 429:
      return "RESOURCE_EXHAUSTED";
    case 431:
      return "REQUEST_HEADER_FIELDS_TOO_LARGE";
    case 501:
      return "UNIMPLEMENTED";
    case 503:
      return "UNAVAILABLE";
    case 505:
      return "HTTP_VERSION_NOT_SUPPORTED";
    default:
      return "INTERNAL";
  }
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(Absl(a), Absl(b));
}

}  // namespace

RouteMatch MatchRoute(std::string_view method, std::string_view path) {
  struct Entry {
    std::string_view path;
    Route route;
    std::string_view method;
  };
  static constexpr Entry kRoutes[] = {
      {"/webhooks", Route::kWebhooks, "POST"},
      {"/healthz", Route::kHealthz, "GET"},
      {"/readyz", Route::kReadyz, "GET"},
      {"/metrics", Route::kMetrics, "GET"},
  };
  for (const Entry& entry : kRoutes) {
    if (path == entry.path) {
      return {entry.route, method == entry.method, entry.method};
    }
  }
  return {};
}

std::string_view RouteLabel(Route route) {
  switch (route) {
    case Route::kWebhooks:
      return "webhooks";
    case Route::kHealthz:
      return "healthz";
    case Route::kReadyz:
      return "readyz";
    case Route::kMetrics:
      return "metrics";
    case Route::kNotFound:
      return "other";
  }
  return "other";
}

bool IsJsonContentType(std::string_view content_type) {
  const std::size_t semicolon = content_type.find(';');
  const std::string_view media = Trim(content_type.substr(0, semicolon));
  const std::size_t slash = media.find('/');
  if (slash == std::string_view::npos) return false;
  const std::string_view type = media.substr(0, slash);
  const std::string_view subtype = media.substr(slash + 1);
  if (!EqualsIgnoreCase(type, "application")) return false;
  const bool json =
      EqualsIgnoreCase(subtype, "json") ||
      (subtype.size() > 5 &&
       EqualsIgnoreCase(subtype.substr(subtype.size() - 5), "+json"));
  if (!json) return false;
  // JSON is UTF-8 (RFC 8259); a body declared in another charset is not
  // what we can read.
  std::string_view params =
      semicolon == std::string_view::npos ? "" : content_type.substr(semicolon);
  while (!params.empty()) {
    params.remove_prefix(1);  // the ';'
    const std::size_t next = params.find(';');
    const std::string_view param = Trim(params.substr(0, next));
    params = next == std::string_view::npos ? "" : params.substr(next);
    const std::size_t eq = param.find('=');
    if (eq == std::string_view::npos) continue;
    if (!EqualsIgnoreCase(Trim(param.substr(0, eq)), "charset")) continue;
    std::string_view value = Trim(param.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    if (!EqualsIgnoreCase(value, "utf-8") && !EqualsIgnoreCase(value, "utf8")) {
      return false;
    }
  }
  return true;
}

int HttpCodeForStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kResourceExhausted:
      return 413;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kCancelled:
      return 503;
    default:
      return 500;
  }
}

Reply AcceptedReply(std::uint64_t sequence, std::string_view id,
                    bool duplicate) {
  Reply reply;
  reply.body = absl::StrCat("{\"sequence\":", sequence, ",\"id\":");
  AppendJsonString(&reply.body, id);
  absl::StrAppend(&reply.body, ",\"duplicate\":", duplicate ? "true" : "false",
                  "}");
  return reply;
}

std::string_view ReasonPhrase(int code) {
  switch (code) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string SerializeResponse(const Reply& reply, std::string_view version,
                              std::string_view reason, bool close) {
  std::string out;
  out.reserve(160 + reply.body.size());
  absl::StrAppend(&out, Absl(version), " ", reply.code, " ", Absl(reason),
                  "\r\nContent-Type: ", Absl(reply.content_type), "\r\n");
  if (!reply.allow.empty()) {
    absl::StrAppend(&out, "Allow: ", Absl(reply.allow), "\r\n");
  }
  absl::StrAppend(&out, "Connection: ", close ? "Close" : "Keep-Alive",
                  "\r\nContent-Length: ", reply.body.size(), "\r\n\r\n",
                  reply.body);
  return out;
}

Reply ErrorReply(int code, std::string_view message) {
  Reply reply;
  reply.code = code;
  reply.body = absl::StrCat("{\"error\":{\"code\":", code, ",\"status\":\"",
                            Absl(StatusName(code)), "\",\"message\":");
  AppendJsonString(&reply.body, message);
  reply.body += "}}";
  return reply;
}

Reply StatusReply(const absl::Status& status) {
  const std::string_view message(status.message().data(),
                                 status.message().size());
  return ErrorReply(HttpCodeForStatus(status), message);
}

Reply NotFoundReply(std::string_view path) {
  // The path is the client's: enough of it to spot a typo, never its query
  // (where tokens travel), never more than kMaxPath bytes (quoted safely).
  constexpr std::size_t kMaxPath = 64;
  path = path.substr(0, path.find('?'));
  const bool cut = path.size() > kMaxPath;
  return ErrorReply(
      404,
      absl::StrCat("no such path \"", Absl(path.substr(0, kMaxPath)),
                   cut ? "...\"" : "\"", "; webhooks are POSTed to /webhooks"));
}

Reply MethodNotAllowedReply(std::string_view method, const RouteMatch& match) {
  Reply reply = ErrorReply(
      405, absl::StrCat("method ", Absl(method), " is not allowed here; use ",
                        Absl(match.allowed_method)));
  reply.allow = match.allowed_method;
  return reply;
}

Reply UnsupportedMediaTypeReply(std::string_view content_type) {
  return ErrorReply(
      415, absl::StrCat("Content-Type \"", Absl(content_type),
                        "\" is not JSON; send application/json (UTF-8)"));
}

Reply TooLargeReply(std::size_t limit_bytes) {
  return ErrorReply(413, absl::StrCat("the body is larger than the limit of ",
                                      limit_bytes, " bytes"));
}

Reply HealthReply() { return Reply{.body = "{\"status\":\"ok\"}"}; }

Reply ReadinessReply(const absl::Status& readiness) {
  if (readiness.ok()) return Reply{.body = "{\"status\":\"ready\"}"};
  Reply reply;
  reply.code = 503;
  reply.body = "{\"status\":\"not_ready\",\"reason\":";
  AppendJsonString(&reply.body, std::string_view(readiness.message().data(),
                                                 readiness.message().size()));
  reply.body += "}";
  return reply;
}

}  // namespace convocore::http
