#include "gateway/app/options.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace convocore::app {
namespace {

absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }

absl::Status Invalid(std::string_view flag, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", Absl(flag), ": ", problem));
}

absl::StatusOr<std::uint16_t> Port(std::string_view flag, int value) {
  if (value < 0 || value > 65535) {
    return Invalid(
        flag,
        absl::StrCat("port ", value, " is not in 0..65535 (0: any free port)"));
  }
  return static_cast<std::uint16_t>(value);
}

absl::Status Positive(std::string_view flag, std::int64_t value) {
  if (value > 0) return absl::OkStatus();
  return Invalid(flag, absl::StrCat("must be positive, got ", value));
}

absl::Status NotNegative(std::string_view flag, std::int64_t value) {
  if (value >= 0) return absl::OkStatus();
  return Invalid(flag, absl::StrCat("must not be negative, got ", value));
}

absl::Status PositiveDuration(std::string_view flag, absl::Duration value) {
  if (value > absl::ZeroDuration() && value != absl::InfiniteDuration()) {
    return absl::OkStatus();
  }
  return Invalid(flag, absl::StrCat("must be a positive duration, got ",
                                    absl::FormatDuration(value)));
}

}  // namespace

absl::StatusOr<std::string> ReadFlagFile(std::string_view flag,
                                         const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot read --", Absl(flag), " ", path, ": ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read --", Absl(flag), " ", path));
  }
  return text.str();
}

absl::StatusOr<std::vector<std::string>> ReadSecretFile(
    const std::string& path) {
  absl::StatusOr<std::string> text =
      ReadFlagFile("workspace_secret_file", path);
  if (!text.ok()) return text.status();
  std::vector<std::string> secrets = SplitSecrets(*text);
  if (secrets.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--workspace_secret_file ", path,
                     " holds no secret: one per line or comma-separated"));
  }
  return secrets;
}

namespace {

absl::StatusOr<std::vector<std::string>> LoadSecrets(
    const FlagValues& flags, std::optional<std::string_view> secret_env) {
  const std::string how =
      absl::StrCat("set ", kSecretEnvironmentVariable,
                   " (several comma-separated while rotating) or "
                   "--workspace_secret_file (GATEWAY_WORKSPACE_SECRET_FILE) to "
                   "a file holding it");
  if (secret_env.has_value() && !flags.workspace_secret_file.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("both ", kSecretEnvironmentVariable,
                     " and --workspace_secret_file are set; set only one"));
  }
  std::vector<std::string> secrets;
  if (secret_env.has_value()) {
    secrets = SplitSecrets(*secret_env);
    if (secrets.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          kSecretEnvironmentVariable, " is set but holds no secret; ", how));
    }
    return secrets;
  }
  if (!flags.workspace_secret_file.empty()) {
    return ReadSecretFile(flags.workspace_secret_file);
  }
  return absl::FailedPreconditionError(
      absl::StrCat("no workspace secret is configured: ", how,
                   ". It is the secret the sender puts in every webhook; "
                   "it is never read from a plain flag"));
}

absl::StatusOr<jetstream::JetStreamOptions> JetStreamOptionsFrom(
    const FlagValues& flags, const GatewayOptions& options) {
  jetstream::JetStreamOptions js;
  for (absl::string_view url : absl::StrSplit(flags.nats_url, ',')) {
    url = absl::StripAsciiWhitespace(url);
    if (!url.empty()) js.servers.emplace_back(url);
  }
  if (js.servers.empty()) {
    return Invalid("nats_url", "names no server (needed by --store=jetstream)");
  }
  if (absl::Status s = jetstream::CheckStreamName(flags.nats_stream); !s.ok()) {
    return s;
  }
  if (absl::Status s = jetstream::CheckSubjectPrefix(flags.nats_subject_prefix);
      !s.ok()) {
    return s;
  }
  if (flags.nats_replicas < 1 || flags.nats_replicas > 5) {
    return Invalid("nats_replicas",
                   absl::StrCat("must be in 1..5 (3 for high availability), "
                                "got ",
                                flags.nats_replicas));
  }
  for (const auto& [name, value] :
       {std::pair{"nats_publish_timeout", flags.nats_publish_timeout},
        std::pair{"nats_start_timeout", flags.nats_start_timeout}}) {
    if (absl::Status s = PositiveDuration(name, value); !s.ok()) return s;
  }
  // JetStream refuses a duplicate window longer than the stream's age
  // bound.
  if (options.retention.max_age > absl::ZeroDuration() &&
      options.dedup_window_age > options.retention.max_age) {
    return Invalid("dedup_window_age",
                   absl::StrCat("must not exceed --retention_age (",
                                absl::FormatDuration(options.retention.max_age),
                                ") with --store=jetstream"));
  }
  if (!flags.nats_creds_file.empty() && !flags.nats_nkey_file.empty()) {
    return Invalid("nats_creds_file",
                   "and --nats_nkey_file are exclusive: set one");
  }
  if (flags.nats_nkey_file.empty() != flags.nats_nkey.empty()) {
    return Invalid("nats_nkey_file",
                   "and --nats_nkey (its public key) go together");
  }
  if (flags.nats_tls_cert.empty() != flags.nats_tls_key.empty()) {
    return Invalid("nats_tls_cert", "and --nats_tls_key go together");
  }
  js.stream = jetstream::StreamRequirements{
      .stream = flags.nats_stream,
      .subject_prefix = flags.nats_subject_prefix,
      .replicas = flags.nats_replicas,
      .retention = options.retention,
      .duplicate_window = options.dedup_window_age};
  js.publish_timeout = flags.nats_publish_timeout;
  js.start_timeout = flags.nats_start_timeout;
  js.creds_file = flags.nats_creds_file;
  js.nkey_seed_file = flags.nats_nkey_file;
  js.nkey_public = flags.nats_nkey;
  js.ca_file = flags.nats_ca_file;
  js.tls_cert_file = flags.nats_tls_cert;
  js.tls_key_file = flags.nats_tls_key;
  return js;
}

}  // namespace

absl::StatusOr<StoreKind> ParseStoreKind(std::string_view text) {
  const std::string lower = absl::AsciiStrToLower(Absl(text));
  if (lower == "memory") return StoreKind::kMemory;
  if (lower == "disk") return StoreKind::kDisk;
  if (lower == "jetstream") return StoreKind::kJetStream;
  return Invalid("store", absl::StrCat("unknown store \"", Absl(text),
                                       "\" (disk, memory or jetstream)"));
}

std::string_view StoreKindName(StoreKind kind) {
  switch (kind) {
    case StoreKind::kMemory:
      return "memory";
    case StoreKind::kDisk:
      return "disk";
    case StoreKind::kJetStream:
      return "jetstream";
  }
  return "unknown";
}

std::vector<std::string> SplitSecrets(std::string_view text) {
  std::vector<std::string> secrets;
  for (absl::string_view part :
       absl::StrSplit(Absl(text), absl::ByAnyChar(",\n"))) {
    part = absl::StripAsciiWhitespace(part);
    if (!part.empty()) secrets.emplace_back(part);
  }
  return secrets;
}

bool IsLoopbackAddress(const std::string& address) {
  return address == "::1" || address == "localhost" ||
         absl::StartsWith(address, "127.");
}

absl::StatusOr<GatewayOptions> BuildOptions(
    const FlagValues& flags, std::optional<std::string_view> secret_env) {
  GatewayOptions options;

  if (flags.http_address.empty()) return Invalid("http_address", "is empty");
  options.http_address = flags.http_address;
  absl::StatusOr<std::uint16_t> http_port = Port("http_port", flags.http_port);
  if (!http_port.ok()) return http_port.status();
  options.http_port = *http_port;
  if (flags.http_threads < 1 || flags.http_threads > 1024) {
    return Invalid("http_threads", absl::StrCat("must be in 1..1024, got ",
                                                flags.http_threads));
  }
  options.http_threads = flags.http_threads;
  if (absl::Status s = Positive("max_body_bytes", flags.max_body_bytes);
      !s.ok()) {
    return s;
  }
  if (flags.max_body_bytes > (std::int64_t{1} << 30)) {
    return Invalid("max_body_bytes", "must be at most 1 GiB");
  }
  options.max_body_bytes = static_cast<std::size_t>(flags.max_body_bytes);
  for (const auto& [name, value] :
       {std::pair{"http_request_timeout", flags.http_request_timeout},
        std::pair{"http_idle_timeout", flags.http_idle_timeout},
        std::pair{"heartbeat_interval", flags.heartbeat_interval},
        std::pair{"grpc_keepalive_time", flags.grpc_keepalive_time},
        std::pair{"dedup_window_age", flags.dedup_window_age},
        std::pair{"shutdown_timeout", flags.shutdown_timeout}}) {
    if (absl::Status s = PositiveDuration(name, value); !s.ok()) return s;
  }
  if (flags.http_max_connections < 1) {
    return Invalid(
        "http_max_connections",
        absl::StrCat("must be at least 1, got ", flags.http_max_connections));
  }
  if (flags.http_max_requests_per_connection < 0) {
    return Invalid("http_max_requests_per_connection",
                   absl::StrCat("must be 0 (no limit) or more, got ",
                                flags.http_max_requests_per_connection));
  }
  options.http_max_connections = flags.http_max_connections;
  options.http_max_requests_per_connection =
      flags.http_max_requests_per_connection;
  options.http_request_timeout = flags.http_request_timeout;
  options.http_idle_timeout = flags.http_idle_timeout;

  if (flags.grpc_address.empty()) return Invalid("grpc_address", "is empty");
  options.grpc_address = flags.grpc_address;
  absl::StatusOr<std::uint16_t> grpc_port = Port("grpc_port", flags.grpc_port);
  if (!grpc_port.ok()) return grpc_port.status();
  options.grpc_port = *grpc_port;
  if (options.grpc_port != 0 && options.grpc_port == options.http_port) {
    return Invalid("grpc_port", absl::StrCat("is the same as --http_port (",
                                             options.grpc_port, ")"));
  }
  options.heartbeat_interval = flags.heartbeat_interval;
  options.grpc_keepalive_time = flags.grpc_keepalive_time;
  options.subscriber_tokens_file = flags.subscriber_tokens_file;
  if (flags.grpc_tls_cert.empty() != flags.grpc_tls_key.empty()) {
    return flags.grpc_tls_cert.empty()
               ? Invalid("grpc_tls_key", "is set without --grpc_tls_cert")
               : Invalid("grpc_tls_cert", "is set without --grpc_tls_key");
  }
  if (!flags.grpc_tls_client_ca.empty() && flags.grpc_tls_cert.empty()) {
    return Invalid("grpc_tls_client_ca",
                   "needs --grpc_tls_cert and --grpc_tls_key (mTLS is TLS)");
  }
  if (flags.grpc_tls_refresh_interval < absl::Seconds(1)) {
    return Invalid("grpc_tls_refresh_interval", "must be at least 1s");
  }
  options.grpc_tls_cert = flags.grpc_tls_cert;
  options.grpc_tls_key = flags.grpc_tls_key;
  options.grpc_tls_client_ca = flags.grpc_tls_client_ca;
  options.grpc_tls_refresh_interval = flags.grpc_tls_refresh_interval;
  options.grpc_reflection =
      flags.subscriber_tokens_file.empty() || flags.grpc_open_reflection;
  const bool authenticated = !flags.subscriber_tokens_file.empty() ||
                             !flags.grpc_tls_client_ca.empty();
  options.grpc_open = !authenticated && !IsLoopbackAddress(flags.grpc_address);
  if (options.grpc_open && !flags.grpc_allow_unauthenticated) {
    return Invalid(
        "grpc_address",
        absl::StrCat(
            flags.grpc_address,
            " is not a loopback address, and the event stream would be open "
            "to anyone who reaches it: set --subscriber_tokens_file (with "
            "--grpc_tls_cert and --grpc_tls_key, so that tokens are not sent "
            "in plaintext) or --grpc_tls_client_ca, or "
            "--grpc_allow_unauthenticated=true to serve it open anyway"));
  }

  absl::StatusOr<StoreKind> store = ParseStoreKind(flags.store);
  if (!store.ok()) return store.status();
  options.store = *store;
  if (options.store == StoreKind::kDisk && flags.data_dir.empty()) {
    return Invalid("data_dir", "is empty (needed by --store=disk)");
  }
  options.data_dir = flags.data_dir;
  std::string durability_error;
  if (!store::AbslParseFlag(Absl(flags.durability), &options.durability,
                            &durability_error)) {
    return Invalid("durability", durability_error);
  }
  for (const auto& [name, value] :
       {std::pair{"retention_events", flags.retention_events},
        std::pair{"retention_bytes", flags.retention_bytes}}) {
    if (absl::Status s = NotNegative(name, value); !s.ok()) return s;
  }
  if (flags.retention_age < absl::ZeroDuration()) {
    return Invalid("retention_age", "must not be negative (0: no age bound)");
  }
  options.retention.max_events =
      static_cast<std::size_t>(flags.retention_events);
  options.retention.max_bytes = static_cast<std::size_t>(flags.retention_bytes);
  options.retention.max_age = flags.retention_age == absl::InfiniteDuration()
                                  ? absl::ZeroDuration()
                                  : flags.retention_age;

  for (const auto& [name, value] :
       {std::pair{"subscriber_queue_limit", flags.subscriber_queue_limit},
        std::pair{"dedup_window_events", flags.dedup_window_events}}) {
    if (absl::Status s = Positive(name, value); !s.ok()) return s;
  }
  options.subscriber_queue_limit =
      static_cast<std::size_t>(flags.subscriber_queue_limit);
  options.dedup_window_events =
      static_cast<std::size_t>(flags.dedup_window_events);
  options.dedup_window_age = flags.dedup_window_age;

  if (options.store == StoreKind::kJetStream) {
    absl::StatusOr<jetstream::JetStreamOptions> js =
        JetStreamOptionsFrom(flags, options);
    if (!js.ok()) return js.status();
    options.jetstream = *std::move(js);
  }

  absl::StatusOr<log::Level> level = log::ParseLevel(flags.log_level);
  if (!level.ok()) return Invalid("log_level", level.status().message());
  options.log_level = *level;
  absl::StatusOr<log::Format> format = log::ParseFormat(flags.log_format);
  if (!format.ok()) return Invalid("log_format", format.status().message());
  options.log_format = *format;
  options.shutdown_timeout = flags.shutdown_timeout;

  absl::StatusOr<std::vector<std::string>> secrets =
      LoadSecrets(flags, secret_env);
  if (!secrets.ok()) return secrets.status();
  options.secrets = std::move(*secrets);
  options.workspace_secret_file = flags.workspace_secret_file;
  return options;
}

}  // namespace convocore::app
