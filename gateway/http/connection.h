// One client connection's write path: responses in the order of their
// requests, whichever thread finishes each (a webhook's is written from the
// backend's callback), written straight to the socket when it takes them.
#ifndef GATEWAY_HTTP_CONNECTION_H_
#define GATEWAY_HTTP_CONNECTION_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
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

// Lock order (what is taken before what), Pistache 0.0.5's locks included:
//
//   ServerState::transport_mu (shared; a webhook's callback holds it around
//   Respond)
//     -> Pistache's promise lock (Async::Private::Core::mtx of one write's
//        promise, taken by Promise::then and by its resolution)
//       -> write_mu_
//
// write_mu_ is a leaf: while it is held nothing else is locked and nothing
// of Pistache is called (only send(2) and shutdown(2), and the atomic count
// of InFlight). Pistache calls into this class with its promise lock held:
// the continuation of a queued write runs under that write's Core::mtx,
// either on Pistache's transport thread (Transport::asyncWriteImpl resolving
// the write) or inline, on the thread that attaches it, in Promise::then when
// the write has already been written; it takes write_mu_. So no Pistache
// function may be called with write_mu_ held, which is why the write to
// Pistache's queue is made after write_mu_ is released, by one thread at a
// time (`pushing_`), from `to_queue_`, in order. (An earlier version held a
// second mutex of ours from under write_mu_ across Promise::then: write_mu_
// -> that mutex -> Core::mtx -> write_mu_, a deadlock whenever the write
// finished before then() attached its continuation while another response
// on the connection waited for that mutex under write_mu_.)
//
// Pistache's transport lock (Transport::toWriteLock) is never held while it
// calls us: asyncWriteImpl releases it before it resolves or rejects a
// write. It is held while Pistache destroys the write of a peer that is gone
// (its promise unsettled), which may destroy our continuation and with it
// the last reference to a Connection: ~Connection takes no lock. Pistache's
// write queue itself (PollableQueue, what Peer::send pushes to) is
// lock-free. ServerState::transport_mu is never taken on a path that holds
// write_mu_ or a Pistache lock: exclusive only in HttpServer::Shutdown,
// which holds nothing else and calls nothing under it.
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
  // earlier slot's final response is. From any thread that holds no lock
  // of Pistache's.
  void WriteInterim(const std::shared_ptr<ServerState>& state,
                    std::uint64_t slot, std::string bytes)
      ABSL_LOCKS_EXCLUDED(write_mu_);
  // The final response for `slot`: written once every earlier slot's is,
  // then the sending side is closed when `close` and nothing later is
  // written. Nothing is written when the client is gone. From any thread
  // that holds no lock of Pistache's; once per slot.
  void WriteFinal(const std::shared_ptr<ServerState>& state,
                  std::uint64_t slot, std::string bytes, bool close)
      ABSL_LOCKS_EXCLUDED(write_mu_);

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
  // Bytes the socket did not take, for Pistache's queue.
  struct QueuedWrite {
    std::string bytes;
    bool close = false;
    // Counts the responses in flight until Pistache has written the bytes,
    // so that a drain waits for them.
    std::shared_ptr<InFlight> in_flight;
  };

  void Add(const std::shared_ptr<ServerState>& state, std::uint64_t slot,
           std::string bytes, bool final, bool close)
      ABSL_LOCKS_EXCLUDED(write_mu_);
  // Writes `bytes` now if the socket takes them, else appends what is left
  // to `to_queue_`. True when the caller is to push `to_queue_` to
  // Pistache (no other thread is doing it).
  bool SendLocked(const std::shared_ptr<ServerState>& state,
                  std::string bytes, bool close)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Hands `to_queue_` to Pistache's queue, in order, until it is empty;
  // write_mu_ is released around each call into Pistache.
  void PushQueued() ABSL_LOCKS_EXCLUDED(write_mu_);

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

  // A leaf: see the lock order above.
  absl::Mutex write_mu_;
  // Responses (or their interim part) not yet written, by slot.
  std::map<std::uint64_t, Pending> pending_ ABSL_GUARDED_BY(write_mu_);
  // The slot whose bytes go out next.
  std::uint64_t next_to_write_ ABSL_GUARDED_BY(write_mu_) = 0;
  // A response with "close" went out: nothing more is written.
  bool closed_ ABSL_GUARDED_BY(write_mu_) = false;
  // Writes for Pistache's queue (the socket was full) not yet written, those
  // still in `to_queue_` included: while there are any, later ones follow
  // them there, so that they stay in order; then responses are written
  // directly again.
  std::size_t queued_ ABSL_GUARDED_BY(write_mu_) = 0;
  // Writes for Pistache's queue not yet handed to it, in order.
  std::deque<QueuedWrite> to_queue_ ABSL_GUARDED_BY(write_mu_);
  // A thread is handing `to_queue_` to Pistache (PushQueued): the others
  // only append to it, so that writes enter Pistache's queue in order.
  bool pushing_ ABSL_GUARDED_BY(write_mu_) = false;
};

// Writes `reply` as the final response of `slot` on `connection`, counting
// it in the request metrics, and closes the connection once written when
// `close`. From any thread.
void Respond(const std::shared_ptr<ServerState>& state, Connection& connection,
             std::uint64_t slot, HttpVersion version, Route route,
             const Reply& reply, bool close);

}  // namespace convocore::http

#endif  // GATEWAY_HTTP_CONNECTION_H_
