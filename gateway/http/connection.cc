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
  {
    absl::MutexLock lock(&write_mu_);
    if (closed_) return;
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
    if (out.empty() || !SendLocked(state, std::move(out), out_close)) return;
  }
  // Into Pistache's queue with write_mu_ released: Pistache may run the
  // write's continuation, which takes write_mu_, inside the call.
  PushQueued();
}

// Writes from the calling thread when the socket takes the bytes at once,
// which is nearly always: Pistache's own path (a queue, an eventfd to wake
// its thread, two epoll_ctl calls) costs more than the rest of a response.
bool Connection::SendLocked(const std::shared_ptr<ServerState>& state,
                            std::string bytes, bool close) {
  if (queued_ == 0 && fd_ >= 0) {
    ssize_t written =
        ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (written == static_cast<ssize_t>(bytes.size())) {
      // Half-close: the client reads the response, then the end of the
      // stream; anything it still sends is read and discarded until it
      // closes, so that no reset destroys the response.
      if (close) ::shutdown(fd_, SHUT_WR);
      return false;
    }
    if (written < 0) {
      // Anything but a full socket: the client is gone, which Pistache
      // finds out on its side.
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return false;
      }
      written = 0;
    }
    bytes.erase(0, written);
  }
  ++queued_;
  to_queue_.push_back(
      QueuedWrite{.bytes = std::move(bytes),
                  .close = close,
                  .in_flight = std::make_shared<InFlight>(state)});
  if (pushing_) return false;  // the thread pushing takes this one too
  pushing_ = true;
  return true;
}

void Connection::PushQueued() {
  const std::shared_ptr<Pistache::Tcp::Peer> peer = peer_.lock();
  for (;;) {
    QueuedWrite write;
    {
      absl::MutexLock lock(&write_mu_);
      if (to_queue_.empty()) {
        pushing_ = false;
        return;
      }
      write = std::move(to_queue_.front());
      to_queue_.pop_front();
    }
    // No lock of ours is held (the caller's ServerState::transport_mu
    // aside): the continuation may run right here, inside Promise::then,
    // under Pistache's promise lock, and takes write_mu_.
    // When the client is gone, or Pistache refuses the write, nothing is
    // written, and queued_ stays up: later responses follow it to the same
    // end.
    if (peer == nullptr) continue;
    (void)pistache::QueueWrite(peer, std::move(write.bytes), write.close,
                               [in_flight = std::move(write.in_flight),
                                self = shared_from_this()] {
                                 absl::MutexLock lock(&self->write_mu_);
                                 --self->queued_;
                               });
  }
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
