#include "gateway/http/router.h"

#include <exception>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gateway/log/logger.h"

namespace convocore::http {

bool ClientWantsClose(const HttpRequest& request) {
  bool close = request.version == HttpVersion::kHttp10;
  if (std::optional<std::string_view> value = request.Header("Connection")) {
    for (absl::string_view token :
         absl::StrSplit(absl::string_view(value->data(), value->size()), ',')) {
      token = absl::StripAsciiWhitespace(token);
      if (absl::EqualsIgnoreCase(token, "close")) return true;
      if (absl::EqualsIgnoreCase(token, "keep-alive")) close = false;
    }
  }
  return close;
}

std::optional<Reply> Router::RefuseOnHeaders(const HttpRequest& request,
                                             const RouteMatch& match) const {
  if (match.route == Route::kNotFound) return NotFoundReply(request.path);
  if (!match.method_allowed) {
    return MethodNotAllowedReply(request.method, match);
  }
  if (match.route != Route::kWebhooks) return std::nullopt;
  if (state_->draining.load()) {
    state_->backend->OnWebhookRefused(Refusal::kShuttingDown);
    return ErrorReply(503, "the gateway is shutting down");
  }
  std::optional<std::string_view> content_type = request.Header("Content-Type");
  if (content_type && !IsJsonContentType(*content_type)) {
    state_->backend->OnWebhookRefused(Refusal::kUnsupportedMediaType);
    return UnsupportedMediaTypeReply(*content_type);
  }
  return std::nullopt;
}

std::optional<Reply> Router::Dispatch(const HttpRequest& request, Route* route,
                                      bool* close) const {
  const RouteMatch match = MatchRoute(request.method, request.path);
  *route = match.route;
  // Draining: every connection closes after its response, so that clients
  // move to another instance.
  if (state_->draining.load()) *close = true;
  if (match.route == Route::kNotFound) return NotFoundReply(request.path);
  if (!match.method_allowed) {
    return MethodNotAllowedReply(request.method, match);
  }
  switch (match.route) {
    case Route::kWebhooks:
      return Webhook(request);
    case Route::kHealthz:
      return HealthReply();
    case Route::kReadyz:
      if (state_->draining.load()) {
        return ReadinessReply(
            absl::UnavailableError("the gateway is shutting down"));
      }
      return ReadinessReply(state_->backend->Readiness());
    case Route::kMetrics:
      return Reply{.body = state_->backend->RenderMetrics(),
                   .content_type = kMetricsContentType};
    case Route::kNotFound:
      break;
  }
  return NotFoundReply(request.path);
}

std::optional<Reply> Router::Webhook(const HttpRequest& request) const {
  if (std::optional<Reply> refusal =
          RefuseOnHeaders(request, MatchRoute("POST", "/webhooks"))) {
    return refusal;
  }
  // A chunked body is only measured once received.
  if (request.body.size() > state_->options.max_body_bytes) {
    state_->backend->OnWebhookRefused(Refusal::kTooLarge);
    return TooLargeReply(state_->options.max_body_bytes);
  }
  return std::nullopt;
}

void Router::StartWebhook(const HttpRequest& request, absl::Time receive_time,
                          std::shared_ptr<Connection> connection,
                          std::uint64_t slot, bool close) const {
  // Everything the callback needs, and nothing of the request, whose
  // connection serves its next request meanwhile.
  struct Pending {
    std::shared_ptr<ServerState> state;
    HttpVersion version;
    std::shared_ptr<Connection> connection;
    std::uint64_t slot;
    bool close;
    InFlight in_flight;
  };
  auto pending = std::make_unique<Pending>(Pending{
      state_, request.version, std::move(connection), slot, close,
      InFlight(state_)});
  state_->backend->HandleWebhook(
      request.body, receive_time,
      [pending = std::move(pending)](absl::StatusOr<WebhookAck> ack) {
        Pending& p = *pending;
        const Reply reply =
            ack.ok() ? AcceptedReply(ack->sequence, ack->id, ack->duplicate)
                     : StatusReply(ack.status());
        // A drain may have begun while the backend worked.
        const bool close = p.close || p.state->draining.load();
        if (close) p.connection->closing.store(true);
        absl::ReaderMutexLock lock(&p.state->transport_mu);
        if (p.state->stopped) return;  // the transport is gone
        try {
          Respond(p.state, *p.connection, p.slot, p.version, Route::kWebhooks,
                  reply, close);
        } catch (const std::exception& error) {
          // Pistache throws; the caller's thread (the hub's committer) must
          // not die of a client.
          log::Warning("cannot answer a webhook", {{"error", error.what()}});
        }
      });
}

}  // namespace convocore::http
