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

// Writes from the calling thread when the socket takes the bytes at once,
// which is nearly always: Pistache's own path (a queue, an eventfd to wake
// its thread, two epoll_ctl calls) costs more than the rest of a response.
// Otherwise what is left goes through Pistache's queue.
void Connection::Write(const std::shared_ptr<ServerState>& state,
                       std::string bytes, bool close) {
  std::shared_ptr<Pistache::Tcp::Peer> peer = peer_.lock();
  if (peer == nullptr) return;
  {
    absl::MutexLock lock(&write_mu_);
    if (queued_ == 0 && fd_ >= 0) {
      ssize_t written = ::send(fd_, bytes.data(), bytes.size(),
                               MSG_NOSIGNAL | MSG_DONTWAIT);
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
  }
  // Counted in flight until written, so that a drain waits for the bytes.
  auto token = std::make_shared<InFlight>(state);
  pistache::QueueWrite(peer, std::move(bytes), close,
                       [token, self = shared_from_this()] {
                         absl::MutexLock lock(&self->write_mu_);
                         --self->queued_;
                       });
}

void Connection::SetBusy(bool busy) {
  if (std::shared_ptr<Pistache::Tcp::Peer> peer = peer_.lock()) {
    pistache::SetIdle(*peer, !busy);
  }
}

void Respond(const std::shared_ptr<ServerState>& state, Connection& connection,
             HttpVersion version, Route route, const Reply& reply, bool close) {
  if (route == Route::kWebhooks && reply.code == 200 &&
      state->webhooks_ok != nullptr) {
    state->webhooks_ok->Increment();
  } else if (state->requests != nullptr) {
    state->requests->WithLabels({RouteLabel(route), std::to_string(reply.code)})
        .Increment();
  }
  connection.SetBusy(false);
  connection.Write(state,
                   SerializeResponse(reply, VersionString(version),
                                     ReasonPhrase(reply.code), close),
                   close);
}

}  // namespace convocore::http
