// The framework's ceiling: a Pistache 0.0.5 endpoint configured like the
// gateway (same thread count, request size limit and keep-alive handling)
// whose handler answers 200 without doing anything. The benchmark reports the
// gateway's throughput as a ratio to this.
#include <pistache/endpoint.h>
#include <pistache/http.h>

#include <csignal>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"

ABSL_FLAG(int, port, 0, "port to listen on (0: ephemeral, printed on stdout)");
ABSL_FLAG(int, threads, 2, "Pistache worker threads");

using namespace Pistache;

namespace {

class NoopHandler : public Http::Handler {
 public:
  HTTP_PROTOTYPE(NoopHandler)

  void onRequest(const Http::Request& request, Http::ResponseWriter response) override {
    // Pistache answers "Connection: Close" to HTTP/1.1 requests without a
    // Connection header; undo it as the gateway does, or this baseline would
    // measure reconnects instead of the framework.
    auto connection = request.headers().tryGet<Http::Header::Connection>();
    bool close = connection && connection->control() == Http::ConnectionControl::Close;
    response.headers().remove<Http::Header::Connection>();
    response.headers().add<Http::Header::Connection>(
        close ? Http::ConnectionControl::Close : Http::ConnectionControl::KeepAlive);
    response.send(Http::Code::Ok, "{}", MIME(Application, Json));
  }
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Http::Endpoint endpoint(Address(Ipv4::loopback(), Port(absl::GetFlag(FLAGS_port))));
  endpoint.init(Http::Endpoint::options()
                    .threads(absl::GetFlag(FLAGS_threads))
                    .flags(Tcp::Options::ReuseAddr)
                    .maxRequestSize(1 << 20));
  endpoint.setHandler(Http::make_handler<NoopHandler>());
  endpoint.serveThreaded();
  std::printf("%d\n", static_cast<int>(endpoint.getPort()));
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  endpoint.shutdown();
  return 0;
}
