// Turns one connection's bytes into requests and answers each, in order:
// pipelined requests each get their own response, a request cut anywhere is
// read on, and a malformed one gets its error and the connection closes.
// Only the connection's HTTP thread calls it.
#ifndef GATEWAY_HTTP_REQUEST_READER_H_
#define GATEWAY_HTTP_REQUEST_READER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "gateway/http/connection.h"
#include "gateway/http/request_parser.h"
#include "gateway/http/router.h"
#include "gateway/http/server_state.h"

namespace convocore::http {

class RequestReader {
 public:
  // `on_request_start` is called when the first byte of a request arrives
  // (for the transport's request timer).
  RequestReader(std::shared_ptr<ServerState> state,
                std::shared_ptr<Connection> connection,
                absl::AnyInvocable<void()> on_request_start);

  // Reads `bytes`, the next the client sent, answering every request they
  // complete.
  void OnInput(std::string_view bytes);

 private:
  // The head of the current request is in: 100 Continue, or the final
  // answer at once when the headers decide it.
  void OnHead();
  void OnRequest(HttpRequest request);
  // Answers the parser's error and closes.
  void OnError();
  // The current request's place in the response order.
  std::uint64_t Slot();
  // Answers the current request and readies for the next.
  void Finish(HttpVersion version, Route route, const Reply& reply, bool close);

  const std::shared_ptr<ServerState> state_;
  const std::shared_ptr<Connection> connection_;
  const Router router_;
  absl::AnyInvocable<void()> on_request_start_;
  RequestParser parser_;
  // Bytes received and not yet consumed by the parser.
  std::string buffer_;
  // When the first byte of the current request arrived; InfinitePast
  // between requests.
  absl::Time request_start_ = absl::InfinitePast();
  std::optional<std::uint64_t> slot_;
  // The connection's request budget (options.max_requests_per_second_per_
  // connection): a bucket refilled at that rate, up to that many.
  double tokens_ = 0;
  absl::Time refilled_ = absl::InfinitePast();
  // Takes one request from the budget; false when it is spent.
  bool TakeToken(absl::Time now);
};

}  // namespace convocore::http

#endif  // GATEWAY_HTTP_REQUEST_READER_H_
