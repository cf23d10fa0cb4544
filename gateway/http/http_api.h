// The gateway's HTTP API as pure functions, apart from Pistache: which route
// a request line names, which Content-Type counts as JSON, how a status maps
// to an HTTP code, and the JSON bodies of every reply.
//
//   POST /webhooks  200 {"sequence":N,"id":"...","duplicate":false}
//                   400 invalid, 401 secret, 413 too large, 415 not JSON,
//                   503 not ready / overloaded / shutting down
//   GET  /healthz   200 while the process runs
//   GET  /readyz    200 when ready to accept and persist, 503 otherwise
//   GET  /metrics   Prometheus text exposition
// Any other path is 404; another method on a known path is 405 with Allow.
// A malformed request is 400 (414 for a request line over the limit, 431
// for headers over it, 501 for a transfer coding other than chunked, 505 for
// an HTTP version other than 1.0 and 1.1), and its connection closes.
// Every error body is {"error":{"code":N,"status":"...","message":"..."}}.
#ifndef GATEWAY_HTTP_HTTP_API_H_
#define GATEWAY_HTTP_HTTP_API_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace convocore::http {

enum class Route { kWebhooks, kHealthz, kReadyz, kMetrics, kNotFound };

struct RouteMatch {
  Route route = Route::kNotFound;
  // False when the path is known but not for this method (405).
  bool method_allowed = false;
  // The one method the route takes, for the Allow header of a 405.
  std::string_view allowed_method;
};

// `path` without its query string.
RouteMatch MatchRoute(std::string_view method, std::string_view path);

// A bounded label for metrics: "webhooks", "healthz", "readyz", "metrics",
// "other".
std::string_view RouteLabel(Route route);

// True for application/json and application/<anything>+json, with any
// parameters, but for a charset other than UTF-8. An absent Content-Type is
// not checked (the caller treats it as JSON).
bool IsJsonContentType(std::string_view content_type);

// The HTTP code for a status of the ingest path:
//   kInvalidArgument -> 400, kUnauthenticated -> 401,
//   kResourceExhausted -> 413, kUnavailable, kAborted, kDeadlineExceeded,
//   kFailedPrecondition, kCancelled -> 503, anything else -> 500.
int HttpCodeForStatus(const absl::Status& status);

// A reply, ready for the adapter to write.
struct Reply {
  int code = 200;
  std::string body;
  std::string_view content_type = "application/json";
  // Set for 405.
  std::string_view allow = {};
};

inline constexpr std::string_view kMetricsContentType =
    "text/plain; version=0.0.4; charset=utf-8";

Reply AcceptedReply(std::uint64_t sequence, std::string_view id,
                    bool duplicate);
// `message` is quoted safely whatever its bytes.
Reply ErrorReply(int code, std::string_view message);
// ErrorReply(HttpCodeForStatus(status), status.message()).
Reply StatusReply(const absl::Status& status);
Reply NotFoundReply(std::string_view path);
Reply MethodNotAllowedReply(std::string_view method, const RouteMatch& match);
Reply UnsupportedMediaTypeReply(std::string_view content_type);
Reply TooLargeReply(std::size_t limit_bytes);
// /healthz and /readyz: {"status":"ok"}, {"status":"ready"} or, with 503,
// {"status":"not_ready","reason":"..."}.
Reply HealthReply();
Reply ReadinessReply(const absl::Status& readiness);

// The reason phrase of RFC 9110 for `code` ("OK", "Not Found"), or
// "Unknown" for a code the gateway never sends.
std::string_view ReasonPhrase(int code);

// The bytes of the HTTP response carrying `reply`: the status line (with
// `version`, "HTTP/1.1", and `reason`, "OK"), Content-Type, Allow when set,
// Connection ("Close" when `close`, else "Keep-Alive"), Content-Length and
// the body. In one buffer, written with one call: Pistache's ResponseWriter
// formats through an std::ostream, header objects and a promise chain per
// response, a measurable share of the gateway's CPU per webhook.
std::string SerializeResponse(const Reply& reply, std::string_view version,
                              std::string_view reason, bool close);

}  // namespace convocore::http

#endif  // GATEWAY_HTTP_HTTP_API_H_
