// The server's lifecycle: start, drain, wait, shut down. The request path is
// in pistache_internals.cc (reading), router.cc (replies) and connection.cc
// (writing).
#include "gateway/http/server.h"

#include <memory>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gateway/http/http_api.h"
#include "gateway/http/pistache_internals.h"
#include "gateway/http/server_state.h"

namespace convocore::http {

HttpServer::HttpServer(std::shared_ptr<State> state,
                       std::unique_ptr<pistache::Endpoint> endpoint)
    : state_(std::move(state)), endpoint_(std::move(endpoint)) {}

HttpServer::~HttpServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HttpServerOptions& options, HttpBackend* backend,
    metrics::Registry* registry) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError("HTTP threads must be at least 1");
  }
  if (options.max_body_bytes < 1 || options.max_header_bytes < 1024) {
    return absl::InvalidArgumentError(
        "HTTP limits: the body limit must be positive and the header limit "
        "at least 1024 bytes");
  }
  if (options.max_connections < 1 ||
      options.max_requests_per_second_per_connection < 0) {
    return absl::InvalidArgumentError(
        "HTTP limits: at least one connection, and a request rate of 0 (no "
        "limit) or more");
  }
  auto state = std::make_shared<State>();
  state->options = options;
  state->backend = backend;
  if (registry != nullptr) {
    state->requests = &registry->AddCounter(
        "gateway_http_requests_total",
        "HTTP requests answered, by route and status code.", {"route", "code"});
    state->webhooks_ok =
        &state->requests->WithLabels({RouteLabel(Route::kWebhooks), "200"});
    state->connections_shed =
        &registry
             ->AddCounter("gateway_http_connections_shed_total",
                          "HTTP connections answered 503 at once because the "
                          "process had no file descriptor left to serve them.")
             .Get();
    state->connections_refused =
        &registry
             ->AddCounter("gateway_http_connections_refused_total",
                          "HTTP connections answered 503 and closed because "
                          "--http_max_connections were open.")
             .Get();
    state->requests_throttled =
        &registry
             ->AddCounter(
                 "gateway_http_requests_throttled_total",
                 "HTTP requests answered 429 because their connection sent "
                 "more than --http_max_requests_per_connection per second.")
             .Get();
    std::weak_ptr<State> weak = state;
    registry->AddCallbackGauge(
        "gateway_http_connections_open", "HTTP connections open now.", [weak] {
          auto locked = weak.lock();
          return locked ? static_cast<double>(locked->connections.load()) : 0.0;
        });
    registry->AddCallbackGauge(
        "gateway_http_requests_in_flight",
        "HTTP requests being handled or written now.", [weak] {
          auto locked = weak.lock();
          if (!locked) return 0.0;
          return static_cast<double>(locked->in_flight.load());
        });
  }
  absl::StatusOr<std::unique_ptr<pistache::Endpoint>> endpoint =
      pistache::Endpoint::Start(state);
  if (!endpoint.ok()) return endpoint.status();
  state->port = (*endpoint)->port();
  return std::unique_ptr<HttpServer>(
      new HttpServer(std::move(state), *std::move(endpoint)));
}

std::uint16_t HttpServer::port() const { return state_->port; }

void HttpServer::BeginDrain() {
  state_->draining.store(true);
  absl::MutexLock lock(&mu_);
  if (endpoint_ != nullptr) endpoint_->CloseListeningSocket();
}

bool HttpServer::WaitForIdle(absl::Time deadline) {
  // Only at shutdown: a millisecond's polling is cheaper than a lock per
  // request.
  while (state_->in_flight.load(std::memory_order_acquire) != 0) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

void HttpServer::Shutdown() {
  std::unique_ptr<pistache::Endpoint> endpoint;
  {
    absl::MutexLock lock(&mu_);
    state_->draining.store(true);
    endpoint = std::move(endpoint_);
  }
  if (endpoint == nullptr) return;
  {
    // Callbacks still to come write nothing through a transport that is
    // about to go.
    absl::MutexLock lock(&state_->transport_mu);
    state_->stopped = true;
  }
  endpoint->Shutdown();
}

std::int64_t HttpServer::in_flight() const {
  return state_->in_flight.load(std::memory_order_acquire);
}

}  // namespace convocore::http
