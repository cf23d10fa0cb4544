// The gateway's HTTP server: HTTP/1.1 in front of an HttpBackend, over
// Pistache 0.0.5's transport. Pistache stays behind this header.
//
// Requests are read by our own parser (request_parser.h), not Pistache's,
// which dropped pipelined requests and misread malformed ones. Every request
// gets exactly one response, in the order the requests came, pipelined or
// not: a malformed request (or one over a limit: max_header_bytes for the
// request line and headers, max_body_bytes for the body, refused with 413 as
// soon as its Content-Length is read) is answered with its error in our
// words, and the connection closes after it, its framing lost. The
// Connection header is ours too: keep-alive unless the client asked to
// close, or spoke HTTP/1.0 without asking to keep it. "Expect:
// 100-continue" is answered with 100 Continue once the headers are in, or
// with the final error at once when the headers alone decide it. Binding a
// port in use is an error from Start(), not an exception.
//
// Webhooks are answered asynchronously: the HTTP thread reads the request,
// hands it to the backend and goes on; the backend's callback (on the hub's
// committer thread) writes the response, after those of earlier requests on
// the connection. A client gone meanwhile gets nothing written and costs
// nothing; a response from a callback that runs after Shutdown() is
// dropped.
//
// Known limit: the 408 for a request slower than request_timeout is
// Pistache's own, written and followed by a close at once, so that a
// response still owed to an earlier pipelined webhook on that connection is
// lost (the webhook may be stored, and its client then sees no 200).
#ifndef GATEWAY_HTTP_SERVER_H_
#define GATEWAY_HTTP_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/metrics/registry.h"

namespace convocore::http {
namespace pistache {
class Endpoint;
}  // namespace pistache

// Why the HTTP layer refused a webhook before handing it to the backend.
enum class Refusal { kUnsupportedMediaType, kTooLarge, kShuttingDown };

struct WebhookAck {
  std::uint64_t sequence = 0;
  std::string id;
  bool duplicate = false;
};

// The outcome of a webhook, which the server answers when it is called.
using WebhookCallback = absl::AnyInvocable<void(absl::StatusOr<WebhookAck>) &&>;

// What the server serves. Called concurrently from every HTTP thread.
class HttpBackend {
 public:
  virtual ~HttpBackend() = default;

  // POST /webhooks with a JSON (or unlabelled) body, valid only until
  // HandleWebhook() returns. Calls `done` exactly once, on this thread or
  // any other, when the webhook's outcome is known (once stored, for the
  // durable store after its fsync): the HTTP thread goes on serving other
  // connections meanwhile, and the response is written from `done`. The
  // error's code picks the HTTP status (see HttpCodeForStatus) and its
  // message is the body. `done` must not be called while holding a lock
  // that the backend's HTTP-thread path takes.
  virtual void HandleWebhook(std::string_view body, absl::Time receive_time,
                             WebhookCallback done) = 0;
  // A webhook refused by the HTTP layer itself, for metrics.
  virtual void OnWebhookRefused(Refusal refusal) = 0;
  // OK when ready to accept and persist webhooks; the reason otherwise.
  virtual absl::Status Readiness() const = 0;
  // The body of GET /metrics.
  virtual std::string RenderMetrics() const = 0;
};

struct HttpServerOptions {
  // An address to bind ("0.0.0.0", "127.0.0.1", "::").
  std::string address = "0.0.0.0";
  // 0 binds a free port; see HttpServer::port().
  std::uint16_t port = 8080;
  // Threads that read requests and call the backend. A webhook does not
  // hold its thread while it is being stored: it is answered from the
  // backend's callback.
  int threads = 4;
  std::size_t max_body_bytes = 1 << 20;
  // Request line and headers.
  std::size_t max_header_bytes = 64 << 10;
  // A request whose headers or body take longer is answered 408.
  absl::Duration request_timeout = absl::Seconds(30);
  // An idle keep-alive connection is closed after this long.
  absl::Duration idle_timeout = absl::Seconds(120);
  // Connections served at once; one more is answered 503 and closed, so
  // that a flood of connections cannot take every descriptor and thread.
  int max_connections = 10000;
  // Requests one connection may send per second (a bucket of this many,
  // refilled at this rate); those beyond get 429. 0: no limit.
  int max_requests_per_second_per_connection = 5000;
};

class HttpServer {
 public:
  // Binds and starts serving. `backend` (and `registry`, which may be null)
  // must outlive the server. Fails with kUnavailable when the address cannot
  // be bound (port in use, address not local), kInvalidArgument for
  // unusable options.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const HttpServerOptions& options, HttpBackend* backend,
      metrics::Registry* registry);

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port (the chosen one when options.port was 0).
  std::uint16_t port() const;

  // First step of a graceful shutdown: /readyz turns 503, the listening
  // socket is closed (new connections are refused), and webhooks still
  // arriving on open connections get 503 and "Connection: close".
  void BeginDrain();
  // Waits until no request is in progress or `deadline` passes; true when
  // idle.
  bool WaitForIdle(absl::Time deadline);
  // Stops the server threads and closes every connection. Idempotent.
  void Shutdown();

  // Requests being handled right now, including webhooks waiting for their
  // callback and responses not yet written.
  std::int64_t in_flight() const;

  // What the server's parts share (server_state.h).
  struct State;

 private:
  HttpServer(std::shared_ptr<State> state,
             std::unique_ptr<pistache::Endpoint> endpoint);

  const std::shared_ptr<State> state_;
  absl::Mutex mu_;
  // Null once shut down.
  std::unique_ptr<pistache::Endpoint> endpoint_ ABSL_GUARDED_BY(mu_);
};

}  // namespace convocore::http

#endif  // GATEWAY_HTTP_SERVER_H_
