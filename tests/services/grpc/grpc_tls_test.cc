// The gRPC server over TLS and mTLS, with certificates made by the openssl
// command in a directory of the test's own: subscribe, refuse what must be
// refused, rotate the server's certificate under an open stream, and refuse
// unusable files at start with their name.
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/event_stream_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/auth/subscriber_tokens.h"
#include "services/grpc/grpc_server.h"
#include "services/hub/event_hub.h"
#include "services/hub/in_memory_event_store.h"
#include "tests/services/hub/test_events.h"
#include "tests/support/eventually.h"
#include "tests/support/temp_dir.h"

namespace convocore::grpc_service {
namespace {

namespace v1 = convocore::webhooks::v1;
using ::convocore::testing::TempDir;
using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(20);

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs `command` with /bin/sh; fails the test if it fails.
void Run(const std::string& command) {
  const int code = std::system((command + " >/dev/null 2>&1").c_str());
  ASSERT_EQ(code, 0) << command;
}

// A CA, and certificates it signs, as PEM files in `dir`.
class Pki {
 public:
  explicit Pki(const std::filesystem::path& dir) : dir_(dir) {}

  void MakeCa(const std::string& name) {
    Run(absl::StrCat(
        "openssl req -x509 -newkey ec -pkeyopt "
        "ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=",
        name, " -keyout ", Path(name + ".key"), " -out ", Path(name + ".crt")));
  }

  // `name`.crt and `name`.key, signed by `ca`, valid for `san` (by
  // default localhost and 127.0.0.1).
  void MakeCert(const std::string& ca, const std::string& name,
                const std::string& san = "DNS:localhost,IP:127.0.0.1") {
    const std::string ext = Path(name + ".ext");
    std::ofstream(ext) << "subjectAltName=" << san << "\n";
    Run(absl::StrCat(
        "openssl req -newkey ec -pkeyopt "
        "ec_paramgen_curve:prime256v1 -nodes -subj /CN=",
        name, " -keyout ", Path(name + ".key"), " -out ", Path(name + ".csr")));
    Run(absl::StrCat("openssl x509 -req -days 2 -in ", Path(name + ".csr"),
                     " -CA ", Path(ca + ".crt"), " -CAkey ", Path(ca + ".key"),
                     " -CAcreateserial -extfile ", ext, " -out ",
                     Path(name + ".crt")));
  }

  std::string Path(const std::string& file) const {
    return (dir_ / file).string();
  }
  std::string Pem(const std::string& file) const {
    return ReadFile(dir_ / file);
  }

 private:
  std::filesystem::path dir_;
};

class GrpcTlsTest : public ::testing::Test {
 protected:
  GrpcTlsTest() : dir_("grpc_tls_test"), pki_(dir_.path()) {}

  void SetUp() override {
    pki_.MakeCa("ca");
    pki_.MakeCert("ca", "server");
    pki_.MakeCert("ca", "client");
    // What the server serves: copies it can swap.
    std::filesystem::copy_file(pki_.Path("server.crt"), pki_.Path("tls.crt"));
    std::filesystem::copy_file(pki_.Path("server.key"), pki_.Path("tls.key"));
    auto hub = hub::EventHub::Create(
        std::make_unique<hub::InMemoryEventStore>(hub::RetentionOptions{}),
        hub::HubOptions{});
    ASSERT_TRUE(hub.ok()) << hub.status();
    hub_ = *std::move(hub);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
    server_.reset();
    hub_.reset();
  }

  absl::Status StartServer(GrpcTlsFiles tls) {
    GrpcServerOptions options;
    options.address = "127.0.0.1";
    options.heartbeat_interval = absl::Hours(1);
    options.tls = std::move(tls);
    absl::StatusOr<std::unique_ptr<GrpcServer>> server =
        GrpcServer::Start(options, hub_.get());
    if (!server.ok()) return server.status();
    server_ = *std::move(server);
    return absl::OkStatus();
  }

  GrpcTlsFiles Files(bool mtls) const {
    GrpcTlsFiles tls;
    tls.cert = pki_.Path("tls.crt");
    tls.key = pki_.Path("tls.key");
    if (mtls) tls.client_ca = pki_.Path("ca.crt");
    tls.refresh = absl::Seconds(1);
    return tls;
  }

  // A channel trusting `ca`, presenting `client` (a name in the PKI) if set.
  std::shared_ptr<grpc::Channel> Channel(const std::string& ca,
                                         const std::string& client = "") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pki_.Pem(ca + ".crt");
    if (!client.empty()) {
      ssl.pem_private_key = pki_.Pem(client + ".key");
      ssl.pem_cert_chain = pki_.Pem(client + ".crt");
    }
    grpc::ChannelArguments args;
    // Each channel its own connection, so that each one handshakes.
    args.SetInt("convocore.test_channel", ++channels_);
    return grpc::CreateCustomChannel(
        absl::StrCat("localhost:", server_->port()), grpc::SslCredentials(ssl),
        args);
  }

  // Opens a stream from now; its first event, or the status it ended with.
  struct Stream {
    grpc::ClientContext context;
    std::unique_ptr<v1::EventStreamService::Stub> stub;
    std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader;
  };
  std::unique_ptr<Stream> Open(std::shared_ptr<grpc::Channel> channel) {
    auto stream = std::make_unique<Stream>();
    stream->context.set_deadline(absl::ToChronoTime(absl::Now() + kTimeout));
    stream->stub = v1::EventStreamService::NewStub(std::move(channel));
    stream->reader =
        stream->stub->Subscribe(&stream->context, v1::SubscribeRequest());
    stream->reader->WaitForInitialMetadata();
    return stream;
  }

  // Publishes one event and reads it on `stream`: its sequence, or 0.
  std::uint64_t PublishAndRead(Stream& stream) {
    auto sequence =
        hub_->Publish(hub::testing::MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
    EXPECT_TRUE(sequence.ok());
    v1::SubscribeResponse response;
    while (stream.reader->Read(&response)) {
      if (response.events_size() > 0) return response.events(0).sequence();
    }
    return 0;
  }

  // The status of a stream that should fail at once.
  grpc::Status Refused(std::shared_ptr<grpc::Channel> channel) {
    std::unique_ptr<Stream> stream = Open(std::move(channel));
    v1::SubscribeResponse response;
    while (stream->reader->Read(&response)) {
    }
    return stream->reader->Finish();
  }

  TempDir dir_;
  Pki pki_;
  int channels_ = 0;
  std::unique_ptr<hub::EventHub> hub_;
  std::unique_ptr<GrpcServer> server_;
};

TEST_F(GrpcTlsTest, ATrustingClientSubscribesAndPlaintextIsRefused) {
  ASSERT_TRUE(StartServer(Files(/*mtls=*/false)).ok());
  std::unique_ptr<Stream> stream = Open(Channel("ca"));
  EXPECT_EQ(PublishAndRead(*stream), 1u);
  auto plaintext =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                          grpc::InsecureChannelCredentials());
  EXPECT_EQ(Refused(plaintext).error_code(), grpc::StatusCode::UNAVAILABLE);
  // A client that trusts another CA does not get through either.
  pki_.MakeCa("other");
  EXPECT_EQ(Refused(Channel("other")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcTlsTest, WithAClientCaOnlyClientsWithItsCertificatesGetIn) {
  ASSERT_TRUE(StartServer(Files(/*mtls=*/true)).ok());
  EXPECT_EQ(Refused(Channel("ca")).error_code(), grpc::StatusCode::UNAVAILABLE);
  pki_.MakeCa("other");
  pki_.MakeCert("other", "stranger");
  EXPECT_EQ(Refused(Channel("ca", "stranger")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  std::unique_ptr<Stream> stream = Open(Channel("ca", "client"));
  EXPECT_EQ(PublishAndRead(*stream), 1u);
}

TEST_F(GrpcTlsTest,
       ARotatedCertificateServesNewConnectionsAndKeepsOpenStreams) {
  ASSERT_TRUE(StartServer(Files(/*mtls=*/false)).ok());
  std::unique_ptr<Stream> before = Open(Channel("ca"));
  ASSERT_EQ(PublishAndRead(*before), 1u);
  // A certificate from a new CA, swapped in by rename as Kubernetes does.
  pki_.MakeCa("ca2");
  pki_.MakeCert("ca2", "server2");
  std::filesystem::copy_file(pki_.Path("server2.crt"),
                             pki_.Path("tls.crt.new"));
  std::filesystem::copy_file(pki_.Path("server2.key"),
                             pki_.Path("tls.key.new"));
  std::filesystem::rename(pki_.Path("tls.key.new"), pki_.Path("tls.key"));
  std::filesystem::rename(pki_.Path("tls.crt.new"), pki_.Path("tls.crt"));
  // Within the refresh interval, new connections get the new certificate.
  ASSERT_TRUE(convocore::testing::Eventually(
      [&] {
        return Channel("ca2")->WaitForConnected(
            absl::ToChronoTime(absl::Now() + absl::Milliseconds(500)));
      },
      absl::Seconds(15), absl::Milliseconds(100)));
  EXPECT_EQ(Refused(Channel("ca")).error_code(), grpc::StatusCode::UNAVAILABLE);
  std::unique_ptr<Stream> after = Open(Channel("ca2"));
  EXPECT_EQ(PublishAndRead(*after), 2u);
  // The stream opened before goes on.
  v1::SubscribeResponse response;
  ASSERT_TRUE(before->reader->Read(&response));
  ASSERT_EQ(response.events_size(), 1);
  EXPECT_EQ(response.events(0).sequence(), 2u);
}

TEST_F(GrpcTlsTest, AClientCertificateCanNameItsSubscriberGrant) {
  pki_.MakeCert("ca", "crm", "DNS:crm.internal");
  pki_.MakeCert("ca", "other", "DNS:other.internal");
  auto tokens = [](const std::string& certificate) {
    absl::StatusOr<auth::SubscriberTokens> parsed =
        auth::SubscriberTokens::Parse(absl::StrCat(
            R"({"tokens": [{"name": "crm-service", "certificate": ")",
            certificate, R"(", "event_types": ["lead_captured"]}]})"));
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    return std::make_shared<const auth::SubscriberTokens>(*std::move(parsed));
  };
  ASSERT_TRUE(StartServer(Files(/*mtls=*/true)).ok());
  server_->SetSubscriberTokens(tokens("crm.internal"));
  // Its certificate is its credential: no bearer token.
  std::unique_ptr<Stream> crm = Open(Channel("ca", "crm"));
  ASSERT_TRUE(
      hub_->Publish(hub::testing::MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED))
          .ok());
  ASSERT_TRUE(
      hub_->Publish(hub::testing::MakeEvent(v1::EVENT_TYPE_LEAD_CAPTURED))
          .ok());
  v1::SubscribeResponse response;
  ASSERT_TRUE(crm->reader->Read(&response));
  ASSERT_EQ(response.events_size(), 1);
  EXPECT_EQ(response.events(0).event_type(), v1::EVENT_TYPE_LEAD_CAPTURED);
  // Another certificate of the same CA names no grant.
  const grpc::Status other = Refused(Channel("ca", "other"));
  EXPECT_EQ(other.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // The entry removed: its stream ends.
  server_->SetSubscriberTokens(tokens("someone.else"));
  while (crm->reader->Read(&response)) {
  }
  const grpc::Status ended = crm->reader->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(ended.error_message(), HasSubstr("crm-service"));
}

TEST_F(GrpcTlsTest, UnusableFilesAreRefusedAtStartByName) {
  GrpcTlsFiles missing = Files(false);
  missing.cert = pki_.Path("nope.crt");
  absl::Status status = StartServer(missing);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("nope.crt"));

  GrpcTlsFiles mismatched = Files(false);
  mismatched.key = pki_.Path("client.key");
  status = StartServer(mismatched);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("is not the key of"));

  GrpcTlsFiles not_pem = Files(false);
  not_pem.cert = pki_.Path("client.ext");
  status = StartServer(not_pem);
  EXPECT_THAT(status.message(), HasSubstr("holds no PEM certificate"));

  GrpcTlsFiles bad_ca = Files(true);
  bad_ca.client_ca = pki_.Path("client.ext");
  status = StartServer(bad_ca);
  EXPECT_THAT(status.message(), HasSubstr("client CA"));
  EXPECT_EQ(server_, nullptr);
}

}  // namespace
}  // namespace convocore::grpc_service
