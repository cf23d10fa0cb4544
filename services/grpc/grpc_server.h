// The gRPC server of the gateway: EventStreamService, the standard health
// service (grpc.health.v1) and server reflection, with keepalive settings for
// long idle streams, and the one timer thread that sends heartbeats and
// refreshes health. What the binary starts and stops.
#ifndef SERVICES_GRPC_GRPC_SERVER_H_
#define SERVICES_GRPC_GRPC_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/grpc/event_stream_service.h"
#include "services/hub/event_hub.h"

namespace convocore::grpc_service {

// The health service name of EventStreamService ("" is the server as a
// whole; both get the same status).
inline constexpr char kEventStreamServiceName[] =
    "convocore.webhooks.v1.EventStreamService";

// TLS from PEM files, which gRPC reads again every `refresh` so that a
// certificate is rotated without a restart and without dropping a stream.
struct GrpcTlsFiles {
  std::string cert;  // the server's certificate chain
  std::string key;
  // When set, clients must present a certificate this CA bundle verifies
  // (mTLS).
  std::string client_ca;
  absl::Duration refresh = absl::Seconds(10);
};

struct GrpcServerOptions {
  std::string address = "0.0.0.0";
  int port = 0;  // 0: an ephemeral port, see GrpcServer::port()
  // A stream that has sent nothing for this long gets a Heartbeat (within
  // 1.5 times this).
  absl::Duration heartbeat_interval = absl::Seconds(15);
  // The server pings idle connections this often and drops a connection
  // whose ping goes unanswered for keepalive_timeout.
  absl::Duration keepalive_time = absl::Seconds(30);
  absl::Duration keepalive_timeout = absl::Seconds(10);
  // Clients may ping this often without the server calling it abuse.
  absl::Duration min_client_ping_interval = absl::Seconds(10);
  // Who may subscribe; nullptr lets anyone (see EventStreamServiceImpl).
  // The health service is open to all: probes carry no token.
  std::shared_ptr<const auth::SubscriberTokens> subscriber_tokens;
  // Plaintext when unset.
  std::optional<GrpcTlsFiles> tls;
  // Server reflection (what grpcurl lists and describes). It serves the
  // schema, never events, but it takes no token: a server that asks for
  // tokens turns it off unless the operator opens it.
  bool reflection = true;
};

class GrpcServer {
 public:
  // Listens and serves. SERVING from the start while the hub is healthy.
  // `hub` and `groups` (null: no consumer groups) must outlive the server. With
  // TLS, FAILED_PRECONDITION naming the file when one cannot be read, holds no
  // PEM certificate or key, or the key is not the certificate's.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const GrpcServerOptions& options, hub::EventHub* hub,
      groups::GroupService* groups = nullptr);
  // Shutdown(absl::Seconds(5)) unless already shut down.
  ~GrpcServer();

  // The port listened on (the ephemeral one when options.port was 0).
  int port() const { return port_; }

  // Readiness as the health service reports it, for "" and
  // EventStreamService: SERVING when `serving` and the hub's store is
  // healthy (re-checked every timer tick, at most a second apart).
  void SetServing(bool serving) ABSL_LOCKS_EXCLUDED(mu_);

  // NOT_SERVING, then every open stream ends with UNAVAILABLE and a message
  // naming where to resume; calls still running after `deadline` are
  // cancelled. Returns once every stream's reactor is done. Idempotent.
  void Shutdown(absl::Duration deadline) ABSL_LOCKS_EXCLUDED(mu_);

  std::size_t open_streams() const { return service_->open_streams(); }

  // Replaces the subscriber tokens; open streams they no longer allow end.
  void SetSubscriberTokens(
      std::shared_ptr<const auth::SubscriberTokens> tokens) {
    service_->SetSubscriberTokens(std::move(tokens));
  }

 private:
  GrpcServer(hub::EventHub* hub, groups::GroupService* groups,
             absl::Duration tick, int heartbeat_ticks);
  void TimerLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void RefreshHealth() ABSL_LOCKS_EXCLUDED(mu_);

  hub::EventHub* const hub_;
  const absl::Duration tick_;
  const int heartbeat_ticks_;
  // Declared before server_, which refers to it, so that it goes after.
  std::unique_ptr<EventStreamServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;

  // The timer thread sleeps on mu_ until stopping_ or its next tick.
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool serving_wanted_ ABSL_GUARDED_BY(mu_) = true;
  std::thread timer_;
};

}  // namespace convocore::grpc_service

#endif  // SERVICES_GRPC_GRPC_SERVER_H_
