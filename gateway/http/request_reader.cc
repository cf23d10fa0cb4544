#include "gateway/http/request_reader.h"

#include <algorithm>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"

namespace convocore::http {

RequestReader::RequestReader(std::shared_ptr<ServerState> state,
                             std::shared_ptr<Connection> connection,
                             absl::AnyInvocable<void()> on_request_start)
    : state_(state),
      connection_(std::move(connection)),
      router_(std::move(state)),
      on_request_start_(std::move(on_request_start)),
      parser_(
          RequestLimits{.max_header_bytes = state_->options.max_header_bytes,
                        .max_body_bytes = state_->options.max_body_bytes}) {}

void RequestReader::OnInput(std::string_view bytes) {
  if (connection_->closing.load()) return;  // discarded until the client goes
  const absl::Time now = absl::Now();
  buffer_.append(bytes.data(), bytes.size());
  std::size_t used = 0;
  // Until the bytes are used up and no request is left half-reported (its
  // head complete, its end still to announce).
  while (!connection_->closing.load() &&
         (used < buffer_.size() || parser_.in_request())) {
    if (request_start_ == absl::InfinitePast()) {
      request_start_ = now;
      on_request_start_();
    }
    const RequestParser::Result result =
        parser_.Parse(std::string_view(buffer_).substr(used));
    used += result.consumed;
    bool more = true;
    switch (result.state) {
      case RequestParser::State::kNeedMore:
        more = false;
        break;
      case RequestParser::State::kHeadComplete:
        OnHead();
        break;
      case RequestParser::State::kComplete:
        OnRequest(parser_.TakeRequest());
        break;
      case RequestParser::State::kError:
        OnError();
        more = false;
        break;
    }
    if (!more) break;
  }
  if (connection_->closing.load()) {
    buffer_.clear();
  } else {
    buffer_.erase(0, used);
  }
}

std::uint64_t RequestReader::Slot() {
  if (!slot_) slot_ = connection_->NextSlot();
  return *slot_;
}

void RequestReader::OnHead() {
  Slot();
  const HttpRequest& request = parser_.request();
  std::optional<std::string_view> expect = request.Header("Expect");
  if (!expect || request.version != HttpVersion::kHttp11 ||
      !absl::EqualsIgnoreCase(absl::string_view(expect->data(), expect->size()),
                              "100-continue")) {
    return;
  }
  // The client waits for our word before sending the body: the final answer
  // now if the headers decide it, else "go on".
  const RouteMatch match = MatchRoute(request.method, request.path);
  if (std::optional<Reply> refusal = router_.RefuseOnHeaders(request, match)) {
    Finish(request.version, match.route, *refusal, /*close=*/true);
    return;
  }
  if (parser_.has_content_length() && parser_.content_length() == 0) return;
  connection_->WriteInterim(state_, *slot_, "HTTP/1.1 100 Continue\r\n\r\n");
}

bool RequestReader::TakeToken(absl::Time now) {
  const int rate = state_->options.max_requests_per_second_per_connection;
  if (rate == 0) return true;
  if (refilled_ == absl::InfinitePast()) {
    tokens_ = rate;
  } else {
    tokens_ = std::min<double>(
        rate, tokens_ + rate * absl::ToDoubleSeconds(now - refilled_));
  }
  refilled_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

void RequestReader::OnRequest(HttpRequest request) {
  const absl::Time receive_time = request_start_;
  Route route = Route::kNotFound;
  bool close = ClientWantsClose(request);
  if (!TakeToken(absl::Now())) {
    if (state_->requests_throttled != nullptr) {
      state_->requests_throttled->Increment();
    }
    route = MatchRoute(request.method, request.path).route;
    if (state_->draining.load()) close = true;
    Finish(request.version, route,
           ErrorReply(
               429, absl::StrCat(
                        "more than ",
                        state_->options.max_requests_per_second_per_connection,
                        " requests per second on one connection "
                        "(--http_max_requests_per_connection); slow "
                        "down or spread them over connections")),
           close);
    return;
  }
  state_->RequestStarted();
  // Finish() and StartWebhook() count the request again until it is
  // answered.
  absl::Cleanup done = [this] { state_->RequestDone(); };
  std::optional<Reply> reply = router_.Dispatch(request, &route, &close);
  if (!reply) {
    if (close) connection_->closing.store(true);
    router_.StartWebhook(request, receive_time, connection_, Slot(), close);
    slot_.reset();
    request_start_ = absl::InfinitePast();
    return;
  }
  // A drain may have begun while the backend worked.
  if (state_->draining.load()) close = true;
  Finish(request.version, route, *reply, close);
}

void RequestReader::OnError() {
  const int code = parser_.error_code();
  Route route = Route::kNotFound;
  HttpVersion version = HttpVersion::kHttp11;
  if (parser_.has_request_line()) {
    const HttpRequest& request = parser_.request();
    route = MatchRoute(request.method, request.path).route;
    version = request.version;
  }
  if (code == 413 && route == Route::kWebhooks) {
    state_->backend->OnWebhookRefused(Refusal::kTooLarge);
  }
  // The framing is lost: whatever follows cannot be read as a request.
  Finish(version, route,
         code == 413 ? TooLargeReply(state_->options.max_body_bytes)
                     : ErrorReply(code, parser_.error_message()),
         /*close=*/true);
}

void RequestReader::Finish(HttpVersion version, Route route, const Reply& reply,
                           bool close) {
  const std::uint64_t slot = Slot();
  slot_.reset();
  request_start_ = absl::InfinitePast();
  if (close) connection_->closing.store(true);
  Respond(state_, *connection_, slot, version, route, reply, close);
}

}  // namespace convocore::http
