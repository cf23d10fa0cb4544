#include "gateway/http/pistache_internals.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gateway/http/connection.h"
#include "gateway/http/http_api.h"
#include "gateway/http/request.h"
#include "gateway/http/request_reader.h"
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

// Short enough for std::string's inline buffer: Pistache makes a string of it
// at every lookup.
constexpr char kConnectionKey[] = "gw.connection";

// What we keep per TCP connection, in the peer's data.
struct PeerState {
  std::shared_ptr<Connection> connection;
  std::unique_ptr<RequestReader> reader;
};

// Marks, in its data, a connection refused for being over the limit: its
// input is ignored until it closes.
constexpr char kRefusedKey[] = "gw.refused";

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
      : state_(std::move(state)) {}

  // Never called: onInput() below reads requests itself.
  void onRequest(const P::Http::Request&,
                 P::Http::ResponseWriter response) override {
    response.send(P::Http::Code::Internal_Server_Error);
  }

 private:
  // Replaces Pistache's Http::Handler::onInput (private there, but virtual),
  // whose parser drops the bytes of a pipelined request that arrive with the
  // end of the previous one, decides the Connection header wrongly and
  // offers no hook between the headers and the body. Our RequestReader
  // reads the bytes instead; Pistache's parser is kept only as the clock of
  // its request timeout, reset when a request starts.
  void onInput(const char* buffer, size_t length,
               const std::shared_ptr<P::Tcp::Peer>& peer) override;
  // Replaces Http::Handler::onConnection (private there, but virtual), which
  // only gives the peer its parser: this does the same, then admits the
  // connection or refuses it over options.max_connections.
  void onConnection(const std::shared_ptr<P::Tcp::Peer>& peer) override;
  void onDisconnection(const std::shared_ptr<P::Tcp::Peer>& peer) override;

  PeerState& StateOf(const std::shared_ptr<P::Tcp::Peer>& peer);

  std::shared_ptr<ServerState> state_;
};

PeerState& Handler::StateOf(const std::shared_ptr<P::Tcp::Peer>& peer) {
  if (auto data = peer->tryGetData(kConnectionKey)) {
    return *std::static_pointer_cast<PeerState>(data);
  }
  auto peer_state = std::make_shared<PeerState>();
  peer_state->connection = std::make_shared<Connection>(peer, peer->fd());
  std::weak_ptr<P::Tcp::Peer> weak = peer;
  peer_state->reader =
      std::make_unique<RequestReader>(state_, peer_state->connection, [weak] {
        // Pistache times a request from its parser's last reset and by the
        // peer's idle flag: restart the clock and mark the peer busy, so
        // that --http_request_timeout runs from now, not from the end of
        // the previous request, and the idle timeout no longer applies.
        if (std::shared_ptr<P::Tcp::Peer> locked = weak.lock()) {
          getParser(locked)->reset();
          locked->setIdle(false);
        }
      });
  peer->putData(kConnectionKey, peer_state);
  return *peer_state;
}

void Handler::onConnection(const std::shared_ptr<P::Tcp::Peer>& peer) {
  // What Pistache 0.0.5's Http::Handler::onConnection does: the parser is
  // the clock of the request timeout (see onInput).
  peer->putData(ParserData,
                std::make_shared<P::Http::RequestParser>(getMaxRequestSize()));
  const std::int64_t open = state_->connections.fetch_add(1) + 1;
  if (open <= state_->options.max_connections) return;
  peer->putData(kRefusedKey, std::make_shared<bool>(true));
  if (state_->connections_refused != nullptr) {
    state_->connections_refused->Increment();
  }
  const Reply reply = ErrorReply(
      503, absl::StrCat("the gateway serves at most ",
                        state_->options.max_connections,
                        " connections at once (--http_max_connections); "
                        "try again shortly"));
  std::weak_ptr<P::Tcp::Peer> weak = peer;
  const bool queued = QueueWrite(
      peer, SerializeResponse(reply, "HTTP/1.1", ReasonPhrase(503), true),
      /*close=*/true, [weak] {
        // Closed both ways, so that it leaves the count even if the client
        // keeps its side open.
        if (auto locked = weak.lock()) ::shutdown(locked->fd(), SHUT_RDWR);
      });
  if (!queued) ::shutdown(peer->fd(), SHUT_RDWR);
}

void Handler::onDisconnection(const std::shared_ptr<P::Tcp::Peer>& peer) {
  state_->connections.fetch_sub(1);
}

void Handler::onInput(const char* buffer, size_t length,
                      const std::shared_ptr<P::Tcp::Peer>& peer) {
  if (peer->tryGetData(kRefusedKey)) return;
  // Pistache does not catch what its handler throws; one bad connection
  // must not take a server thread with it.
  try {
    StateOf(peer).reader->OnInput(std::string_view(buffer, length));
  } catch (const std::exception& error) {
    log::Error("HTTP connection failed; closing it", {{"error", error.what()}});
    ::shutdown(peer->fd(), SHUT_RDWR);
  }
}

std::chrono::milliseconds ToMs(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

}  // namespace

void SetIdle(P::Tcp::Peer& peer, bool idle) { peer.setIdle(idle); }

bool QueueWrite(const std::shared_ptr<P::Tcp::Peer>& peer, std::string bytes,
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
  //
  // Peer::send pushes the write to the transport's lock-free queue and
  // wakes its thread, which may write it before then() below attaches the
  // continuation: then() then runs it at once, on this thread, under the
  // promise's lock (Async::Private::Core::mtx). Either way the continuation
  // runs under that lock, which is why the caller must hold no lock that
  // `dequeued` takes (connection.h: the lock order).
  try {
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
  } catch (const std::exception& error) {
    // Pistache throws (a peer without a transport, a failed allocation):
    // the caller must not be left holding a write that never settles.
    log::Warning("cannot queue an HTTP response", {{"error", error.what()}});
    return false;
  }
  return true;
}

Endpoint::Endpoint(std::shared_ptr<ServerState> state,
                   std::unique_ptr<P::Http::Endpoint> endpoint,
                   std::uint16_t port, int listen_fd)
    : state_(std::move(state)),
      endpoint_(std::move(endpoint)),
      port_(port),
      listen_fd_(listen_fd) {
  if (listen_fd >= 0) {
    absl::MutexLock lock(&mu_);
    listen_own_ = ::fcntl(listen_fd, F_DUPFD_CLOEXEC, 0);
    placeholder_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  }
  ReplenishSpares();
  if (listen_fd >= 0) watchdog_ = std::thread([this] { Watch(); });
}

Endpoint::~Endpoint() {
  Shutdown();
  for (int spare : spares_) ::close(spare);
  absl::MutexLock lock(&mu_);
  if (listen_own_ >= 0) ::close(listen_own_);
  if (placeholder_ >= 0) ::close(placeholder_);
}

void Endpoint::ReplenishSpares() {
  while (spares_.size() < kSpares) {
    const int spare = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (spare < 0) return;
    spares_.push_back(spare);
  }
}

bool Endpoint::OutOfDescriptors() const {
  const int probe =
      ::fcntl(spares_.empty() ? 0 : spares_.back(), F_DUPFD_CLOEXEC, 0);
  if (probe >= 0) {
    ::close(probe);
    return false;
  }
  return errno == EMFILE || errno == ENFILE;
}

void Endpoint::Watch() {
  constexpr absl::Duration kInterval = absl::Milliseconds(100);
  bool waiting_before = false;
  absl::MutexLock lock(&mu_);
  // accept() below must never block the watchdog: only a non-blocking
  // listening socket (Pistache makes it so) is watched.
  const int flags = listen_fd_ >= 0 ? ::fcntl(listen_fd_, F_GETFL) : -1;
  if (flags < 0 || (flags & O_NONBLOCK) == 0) {
    log::Warning(
        "the HTTP listening socket blocks; connections that cannot be "
        "accepted for want of descriptors will not be answered 503");
    return;
  }
  while (!stopping_) {
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), kInterval);
    if (stopping_ || listen_fd_ < 0) continue;
    ReplenishSpares();
    pollfd listening{.fd = listen_fd_, .events = POLLIN, .revents = 0};
    const bool waiting =
        ::poll(&listening, 1, 0) == 1 && (listening.revents & POLLIN) != 0;
    // Pistache accepts within microseconds: a connection seen waiting twice,
    // 100 ms apart, is one it cannot accept.
    if (waiting && waiting_before && OutOfDescriptors()) ShedWaiting();
    waiting_before = waiting;
  }
}

void Endpoint::ShedWaiting() {
  constexpr int kMaxShedPerCheck = 256;
  const bool swapped = listen_own_ >= 0 && placeholder_ >= 0 &&
                       ::dup2(placeholder_, listen_fd_) >= 0;
  const int listen_fd = swapped ? listen_own_ : listen_fd_;
  for (int shed = 0; shed < kMaxShedPerCheck && OutOfDescriptors(); ++shed) {
    if (!Shed(listen_fd)) break;
  }
  // Pistache's descriptor is the listening socket again. dup2 onto a
  // descriptor that exists needs no free slot, so this cannot fail for want
  // of descriptors; should it fail all the same, the server would accept
  // nothing more, which the log must say.
  if (swapped && ::dup2(listen_own_, listen_fd_) < 0) {
    log::Error("cannot give the HTTP listening socket back to the server",
               {{"errno", errno}});
  }
}

bool Endpoint::Shed(int listen_fd) {
  int client = -1;
  while (client < 0 && !spares_.empty()) {
    ::close(spares_.back());
    spares_.pop_back();
    client = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    // EMFILE: Pistache's listener took the freed descriptor (and so serves
    // a connection with it); try the next spare. Anything else (nothing
    // waiting any more): stop.
    if (client < 0 && errno != EMFILE && errno != ENFILE) break;
  }
  bool shed = false;
  if (client >= 0) {
    // Read what the client already sent, so that closing with unread bytes
    // does not reset the connection before it reads the answer.
    char discard[16 << 10];
    while (::recv(client, discard, sizeof(discard), MSG_DONTWAIT) > 0) {
    }
    const std::string response = SerializeResponse(
        ErrorReply(503,
                   "the gateway has no file descriptor left to serve this "
                   "connection; try again later"),
        "HTTP/1.1", ReasonPhrase(503), /*close=*/true);
    (void)::send(client, response.data(), response.size(),
                 MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(client, SHUT_WR);
    ::close(client);
    shed = true;
    ++shed_unreported_;
    if (state_->connections_shed != nullptr) {
      state_->connections_shed->Increment();
    }
  }
  ReplenishSpares();
  const absl::Time now = absl::Now();
  if (now - last_report_ >= absl::Seconds(10)) {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    log::Error(
        "cannot accept HTTP connections: no file descriptor left; new "
        "connections are answered 503",
        {{"open_file_limit", static_cast<std::uint64_t>(limit.rlim_cur)},
         {"connections_shed", shed_unreported_},
         {"spare_descriptors", static_cast<std::uint64_t>(spares_.size())}});
    last_report_ = now;
    shed_unreported_ = 0;
  }
  return shed;
}

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
  return std::unique_ptr<Endpoint>(new Endpoint(
      state, std::move(endpoint), port, FindListeningSocket(port)));
}

bool Endpoint::CloseListeningSocket() {
  absl::MutexLock lock(&mu_);
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
    // The socket closes only with its last descriptor.
    if (listen_own_ >= 0) ::close(listen_own_);
    listen_own_ = -1;
    return true;
  }
  const int error = errno;
  if (placeholder >= 0) ::close(placeholder);
  log::Warning("cannot close the HTTP listening socket early",
               {{"errno", error}});
  return false;
}

void Endpoint::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (watchdog_.joinable()) watchdog_.join();
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
