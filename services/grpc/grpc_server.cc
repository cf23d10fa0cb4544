#include "services/grpc/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace convocore::grpc_service {
namespace {

int Milliseconds(absl::Duration d) {
  return static_cast<int>(std::clamp<std::int64_t>(
      absl::ToInt64Milliseconds(d), 1, std::numeric_limits<int>::max()));
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* x509) const { X509_free(x509); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

std::unique_ptr<BIO, BioDeleter> OpenPem(const std::string& path) {
  return std::unique_ptr<BIO, BioDeleter>(BIO_new_file(path.c_str(), "r"));
}

// gRPC's file watcher only logs what it cannot load, and serves nothing
// meanwhile: check the files once, at start, for an error that names them.
absl::Status CheckTlsFiles(const GrpcTlsFiles& tls) {
  if (tls.cert.empty() || tls.key.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both a certificate and a key file");
  }
  auto cert_bio = OpenPem(tls.cert);
  if (cert_bio == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read the TLS certificate ", tls.cert));
  }
  std::unique_ptr<X509, X509Deleter> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the TLS certificate ", tls.cert, " holds no PEM certificate"));
  }
  auto key_bio = OpenPem(tls.key);
  if (key_bio == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read the TLS key ", tls.key));
  }
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the TLS key ", tls.key, " holds no unencrypted PEM private key"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("the TLS key ", tls.key, " is not the key of ", tls.cert));
  }
  if (!tls.client_ca.empty()) {
    auto ca_bio = OpenPem(tls.client_ca);
    std::unique_ptr<X509, X509Deleter> ca(
        ca_bio == nullptr
            ? nullptr
            : PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr));
    if (ca == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot read a PEM certificate from the client CA ", tls.client_ca));
    }
  }
  if (tls.refresh < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        "the TLS files' refresh interval must be at least 1s");
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> TlsCredentials(
    const GrpcTlsFiles& tls) {
  const unsigned int refresh_seconds =
      static_cast<unsigned int>(absl::ToInt64Seconds(tls.refresh));
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          tls.key, tls.cert, tls.client_ca, refresh_seconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (tls.client_ca.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

// Takes the reflection plugin, which InitProtoReflectionServerBuilderPlugin()
// adds to every builder of the process, out of one builder.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>*
                         plugins) override {
    std::erase_if(*plugins, [](const auto& plugin) {
      return plugin->name() == "proto_server_reflection";
    });
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    const GrpcServerOptions& options, hub::EventHub* hub,
    groups::GroupService* groups) {
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
  if (options.tls.has_value()) {
    if (absl::Status checked = CheckTlsFiles(*options.tls); !checked.ok()) {
      return checked;
    }
  }
  std::unique_ptr<GrpcServer> server(
      new GrpcServer(hub, groups, tick, std::max(1, heartbeat_ticks)));

  // Process-wide switches, read when a server is built.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  const std::string address =
      absl::StrCat(options.address.find(':') != std::string::npos
                       ? absl::StrCat("[", options.address, "]")
                       : options.address,
                   ":", options.port);
  builder.AddListeningPort(address,
                           options.tls.has_value()
                               ? TlsCredentials(*options.tls)
                               : grpc::InsecureServerCredentials(),
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
  if (!options.reflection) {
    builder.SetOption(std::make_unique<WithoutReflection>());
  }
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

GrpcServer::GrpcServer(hub::EventHub* hub, groups::GroupService* groups,
                       absl::Duration tick, int heartbeat_ticks)
    : hub_(hub),
      tick_(tick),
      heartbeat_ticks_(heartbeat_ticks),
      service_(std::make_unique<EventStreamServiceImpl>(hub, groups)) {}

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
