// What every part of the HTTP server shares: the options, the backend, the
// metrics, the drain flag and the count of requests in flight. Private to
// gateway/http.
#ifndef GATEWAY_HTTP_SERVER_STATE_H_
#define GATEWAY_HTTP_SERVER_STATE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "gateway/http/server.h"
#include "gateway/metrics/registry.h"

namespace convocore::http {

struct HttpServer::State {
  HttpServerOptions options;
  HttpBackend* backend = nullptr;
  metrics::CounterFamily* requests = nullptr;
  // The series of every accepted webhook, looked up once rather than per
  // response.
  metrics::Counter* webhooks_ok = nullptr;
  // Connections answered 503 at once because no descriptor was left to
  // serve them (see pistache::Endpoint).
  metrics::Counter* connections_shed = nullptr;
  // Connections refused for being over options.max_connections, and
  // requests refused for being over the per-connection rate.
  metrics::Counter* connections_refused = nullptr;
  metrics::Counter* requests_throttled = nullptr;
  // Connections open now, refused ones included until they close.
  std::atomic<std::int64_t> connections{0};
  std::atomic<bool> draining{false};
  std::uint16_t port = 0;

  // Held (shared) by a webhook's callback while it writes through Pistache's
  // transport; Shutdown() sets `stopped` under it before the transport goes.
  absl::Mutex transport_mu;
  bool stopped ABSL_GUARDED_BY(transport_mu) = false;

  // Counted up and down several times per request, from every thread: an
  // atomic, so that the hot path takes no lock; WaitForIdle() polls it.
  std::atomic<std::int64_t> in_flight{0};

  void RequestStarted() { in_flight.fetch_add(1, std::memory_order_relaxed); }
  void RequestDone() { in_flight.fetch_sub(1, std::memory_order_acq_rel); }
};

using ServerState = HttpServer::State;

// Counts a request in flight for as long as it lives; shared by the
// callbacks that finish the request, so that it is released whenever they
// are destroyed, run or not (Pistache drops a write's callbacks unsettled
// when the peer is gone).
class InFlight {
 public:
  explicit InFlight(std::shared_ptr<ServerState> state)
      : state_(std::move(state)) {
    state_->RequestStarted();
  }
  ~InFlight() {
    if (state_ != nullptr) state_->RequestDone();
  }
  InFlight(InFlight&& other) noexcept = default;
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::shared_ptr<ServerState> state_;
};

}  // namespace convocore::http

#endif  // GATEWAY_HTTP_SERVER_STATE_H_
