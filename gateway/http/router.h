// What each request gets: the route it names, the reply of every route but
// the webhook one, the refusals decided on headers alone, and the webhook's
// hand-off to the backend. No parsing and no socket here.
#ifndef GATEWAY_HTTP_ROUTER_H_
#define GATEWAY_HTTP_ROUTER_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/http/connection.h"
#include "gateway/http/http_api.h"
#include "gateway/http/request.h"
#include "gateway/http/server_state.h"

namespace convocore::http {

// Whether the client wants the connection closed after this response:
// HTTP/1.1 keeps it unless told "close"; HTTP/1.0 closes it unless told
// "keep-alive".
bool ClientWantsClose(const HttpRequest& request);

class Router {
 public:
  explicit Router(std::shared_ptr<ServerState> state)
      : state_(std::move(state)) {}

  // A request refused on its request line and headers alone (404, 405, and
  // for webhooks 503 while draining and 415), if it is; counts a refused
  // webhook. Called before the body when the client waits for our word.
  std::optional<Reply> RefuseOnHeaders(const HttpRequest& request,
                                       const RouteMatch& match) const;

  // The reply to a complete request, or nothing for a webhook to hand to
  // StartWebhook(). Sets `route`, and sets `close` when the connection must
  // close after the reply.
  std::optional<Reply> Dispatch(const HttpRequest& request, Route* route,
                                bool* close) const;

  // Hands the webhook to the backend; its callback, on whatever thread that
  // runs, answers in `slot` on `connection` (nothing after Shutdown()). The
  // request counts in flight until answered.
  void StartWebhook(const HttpRequest& request, absl::Time receive_time,
                    std::shared_ptr<Connection> connection, std::uint64_t slot,
                    bool close) const;

  const std::shared_ptr<ServerState>& state() const { return state_; }

 private:
  std::optional<Reply> Webhook(const HttpRequest& request) const;

  std::shared_ptr<ServerState> state_;
};

}  // namespace convocore::http

#endif  // GATEWAY_HTTP_ROUTER_H_
