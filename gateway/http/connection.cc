#include "gateway/http/connection.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "gateway/http/pistache_internals.h"

namespace convocore::http {

Connection::Connection(std::weak_ptr<Pistache::Tcp::Peer> peer, int fd)
    : peer_(std::move(peer)), fd_(::fcntl(fd, F_DUPFD_CLOEXEC, 0)) {}

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
}

void Connection::WriteInterim(const std::shared_ptr<ServerState>& state,
                              std::uint64_t slot, std::string bytes) {
  Add(state, slot, std::move(bytes), /*final=*/false, /*close=*/false);
}

void Connection::WriteFinal(const std::shared_ptr<ServerState>& state,
                            std::uint64_t slot, std::string bytes, bool close) {
  Add(state, slot, std::move(bytes), /*final=*/true, close);
}

void Connection::Add(const std::shared_ptr<ServerState>& state,
                     std::uint64_t slot, std::string bytes, bool final,
                     bool close) {
  std::string to_queue;
  bool queue_close = false;
  write_mu_.Lock();
  if (closed_) {
    write_mu_.Unlock();
    return;
  }
  Pending& pending = pending_[slot];
  pending.bytes += bytes;
  if (final) {
    pending.final = true;
    pending.close = close;
  }
  // Everything now ready in order goes out in one write.
  std::string out;
  bool out_close = false;
  while (!closed_) {
    auto it = pending_.find(next_to_write_);
    if (it == pending_.end()) break;
    out += it->second.bytes;
    it->second.bytes.clear();
    if (!it->second.final) break;
    const bool closes = it->second.close;
    pending_.erase(it);
    ++next_to_write_;
    if (closes) {
      closed_ = true;
      out_close = true;
      pending_.clear();
    }
  }
  if (!out.empty()) SendLocked(std::move(out), out_close, &to_queue,
                               &queue_close);
  if (to_queue.empty()) {
    write_mu_.Unlock();
    return;
  }
  // Into Pistache's queue in order: the next writer waits for queue_mu_.
  queue_mu_.Lock();
  write_mu_.Unlock();
  if (std::shared_ptr<Pistache::Tcp::Peer> peer = peer_.lock()) {
    // Counted in flight until written, so that a drain waits for the bytes.
    auto token = std::make_shared<InFlight>(state);
    pistache::QueueWrite(peer, std::move(to_queue), queue_close,
                         [token, self = shared_from_this()] {
                           absl::MutexLock lock(&self->write_mu_);
                           --self->queued_;
                         });
  }
  queue_mu_.Unlock();
}

// Writes from the calling thread when the socket takes the bytes at once,
// which is nearly always: Pistache's own path (a queue, an eventfd to wake
// its thread, two epoll_ctl calls) costs more than the rest of a response.
void Connection::SendLocked(std::string bytes, bool close,
                            std::string* to_queue, bool* queue_close) {
  if (queued_ == 0 && fd_ >= 0) {
    ssize_t written =
        ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (written == static_cast<ssize_t>(bytes.size())) {
      // Half-close: the client reads the response, then the end of the
      // stream; anything it still sends is read and discarded until it
      // closes, so that no reset destroys the response.
      if (close) ::shutdown(fd_, SHUT_WR);
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
  ++queued_;
  *to_queue = std::move(bytes);
  *queue_close = close;
}

void Connection::SetBusy(bool busy) {
  if (std::shared_ptr<Pistache::Tcp::Peer> peer = peer_.lock()) {
    pistache::SetIdle(*peer, !busy);
  }
}

void Respond(const std::shared_ptr<ServerState>& state, Connection& connection,
             std::uint64_t slot, HttpVersion version, Route route,
             const Reply& reply, bool close) {
  if (route == Route::kWebhooks && reply.code == 200 &&
      state->webhooks_ok != nullptr) {
    state->webhooks_ok->Increment();
  } else if (state->requests != nullptr) {
    state->requests->WithLabels({RouteLabel(route), std::to_string(reply.code)})
        .Increment();
  }
  if (close) connection.closing.store(true);
  connection.SetBusy(false);
  connection.WriteFinal(state, slot,
                        SerializeResponse(reply, VersionString(version),
                                          ReasonPhrase(reply.code), close),
                        close);
}

}  // namespace convocore::http
