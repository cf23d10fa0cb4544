#include "gateway/app/options.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace convocore::app {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "s3cr3t-value";

// A file removed when the test ends.
class TempFile {
 public:
  explicit TempFile(const std::string& contents) {
    char path[] = "/tmp/secret.XXXXXX";
    const int fd = mkstemp(path);
    path_ = path;
    ::close(fd);
    std::ofstream(path_) << contents;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(BuildOptionsTest, DefaultsWithASecretAreValid) {
  absl::StatusOr<GatewayOptions> options = BuildOptions({}, kSecret);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->http_port, 8080);
  EXPECT_EQ(options->grpc_port, 50051);
  EXPECT_EQ(options->store, StoreKind::kDisk);
  EXPECT_EQ(options->data_dir, "./data");
  EXPECT_EQ(options->durability, store::Durability::kFsync);
  EXPECT_EQ(options->max_body_bytes, 1u << 20);
  EXPECT_EQ(options->shutdown_timeout, absl::Seconds(10));
  EXPECT_EQ(options->log_level, log::Level::kInfo);
  EXPECT_THAT(options->secrets, ElementsAre(kSecret));
}

TEST(BuildOptionsTest, NoSecretRefusesWithHowToSetOne) {
  absl::StatusOr<GatewayOptions> options = BuildOptions({}, std::nullopt);
  ASSERT_FALSE(options.ok());
  EXPECT_EQ(options.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(options.status().message(),
              HasSubstr("CONVOCORE_WORKSPACE_SECRET"));
  EXPECT_THAT(options.status().message(), HasSubstr("--workspace_secret_file"));
}

TEST(BuildOptionsTest, SecretsForRotationAreCommaSeparated) {
  absl::StatusOr<GatewayOptions> options =
      BuildOptions({}, " old-secret , new-secret ,");
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_THAT(options->secrets, ElementsAre("old-secret", "new-secret"));
  EXPECT_FALSE(BuildOptions({}, " , ").ok());
  EXPECT_FALSE(BuildOptions({}, "").ok());
}

TEST(BuildOptionsTest, SecretsFromAFile) {
  TempFile file("first\nsecond, third\n\n");
  FlagValues flags;
  flags.workspace_secret_file = file.path();
  absl::StatusOr<GatewayOptions> options = BuildOptions(flags, std::nullopt);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_THAT(options->secrets, ElementsAre("first", "second", "third"));
}

TEST(BuildOptionsTest, UnreadableOrEmptySecretFileIsAnError) {
  FlagValues flags;
  flags.workspace_secret_file = "/nonexistent/secret";
  absl::StatusOr<GatewayOptions> missing = BuildOptions(flags, std::nullopt);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/secret"));
  EXPECT_THAT(missing.status().message(), HasSubstr("No such file"));
  TempFile empty("\n \n");
  flags.workspace_secret_file = empty.path();
  EXPECT_THAT(BuildOptions(flags, std::nullopt).status().message(),
              HasSubstr("holds no secret"));
}

TEST(BuildOptionsTest, BothSecretSourcesAreAmbiguous) {
  TempFile file(kSecret);
  FlagValues flags;
  flags.workspace_secret_file = file.path();
  absl::StatusOr<GatewayOptions> options = BuildOptions(flags, "other");
  ASSERT_FALSE(options.ok());
  EXPECT_THAT(options.status().message(), HasSubstr("set only one"));
}

TEST(BuildOptionsTest, ErrorsNameTheFlagAndNeverTheSecret) {
  struct Case {
    std::string flag;
    void (*set)(FlagValues&);
  };
  const Case cases[] = {
      {"--http_port", [](FlagValues& f) { f.http_port = 70000; }},
      {"--grpc_port", [](FlagValues& f) { f.grpc_port = -1; }},
      {"--grpc_port", [](FlagValues& f) { f.grpc_port = f.http_port; }},
      {"--http_threads", [](FlagValues& f) { f.http_threads = 0; }},
      {"--max_body_bytes", [](FlagValues& f) { f.max_body_bytes = 0; }},
      {"--max_body_bytes",
       [](FlagValues& f) { f.max_body_bytes = std::int64_t{2} << 30; }},
      {"--store", [](FlagValues& f) { f.store = "cloud"; }},
      {"--durability", [](FlagValues& f) { f.durability = "maybe"; }},
      {"--data_dir", [](FlagValues& f) { f.data_dir = ""; }},
      {"--retention_events", [](FlagValues& f) { f.retention_events = -1; }},
      {"--retention_age",
       [](FlagValues& f) { f.retention_age = absl::Seconds(-1); }},
      {"--subscriber_queue_limit",
       [](FlagValues& f) { f.subscriber_queue_limit = 0; }},
      {"--dedup_window_events",
       [](FlagValues& f) { f.dedup_window_events = 0; }},
      {"--dedup_window_age",
       [](FlagValues& f) { f.dedup_window_age = absl::ZeroDuration(); }},
      {"--heartbeat_interval",
       [](FlagValues& f) { f.heartbeat_interval = absl::ZeroDuration(); }},
      {"--shutdown_timeout",
       [](FlagValues& f) { f.shutdown_timeout = absl::InfiniteDuration(); }},
      {"--log_level", [](FlagValues& f) { f.log_level = "loud"; }},
      {"--log_format", [](FlagValues& f) { f.log_format = "xml"; }},
      {"--http_address", [](FlagValues& f) { f.http_address = ""; }},
  };
  for (const Case& c : cases) {
    FlagValues flags;
    c.set(flags);
    absl::StatusOr<GatewayOptions> options = BuildOptions(flags, kSecret);
    ASSERT_FALSE(options.ok()) << c.flag;
    EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument)
        << c.flag;
    EXPECT_THAT(options.status().message(), HasSubstr(c.flag));
    EXPECT_THAT(options.status().message(), Not(HasSubstr(kSecret)));
  }
}

TEST(BuildOptionsTest, MemoryStoreNeedsNoDataDir) {
  FlagValues flags;
  flags.store = "memory";
  flags.data_dir = "";
  absl::StatusOr<GatewayOptions> options = BuildOptions(flags, kSecret);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->store, StoreKind::kMemory);
}

TEST(BuildOptionsTest, RetentionAndPortZero) {
  FlagValues flags;
  flags.http_port = 0;
  flags.grpc_port = 0;
  flags.retention_events = 0;
  flags.retention_bytes = 1024;
  flags.retention_age = absl::Hours(24);
  absl::StatusOr<GatewayOptions> options = BuildOptions(flags, kSecret);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->http_port, 0);
  EXPECT_EQ(options->retention.max_events, 0u);
  EXPECT_EQ(options->retention.max_bytes, 1024u);
  EXPECT_EQ(options->retention.max_age, absl::Hours(24));
}

TEST(BuildOptionsTest, JetStreamStoreTakesItsFlagsAndTheRetention) {
  FlagValues flags;
  flags.store = "jetstream";
  flags.data_dir = "";
  flags.nats_url = " nats://a:4222, nats://b:4222 ,";
  flags.nats_stream = "EVENTS";
  flags.nats_subject_prefix = "app.events";
  flags.nats_replicas = 3;
  flags.retention_events = 500;
  flags.retention_age = absl::Hours(48);
  flags.dedup_window_age = absl::Hours(2);
  absl::StatusOr<GatewayOptions> options = BuildOptions(flags, kSecret);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->store, StoreKind::kJetStream);
  EXPECT_THAT(options->jetstream.servers,
              ::testing::ElementsAre("nats://a:4222", "nats://b:4222"));
  EXPECT_EQ(options->jetstream.stream.stream, "EVENTS");
  EXPECT_EQ(options->jetstream.stream.subject_prefix, "app.events");
  EXPECT_EQ(options->jetstream.stream.replicas, 3);
  EXPECT_EQ(options->jetstream.stream.retention.max_events, 500u);
  EXPECT_EQ(options->jetstream.stream.retention.max_age, absl::Hours(48));
  EXPECT_EQ(options->jetstream.stream.duplicate_window, absl::Hours(2));
  EXPECT_EQ(StoreKindName(options->store), "jetstream");
}

TEST(BuildOptionsTest, JetStreamFlagsAreChecked) {
  struct Case {
    void (*set)(FlagValues&);
    const char* says;
  };
  const Case cases[] = {
      {[](FlagValues& f) { f.nats_url = " , "; }, "--nats_url"},
      {[](FlagValues& f) { f.nats_stream = "a.b"; }, "--nats_stream"},
      {[](FlagValues& f) { f.nats_subject_prefix = "a.>"; },
       "--nats_subject_prefix"},
      {[](FlagValues& f) { f.nats_replicas = 0; }, "--nats_replicas"},
      {[](FlagValues& f) { f.nats_replicas = 7; }, "--nats_replicas"},
      {[](FlagValues& f) { f.nats_publish_timeout = absl::ZeroDuration(); },
       "--nats_publish_timeout"},
      {[](FlagValues& f) {
         f.retention_age = absl::Minutes(10);
         f.dedup_window_age = absl::Hours(1);
       },
       "--dedup_window_age"},
      {[](FlagValues& f) {
         f.nats_creds_file = "a.creds";
         f.nats_nkey_file = "seed";
         f.nats_nkey = "UABC";
       },
       "exclusive"},
      {[](FlagValues& f) { f.nats_nkey_file = "seed"; }, "--nats_nkey"},
      {[](FlagValues& f) { f.nats_tls_key = "key.pem"; }, "--nats_tls_key"},
  };
  for (const Case& c : cases) {
    FlagValues flags;
    flags.store = "jetstream";
    c.set(flags);
    absl::StatusOr<GatewayOptions> options = BuildOptions(flags, kSecret);
    ASSERT_FALSE(options.ok()) << c.says;
    EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument)
        << c.says;
    EXPECT_THAT(options.status().message(), ::testing::HasSubstr(c.says));
  }
}

TEST(BuildOptionsTest, UnknownStoreNamesTheChoices) {
  FlagValues flags;
  flags.store = "kafka";
  absl::StatusOr<GatewayOptions> options = BuildOptions(flags, kSecret);
  ASSERT_FALSE(options.ok());
  EXPECT_THAT(options.status().message(),
              ::testing::HasSubstr("disk, memory or jetstream"));
}

TEST(BuildOptionsTest, TheStreamIsOnLoopbackUnlessSomethingGuardsIt) {
  absl::StatusOr<GatewayOptions> defaults = BuildOptions({}, kSecret);
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->grpc_address, "127.0.0.1");
  EXPECT_FALSE(defaults->grpc_open);

  FlagValues open;
  open.grpc_address = "0.0.0.0";
  absl::StatusOr<GatewayOptions> refused = BuildOptions(open, kSecret);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("--grpc_address"));
  EXPECT_THAT(refused.status().message(),
              HasSubstr("--subscriber_tokens_file"));
  EXPECT_THAT(refused.status().message(),
              HasSubstr("--grpc_allow_unauthenticated"));

  open.grpc_allow_unauthenticated = true;
  absl::StatusOr<GatewayOptions> allowed = BuildOptions(open, kSecret);
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_TRUE(allowed->grpc_open);

  FlagValues tokens;
  tokens.grpc_address = "::";
  tokens.subscriber_tokens_file = "/etc/tokens.json";
  absl::StatusOr<GatewayOptions> guarded = BuildOptions(tokens, kSecret);
  ASSERT_TRUE(guarded.ok()) << guarded.status();
  EXPECT_FALSE(guarded->grpc_open);

  FlagValues mtls;
  mtls.grpc_address = "10.0.0.5";
  mtls.grpc_tls_cert = "/tls/tls.crt";
  mtls.grpc_tls_key = "/tls/tls.key";
  mtls.grpc_tls_client_ca = "/tls/ca.crt";
  absl::StatusOr<GatewayOptions> client_certs = BuildOptions(mtls, kSecret);
  ASSERT_TRUE(client_certs.ok()) << client_certs.status();
  EXPECT_EQ(client_certs->grpc_tls_client_ca, "/tls/ca.crt");
  EXPECT_FALSE(client_certs->grpc_open);
}

TEST(BuildOptionsTest, ReflectionIsOffWithTokensUnlessOpened) {
  EXPECT_TRUE(BuildOptions({}, kSecret)->grpc_reflection);
  FlagValues tokens;
  tokens.subscriber_tokens_file = "/etc/tokens.json";
  EXPECT_FALSE(BuildOptions(tokens, kSecret)->grpc_reflection);
  tokens.grpc_open_reflection = true;
  EXPECT_TRUE(BuildOptions(tokens, kSecret)->grpc_reflection);
}

TEST(BuildOptionsTest, TlsFlagsComeTogether) {
  FlagValues cert_only;
  cert_only.grpc_tls_cert = "/tls/tls.crt";
  EXPECT_THAT(BuildOptions(cert_only, kSecret).status().message(),
              HasSubstr("--grpc_tls_cert: is set without --grpc_tls_key"));
  FlagValues key_only;
  key_only.grpc_tls_key = "/tls/tls.key";
  EXPECT_THAT(BuildOptions(key_only, kSecret).status().message(),
              HasSubstr("--grpc_tls_key: is set without --grpc_tls_cert"));
  FlagValues ca_only;
  ca_only.grpc_tls_client_ca = "/tls/ca.crt";
  EXPECT_THAT(BuildOptions(ca_only, kSecret).status().message(),
              HasSubstr("--grpc_tls_client_ca: needs --grpc_tls_cert"));
  FlagValues fast;
  fast.grpc_tls_refresh_interval = absl::Milliseconds(100);
  EXPECT_THAT(BuildOptions(fast, kSecret).status().message(),
              HasSubstr("--grpc_tls_refresh_interval"));
}

}  // namespace
}  // namespace convocore::app
