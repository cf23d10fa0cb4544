// One client connection's write path: responses in the order of their
// requests, whichever thread finishes each (a webhook's is written from the
// backend's callback), written straight to the socket when it takes them.
#ifndef GATEWAY_HTTP_CONNECTION_H_
#define GATEWAY_HTTP_CONNECTION_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
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

  // The next place in the response order, for a request whose head has been
  // read. Only the connection's HTTP thread calls it.
  std::uint64_t NextSlot() { return next_slot_++; }

  // An interim response (100 Continue) for `slot`: written once every
  // earlier slot's final response is. From any thread.
  void WriteInterim(const std::shared_ptr<ServerState>& state,
                    std::uint64_t slot, std::string bytes)
      ABSL_LOCKS_EXCLUDED(write_mu_, queue_mu_);
  // The final response for `slot`: written once every earlier slot's is,
  // then the sending side is closed when `close` and nothing later is
  // written. Nothing is written when the client is gone. From any thread;
  // once per slot.
  void WriteFinal(const std::shared_ptr<ServerState>& state,
                  std::uint64_t slot, std::string bytes, bool close)
      ABSL_LOCKS_EXCLUDED(write_mu_, queue_mu_);

  // Whether a request is in progress, for Pistache's timeouts: the idle
  // timeout applies only while none is. From any thread.
  void SetBusy(bool busy);

  // We answered (or will answer) with "Connection: close": input is
  // discarded until the client closes. Set by a webhook's callback too.
  std::atomic<bool> closing{false};

 private:
  struct Pending {
    std::string bytes;
    bool final = false;
    bool close = false;
  };

  void Add(const std::shared_ptr<ServerState>& state, std::uint64_t slot,
           std::string bytes, bool final, bool close)
      ABSL_LOCKS_EXCLUDED(write_mu_, queue_mu_);
  // Writes `bytes` now if the socket takes them, else hands what is left to
  // Pistache's queue (through `to_queue`, after write_mu_ is released).
  void SendLocked(std::string bytes, bool close, std::string* to_queue,
                  bool* queue_close) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  // The Pistache peer, for the queued path and the idle flag.
  const std::weak_ptr<Pistache::Tcp::Peer> peer_;
  // Our own descriptor of the socket (a duplicate of Pistache's), for
  // responses written straight from the thread that has them. The socket
  // stays open while a response still to be written holds this Connection,
  // so that a response can never reach a later connection that reuses
  // Pistache's descriptor number. -1 if it could not be made: responses then
  // all go through Pistache's queue.
  const int fd_;
  // HTTP thread only.
  std::uint64_t next_slot_ = 0;

  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(queue_mu_);
  // Responses (or their interim part) not yet written, by slot.
  std::map<std::uint64_t, Pending> pending_ ABSL_GUARDED_BY(write_mu_);
  // The slot whose bytes go out next.
  std::uint64_t next_to_write_ ABSL_GUARDED_BY(write_mu_) = 0;
  // A response with "close" went out: nothing more is written.
  bool closed_ ABSL_GUARDED_BY(write_mu_) = false;
  // Writes handed to Pistache's queue (the socket was full) and not yet
  // written: while there are any, later ones follow them there, so that they
  // stay in order; then responses are written directly again.
  std::size_t queued_ ABSL_GUARDED_BY(write_mu_) = 0;
  // Held from before write_mu_ is released until a write is in Pistache's
  // queue, so that writes enter that queue in their order.
  absl::Mutex queue_mu_;
};

// Writes `reply` as the final response of `slot` on `connection`, counting
// it in the request metrics, and closes the connection once written when
// `close`. From any thread.
void Respond(const std::shared_ptr<ServerState>& state, Connection& connection,
             std::uint64_t slot, HttpVersion version, Route route,
             const Reply& reply, bool close);

}  // namespace convocore::http

#endif  // GATEWAY_HTTP_CONNECTION_H_
