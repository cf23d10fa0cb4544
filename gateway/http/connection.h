// One client connection's state beside its parser, and the write path of its
// responses, which a webhook's callback takes from any thread.
#ifndef GATEWAY_HTTP_CONNECTION_H_
#define GATEWAY_HTTP_CONNECTION_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/http/http_api.h"
#include "gateway/http/request.h"
#include "gateway/http/server_state.h"

namespace Pistache::Tcp {
class Peer;
}  // namespace Pistache::Tcp

namespace convocore::http {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // `fd` is Pistache's descriptor of the socket; the connection keeps a
  // duplicate of its own.
  Connection(std::weak_ptr<Pistache::Tcp::Peer> peer, int fd);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Writes `bytes` (nothing when the client is gone), in order with every
  // earlier write, and closes the sending side once written when `close`.
  // From any thread.
  void Write(const std::shared_ptr<ServerState>& state, std::string bytes,
             bool close) ABSL_LOCKS_EXCLUDED(write_mu_);

  // Whether a request is in progress, for Pistache's timeouts: the idle
  // timeout applies only while none is. From any thread.
  void SetBusy(bool busy);

  // When the first byte of the current request arrived. Read and written
  // only by the connection's HTTP thread.
  absl::Time request_start = absl::InfinitePast();
  // Whether the current request's headers have been looked at (413 on
  // Content-Length, Expect: 100-continue). HTTP thread only.
  bool headers_checked = false;
  // We answered with "Connection: close": input is discarded until the
  // client closes. Set by a webhook's callback too, on another thread.
  std::atomic<bool> closing{false};

 private:
  // The Pistache peer, for the queued path and the idle flag.
  const std::weak_ptr<Pistache::Tcp::Peer> peer_;
  // Our own descriptor of the socket (a duplicate of Pistache's), for
  // responses written straight from the thread that has them. The socket
  // stays open while a response still to be written holds this Connection,
  // so that a response can never reach a later connection that reuses
  // Pistache's descriptor number. -1 if it could not be made: responses then
  // all go through Pistache's queue.
  const int fd_;
  absl::Mutex write_mu_;
  // Responses handed to Pistache's queue (the socket was full) and not yet
  // written: while there are any, later ones follow them there, so that they
  // stay in order; then responses are written directly again.
  std::size_t queued_ ABSL_GUARDED_BY(write_mu_) = 0;
};

// Writes `reply` on `connection` as a response of `version`, counting it in
// the request metrics, and closes the connection once written when `close`.
// Touches nothing of the connection's parser, so that a webhook's callback
// can call it from any thread.
void Respond(const std::shared_ptr<ServerState>& state, Connection& connection,
             HttpVersion version, Route route, const Reply& reply, bool close);

}  // namespace convocore::http

#endif  // GATEWAY_HTTP_CONNECTION_H_
