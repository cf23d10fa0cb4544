#include "gateway/http/pistache_internals.h"

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "gateway/http/connection.h"
#include "gateway/http/http_api.h"
#include "gateway/http/request.h"
#include "gateway/http/router.h"
#include "gateway/log/logger.h"
#include "pistache/endpoint.h"
#include "pistache/http.h"
#include "pistache/peer.h"
#include "pistache/version.h"

static_assert(Pistache::Version::Major == 0 && Pistache::Version::Minor == 0 &&
                  Pistache::Version::Patch == 5 &&
                  Pistache::Version::Git == 20220901,
              "gateway/http/pistache_internals.cc relies on private members "
              "and behaviour of Pistache 0.0.5 (git 20220901); check each use "
              "against the new version before changing this check");

namespace convocore::http::pistache {
namespace {

namespace P = ::Pistache;
using P::Http::Private::BodyStep;

// Short enough for std::string's inline buffer: Pistache makes a string of it
// at every lookup.
constexpr char kConnectionKey[] = "gw.connection";

std::shared_ptr<Connection> ConnectionOf(
    const std::shared_ptr<P::Tcp::Peer>& peer) {
  auto data = peer->tryGetData(kConnectionKey);
  if (data) return std::static_pointer_cast<Connection>(data);
  auto connection = std::make_shared<Connection>(peer, peer->fd());
  peer->putData(kConnectionKey, connection);
  return connection;
}

// The request as far as Pistache's parser has read it, for the router.
HttpRequest ToRequest(const P::Http::Request& request, bool with_body) {
  HttpRequest out;
  out.method = std::string(P::Http::methodString(request.method()));
  out.path = request.resource();
  out.version = request.version() == P::Http::Version::Http10
                    ? HttpVersion::kHttp10
                    : HttpVersion::kHttp11;
  for (const auto& [name, raw] : request.headers().rawList()) {
    out.headers.emplace_back(raw.name(), raw.value());
  }
  if (with_body) out.body = request.body();
  return out;
}

// The listening socket bound to `port`, found among our file descriptors,
// or -1. Pistache does not expose it.
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

// Pistache clones the handler for each of its threads; the clones share the
// server's State.
class Handler final : public P::Http::Handler {
 public:
  HTTP_PROTOTYPE(Handler)

  explicit Handler(std::shared_ptr<ServerState> state)
      : state_(state), router_(std::move(state)) {}

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

  void OnHeaders(P::Http::RequestParser& parser, Connection& connection);
  // Answers 413 to the request being parsed, counting a refused webhook,
  // and closes the connection (the rest of the body may be on its way).
  void RefuseTooLarge(P::Http::RequestParser& parser, Connection& connection);
  // Writes `reply`, readies the connection for its next request, and closes
  // it once written when `close`.
  void Finish(P::Http::RequestParser& parser, Connection& connection,
              Route route, const Reply& reply, bool close);
  // Readies the connection for its next request.
  static void Reset(P::Http::RequestParser& parser, Connection& connection,
                    bool close);

  std::shared_ptr<ServerState> state_;
  Router router_;
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
      Finish(*parser, *connection, Route::kNotFound,
             ErrorReply(
                 431, absl::StrCat("the request line and headers are "
                                   "larger than the limit of ",
                                   state_->options.max_header_bytes, " bytes")),
             /*close=*/true);
      return;
    }
    RefuseTooLarge(*parser, *connection);
    return;
  }
  P::Http::Private::State parsed;
  try {
    parsed = parser->parse();
  } catch (const P::Http::HttpError& error) {
    Finish(*parser, *connection, Route::kNotFound,
           ErrorReply(error.code(),
                      absl::StrCat("malformed HTTP request: ", error.reason())),
           /*close=*/true);
    return;
  } catch (const std::exception& error) {
    // Among others, Pistache reserves Content-Length bytes up front and
    // throws for an absurd length.
    auto declared =
        DeclaredLength(ToRequest(parser->request, /*with_body=*/false));
    if (declared && declared->ok() &&
        **declared > state_->options.max_body_bytes) {
      RefuseTooLarge(*parser, *connection);
      return;
    }
    Finish(
        *parser, *connection, Route::kNotFound,
        ErrorReply(400, absl::StrCat("malformed HTTP request: ", error.what())),
        /*close=*/true);
    return;
  }
  if (parsed != P::Http::Private::State::Done) {
    if (!connection->headers_checked && parser->step()->id() == BodyStep::Id) {
      connection->headers_checked = true;
      OnHeaders(*parser, *connection);
    }
    return;
  }
  const absl::Time receive_time = connection->request_start;
  const HttpRequest request = ToRequest(parser->request, /*with_body=*/true);
  Route route = Route::kNotFound;
  bool close = ClientWantsClose(request);
  state_->RequestStarted();
  // Finish() and StartWebhook() count the request again until it is
  // answered.
  absl::Cleanup done = [this] { state_->RequestDone(); };
  std::optional<Reply> reply = router_.Dispatch(request, &route, &close);
  if (!reply) {
    router_.StartWebhook(request, receive_time, connection, close);
    Reset(*parser, *connection, close);
    return;
  }
  // A drain may have begun while the backend worked.
  if (state_->draining.load()) close = true;
  Finish(*parser, *connection, route, *reply, close);
}

void Handler::OnHeaders(P::Http::RequestParser& parser,
                        Connection& connection) {
  const HttpRequest request = ToRequest(parser.request, /*with_body=*/false);
  const RouteMatch match = MatchRoute(request.method, request.path);
  auto declared = DeclaredLength(request);
  if (declared && declared->ok() &&
      **declared > state_->options.max_body_bytes) {
    // Answered before the body is received.
    RefuseTooLarge(parser, connection);
    return;
  }
  std::optional<std::string_view> expect = request.Header("Expect");
  if (!expect || request.version != HttpVersion::kHttp11 ||
      !absl::EqualsIgnoreCase(absl::string_view(expect->data(), expect->size()),
                              "100-continue")) {
    return;
  }
  // The client waits for our word before sending the body: the final answer
  // now if the headers decide it, else "go on".
  if (std::optional<Reply> refusal = router_.RefuseOnHeaders(request, match)) {
    Finish(parser, connection, match.route, *refusal, /*close=*/true);
    return;
  }
  connection.Write(state_, "HTTP/1.1 100 Continue\r\n\r\n", /*close=*/false);
}

void Handler::RefuseTooLarge(P::Http::RequestParser& parser,
                             Connection& connection) {
  const Route route = MatchRoute(P::Http::methodString(parser.request.method()),
                                 parser.request.resource())
                          .route;
  if (route == Route::kWebhooks) {
    state_->backend->OnWebhookRefused(Refusal::kTooLarge);
  }
  Finish(parser, connection, route,
         TooLargeReply(state_->options.max_body_bytes), /*close=*/true);
}

void Handler::Finish(P::Http::RequestParser& parser, Connection& connection,
                     Route route, const Reply& reply, bool close) {
  const HttpVersion version = parser.request.version() ==
                                      P::Http::Version::Http10
                                  ? HttpVersion::kHttp10
                                  : HttpVersion::kHttp11;
  Reset(parser, connection, close);
  Respond(state_, connection, version, route, reply, close);
}

void Handler::Reset(P::Http::RequestParser& parser, Connection& connection,
                    bool close) {
  parser.reset();
  connection.request_start = absl::InfinitePast();
  connection.headers_checked = false;
  if (close) connection.closing.store(true);
}

std::chrono::milliseconds ToMs(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

}  // namespace

void SetIdle(P::Tcp::Peer& peer, bool idle) { peer.setIdle(idle); }

void QueueWrite(const std::shared_ptr<P::Tcp::Peer>& peer, std::string bytes,
                bool close, std::function<void()> dequeued) {
  const std::size_t size = bytes.size();
  std::weak_ptr<P::Tcp::Peer> weak_peer = peer;
  // The continuation goes straight on the transport's own promise, whose
  // callbacks Pistache guards with its lock. Never on a promise chained from
  // it (what ResponseWriter::send returns): Pistache resolves chained
  // promises without that lock, and attaching to one from the committer
  // while the HTTP thread resolves it crashed the gateway (SIGSEGV in
  // Pistache's Promise, about once per 100,000 webhooks at 8,000/s under
  // vegeta).
  peer->send(P::RawBuffer(std::move(bytes), size))
      .then(
          [weak_peer, close, dequeued](ssize_t) {
            dequeued();
            if (!close) return;
            if (auto locked = weak_peer.lock()) {
              ::shutdown(locked->fd(), SHUT_WR);
            }
          },
          [dequeued](std::exception_ptr) { dequeued(); });
}

Endpoint::Endpoint(std::unique_ptr<P::Http::Endpoint> endpoint,
                   std::uint16_t port, int listen_fd)
    : endpoint_(std::move(endpoint)), port_(port), listen_fd_(listen_fd) {}

Endpoint::~Endpoint() { Shutdown(); }

absl::StatusOr<std::unique_ptr<Endpoint>> Endpoint::Start(
    const std::shared_ptr<ServerState>& state) {
  const HttpServerOptions& options = state->options;
  const std::string where = absl::StrCat(options.address, ":", options.port);
  std::unique_ptr<P::Http::Endpoint> endpoint;
  try {
    endpoint = std::make_unique<P::Http::Endpoint>(
        P::Address(options.address, P::Port(options.port)));
    auto endpoint_options =
        P::Http::Endpoint::options()
            .threads(options.threads)
            .threadsName("http")
            .flags(P::Tcp::Options::ReuseAddr | P::Tcp::Options::NoDelay)
            .maxRequestSize(options.max_body_bytes + options.max_header_bytes)
            .headerTimeout(ToMs(options.request_timeout))
            .bodyTimeout(ToMs(options.request_timeout))
            .keepaliveTimeout(ToMs(options.idle_timeout));
    endpoint->init(endpoint_options);
    endpoint->setHandler(P::Http::make_handler<Handler>(state));
    endpoint->serveThreaded();
  } catch (const std::exception& error) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", where, ": ", error.what()));
  }
  const auto port = static_cast<std::uint16_t>(endpoint->getPort());
  return std::unique_ptr<Endpoint>(
      new Endpoint(std::move(endpoint), port, FindListeningSocket(port)));
}

bool Endpoint::CloseListeningSocket() {
  if (listen_fd_ < 0) {
    log::Warning(
        "cannot close the HTTP listening socket early; new "
        "connections get 503 until the server stops");
    return false;
  }
  // Put an unbound socket in the listening socket's place: the listening
  // socket closes (the kernel refuses new connections, and drops it from
  // Pistache's poller) while Pistache keeps a valid descriptor to close
  // later.
  const int placeholder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (placeholder >= 0 && ::dup2(placeholder, listen_fd_) >= 0) {
    ::close(placeholder);
    listen_fd_ = -1;
    return true;
  }
  const int error = errno;
  if (placeholder >= 0) ::close(placeholder);
  log::Warning("cannot close the HTTP listening socket early",
               {{"errno", error}});
  return false;
}

void Endpoint::Shutdown() {
  if (endpoint_ == nullptr) return;
  try {
    endpoint_->shutdown();
  } catch (const std::exception& error) {
    log::Warning("HTTP server shutdown", {{"error", error.what()}});
  }
  // Destroying the endpoint joins Pistache's threads.
  endpoint_.reset();
}

}  // namespace convocore::http::pistache
