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
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
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
// Calls `dequeued` at most once, when the bytes are written or the write
// failed, under Pistache's lock of the write's promise: on Pistache's
// thread, or on the calling thread before QueueWrite returns when the
// write is already done by then. Never when the peer or the transport goes
// first (the write is dropped unsettled, and `dequeued` destroyed). So the
// caller must hold no lock that `dequeued` takes. False, with nothing
// queued and `dequeued` never called, when Pistache refused the write.
bool QueueWrite(const std::shared_ptr<Pistache::Tcp::Peer>& peer,
                std::string bytes, bool close,
                std::function<void()> dequeued);

// A running Pistache endpoint serving the server's requests.
//
// When accept() fails (no file descriptor left), Pistache 0.0.5's listener
// logs nothing (the Endpoint gives its listener no logger) and retries at
// once, while the client waits unanswered. So a watchdog thread checks the
// listening socket every 100 ms: a connection still waiting there while the
// process has no descriptor left is accepted with one of a few spare
// descriptors kept for this, answered 503 and closed; the failure is logged
// at most every 10 s and counted (gateway_http_connections_shed_total).
// While it sheds, Pistache's descriptor of the listening socket points at an
// unbound placeholder socket (dup2), so that Pistache's listener cannot take
// the spare just freed: its accept() fails (EINVAL, which it logs nowhere
// and retries) until the real socket is put back, right after.
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
  bool CloseListeningSocket() ABSL_LOCKS_EXCLUDED(mu_);

  // Stops the threads and closes every connection.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Endpoint(std::shared_ptr<ServerState> state,
           std::unique_ptr<Pistache::Http::Endpoint> endpoint,
           std::uint16_t port, int listen_fd);

  void Watch() ABSL_LOCKS_EXCLUDED(mu_);
  // Whether the process has no descriptor left (EMFILE or ENFILE).
  bool OutOfDescriptors() const;
  // Accepts one waiting connection with a spare descriptor and answers it
  // 503; false when none could be accepted. Watchdog thread only.
  bool Shed(int listen_fd);
  // Sheds every connection waiting while no descriptor is free, with
  // Pistache's listener kept off the listening socket meanwhile.
  void ShedWaiting() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Opens spares up to kSpares while descriptors allow. Watchdog thread
  // only.
  void ReplenishSpares();

  const std::shared_ptr<ServerState> state_;
  std::unique_ptr<Pistache::Http::Endpoint> endpoint_;
  const std::uint16_t port_;
  // Descriptors of /dev/null, held so that a connection can be accepted and
  // answered when every other descriptor is taken. Watchdog thread only,
  // once started.
  static constexpr std::size_t kSpares = 4;
  std::vector<int> spares_;
  // Watchdog thread only: shed since the last log line, and when that was.
  std::uint64_t shed_unreported_ = 0;
  absl::Time last_report_ = absl::InfinitePast();

  absl::Mutex mu_;
  // Pistache's listening socket, found by its port; -1 when not found or
  // once closed.
  int listen_fd_ ABSL_GUARDED_BY(mu_);
  // Our own descriptor of the listening socket, and an unbound socket to put
  // in Pistache's place while shedding; -1 when they could not be made
  // (shedding then competes with Pistache's listener) or once closed.
  int listen_own_ ABSL_GUARDED_BY(mu_) = -1;
  int placeholder_ ABSL_GUARDED_BY(mu_) = -1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watchdog_;
};

}  // namespace convocore::http::pistache

#endif  // GATEWAY_HTTP_PISTACHE_INTERNALS_H_
