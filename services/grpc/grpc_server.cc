#include "services/grpc/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace convocore::grpc_service {
namespace {

int Milliseconds(absl::Duration d) {
  return static_cast<int>(std::clamp<std::int64_t>(
      absl::ToInt64Milliseconds(d), 1, std::numeric_limits<int>::max()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    const GrpcServerOptions& options, hub::EventHub* hub) {
  if (hub == nullptr) return absl::InvalidArgumentError("no event hub");
  if (options.heartbeat_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "the heartbeat interval must be positive");
  }
  // Ticks are at most a second apart so that health follows the store
  // promptly; a heartbeat is due after enough idle ticks.
  const absl::Duration tick =
      std::max(absl::Milliseconds(1),
               std::min(options.heartbeat_interval / 2, absl::Seconds(1)));
  const int heartbeat_ticks = static_cast<int>(
      std::ceil(absl::FDivDuration(options.heartbeat_interval, tick)));
  std::unique_ptr<GrpcServer> server(
      new GrpcServer(hub, tick, std::max(1, heartbeat_ticks)));

  // Process-wide switches, read when a server is built.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  const std::string address =
      absl::StrCat(options.address.find(':') != std::string::npos
                       ? absl::StrCat("[", options.address, "]")
                       : options.address,
                   ":", options.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(),
                           &server->port_);
  // gRPC binds with SO_REUSEPORT by default, so a second gateway on the same
  // port would start and silently share the subscribers; refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             Milliseconds(options.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             Milliseconds(options.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      Milliseconds(options.min_client_ping_interval));
  server->service_->SetSubscriberTokens(options.subscriber_tokens);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve gRPC on ", address));
  }
  server->RefreshHealth();
  server->timer_ = std::thread([s = server.get()] { s->TimerLoop(); });
  return server;
}

GrpcServer::GrpcServer(hub::EventHub* hub, absl::Duration tick,
                       int heartbeat_ticks)
    : hub_(hub),
      tick_(tick),
      heartbeat_ticks_(heartbeat_ticks),
      service_(std::make_unique<EventStreamServiceImpl>(hub)) {}

GrpcServer::~GrpcServer() { Shutdown(absl::Seconds(5)); }

void GrpcServer::SetServing(bool serving) {
  {
    absl::MutexLock lock(&mu_);
    serving_wanted_ = serving;
  }
  RefreshHealth();
}

void GrpcServer::RefreshHealth() {
  bool serving;
  {
    absl::MutexLock lock(&mu_);
    serving = serving_wanted_ && !stopping_;
  }
  serving = serving && hub_->Health().ok();
  grpc::HealthCheckServiceInterface* health =
      server_ != nullptr ? server_->GetHealthCheckService() : nullptr;
  if (health == nullptr) return;
  health->SetServingStatus("", serving);
  health->SetServingStatus(kEventStreamServiceName, serving);
}

void GrpcServer::TimerLoop() {
  pthread_setname_np(pthread_self(), "grpc-timer");
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    // Returns at the tick, or at once when Shutdown() sets stopping_.
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), tick_);
    if (stopping_) break;
    mu_.Unlock();
    service_->Tick(heartbeat_ticks_);
    RefreshHealth();
    mu_.Lock();
  }
}

void GrpcServer::Shutdown(absl::Duration deadline) {
  {
    // Releasing mu_ wakes the timer thread, which sees stopping_.
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (timer_.joinable()) timer_.join();
  if (server_ == nullptr) return;
  RefreshHealth();  // NOT_SERVING
  service_->StartShutdown();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + deadline));
  service_->WaitForReactors();
  server_->Wait();
}

}  // namespace convocore::grpc_service
