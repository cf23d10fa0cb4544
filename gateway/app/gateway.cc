#include "gateway/app/gateway.h"

#include <grpc/support/log.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gateway/app/process_metrics.h"
#include "gateway/app/store_factory.h"
#include "gateway/app/tokens_file.h"
#include "gateway/core/deduplicator.h"
#include "gateway/core/translator.h"
#include "gateway/http/server.h"
#include "gateway/ingest/hub_sink.h"
#include "gateway/ingest/jetstream_sink.h"
#include "gateway/ingest/pipeline.h"
#include "gateway/log/logger.h"
#include "gateway/metrics/registry.h"
#include "services/groups/group_manager.h"
#include "services/groups/group_state_files.h"
#include "services/grpc/grpc_server.h"
#include "services/hub/event_hub.h"
#include "services/jetstream/jetstream_groups.h"

namespace convocore::app {
namespace {

std::string_view View(absl::string_view s) { return {s.data(), s.size()}; }

// What the HTTP server serves: the ingest pipeline once everything is up,
// 503 before and after.
class Backend final : public http::HttpBackend {
 public:
  Backend(metrics::Registry* registry, ingest::IngestMetrics* metrics)
      : registry_(registry), metrics_(metrics) {}

  // Everything is wired: webhooks go to `pipeline`, readiness follows
  // `hub`'s store.
  void SetReady(ingest::IngestPipeline* pipeline, hub::EventHub* hub) {
    hub_.store(hub);
    pipeline_.store(pipeline);
  }
  void SetStopping() { stopping_.store(true); }
  bool ready() const {
    return pipeline_.load() != nullptr && !stopping_.load() &&
           hub_.load()->Health().ok();
  }

  void HandleWebhook(std::string_view body, absl::Time receive_time,
                     http::WebhookCallback done) override {
    ingest::IngestPipeline* pipeline = pipeline_.load();
    if (pipeline == nullptr) {
      metrics_->Reject(ingest::Rejection::kNotReady);
      std::move(done)(absl::UnavailableError("the gateway is starting"));
      return;
    }
    pipeline->Ingest(
        body, receive_time,
        [done = std::move(done)](
            absl::StatusOr<ingest::IngestResult> result) mutable {
          if (!result.ok()) {
            std::move(done)(result.status());
            return;
          }
          std::move(done)(http::WebhookAck{.sequence = result->sequence,
                                           .id = std::move(result->id),
                                           .duplicate = result->duplicate});
        });
  }

  void OnWebhookRefused(http::Refusal refusal) override {
    switch (refusal) {
      case http::Refusal::kUnsupportedMediaType:
        metrics_->Reject(ingest::Rejection::kUnsupportedMediaType);
        return;
      case http::Refusal::kTooLarge:
        metrics_->Reject(ingest::Rejection::kTooLarge);
        return;
      case http::Refusal::kShuttingDown:
        metrics_->Reject(ingest::Rejection::kShuttingDown);
        return;
    }
  }

  absl::Status Readiness() const override {
    if (stopping_.load()) {
      return absl::UnavailableError("the gateway is shutting down");
    }
    hub::EventHub* hub = hub_.load();
    if (pipeline_.load() == nullptr || hub == nullptr) {
      return absl::UnavailableError("the gateway is starting");
    }
    absl::Status health = hub->Health();
    if (!health.ok()) {
      return absl::UnavailableError(
          absl::StrCat("the event store cannot persist: ", health.message()));
    }
    return absl::OkStatus();
  }

  std::string RenderMetrics() const override { return registry_->Render(); }

 private:
  metrics::Registry* const registry_;
  ingest::IngestMetrics* const metrics_;
  std::atomic<ingest::IngestPipeline*> pipeline_{nullptr};
  std::atomic<hub::EventHub*> hub_{nullptr};
  std::atomic<bool> stopping_{false};
};

// One metric per field of a figures struct, read at scrape time.
template <typename Figures>
struct FieldMetric {
  const char* name;
  const char* help;
  bool counter;
  std::uint64_t Figures::*field;
};

template <typename Figures, typename Read>
void RegisterFields(metrics::Registry& registry,
                    absl::Span<const FieldMetric<Figures>> entries, Read read) {
  for (const FieldMetric<Figures>& entry : entries) {
    auto value = [read, field = entry.field] {
      return static_cast<double>(read().*field);
    };
    if (entry.counter) {
      registry.AddCallbackCounter(entry.name, entry.help, value);
    } else {
      registry.AddCallbackGauge(entry.name, entry.help, value);
    }
  }
}

template <typename Figures, std::size_t N, typename Read>
void RegisterFields(metrics::Registry& registry,
                    const FieldMetric<Figures> (&entries)[N], Read read) {
  RegisterFields(registry, absl::Span<const FieldMetric<Figures>>(entries),
                 read);
}

// Subscription and retention figures, read from the hub at scrape time.
void RegisterHubMetrics(metrics::Registry& registry, hub::EventHub* hub) {
  using Entry = FieldMetric<hub::HubStats>;
  static constexpr Entry kEntries[] = {
      {"gateway_subscribers", "Subscription streams open now.", false,
       &hub::HubStats::subscribers_open},
      {"gateway_subscribers_catching_up",
       "Subscriptions still reading retained events before going live.", false,
       &hub::HubStats::subscribers_catching_up},
      {"gateway_subscribers_cut_off_total",
       "Subscriptions ended with RESOURCE_EXHAUSTED for falling behind.", true,
       &hub::HubStats::subscribers_cut_off_total},
      {"gateway_events_dropped_total",
       "Queued events discarded when a subscriber was cut off or the hub "
       "shut down (the subscriber gets them again by resuming).",
       true, &hub::HubStats::events_dropped_total},
      {"gateway_last_sequence", "Newest acknowledged sequence.", false,
       &hub::HubStats::last_sequence},
      {"gateway_first_retained_sequence",
       "Oldest sequence still retained for replay (0: none).", false,
       &hub::HubStats::first_sequence},
      {"gateway_retained_events", "Events retained for replay.", false,
       &hub::HubStats::retained_events},
      {"gateway_retained_bytes", "Bytes of the events retained for replay.",
       false, &hub::HubStats::retained_bytes},
      {"gateway_events_trimmed_total",
       "Events removed by retention (count, bytes or age).", true,
       &hub::HubStats::trimmed_total},
      {"gateway_events_published_total",
       "Events stored and fanned out since start.", true,
       &hub::HubStats::published_total},
      {"gateway_publish_failures_total",
       "Events the store refused, or refused during shutdown, since start.",
       true, &hub::HubStats::publish_failures_total},
      {"gateway_commit_batches_total",
       "Group commits (one store append, one fsync on disk) since start.", true,
       &hub::HubStats::commit_batches_total},
  };
  RegisterFields(registry, kEntries, [hub] { return hub->Stats(); });
}

// Consumer group figures, read at scrape time.
// The local engine's figures; with JetStream only the first three, this
// replica's (JetStream keeps the rest: GetConsumerGroup).
void RegisterGroupMetrics(metrics::Registry& registry,
                          groups::GroupService* groups, bool local) {
  using Entry = FieldMetric<groups::GroupServiceStats>;
  static constexpr Entry kEntries[] = {
      {"gateway_consumer_groups", "Consumer groups.", false,
       &groups::GroupServiceStats::groups},
      {"gateway_consumer_group_members",
       "Consume streams joined to a group now.", false,
       &groups::GroupServiceStats::members},
      {"gateway_consumer_group_in_flight_events",
       "Events delivered to groups and not yet settled.", false,
       &groups::GroupServiceStats::in_flight_events},
      {"gateway_consumer_group_dead_letters",
       "Events in the groups' dead-letter lists.", false,
       &groups::GroupServiceStats::dead_letters},
      {"gateway_consumer_group_dead_letters_waiting",
       "Events past their last attempt waiting for room in a full "
       "dead-letter list (drop or replay dead letters to make room).",
       false, &groups::GroupServiceStats::dead_letters_waiting},
      {"gateway_consumer_group_saves_total",
       "Saves of a changed group position (each makes its acks durable).", true,
       &groups::GroupServiceStats::saves_total},
      {"gateway_consumer_group_save_failures_total",
       "Saves of a group position that failed (its acks wait for the next).",
       true, &groups::GroupServiceStats::save_failures_total},
  };
  RegisterFields(registry,
                 local ? absl::Span<const Entry>(kEntries)
                       : absl::Span<const Entry>(kEntries, 3),
                 [groups] { return groups->Stats(); });
}

// The JetStream store's figures, read at scrape time.
void RegisterJetStreamMetrics(metrics::Registry& registry,
                              jetstream::JetStreamEventStore* js) {
  using Entry = FieldMetric<jetstream::JetStreamCounters>;
  static constexpr Entry kEntries[] = {
      {"gateway_jetstream_publishes_total",
       "PubAcks received (stored events, duplicates included).", true,
       &jetstream::JetStreamCounters::publishes_total},
      {"gateway_jetstream_duplicates_total",
       "PubAcks that said JetStream already held the event (stored through "
       "another replica).",
       true, &jetstream::JetStreamCounters::duplicates_total},
      {"gateway_jetstream_publish_failures_total",
       "Publishes refused by JetStream or without a PubAck in time (503).",
       true, &jetstream::JetStreamCounters::publish_failures_total},
      {"gateway_jetstream_publish_retries_total",
       "Publishes sent again because no stream leader took them yet (one was "
       "being elected), within --nats_publish_timeout.",
       true, &jetstream::JetStreamCounters::publish_retries_total},
      {"gateway_jetstream_pending_publishes",
       "Publishes waiting for their PubAck now.", false,
       &jetstream::JetStreamCounters::pending_publishes},
      {"gateway_jetstream_disconnects_total",
       "Connections to a NATS server lost.", true,
       &jetstream::JetStreamCounters::disconnects_total},
      {"gateway_jetstream_reconnects_total",
       "Connections to a NATS server made again after a loss.", true,
       &jetstream::JetStreamCounters::reconnects_total},
      {"gateway_jetstream_consumer_restarts_total",
       "Times the stream's reader was made again after it stalled.", true,
       &jetstream::JetStreamCounters::consumer_restarts_total},
      {"gateway_jetstream_foreign_messages_total",
       "Stream messages that are not events (something else publishes into "
       "the stream); streamed as they are.",
       true, &jetstream::JetStreamCounters::foreign_messages_total},
      {"gateway_jetstream_stream_last_sequence",
       "The stream's newest sequence, as of the last probe.", false,
       &jetstream::JetStreamCounters::stream_last_sequence},
  };
  RegisterFields(registry, kEntries, [js] { return js->Counters(); });
  registry.AddCallbackGauge(
      "gateway_jetstream_consumer_lag",
      "Events in the stream this replica has not read yet (the stream's last "
      "sequence at the last probe minus the newest read).",
      [js] {
        const jetstream::JetStreamCounters c = js->Counters();
        return c.stream_last_sequence > c.read_sequence
                   ? static_cast<double>(c.stream_last_sequence -
                                         c.read_sequence)
                   : 0.0;
      });
}

// Fails if another socket listens on address:port, saying why (errno). The
// gRPC server refuses a taken port too (GRPC_ARG_ALLOW_REUSEPORT=0), but its
// failure does not say why, and "Address already in use" is what an operator
// needs to read when a second gateway is started by mistake.
absl::Status CheckPortFree(const std::string& address, std::uint16_t port) {
  if (port == 0) return absl::OkStatus();
  const std::string where = absl::StrCat(address, ":", port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc =
          getaddrinfo(address.c_str(), service.c_str(), &hints, &found);
      rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot listen for gRPC on ", where, ": ", gai_strerror(rc)));
  }
  absl::Status status;
  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  if (fd < 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      ::bind(fd, found->ai_addr, found->ai_addrlen) != 0) {
    status = absl::UnavailableError(absl::StrCat(
        "cannot listen for gRPC on ", where, ": ", std::strerror(errno)));
  }
  if (fd >= 0) ::close(fd);
  freeaddrinfo(found);
  return status;
}

// `status` of a server that could not listen, with what to do about it.
absl::Status WithPortHint(const absl::Status& status, std::string_view flag) {
  const absl::string_view name(flag.data(), flag.size());
  return absl::Status(
      status.code(),
      absl::StrCat(status.message(),
                   " (is another instance running? choose a port with --", name,
                   " or GATEWAY_", absl::AsciiStrToUpper(name), ")"));
}

// gRPC's own log lines go through our logger (plain or JSON), at debug
// level: what matters reaches us as statuses, which we report ourselves.
void GrpcLog(gpr_log_func_args* args) {
  if (!log::Enabled(log::Level::kDebug)) return;
  log::Debug("grpc", {{"message", args->message},
                      {"severity", gpr_log_severity_string(args->severity)},
                      {"file", args->file},
                      {"line", args->line}});
}

std::string_view SignalName(int signal) {
  switch (signal) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    default:
      return "signal";
  }
}

}  // namespace

namespace {

std::optional<grpc_service::GrpcTlsFiles> TlsFilesOf(
    const GatewayOptions& options) {
  if (options.grpc_tls_cert.empty()) return std::nullopt;
  return grpc_service::GrpcTlsFiles{
      .cert = options.grpc_tls_cert,
      .key = options.grpc_tls_key,
      .client_ca = options.grpc_tls_client_ca,
      .refresh = options.grpc_tls_refresh_interval};
}

// Reads the tokens file again when `forced` (SIGHUP) or when it changed
// since the last read; swaps the new tokens in, which ends the open streams
// they no longer allow. A file that cannot be used keeps the tokens in force.
absl::Status ReloadTokensIfChanged(Gateway::Parts& p, bool forced);
// The same for --workspace_secret_file: the translator swaps the secrets
// atomically, so no webhook in flight meets neither set.
absl::Status ReloadSecretsIfChanged(Gateway::Parts& p, bool forced);

}  // namespace

struct Gateway::Parts {
  GatewayOptions options;
  // Destroyed in reverse order: the servers first, the registry last.
  metrics::Registry registry;
  std::unique_ptr<ingest::IngestMetrics> ingest_metrics;
  std::unique_ptr<gateway::Translator> translator;
  std::unique_ptr<gateway::Deduplicator> deduplicator;
  std::unique_ptr<hub::EventHub> hub;
  // Goes before the hub: with JetStream it uses the store the hub owns.
  std::unique_ptr<groups::GroupService> groups;
  std::unique_ptr<ingest::EventSink> sink;
  std::unique_ptr<ingest::IngestPipeline> pipeline;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<grpc_service::GrpcServer> grpc;
  std::unique_ptr<http::HttpServer> http;

  absl::Mutex mu;
  bool shut_down ABSL_GUARDED_BY(mu) = false;
  absl::Status shutdown_status ABSL_GUARDED_BY(mu);

  // --subscriber_tokens_file: one reload at a time, from SIGHUP or the
  // watcher, which polls the file every second until stopped.
  absl::Mutex reload_mu;
  FileVersion tokens_version ABSL_GUARDED_BY(reload_mu);
  std::atomic<std::size_t> tokens_in_force{0};
  metrics::CounterFamily* tokens_reloads = nullptr;
  FileVersion secrets_version ABSL_GUARDED_BY(reload_mu);
  std::atomic<std::size_t> secrets_in_force{0};
  metrics::CounterFamily* secrets_reloads = nullptr;
  absl::Mutex watch_mu;
  bool watch_stop ABSL_GUARDED_BY(watch_mu) = false;
  std::thread watcher;

  void StopWatcher() {
    {
      absl::MutexLock lock(&watch_mu);
      watch_stop = true;
    }
    if (watcher.joinable()) watcher.join();
  }
  ~Parts() { StopWatcher(); }
};

Gateway::Gateway(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

Gateway::~Gateway() {
  if (parts_ == nullptr) return;
  const absl::Status status = Shutdown(parts_->options.shutdown_timeout);
  if (!status.ok()) {
    // Threads may still be blocked in the parts; leave them to the process's
    // exit rather than wait in their destructors.
    parts_.release();
  }
}

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Start(
    const GatewayOptions& options) {
  gpr_set_log_function(&GrpcLog);
  auto parts = std::make_unique<Parts>();
  parts->options = options;
  Parts& p = *parts;
  p.ingest_metrics = std::make_unique<ingest::IngestMetrics>(p.registry);
  p.backend = std::make_unique<Backend>(&p.registry, p.ingest_metrics.get());
  Backend* backend = p.backend.get();
  RegisterProcessMetrics(p.registry);
  p.registry.AddCallbackGauge(
      "gateway_ready",
      "1 while ready to accept and persist webhooks (as /readyz), else 0.",
      [backend] { return backend->ready() ? 1.0 : 0.0; });

  absl::StatusOr<std::unique_ptr<http::HttpServer>> http =
      http::HttpServer::Start({.address = options.http_address,
                               .port = options.http_port,
                               .threads = options.http_threads,
                               .max_body_bytes = options.max_body_bytes,
                               .request_timeout = options.http_request_timeout,
                               .idle_timeout = options.http_idle_timeout,
                               .max_connections = options.http_max_connections,
                               .max_requests_per_second_per_connection =
                                   options.http_max_requests_per_connection},
                              p.backend.get(), &p.registry);
  if (!http.ok()) return WithPortHint(http.status(), "http_port");
  p.http = std::move(*http);

  gateway::TranslatorOptions translator_options;
  translator_options.secrets = options.secrets;
  translator_options.limits.max_body_bytes = options.max_body_bytes;
  absl::StatusOr<std::unique_ptr<gateway::Translator>> translator =
      gateway::Translator::Create(std::move(translator_options));
  if (!translator.ok()) {
    return absl::Status(
        translator.status().code(),
        absl::StrCat("the workspace secrets or limits are unusable: ",
                     translator.status().message()));
  }
  p.translator = std::move(*translator);
  if (!options.workspace_secret_file.empty()) {
    {
      absl::MutexLock lock(&p.reload_mu);
      p.secrets_version = FileVersion::Of(options.workspace_secret_file);
    }
    p.secrets_in_force = options.secrets.size();
    p.registry.AddCallbackGauge(
        "gateway_workspace_secrets",
        "Workspace secrets in force (from --workspace_secret_file).",
        [&p] { return static_cast<double>(p.secrets_in_force.load()); });
    p.secrets_reloads = &p.registry.AddCounter(
        "gateway_workspace_secret_reloads_total",
        "Reloads of --workspace_secret_file, by outcome: \"failed\" kept the "
        "secrets in force (the log says why).",
        {"outcome"});
  }
  p.deduplicator = std::make_unique<gateway::Deduplicator>(
      gateway::DeduplicatorOptions{.max_entries = options.dedup_window_events,
                                   .max_age = options.dedup_window_age});
  p.registry.AddCallbackGauge("gateway_dedup_window_ids",
                              "Webhook ids remembered for de-duplication.",
                              [dedup = p.deduplicator.get()] {
                                return static_cast<double>(dedup->size());
                              });

  GatewayOptions store_options = options;
  if (options.store == StoreKind::kJetStream) {
    metrics::Histogram& publish_seconds =
        p.registry
            .AddHistogram(
                "gateway_jetstream_publish_seconds",
                "From publishing an event to JetStream to its PubAck (stored "
                "on a quorum of the stream's replicas): the floor of every "
                "acknowledgement's latency with --store=jetstream.",
                {0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003,
                 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5})
            .Get();
    store_options.jetstream.on_publish_ack =
        [&publish_seconds](absl::Duration took) {
          publish_seconds.Observe(absl::ToDoubleSeconds(took));
        };
  }
  absl::StatusOr<OpenedStore> store =
      OpenEventStore(store_options, p.deduplicator.get(), absl::Now());
  if (!store.ok()) return store.status();
  jetstream::JetStreamEventStore* const js = store->jetstream;
  if (js != nullptr) RegisterJetStreamMetrics(p.registry, js);
  metrics::Histogram& append_seconds =
      p.registry
          .AddHistogram(
              "gateway_store_append_seconds",
              "How long the store took to write one group commit (and, with "
              "--store=disk --durability=fsync, to fsync it): the floor of "
              "every acknowledgement's latency.",
              // Fine below 2 ms, where a healthy disk's fsync lies.
              {0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.00075,
               0.001,   0.0015, 0.002,   0.003,  0.005,  0.01,   0.025,
               0.05,    0.1,    0.25,    0.5,    1,      2.5,    5})
          .Get();
  metrics::Histogram& append_events =
      p.registry
          .AddHistogram("gateway_store_append_events",
                        "Events per group commit: how many acknowledgements "
                        "share one store write.",
                        {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024})
          .Get();
  absl::StatusOr<std::unique_ptr<hub::EventHub>> hub = hub::EventHub::Create(
      std::move(store->store),
      hub::HubOptions{.subscriber_queue_limit = options.subscriber_queue_limit,
                      .on_append =
                          [&append_seconds, &append_events](
                              absl::Duration took, std::size_t events) {
                            append_seconds.Observe(absl::ToDoubleSeconds(took));
                            append_events.Observe(static_cast<double>(events));
                          },
                      .external_sequences = js != nullptr});
  if (!hub.ok()) {
    return absl::Status(
        hub.status().code(),
        absl::StrCat("cannot start the event hub: ", hub.status().message()));
  }
  p.hub = std::move(*hub);
  RegisterHubMetrics(p.registry, p.hub.get());
  if (js != nullptr) {
    // Every replica reads the whole stream into its own hub: its
    // subscribers get every replica's events, in the stream's order.
    if (absl::Status reading = js->StartReading(p.hub.get()); !reading.ok()) {
      return reading;
    }
    p.sink = std::make_unique<ingest::JetStreamSink>(
        js, options.jetstream.stream.subject_prefix);
    absl::StatusOr<std::unique_ptr<jetstream::JetStreamGroups>> groups =
        jetstream::JetStreamGroups::Open(js);
    if (!groups.ok()) {
      return absl::Status(groups.status().code(),
                          absl::StrCat("cannot serve consumer groups: ",
                                       groups.status().message()));
    }
    p.groups = *std::move(groups);
    RegisterGroupMetrics(p.registry, p.groups.get(), false);
  } else {
    p.sink = std::make_unique<ingest::HubSink>(p.hub.get());
    absl::StatusOr<std::unique_ptr<groups::GroupStateStore>> group_states =
        options.store == StoreKind::kDisk
            ? groups::OpenGroupStateDirectory(options.data_dir + "/groups")
            : absl::StatusOr<std::unique_ptr<groups::GroupStateStore>>(
                  groups::NewMemoryGroupStateStore());
    if (!group_states.ok()) return group_states.status();
    absl::StatusOr<std::unique_ptr<groups::GroupManager>> manager =
        groups::GroupManager::Create(p.hub.get(), *std::move(group_states));
    if (!manager.ok()) {
      return absl::Status(manager.status().code(),
                          absl::StrCat("cannot resume the consumer groups: ",
                                       manager.status().message()));
    }
    p.groups = *std::move(manager);
    RegisterGroupMetrics(p.registry, p.groups.get(), true);
  }
  p.pipeline = std::make_unique<ingest::IngestPipeline>(
      p.translator.get(), p.deduplicator.get(), p.sink.get(),
      p.ingest_metrics.get());

  std::shared_ptr<const auth::SubscriberTokens> tokens;
  if (!options.subscriber_tokens_file.empty()) {
    {
      absl::MutexLock lock(&p.reload_mu);
      p.tokens_version = FileVersion::Of(options.subscriber_tokens_file);
    }
    absl::StatusOr<std::shared_ptr<const auth::SubscriberTokens>> read =
        ReadSubscriberTokensFile(options.subscriber_tokens_file);
    if (!read.ok()) return read.status();
    tokens = *std::move(read);
    p.tokens_in_force = tokens->grants().size();
    p.registry.AddCallbackGauge(
        "gateway_subscriber_tokens",
        "Subscriber tokens in force (from --subscriber_tokens_file).",
        [&p] { return static_cast<double>(p.tokens_in_force.load()); });
    p.tokens_reloads = &p.registry.AddCounter(
        "gateway_subscriber_tokens_reloads_total",
        "Reloads of --subscriber_tokens_file, by outcome: \"failed\" kept "
        "the tokens in force (the log says why).",
        {"outcome"});
  }
  const absl::Status grpc_port_free =
      CheckPortFree(options.grpc_address, options.grpc_port);
  absl::StatusOr<std::unique_ptr<grpc_service::GrpcServer>> grpc =
      grpc_port_free.ok()
          ? grpc_service::GrpcServer::Start(
                {.address = options.grpc_address,
                 .port = options.grpc_port,
                 .heartbeat_interval = options.heartbeat_interval,
                 .keepalive_time = options.grpc_keepalive_time,
                 .subscriber_tokens = tokens,
                 .tls = TlsFilesOf(options),
                 .reflection = options.grpc_reflection},
                p.hub.get(), p.groups.get())
          : absl::StatusOr<std::unique_ptr<grpc_service::GrpcServer>>(
                grpc_port_free);
  if (!grpc.ok()) {
    // A TLS file that cannot be used is named by the error; no port hint.
    return absl::IsFailedPrecondition(grpc.status()) ||
                   absl::IsInvalidArgument(grpc.status())
               ? grpc.status()
               : WithPortHint(grpc.status(), "grpc_port");
  }
  p.grpc = std::move(*grpc);

  if (tokens != nullptr || !options.workspace_secret_file.empty()) {
    p.watcher = std::thread([&p] {
      pthread_setname_np(pthread_self(), "tokens-watch");
      absl::MutexLock lock(&p.watch_mu);
      while (!p.watch_stop) {
        p.watch_mu.AwaitWithTimeout(absl::Condition(&p.watch_stop),
                                    absl::Seconds(1));
        if (p.watch_stop) break;
        p.watch_mu.Unlock();
        // Logs its outcome; a file that cannot be used keeps the old tokens.
        if (!p.options.subscriber_tokens_file.empty()) {
          ReloadTokensIfChanged(p, /*forced=*/false).IgnoreError();
        }
        if (!p.options.workspace_secret_file.empty()) {
          ReloadSecretsIfChanged(p, /*forced=*/false).IgnoreError();
        }
        p.watch_mu.Lock();
      }
    });
  }
  p.backend->SetReady(p.pipeline.get(), p.hub.get());
  log::Info(
      "gateway ready",
      {{"http_port", p.http->port()},
       {"grpc_port", p.grpc->port()},
       {"http_threads", options.http_threads},
       {"store", StoreKindName(options.store)},
       {"last_sequence", p.hub->last_sequence()},
       {"secrets", options.secrets.size()},
       {"subscriber_tokens", tokens != nullptr ? tokens->grants().size() : 0},
       {"grpc_tls", options.grpc_tls_cert.empty()        ? "off"
                    : options.grpc_tls_client_ca.empty() ? "tls"
                                                         : "mtls"}});
  if (options.grpc_open) {
    log::Warning(
        "the event stream is open to anyone who reaches its port "
        "(--grpc_allow_unauthenticated)",
        {{"grpc_address", options.grpc_address}});
  } else if (tokens != nullptr && options.grpc_tls_cert.empty() &&
             !IsLoopbackAddress(options.grpc_address)) {
    log::Warning(
        "subscriber tokens travel in plaintext: set --grpc_tls_cert and "
        "--grpc_tls_key",
        {{"grpc_address", options.grpc_address}});
  }
  return std::unique_ptr<Gateway>(new Gateway(std::move(parts)));
}

namespace {

absl::Status ReloadTokensIfChanged(Gateway::Parts& p, bool forced) {
  const std::string& path = p.options.subscriber_tokens_file;
  absl::MutexLock lock(&p.reload_mu);
  const FileVersion version = FileVersion::Of(path);
  if (!forced && version == p.tokens_version) return absl::OkStatus();
  p.tokens_version = version;
  absl::StatusOr<std::shared_ptr<const auth::SubscriberTokens>> tokens =
      ReadSubscriberTokensFile(path);
  if (!tokens.ok()) {
    p.tokens_reloads->WithLabels({"failed"}).Increment();
    log::Warning(
        "the subscriber tokens file cannot be used; the tokens in "
        "force stay",
        {{"status", tokens.status()}});
    return tokens.status();
  }
  const std::size_t count = (*tokens)->grants().size();
  p.grpc->SetSubscriberTokens(*std::move(tokens));
  p.tokens_in_force = count;
  p.tokens_reloads->WithLabels({"ok"}).Increment();
  log::Info("subscriber tokens reloaded",
            {{"file", path},
             {"tokens", count},
             {"on", forced ? "SIGHUP" : "change"}});
  return absl::OkStatus();
}

absl::Status ReloadSecretsIfChanged(Gateway::Parts& p, bool forced) {
  const std::string& path = p.options.workspace_secret_file;
  absl::MutexLock lock(&p.reload_mu);
  const FileVersion version = FileVersion::Of(path);
  if (!forced && version == p.secrets_version) return absl::OkStatus();
  p.secrets_version = version;
  absl::StatusOr<std::vector<std::string>> secrets = ReadSecretFile(path);
  absl::Status status = secrets.status();
  if (secrets.ok()) status = p.translator->SetSecrets(*secrets);
  if (!status.ok()) {
    p.secrets_reloads->WithLabels({"failed"}).Increment();
    log::Warning(
        "the workspace secret file cannot be used; the secrets in force stay",
        {{"status", status}});
    return status;
  }
  p.secrets_in_force = secrets->size();
  p.secrets_reloads->WithLabels({"ok"}).Increment();
  log::Info("workspace secrets reloaded",
            {{"file", path},
             {"secrets", secrets->size()},
             {"on", forced ? "SIGHUP" : "change"}});
  return absl::OkStatus();
}

}  // namespace

absl::Status Gateway::ReloadWorkspaceSecrets() {
  if (parts_->options.workspace_secret_file.empty()) {
    return absl::FailedPreconditionError(
        "no --workspace_secret_file to reload");
  }
  return ReloadSecretsIfChanged(*parts_, /*forced=*/true);
}

absl::Status Gateway::ReloadSubscriberTokens() {
  if (parts_->options.subscriber_tokens_file.empty()) {
    return absl::FailedPreconditionError(
        "no --subscriber_tokens_file to reload");
  }
  return ReloadTokensIfChanged(*parts_, /*forced=*/true);
}

std::uint16_t Gateway::http_port() const { return parts_->http->port(); }

std::uint16_t Gateway::grpc_port() const {
  return static_cast<std::uint16_t>(parts_->grpc->port());
}

absl::Status Gateway::Shutdown(absl::Duration timeout) {
  Parts& p = *parts_;
  absl::MutexLock lock(&p.mu);
  if (p.shut_down) return p.shutdown_status;
  p.shut_down = true;
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + timeout;
  log::Info("shutting down", {{"timeout", timeout},
                              {"requests_in_flight", p.http->in_flight()},
                              {"streams_open", p.grpc->open_streams()}});
  p.StopWatcher();
  p.backend->SetStopping();
  p.grpc->SetServing(false);
  p.http->BeginDrain();
  if (!p.http->WaitForIdle(deadline)) {
    p.shutdown_status = absl::DeadlineExceededError(absl::StrCat(
        p.http->in_flight(), " HTTP requests still in flight after ",
        absl::FormatDuration(timeout)));
    return p.shutdown_status;
  }
  p.http->Shutdown();
  log::Debug("http stopped", {{"after", absl::Now() - start}});
  // No webhook can be accepted any more: end the streams (each with
  // UNAVAILABLE and where to resume), then the hub and its store.
  p.grpc->Shutdown(std::max(deadline - absl::Now(), absl::ZeroDuration()));
  log::Debug("grpc stopped", {{"after", absl::Now() - start}});
  // Every acknowledged group position is saved before the hub goes.
  if (p.groups != nullptr) p.groups->Shutdown();
  const hub::HubStats stats = p.hub->Stats();
  p.hub->Shutdown();
  log::Info("stopped", {{"took", absl::Now() - start},
                        {"last_sequence", stats.last_sequence},
                        {"published", stats.published_total}});
  p.shutdown_status = absl::OkStatus();
  return p.shutdown_status;
}

int RunGateway(const GatewayOptions& options) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigset_t with_hangup = signals;
  sigaddset(&with_hangup, SIGHUP);
  // Every thread started from here on inherits the mask; only sigwait()
  // below receives these signals.
  pthread_sigmask(SIG_BLOCK, &with_hangup, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<Gateway>> gateway = Gateway::Start(options);
  if (!gateway.ok()) {
    log::Error(View(gateway.status().message()));
    return 1;
  }
  int received = 0;
  while (true) {
    if (sigwait(&with_hangup, &received) != 0) continue;
    if (received != SIGHUP) break;
    if (options.subscriber_tokens_file.empty() &&
        options.workspace_secret_file.empty()) {
      log::Info(
          "SIGHUP received and ignored: there is no --subscriber_tokens_file "
          "or --workspace_secret_file to reload; SIGTERM or SIGINT stops the "
          "gateway");
      continue;
    }
    // Each logs its outcome; a file that cannot be used keeps what is in
    // force.
    if (!options.subscriber_tokens_file.empty()) {
      (*gateway)->ReloadSubscriberTokens().IgnoreError();
    }
    if (!options.workspace_secret_file.empty()) {
      (*gateway)->ReloadWorkspaceSecrets().IgnoreError();
    }
  }
  log::Info("signal received",
            {{"signal", SignalName(received)},
             {"shutdown_timeout", options.shutdown_timeout}});
  // A second signal, or a shutdown that overruns its deadline by a second,
  // ends the process at once.
  std::thread([signals, deadline = absl::Now() + options.shutdown_timeout +
                                   absl::Seconds(1)] {
    int again = -1;
    do {
      // Interrupted waits (EINTR: a debugger, a sanitizer stopping the
      // world at exit) wait again for what is left.
      const timespec left = absl::ToTimespec(
          std::max(deadline - absl::Now(), absl::ZeroDuration()));
      again = sigtimedwait(&signals, nullptr, &left);
    } while (again < 0 && errno == EINTR);
    log::Error(again > 0 ? "second signal: exiting now"
                         : "shutdown overran its deadline: exiting now");
    std::_Exit(1);
  }).detach();
  const absl::Status status = (*gateway)->Shutdown(options.shutdown_timeout);
  if (!status.ok()) {
    log::Error("shutdown incomplete", {{"status", status}});
    std::_Exit(1);
  }
  gateway->reset();
  return 0;
}

}  // namespace convocore::app
