#include "gateway/http/server.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gateway/http/http_api.h"
#include "gateway/log/logger.h"
#include "pistache/endpoint.h"
#include "pistache/http.h"
#include "pistache/peer.h"

namespace convocore::http {
namespace {

namespace P = ::Pistache;
using P::Http::Private::BodyStep;

std::optional<std::string> RawHeader(const P::Http::Request& request,
                                     const std::string& name) {
  auto raw = request.headers().tryGetRaw(name);
  if (!raw) return std::nullopt;
  return raw->value();
}

// Whether the client wants the connection closed after this response:
// HTTP/1.1 keeps it unless told "close"; HTTP/1.0 closes it unless told
// "keep-alive".
bool ClientWantsClose(const P::Http::Request& request) {
  bool close = request.version() == P::Http::Version::Http10;
  if (std::optional<std::string> value = RawHeader(request, "Connection")) {
    for (absl::string_view token : absl::StrSplit(*value, ',')) {
      token = absl::StripAsciiWhitespace(token);
      if (absl::EqualsIgnoreCase(token, "close")) return true;
      if (absl::EqualsIgnoreCase(token, "keep-alive")) close = false;
    }
  }
  return close;
}

// The Content-Length header as sent, when there is one: a number, or an
// error for anything else (Pistache reads "abc" as 0 and "-1" as 2^64-1).
std::optional<absl::StatusOr<std::uint64_t>> DeclaredLength(
    const P::Http::Request& request) {
  std::optional<std::string> value = RawHeader(request, "Content-Length");
  if (!value) return std::nullopt;
  absl::string_view digits = absl::StripAsciiWhitespace(*value);
  std::uint64_t length = 0;
  if (digits.empty() ||
      digits.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(digits, &length)) {
    return absl::StatusOr<std::uint64_t>(
        absl::InvalidArgumentError("invalid Content-Length header"));
  }
  return absl::StatusOr<std::uint64_t>(length);
}

// What we keep per TCP connection, beside Pistache's parser.
struct Connection : std::enable_shared_from_this<Connection> {
  explicit Connection(int pistache_fd)
      : fd(::fcntl(pistache_fd, F_DUPFD_CLOEXEC, 0)) {}
  ~Connection() {
    if (fd >= 0) ::close(fd);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // When the first byte of the current request arrived.
  absl::Time request_start = absl::InfinitePast();
  // Whether the current request's headers have been looked at (413 on
  // Content-Length, Expect: 100-continue).
  bool headers_checked = false;
  // We answered with "Connection: close": input is discarded until the
  // client closes. Set by a webhook's callback too, on another thread.
  std::atomic<bool> closing{false};

  // Our own descriptor of the socket (a duplicate of Pistache's), for
  // responses written straight from the thread that has them. The socket
  // stays open while a response still to be written holds this Connection,
  // so that a response can never reach a later connection that reuses
  // Pistache's descriptor number. -1 if it could not be made: responses then
  // all go through Pistache's queue.
  const int fd;
  absl::Mutex write_mu;
  // Responses handed to Pistache's queue (the socket was full) and not yet
  // written: while there are any, later ones follow them there, so that
  // they stay in order; then responses are written directly again.
  std::size_t queued ABSL_GUARDED_BY(write_mu) = 0;
};

// Short enough for std::string's inline buffer: Pistache makes a string of it
// at every lookup.
constexpr char kConnectionKey[] = "gw.connection";

std::shared_ptr<Connection> ConnectionOf(
    const std::shared_ptr<P::Tcp::Peer>& peer) {
  auto data = peer->tryGetData(kConnectionKey);
  if (data) return std::static_pointer_cast<Connection>(data);
  auto connection = std::make_shared<Connection>(peer->fd());
  peer->putData(kConnectionKey, connection);
  return connection;
}

// The listening socket bound to `port`, found among our file descriptors,
// or -1. Pistache does not expose it, and BeginDrain() needs it to stop
// accepting while requests in flight finish.
int FindListeningSocket(std::uint16_t port) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  int matches = 0;
  while (dirent* entry = readdir(dir)) {
    int fd;
    if (!absl::SimpleAtoi(entry->d_name, &fd) || fd == dirfd(dir)) continue;
    int listening = 0;
    socklen_t length = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 ||
        !listening) {
      continue;
    }
    sockaddr_storage address{};
    length = sizeof(address);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      continue;
    }
    std::uint16_t bound = 0;
    if (address.ss_family == AF_INET) {
      bound = ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
    } else if (address.ss_family == AF_INET6) {
      bound = ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
    }
    if (bound == port) {
      found = fd;
      ++matches;
    }
  }
  closedir(dir);
  return matches == 1 ? found : -1;
}

}  // namespace

struct HttpServer::State {
  HttpServerOptions options;
  HttpBackend* backend = nullptr;
  metrics::CounterFamily* requests = nullptr;
  // The series of every accepted webhook, looked up once rather than per
  // response.
  metrics::Counter* webhooks_ok = nullptr;
  std::atomic<bool> draining{false};
  std::uint16_t port = 0;

  // Held (shared) by a webhook's callback while it writes through Pistache's
  // transport; Shutdown() sets `stopped` under it before the transport goes.
  absl::Mutex transport_mu;
  bool stopped ABSL_GUARDED_BY(transport_mu) = false;

  // Counted up and down several times per request, from every thread: an
  // atomic, so that the hot path takes no lock; WaitForIdle() polls it.
  std::atomic<std::int64_t> in_flight{0};

  absl::Mutex mu;
  int listen_fd ABSL_GUARDED_BY(mu) = -1;
  bool shut_down ABSL_GUARDED_BY(mu) = false;
  std::unique_ptr<P::Http::Endpoint> endpoint ABSL_GUARDED_BY(mu);

  void RequestStarted() { in_flight.fetch_add(1, std::memory_order_relaxed); }
  void RequestDone() { in_flight.fetch_sub(1, std::memory_order_acq_rel); }
};

namespace {

// Counts a request in flight for as long as it lives; shared by the
// callbacks that finish the request, so that it is released whenever they
// are destroyed, run or not (Pistache drops a write's callbacks unsettled
// when the peer is gone).
struct InFlight {
  explicit InFlight(std::shared_ptr<HttpServer::State> s)
      : state(std::move(s)) {
    state->RequestStarted();
  }
  ~InFlight() { state->RequestDone(); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  std::shared_ptr<HttpServer::State> state;
};

// Writes `bytes` to the connection from the calling thread when the socket
// takes them at once, which is nearly always: Pistache's own path (a queue,
// an eventfd to wake its thread, two epoll_ctl calls) cost more than the
// rest of a response. Otherwise what is left goes through Pistache's queue.
// Closes the connection once written when `close`.
void Write(const std::shared_ptr<HttpServer::State>& state,
           const std::shared_ptr<P::Tcp::Peer>& peer, Connection& connection,
           std::string bytes, bool close) {
  {
    absl::MutexLock lock(&connection.write_mu);
    if (connection.queued == 0 && connection.fd >= 0) {
      ssize_t written = ::send(connection.fd, bytes.data(), bytes.size(),
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (written == static_cast<ssize_t>(bytes.size())) {
        // Half-close: the client reads the response, then the end of the
        // stream; anything it still sends is read and discarded until it
        // closes, so that no reset destroys the response.
        if (close) ::shutdown(connection.fd, SHUT_WR);
        return;
      }
      if (written < 0) {
        // Anything but a full socket: the client is gone, which Pistache
        // finds out on its side.
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return;
        written = 0;
      }
      bytes.erase(0, written);
    }
    ++connection.queued;
  }
  const std::size_t size = bytes.size();
  // Counted in flight until written, so that a drain waits for the bytes.
  auto token = std::make_shared<InFlight>(state);
  std::weak_ptr<P::Tcp::Peer> weak_peer = peer;
  auto dequeued = [self = connection.shared_from_this()] {
    absl::MutexLock lock(&self->write_mu);
    --self->queued;
  };
  // The continuation goes straight on the transport's own promise, whose
  // callbacks Pistache guards with its lock. Never on a promise chained from
  // it (what ResponseWriter::send returns): Pistache resolves chained
  // promises without that lock, and attaching to one from the committer
  // while the HTTP thread resolves it crashed the gateway (SIGSEGV in
  // Pistache's Promise, about once per 100,000 webhooks at 8,000/s under
  // vegeta).
  peer->send(P::RawBuffer(std::move(bytes), size))
      .then(
          [token, weak_peer, close, dequeued](ssize_t) {
            dequeued();
            if (!close) return;
            if (auto locked = weak_peer.lock()) {
              ::shutdown(locked->fd(), SHUT_WR);
            }
          },
          [token, dequeued](std::exception_ptr) { dequeued(); });
}

// Writes `reply` to `peer` (nothing when the client is gone) and closes the
// connection once written when `close`. Touches nothing of the connection's
// parser, so that a webhook's callback can call it from any thread.
void Respond(const std::shared_ptr<HttpServer::State>& state,
             const std::weak_ptr<P::Tcp::Peer>& weak_peer,
             Connection& connection, P::Http::Version version, Route route,
             const Reply& reply, bool close) {
  if (route == Route::kWebhooks && reply.code == 200 &&
      state->webhooks_ok != nullptr) {
    state->webhooks_ok->Increment();
  } else if (state->requests != nullptr) {
    state->requests->WithLabels({RouteLabel(route), std::to_string(reply.code)})
        .Increment();
  }
  std::shared_ptr<P::Tcp::Peer> peer = weak_peer.lock();
  if (peer == nullptr) return;
  // What Pistache's ResponseWriter does besides writing: the connection has
  // no request in progress (its idle timeout applies again).
  peer->setIdle(true);
  Write(state, peer, connection,
        SerializeResponse(
            reply, P::Http::versionString(version),
            P::Http::codeString(static_cast<P::Http::Code>(reply.code)), close),
        close);
}

// Pistache clones the handler for each of its threads; the clones share the
// server's State.
class Handler final : public P::Http::Handler {
 public:
  HTTP_PROTOTYPE(Handler)

  explicit Handler(std::shared_ptr<HttpServer::State> state)
      : state_(std::move(state)) {}

  // Never called: onInput() below dispatches requests itself.
  void onRequest(const P::Http::Request&,
                 P::Http::ResponseWriter response) override {
    response.send(P::Http::Code::Internal_Server_Error);
  }

 private:
  // Replaces Pistache's Http::Handler::onInput (private there, but virtual),
  // which decides the Connection header wrongly and offers no hook between
  // the headers and the body. It follows the original's steps with
  // Pistache's public parser API.
  void onInput(const char* buffer, size_t length,
               const std::shared_ptr<P::Tcp::Peer>& peer) override;
  void HandleInput(const char* buffer, size_t length,
                   const std::shared_ptr<P::Tcp::Peer>& peer);

  void OnHeaders(const std::shared_ptr<P::Tcp::Peer>& peer,
                 P::Http::RequestParser& parser, Connection& connection);
  // The reply, or nothing for a webhook to hand to the backend (see
  // StartWebhook()).
  std::optional<Reply> Dispatch(const P::Http::Request& request, Route* route,
                                bool* close);
  std::optional<Reply> Webhook(const P::Http::Request& request);
  // Hands the webhook to the backend, to be answered from its callback, on
  // whatever thread that runs.
  void StartWebhook(const std::shared_ptr<P::Tcp::Peer>& peer,
                    const P::Http::Request& request, absl::Time receive_time,
                    std::shared_ptr<Connection> connection, bool close);
  // A webhook refused on its headers alone, if it is.
  std::optional<Reply> RefuseOnHeaders(const P::Http::Request& request,
                                       const RouteMatch& match);
  // Answers 413 to the request being parsed, counting a refused webhook,
  // and closes the connection (the rest of the body may be on its way).
  void RefuseTooLarge(const std::shared_ptr<P::Tcp::Peer>& peer,
                      P::Http::RequestParser& parser, Connection& connection);
  // Writes `reply`, readies the connection for its next request, and closes
  // it once written when `close`.
  void Finish(const std::shared_ptr<P::Tcp::Peer>& peer,
              P::Http::RequestParser& parser, Connection& connection,
              Route route, const Reply& reply, bool close);
  // Readies the connection for its next request.
  static void Reset(P::Http::RequestParser& parser, Connection& connection,
                    bool close);

  std::shared_ptr<HttpServer::State> state_;
};

void Handler::onInput(const char* buffer, size_t length,
                      const std::shared_ptr<P::Tcp::Peer>& peer) {
  // Pistache does not catch what its handler throws; one bad connection
  // must not take a server thread with it.
  try {
    HandleInput(buffer, length, peer);
  } catch (const std::exception& error) {
    log::Error("HTTP connection failed; closing it", {{"error", error.what()}});
    ::shutdown(peer->fd(), SHUT_RDWR);
  }
}

void Handler::HandleInput(const char* buffer, size_t length,
                          const std::shared_ptr<P::Tcp::Peer>& peer) {
  std::shared_ptr<Connection> connection = ConnectionOf(peer);
  if (connection->closing) return;
  std::shared_ptr<P::Http::RequestParser> parser = getParser(peer);
  if (connection->request_start == absl::InfinitePast()) {
    // The first byte of a request. Pistache times a request from its
    // parser's last reset and by the peer's idle flag: restart the clock
    // (the parser holds nothing between requests) and mark the peer busy,
    // so that --http_request_timeout runs from now, not from the end of the
    // previous request, and the idle timeout no longer applies.
    connection->request_start = absl::Now();
    parser->reset();
    peer->setIdle(false);
  }
  if (!parser->feed(buffer, length)) {
    // The request exceeds max_header_bytes + max_body_bytes.
    if (parser->step()->id() != BodyStep::Id) {
      Finish(peer, *parser, *connection, Route::kNotFound,
             ErrorReply(
                 431, absl::StrCat("the request line and headers are "
                                   "larger than the limit of ",
                                   state_->options.max_header_bytes, " bytes")),
             /*close=*/true);
      return;
    }
    RefuseTooLarge(peer, *parser, *connection);
    return;
  }
  P::Http::Private::State parsed;
  try {
    parsed = parser->parse();
  } catch (const P::Http::HttpError& error) {
    Finish(peer, *parser, *connection, Route::kNotFound,
           ErrorReply(error.code(),
                      absl::StrCat("malformed HTTP request: ", error.reason())),
           /*close=*/true);
    return;
  } catch (const std::exception& error) {
    // Among others, Pistache reserves Content-Length bytes up front and
    // throws for an absurd length.
    auto declared = DeclaredLength(parser->request);
    if (declared && declared->ok() &&
        **declared > state_->options.max_body_bytes) {
      RefuseTooLarge(peer, *parser, *connection);
      return;
    }
    Finish(
        peer, *parser, *connection, Route::kNotFound,
        ErrorReply(400, absl::StrCat("malformed HTTP request: ", error.what())),
        /*close=*/true);
    return;
  }
  if (parsed != P::Http::Private::State::Done) {
    if (!connection->headers_checked && parser->step()->id() == BodyStep::Id) {
      connection->headers_checked = true;
      OnHeaders(peer, *parser, *connection);
    }
    return;
  }
  const absl::Time receive_time = connection->request_start;
  Route route = Route::kNotFound;
  bool close = ClientWantsClose(parser->request);
  state_->RequestStarted();
  // Finish() and StartWebhook() count the request again until it is
  // answered.
  absl::Cleanup done = [this] { state_->RequestDone(); };
  std::optional<Reply> reply = Dispatch(parser->request, &route, &close);
  if (!reply) {
    StartWebhook(peer, parser->request, receive_time, connection, close);
    Reset(*parser, *connection, close);
    return;
  }
  // A drain may have begun while the backend worked.
  if (state_->draining.load()) close = true;
  Finish(peer, *parser, *connection, route, *reply, close);
}

void Handler::OnHeaders(const std::shared_ptr<P::Tcp::Peer>& peer,
                        P::Http::RequestParser& parser,
                        Connection& connection) {
  const P::Http::Request& request = parser.request;
  const RouteMatch match =
      MatchRoute(P::Http::methodString(request.method()), request.resource());
  auto declared = DeclaredLength(request);
  if (declared && declared->ok() &&
      **declared > state_->options.max_body_bytes) {
    // Answered before the body is received.
    RefuseTooLarge(peer, parser, connection);
    return;
  }
  std::optional<std::string> expect = RawHeader(request, "Expect");
  if (!expect || request.version() != P::Http::Version::Http11 ||
      !absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(*expect),
                              "100-continue")) {
    return;
  }
  // The client waits for our word before sending the body: the final answer
  // now if the headers decide it, else "go on".
  if (std::optional<Reply> refusal = RefuseOnHeaders(request, match)) {
    Finish(peer, parser, connection, match.route, *refusal, /*close=*/true);
    return;
  }
  Write(state_, peer, connection, "HTTP/1.1 100 Continue\r\n\r\n",
        /*close=*/false);
}

std::optional<Reply> Handler::RefuseOnHeaders(const P::Http::Request& request,
                                              const RouteMatch& match) {
  if (match.route == Route::kNotFound) {
    return NotFoundReply(request.resource());
  }
  if (!match.method_allowed) {
    return MethodNotAllowedReply(P::Http::methodString(request.method()),
                                 match);
  }
  if (match.route != Route::kWebhooks) return std::nullopt;
  if (state_->draining.load()) {
    state_->backend->OnWebhookRefused(Refusal::kShuttingDown);
    return ErrorReply(503, "the gateway is shutting down");
  }
  std::optional<std::string> content_type = RawHeader(request, "Content-Type");
  if (content_type && !IsJsonContentType(*content_type)) {
    state_->backend->OnWebhookRefused(Refusal::kUnsupportedMediaType);
    return UnsupportedMediaTypeReply(*content_type);
  }
  return std::nullopt;
}

std::optional<Reply> Handler::Dispatch(const P::Http::Request& request,
                                       Route* route, bool* close) {
  const std::string_view method = P::Http::methodString(request.method());
  const RouteMatch match = MatchRoute(method, request.resource());
  *route = match.route;
  // Draining: every connection closes after its response, so that clients
  // move to another instance.
  if (state_->draining.load()) *close = true;
  if (auto declared = DeclaredLength(request); declared && !declared->ok()) {
    *close = true;  // we cannot tell where the next request starts
    return StatusReply(declared->status());
  }
  if (match.route == Route::kNotFound) {
    return NotFoundReply(request.resource());
  }
  if (!match.method_allowed) return MethodNotAllowedReply(method, match);
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
  return NotFoundReply(request.resource());
}

std::optional<Reply> Handler::Webhook(const P::Http::Request& request) {
  if (std::optional<Reply> refusal =
          RefuseOnHeaders(request, MatchRoute("POST", "/webhooks"))) {
    return refusal;
  }
  // A chunked body is only measured once received.
  if (request.body().size() > state_->options.max_body_bytes) {
    state_->backend->OnWebhookRefused(Refusal::kTooLarge);
    return TooLargeReply(state_->options.max_body_bytes);
  }
  return std::nullopt;
}

void Handler::StartWebhook(const std::shared_ptr<P::Tcp::Peer>& peer,
                           const P::Http::Request& request,
                           absl::Time receive_time,
                           std::shared_ptr<Connection> connection, bool close) {
  // Everything the callback needs, and nothing of the parser, which serves
  // the connection's next request meanwhile.
  struct Pending {
    std::shared_ptr<HttpServer::State> state;
    std::weak_ptr<P::Tcp::Peer> peer;
    P::Http::Version version;
    std::shared_ptr<Connection> connection;
    bool close;
    InFlight in_flight;
  };
  std::unique_ptr<Pending> pending(new Pending{state_, peer, request.version(),
                                               std::move(connection), close,
                                               InFlight(state_)});
  state_->backend->HandleWebhook(
      request.body(), receive_time,
      [pending = std::move(pending)](absl::StatusOr<WebhookAck> ack) {
        Pending& p = *pending;
        const Reply reply =
            ack.ok() ? AcceptedReply(ack->sequence, ack->id, ack->duplicate)
                     : StatusReply(ack.status());
        // A drain may have begun while the backend worked.
        bool close = p.close || p.state->draining.load();
        if (close) p.connection->closing.store(true);
        absl::ReaderMutexLock lock(&p.state->transport_mu);
        if (p.state->stopped) return;  // the transport is gone
        try {
          Respond(p.state, p.peer, *p.connection, p.version, Route::kWebhooks,
                  reply, close);
        } catch (const std::exception& error) {
          // Pistache throws; the caller's thread (the hub's committer) must
          // not die of a client.
          log::Warning("cannot answer a webhook", {{"error", error.what()}});
        }
      });
}

void Handler::RefuseTooLarge(const std::shared_ptr<P::Tcp::Peer>& peer,
                             P::Http::RequestParser& parser,
                             Connection& connection) {
  const Route route = MatchRoute(P::Http::methodString(parser.request.method()),
                                 parser.request.resource())
                          .route;
  if (route == Route::kWebhooks) {
    state_->backend->OnWebhookRefused(Refusal::kTooLarge);
  }
  Finish(peer, parser, connection, route,
         TooLargeReply(state_->options.max_body_bytes), /*close=*/true);
}

void Handler::Finish(const std::shared_ptr<P::Tcp::Peer>& peer,
                     P::Http::RequestParser& parser, Connection& connection,
                     Route route, const Reply& reply, bool close) {
  const P::Http::Version version = parser.request.version();
  Reset(parser, connection, close);
  Respond(state_, peer, connection, version, route, reply, close);
}

void Handler::Reset(P::Http::RequestParser& parser, Connection& connection,
                    bool close) {
  parser.reset();
  connection.request_start = absl::InfinitePast();
  connection.headers_checked = false;
  if (close) connection.closing.store(true);
}

}  // namespace

HttpServer::HttpServer(std::shared_ptr<State> state)
    : state_(std::move(state)) {}

HttpServer::~HttpServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HttpServerOptions& options, HttpBackend* backend,
    metrics::Registry* registry) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError("HTTP threads must be at least 1");
  }
  if (options.max_body_bytes < 1 || options.max_header_bytes < 1024) {
    return absl::InvalidArgumentError(
        "HTTP limits: the body limit must be positive and the header limit "
        "at least 1024 bytes");
  }
  auto state = std::make_shared<State>();
  state->options = options;
  state->backend = backend;
  if (registry != nullptr) {
    state->requests = &registry->AddCounter(
        "gateway_http_requests_total",
        "HTTP requests answered, by route and status code.", {"route", "code"});
    state->webhooks_ok =
        &state->requests->WithLabels({RouteLabel(Route::kWebhooks), "200"});
    std::weak_ptr<State> weak = state;
    registry->AddCallbackGauge(
        "gateway_http_requests_in_flight",
        "HTTP requests being handled or written now.", [weak] {
          auto locked = weak.lock();
          if (!locked) return 0.0;
          return static_cast<double>(locked->in_flight.load());
        });
  }
  const std::string where = absl::StrCat(options.address, ":", options.port);
  auto endpoint = std::make_unique<P::Http::Endpoint>();
  try {
    endpoint = std::make_unique<P::Http::Endpoint>(
        P::Address(options.address, P::Port(options.port)));
    const auto to_ms = [](absl::Duration d) {
      return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
    };
    auto endpoint_options =
        P::Http::Endpoint::options()
            .threads(options.threads)
            .threadsName("http")
            .flags(P::Tcp::Options::ReuseAddr | P::Tcp::Options::NoDelay)
            .maxRequestSize(options.max_body_bytes + options.max_header_bytes)
            .headerTimeout(to_ms(options.request_timeout))
            .bodyTimeout(to_ms(options.request_timeout))
            .keepaliveTimeout(to_ms(options.idle_timeout));
    endpoint->init(endpoint_options);
    endpoint->setHandler(P::Http::make_handler<Handler>(state));
    endpoint->serveThreaded();
  } catch (const std::exception& error) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", where, ": ", error.what()));
  }
  state->port = static_cast<std::uint16_t>(endpoint->getPort());
  {
    absl::MutexLock lock(&state->mu);
    state->listen_fd = FindListeningSocket(state->port);
    state->endpoint = std::move(endpoint);
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(state)));
}

std::uint16_t HttpServer::port() const { return state_->port; }

void HttpServer::BeginDrain() {
  state_->draining.store(true);
  absl::MutexLock lock(&state_->mu);
  if (state_->listen_fd < 0) {
    log::Warning(
        "cannot close the HTTP listening socket early; new "
        "connections get 503 until the server stops");
    return;
  }
  // Put an unbound socket in the listening socket's place: the listening
  // socket closes (the kernel refuses new connections, and drops it from
  // Pistache's poller) while Pistache keeps a valid descriptor to close
  // later.
  const int placeholder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (placeholder >= 0 && ::dup2(placeholder, state_->listen_fd) >= 0) {
    ::close(placeholder);
    state_->listen_fd = -1;
    return;
  }
  if (placeholder >= 0) ::close(placeholder);
  log::Warning("cannot close the HTTP listening socket early",
               {{"errno", errno}});
}

bool HttpServer::WaitForIdle(absl::Time deadline) {
  // Only at shutdown: a millisecond's polling is cheaper than a lock per
  // request.
  while (state_->in_flight.load(std::memory_order_acquire) != 0) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

void HttpServer::Shutdown() {
  std::unique_ptr<P::Http::Endpoint> endpoint;
  {
    absl::MutexLock lock(&state_->mu);
    if (state_->shut_down) return;
    state_->shut_down = true;
    state_->draining.store(true);
    endpoint = std::move(state_->endpoint);
  }
  {
    // Callbacks still to come write nothing through a transport that is
    // about to go.
    absl::MutexLock lock(&state_->transport_mu);
    state_->stopped = true;
  }
  if (endpoint == nullptr) return;
  try {
    endpoint->shutdown();
  } catch (const std::exception& error) {
    log::Warning("HTTP server shutdown", {{"error", error.what()}});
  }
  // Destroying the endpoint joins Pistache's threads.
  endpoint.reset();
}

std::int64_t HttpServer::in_flight() const {
  return state_->in_flight.load(std::memory_order_acquire);
}

}  // namespace convocore::http
