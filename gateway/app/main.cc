// webhook-gateway: receives Convocore webhooks over HTTP and streams them as
// typed events over gRPC. Flags, each also settable through its environment
// variable GATEWAY_<FLAG NAME IN UPPER CASE> (the command line wins); the
// workspace secrets come from CONVOCORE_WORKSPACE_SECRET or
// --workspace_secret_file, never from a flag's value.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/app/env_flags.h"
#include "gateway/app/gateway.h"
#include "gateway/app/options.h"
#include "gateway/log/logger.h"

extern char** environ;

namespace {
const convocore::app::FlagValues kDefaults;
}  // namespace

ABSL_FLAG(std::string, http_address, kDefaults.http_address,
          "Address the HTTP server binds (webhooks, /healthz, /readyz, "
          "/metrics).");
ABSL_FLAG(int, http_port, kDefaults.http_port,
          "HTTP port; 0 picks a free one (logged).");
ABSL_FLAG(int, http_threads, kDefaults.http_threads,
          "HTTP threads: they parse, verify and answer webhooks; a webhook "
          "waiting for its commit holds none.");
ABSL_FLAG(int64_t, max_body_bytes, kDefaults.max_body_bytes,
          "Largest webhook body accepted; larger ones get 413.");
ABSL_FLAG(absl::Duration, http_request_timeout, kDefaults.http_request_timeout,
          "A request whose headers or body take longer gets 408.");
ABSL_FLAG(absl::Duration, http_idle_timeout, kDefaults.http_idle_timeout,
          "An idle keep-alive connection is closed after this long.");
ABSL_FLAG(int, http_max_connections, kDefaults.http_max_connections,
          "HTTP connections served at once; one more is answered 503 and "
          "closed.");
ABSL_FLAG(int, http_max_requests_per_connection,
          kDefaults.http_max_requests_per_connection,
          "Requests per second one HTTP connection may send (bursts of as "
          "many); more get 429. 0: no limit.");
ABSL_FLAG(std::string, grpc_address, kDefaults.grpc_address,
          "Address the gRPC server binds (EventStreamService, health, "
          "reflection).");
ABSL_FLAG(int, grpc_port, kDefaults.grpc_port,
          "gRPC port; 0 picks a free one (logged).");
ABSL_FLAG(absl::Duration, heartbeat_interval, kDefaults.heartbeat_interval,
          "An idle subscription stream gets a Heartbeat this often.");
ABSL_FLAG(absl::Duration, grpc_keepalive_time, kDefaults.grpc_keepalive_time,
          "The gRPC server pings idle connections this often.");
ABSL_FLAG(std::string, store, kDefaults.store,
          "Where accepted events are kept: disk (durable log in --data_dir), "
          "memory (lost on restart) or jetstream (a NATS JetStream stream "
          "shared by several gateway replicas: --nats_*).");
ABSL_FLAG(std::string, data_dir, kDefaults.data_dir,
          "Directory of the durable event log (--store=disk).");
ABSL_FLAG(std::string, durability, kDefaults.durability,
          "When a 200 is sent with --store=disk: fsync (written and "
          "fsynced, the default) or os_cache (written, not fsynced: survives "
          "a process crash, not a power loss).");
ABSL_FLAG(int64_t, retention_events, kDefaults.retention_events,
          "Events retained for replay (0: no count bound).");
ABSL_FLAG(int64_t, retention_bytes, kDefaults.retention_bytes,
          "Bytes of events retained for replay (0: no byte bound).");
ABSL_FLAG(absl::Duration, retention_age, kDefaults.retention_age,
          "Age beyond which events are trimmed (0: no age bound).");
ABSL_FLAG(std::string, nats_url, kDefaults.nats_url,
          "--store=jetstream: the NATS servers, comma-separated "
          "(nats://host:4222, or tls://host:4222).");
ABSL_FLAG(std::string, nats_stream, kDefaults.nats_stream,
          "--store=jetstream: the JetStream stream of the events, created "
          "when missing and checked when present.");
ABSL_FLAG(std::string, nats_subject_prefix, kDefaults.nats_subject_prefix,
          "--store=jetstream: events are published to <prefix>.<type>.");
ABSL_FLAG(int64_t, nats_replicas, kDefaults.nats_replicas,
          "--store=jetstream: the stream's replica count (3 for high "
          "availability; 1 for a single NATS server).");
ABSL_FLAG(absl::Duration, nats_publish_timeout, kDefaults.nats_publish_timeout,
          "--store=jetstream: a webhook with no PubAck within this gets 503.");
ABSL_FLAG(absl::Duration, nats_start_timeout, kDefaults.nats_start_timeout,
          "--store=jetstream: how long start-up waits for the stream.");
ABSL_FLAG(std::string, nats_creds_file, kDefaults.nats_creds_file,
          "--store=jetstream: NATS user credentials (.creds) file.");
ABSL_FLAG(std::string, nats_nkey_file, kDefaults.nats_nkey_file,
          "--store=jetstream: NATS user NKey seed file (with --nats_nkey).");
ABSL_FLAG(std::string, nats_nkey, kDefaults.nats_nkey,
          "--store=jetstream: the public key (U...) of --nats_nkey_file.");
ABSL_FLAG(std::string, nats_ca_file, kDefaults.nats_ca_file,
          "--store=jetstream: CA bundle to verify the NATS servers (TLS).");
ABSL_FLAG(std::string, nats_tls_cert, kDefaults.nats_tls_cert,
          "--store=jetstream: client certificate for TLS to NATS (mTLS).");
ABSL_FLAG(std::string, nats_tls_key, kDefaults.nats_tls_key,
          "--store=jetstream: the key of --nats_tls_cert.");
ABSL_FLAG(int64_t, subscriber_queue_limit, kDefaults.subscriber_queue_limit,
          "Events a subscriber may fall behind before its stream ends with "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, dedup_window_events, kDefaults.dedup_window_events,
          "Webhook ids remembered for de-duplication.");
ABSL_FLAG(absl::Duration, dedup_window_age, kDefaults.dedup_window_age,
          "How long a webhook id is remembered for de-duplication.");
ABSL_FLAG(std::string, log_level, kDefaults.log_level,
          "debug, info, warning or error.");
ABSL_FLAG(std::string, log_format, kDefaults.log_format,
          "plain (one line of text per event) or json (one JSON object per "
          "line).");
ABSL_FLAG(absl::Duration, shutdown_timeout, kDefaults.shutdown_timeout,
          "On SIGTERM or SIGINT, the time allowed for requests in flight to "
          "finish and streams to end.");
ABSL_FLAG(std::string, grpc_tls_cert, "",
          "PEM certificate chain: serve gRPC over TLS (with --grpc_tls_key). "
          "Reloaded every --grpc_tls_refresh_interval.");
ABSL_FLAG(std::string, grpc_tls_key, "", "PEM key of --grpc_tls_cert.");
ABSL_FLAG(std::string, grpc_tls_client_ca, "",
          "PEM CA bundle: clients must present a certificate it verifies "
          "(mTLS).");
ABSL_FLAG(absl::Duration, grpc_tls_refresh_interval,
          kDefaults.grpc_tls_refresh_interval,
          "How often the TLS files are read again (rotation without a "
          "restart; open streams stay).");
ABSL_FLAG(bool, grpc_allow_unauthenticated,
          kDefaults.grpc_allow_unauthenticated,
          "Serve the event stream on a non-loopback --grpc_address with "
          "neither --subscriber_tokens_file nor --grpc_tls_client_ca: anyone "
          "who reaches the port reads every event.");
ABSL_FLAG(bool, grpc_open_reflection, kDefaults.grpc_open_reflection,
          "Serve gRPC reflection (the schema, not events) without a token "
          "when --subscriber_tokens_file is set; otherwise it is off then.");
ABSL_FLAG(std::string, subscriber_tokens_file, "",
          "JSON file of the tokens that may subscribe and the event types "
          "each may read (see the README); reloaded on SIGHUP and when it "
          "changes. Empty: anyone who reaches --grpc_port may subscribe.");
ABSL_FLAG(std::string, workspace_secret_file, "",
          "File holding the workspace secret(s), one per line or "
          "comma-separated; instead of the CONVOCORE_WORKSPACE_SECRET "
          "environment variable.");

namespace {

convocore::app::FlagValues ReadFlags() {
  convocore::app::FlagValues v;
  v.http_address = absl::GetFlag(FLAGS_http_address);
  v.http_port = absl::GetFlag(FLAGS_http_port);
  v.http_threads = absl::GetFlag(FLAGS_http_threads);
  v.max_body_bytes = absl::GetFlag(FLAGS_max_body_bytes);
  v.http_request_timeout = absl::GetFlag(FLAGS_http_request_timeout);
  v.http_idle_timeout = absl::GetFlag(FLAGS_http_idle_timeout);
  v.http_max_connections = absl::GetFlag(FLAGS_http_max_connections);
  v.http_max_requests_per_connection =
      absl::GetFlag(FLAGS_http_max_requests_per_connection);
  v.grpc_address = absl::GetFlag(FLAGS_grpc_address);
  v.grpc_port = absl::GetFlag(FLAGS_grpc_port);
  v.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  v.grpc_keepalive_time = absl::GetFlag(FLAGS_grpc_keepalive_time);
  v.store = absl::GetFlag(FLAGS_store);
  v.data_dir = absl::GetFlag(FLAGS_data_dir);
  v.durability = absl::GetFlag(FLAGS_durability);
  v.retention_events = absl::GetFlag(FLAGS_retention_events);
  v.retention_bytes = absl::GetFlag(FLAGS_retention_bytes);
  v.retention_age = absl::GetFlag(FLAGS_retention_age);
  v.nats_url = absl::GetFlag(FLAGS_nats_url);
  v.nats_stream = absl::GetFlag(FLAGS_nats_stream);
  v.nats_subject_prefix = absl::GetFlag(FLAGS_nats_subject_prefix);
  v.nats_replicas = absl::GetFlag(FLAGS_nats_replicas);
  v.nats_publish_timeout = absl::GetFlag(FLAGS_nats_publish_timeout);
  v.nats_start_timeout = absl::GetFlag(FLAGS_nats_start_timeout);
  v.nats_creds_file = absl::GetFlag(FLAGS_nats_creds_file);
  v.nats_nkey_file = absl::GetFlag(FLAGS_nats_nkey_file);
  v.nats_nkey = absl::GetFlag(FLAGS_nats_nkey);
  v.nats_ca_file = absl::GetFlag(FLAGS_nats_ca_file);
  v.nats_tls_cert = absl::GetFlag(FLAGS_nats_tls_cert);
  v.nats_tls_key = absl::GetFlag(FLAGS_nats_tls_key);
  v.subscriber_queue_limit = absl::GetFlag(FLAGS_subscriber_queue_limit);
  v.dedup_window_events = absl::GetFlag(FLAGS_dedup_window_events);
  v.dedup_window_age = absl::GetFlag(FLAGS_dedup_window_age);
  v.log_level = absl::GetFlag(FLAGS_log_level);
  v.log_format = absl::GetFlag(FLAGS_log_format);
  v.shutdown_timeout = absl::GetFlag(FLAGS_shutdown_timeout);
  v.workspace_secret_file = absl::GetFlag(FLAGS_workspace_secret_file);
  v.subscriber_tokens_file = absl::GetFlag(FLAGS_subscriber_tokens_file);
  v.grpc_tls_cert = absl::GetFlag(FLAGS_grpc_tls_cert);
  v.grpc_tls_key = absl::GetFlag(FLAGS_grpc_tls_key);
  v.grpc_tls_client_ca = absl::GetFlag(FLAGS_grpc_tls_client_ca);
  v.grpc_tls_refresh_interval = absl::GetFlag(FLAGS_grpc_tls_refresh_interval);
  v.grpc_allow_unauthenticated =
      absl::GetFlag(FLAGS_grpc_allow_unauthenticated);
  v.grpc_open_reflection = absl::GetFlag(FLAGS_grpc_open_reflection);
  return v;
}

std::vector<std::string> Environment() {
  std::vector<std::string> entries;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    entries.emplace_back(*entry);
  }
  return entries;
}

// One line on stderr, before the logger is configured.
int Fail(std::string_view message, int code) {
  std::fprintf(stderr, "webhook-gateway: %.*s\n",
               static_cast<int>(message.size()), message.data());
  return code;
}

// Each HTTP connection holds two descriptors (ours and Pistache's, see
// gateway/http/connection.h), and the soft limit is often 1024 where the hard
// one is far higher: take the hard one, as nginx and Go programs do.
void RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 ||
      limit.rlim_cur >= limit.rlim_max) {
    return;
  }
  const rlim_t soft = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    convocore::log::Warning(
        "cannot raise the open file limit",
        {{"soft", static_cast<std::uint64_t>(soft)}, {"errno", errno}});
  }
}

// SIGHUP (a closed terminal, or an operator asking for a reload) would end
// the process by default. It is blocked here, before any thread starts, so
// that every thread inherits the mask and RunGateway() takes it with
// sigwait().
void BlockHangups() {
  sigset_t hangup;
  sigemptyset(&hangup);
  sigaddset(&hangup, SIGHUP);
  if (pthread_sigmask(SIG_BLOCK, &hangup, nullptr) != 0) {
    signal(SIGHUP, SIG_IGN);
  }
}

int Main(int argc, char** argv) {
  BlockHangups();
  absl::SetProgramUsageMessage(
      "Receives Convocore webhooks on POST /webhooks and streams them as "
      "typed events over gRPC (EventStreamService.Subscribe).\n"
      "Every flag --name can also be set with the environment variable "
      "GATEWAY_NAME (e.g. GATEWAY_HTTP_PORT=8080); the command line wins.\n"
      "The workspace secret comes from CONVOCORE_WORKSPACE_SECRET "
      "(comma-separated for rotation) or --workspace_secret_file.\n"
      "Usage: webhook-gateway [--flag=value ...]");
  // --help lists the flags of this file (Abseil's default looks for a file
  // named after the program).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "gateway/app/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  // Every flag of this file has its environment variable.
  const std::vector<std::string> flag_names =
      convocore::app::FlagsDefinedIn("gateway/app/main.cc");
  const absl::Status from_environment = convocore::app::ApplyEnvironmentToFlags(
      flag_names, &convocore::app::GetEnvironmentVariable);
  if (!from_environment.ok()) {
    return Fail(std::string_view(from_environment.message().data(),
                                 from_environment.message().size()),
                2);
  }
  // An unparsable flag value makes this print one line and exit(1).
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    return Fail(absl::StrCat("unexpected argument \"", positional[1],
                             "\"; flags are --name=value"),
                2);
  }
  const std::optional<std::string> secret_env =
      convocore::app::GetEnvironmentVariable(
          convocore::app::kSecretEnvironmentVariable);
  absl::StatusOr<convocore::app::GatewayOptions> options =
      convocore::app::BuildOptions(ReadFlags(), secret_env);
  if (!options.ok()) {
    return Fail(std::string_view(options.status().message().data(),
                                 options.status().message().size()),
                2);
  }
  convocore::log::Configure(options->log_level, options->log_format);
  RaiseOpenFileLimit();
  for (const std::string& name :
       convocore::app::UnknownGatewayVariables(flag_names, Environment())) {
    convocore::log::Warning("environment variable names no flag; ignored",
                            {{"variable", name}});
  }
  return convocore::app::RunGateway(*options);
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built with deadlock detection on, which records every
  // absl::Mutex acquisition in a graph (about 1% of the CPU of a webhook in
  // profiles); it is a debugging aid our tests do not rely on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Libraries below us (Pistache, gRPC) may throw; a startup error must
  // still be one line, never an abort trace.
  try {
    return Main(argc, argv);
  } catch (const std::exception& error) {
    return Fail(error.what(), 1);
  } catch (...) {
    return Fail("unexpected error", 1);
  }
}
