// The webhook gateway as one object: the store, the hub, the ingest
// pipeline, the HTTP server and the gRPC server, wired from GatewayOptions,
// started in order and shut down gracefully. main() is flags plus
// RunGateway(); tests can start a Gateway in-process.
#ifndef GATEWAY_APP_GATEWAY_H_
#define GATEWAY_APP_GATEWAY_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/app/options.h"

namespace convocore::app {

class Gateway {
 public:
  // Opens the store (restoring the de-duplication window), starts the hub,
  // the HTTP server (first, so /healthz answers while the store opens, and
  // /readyz says 503 until everything is up) and the gRPC server. Fails
  // with one clear message (port in use, store that cannot be opened) after
  // stopping whatever it had started.
  static absl::StatusOr<std::unique_ptr<Gateway>> Start(
      const GatewayOptions& options);

  // Shutdown(options.shutdown_timeout) unless already done.
  ~Gateway();

  std::uint16_t http_port() const;
  std::uint16_t grpc_port() const;

  // Graceful shutdown, all within `timeout`: readiness turns 503, the HTTP
  // listener closes, requests in flight finish (webhooks arriving meanwhile
  // on open connections get 503), then every subscription stream ends with
  // UNAVAILABLE and the hub and store close. kDeadlineExceeded if requests
  // were still running at the deadline (the servers are then left to the
  // process's exit). Idempotent.
  absl::Status Shutdown(absl::Duration timeout);

  // Reads --subscriber_tokens_file again and puts its tokens in force; open
  // streams they no longer allow end. FAILED_PRECONDITION, keeping the
  // tokens in force, when the file cannot be read or parsed (or none is
  // configured). The gateway also does this by itself when the file changes.
  absl::Status ReloadSubscriberTokens();
  // The same for --workspace_secret_file: webhooks in flight are checked
  // against the old secrets or the new ones, never refused in between.
  absl::Status ReloadWorkspaceSecrets();

  struct Parts;

 private:
  explicit Gateway(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

// What main() runs: starts the gateway, reloads the subscriber tokens and
// the workspace secret file on SIGHUP, waits for SIGTERM or SIGINT, shuts
// down within options.shutdown_timeout. Returns the exit code: 0 after a
// clean shutdown, 1 when starting failed or the shutdown overran (a second
// signal, or the deadline plus a grace second, exits at once with 1).
// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread, so call it before
// any other thread starts.
int RunGateway(const GatewayOptions& options);

}  // namespace convocore::app

#endif  // GATEWAY_APP_GATEWAY_H_
