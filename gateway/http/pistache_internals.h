// Everything of the HTTP server that depends on Pistache 0.0.5 beyond its
// documented use, in one place: the replaced (private) input handler of its
// Http::Handler, its request parser kept only as the clock of its request
// timeout, the promise of its transport's write queue, its peers' idle flag
// and its listening socket, which it does not expose. Written against Pistache 0.0.5 (Debian's
// 0.0.5+ds, git 20220901): the build fails on any other version
// (static_assert in pistache_internals.cc, and CMake's check of pkg-config's
// libpistache version), since each of these may change without notice.
#ifndef GATEWAY_HTTP_PISTACHE_INTERNALS_H_
#define GATEWAY_HTTP_PISTACHE_INTERNALS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gateway/http/server_state.h"

namespace Pistache {
namespace Http {
class Endpoint;
}  // namespace Http
namespace Tcp {
class Peer;
}  // namespace Tcp
}  // namespace Pistache

namespace convocore::http::pistache {

// Marks the peer idle (no request in progress: Pistache's keep-alive timeout
// applies) or busy. From any thread.
void SetIdle(Pistache::Tcp::Peer& peer, bool idle);

// Queues `bytes` on Pistache's transport for `peer`, to be written by the
// peer's HTTP thread; closes the sending side once written when `close`.
// Calls `dequeued` once the bytes are written or dropped (the peer gone),
// on Pistache's thread; never when the transport is destroyed first.
void QueueWrite(const std::shared_ptr<Pistache::Tcp::Peer>& peer,
                std::string bytes, bool close,
                std::function<void()> dequeued);

// A running Pistache endpoint serving the server's requests.
class Endpoint {
 public:
  // Binds options.address:options.port and starts options.threads threads.
  // kUnavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Endpoint>> Start(
      const std::shared_ptr<ServerState>& state);
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  std::uint16_t port() const { return port_; }

  // Closes the listening socket (the kernel refuses new connections) while
  // open connections go on. False when it cannot, with the reason logged.
  bool CloseListeningSocket();

  // Stops the threads and closes every connection.
  void Shutdown();

 private:
  Endpoint(std::unique_ptr<Pistache::Http::Endpoint> endpoint,
           std::uint16_t port, int listen_fd);

  std::unique_ptr<Pistache::Http::Endpoint> endpoint_;
  const std::uint16_t port_;
  // Pistache's listening socket, found by its port; -1 when not found or
  // once closed.
  int listen_fd_;
};

}  // namespace convocore::http::pistache

#endif  // GATEWAY_HTTP_PISTACHE_INTERNALS_H_
