// The gateway's configuration: the values of its flags, checked and turned
// into one immutable GatewayOptions, and the workspace secrets, which never
// come from a flag (a flag shows in `ps`): from CONVOCORE_WORKSPACE_SECRET
// (comma-separated, for rotation) or from the file --workspace_secret_file
// names. main() copies the flags into FlagValues; everything here is
// testable without flags.
#ifndef GATEWAY_APP_OPTIONS_H_
#define GATEWAY_APP_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/log/logger.h"
#include "services/hub/event_store.h"
#include "services/jetstream/jetstream_event_store.h"
#include "services/store/disk_event_store.h"

namespace convocore::app {

inline constexpr char kSecretEnvironmentVariable[] =
    "CONVOCORE_WORKSPACE_SECRET";

// Where accepted events are kept: "memory" (a window lost on restart),
// "disk" (the durable log in --data_dir) or "jetstream" (a NATS JetStream
// stream shared by several gateway replicas).
enum class StoreKind { kMemory, kDisk, kJetStream };
std::string_view StoreKindName(StoreKind kind);
absl::StatusOr<StoreKind> ParseStoreKind(std::string_view text);

// The flags' values as parsed, before they are checked.
struct FlagValues {
  std::string http_address = "0.0.0.0";
  int http_port = 8080;
  int http_threads = 4;
  std::int64_t max_body_bytes = 1 << 20;
  absl::Duration http_request_timeout = absl::Seconds(30);
  absl::Duration http_idle_timeout = absl::Seconds(120);
  int http_max_connections = 10000;
  int http_max_requests_per_connection = 5000;

  // Loopback: the stream leaves the host only when the operator says so.
  std::string grpc_address = "127.0.0.1";
  int grpc_port = 50051;
  absl::Duration heartbeat_interval = absl::Seconds(15);
  absl::Duration grpc_keepalive_time = absl::Seconds(30);
  std::string grpc_tls_cert;
  std::string grpc_tls_key;
  std::string grpc_tls_client_ca;
  absl::Duration grpc_tls_refresh_interval = absl::Seconds(10);
  bool grpc_allow_unauthenticated = false;
  bool grpc_open_reflection = false;

  std::string store = "disk";
  std::string data_dir = "./data";
  std::string durability = "fsync";
  std::int64_t retention_events = 100'000;
  std::int64_t retention_bytes = 64 << 20;
  absl::Duration retention_age = absl::ZeroDuration();

  // --store=jetstream.
  std::string nats_url = "nats://127.0.0.1:4222";
  std::string nats_stream = "CONVOCORE_EVENTS";
  std::string nats_subject_prefix = "convocore.events";
  std::int64_t nats_replicas = 3;
  absl::Duration nats_publish_timeout = absl::Seconds(5);
  absl::Duration nats_start_timeout = absl::Seconds(30);
  std::string nats_creds_file;
  std::string nats_nkey_file;
  std::string nats_nkey;
  std::string nats_ca_file;
  std::string nats_tls_cert;
  std::string nats_tls_key;

  std::int64_t subscriber_queue_limit = 4096;
  std::int64_t dedup_window_events = 100'000;
  absl::Duration dedup_window_age = absl::Hours(1);

  std::string log_level = "info";
  std::string log_format = "plain";
  absl::Duration shutdown_timeout = absl::Seconds(10);

  std::string workspace_secret_file;
  std::string subscriber_tokens_file;
};

struct GatewayOptions {
  // HTTP (webhooks in, health, metrics).
  std::string http_address;
  std::uint16_t http_port = 0;
  int http_threads = 0;
  std::size_t max_body_bytes = 0;
  absl::Duration http_request_timeout;
  absl::Duration http_idle_timeout;
  int http_max_connections = 0;
  int http_max_requests_per_connection = 0;  // per second; 0: no limit

  // gRPC (EventStreamService).
  std::string grpc_address;
  std::uint16_t grpc_port = 0;
  absl::Duration heartbeat_interval;
  absl::Duration grpc_keepalive_time;
  // Empty: anyone who reaches the port may subscribe. Else the JSON file of
  // subscriber tokens (gateway/app/tokens_file.h), reloaded on change.
  std::string subscriber_tokens_file;
  // TLS from these PEM files when grpc_tls_cert is set (both or neither);
  // with grpc_tls_client_ca, clients need a certificate it verifies.
  std::string grpc_tls_cert;
  std::string grpc_tls_key;
  std::string grpc_tls_client_ca;
  absl::Duration grpc_tls_refresh_interval;
  // Neither tokens nor client certificates, on an address that is not
  // loopback: allowed only with this set (--grpc_allow_unauthenticated).
  bool grpc_open = false;
  // Reflection is served unless subscriber tokens are asked for and
  // --grpc_open_reflection is not set.
  bool grpc_reflection = true;

  // Storage and retention.
  StoreKind store = StoreKind::kDisk;
  std::string data_dir;
  store::Durability durability = store::Durability::kFsync;
  hub::RetentionOptions retention;
  // --store=jetstream: servers, stream, credentials and TLS; its stream
  // requirements take `retention` and `dedup_window_age`.
  jetstream::JetStreamOptions jetstream;

  std::size_t subscriber_queue_limit = 0;
  std::size_t dedup_window_events = 0;
  absl::Duration dedup_window_age;

  log::Level log_level = log::Level::kInfo;
  log::Format log_format = log::Format::kPlain;
  absl::Duration shutdown_timeout;

  // Never logged.
  std::vector<std::string> secrets;
  // Where `secrets` came from, to read again on change; empty when they
  // came from the environment.
  std::string workspace_secret_file;
};

// 127.0.0.0/8, ::1 or localhost.
bool IsLoopbackAddress(const std::string& address);

// Checks every value and loads the secrets: `secret_env` is the value of
// CONVOCORE_WORKSPACE_SECRET (nullopt when unset). kInvalidArgument with a
// message naming the flag for a bad value; kFailedPrecondition when no
// secret is configured or the secret file cannot be read. No message ever
// contains a secret.
absl::StatusOr<GatewayOptions> BuildOptions(
    const FlagValues& flags, std::optional<std::string_view> secret_env);

// The secrets of a comma- or newline-separated list, each trimmed of
// whitespace, empty ones skipped.
std::vector<std::string> SplitSecrets(std::string_view text);

// The whole of the file `path` that --`flag` names. FAILED_PRECONDITION
// naming the flag, the path and the reason when it cannot be read.
absl::StatusOr<std::string> ReadFlagFile(std::string_view flag,
                                         const std::string& path);

// The secrets of --workspace_secret_file `path`. FAILED_PRECONDITION naming
// the path (never a secret) when it cannot be read or holds none.
absl::StatusOr<std::vector<std::string>> ReadSecretFile(
    const std::string& path);

}  // namespace convocore::app

#endif  // GATEWAY_APP_OPTIONS_H_
