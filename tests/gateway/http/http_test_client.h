// Test helpers: a libcurl HTTP client (one easy handle, so its connection is
// kept alive between requests unless the server closes it) and a raw TCP
// connection for what libcurl hides (100 Continue, connection closes,
// malformed requests).
#ifndef TESTS_GATEWAY_HTTP_HTTP_TEST_CLIENT_H_
#define TESTS_GATEWAY_HTTP_HTTP_TEST_CLIENT_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace convocore::http::testing {

struct HttpResponse {
  long code = 0;
  std::string body;
  // Names lowercased; the last value of a repeated header.
  std::map<std::string, std::string> headers;
  // Connections libcurl opened for this request (0 when it reused one).
  long new_connections = 0;
};

class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // `headers` as "Name: value". libcurl's own "Expect: 100-continue" is
  // suppressed unless `headers` names Expect.
  absl::StatusOr<HttpResponse> Request(
      std::string_view method, std::string_view url, std::string_view body,
      const std::vector<std::string>& headers = {});
  absl::StatusOr<HttpResponse> Get(std::string_view url) {
    return Request("GET", url, "");
  }
  absl::StatusOr<HttpResponse> PostJson(std::string_view url,
                                        std::string_view body) {
    return Request("POST", url, body, {"Content-Type: application/json"});
  }

 private:
  void* curl_;
};

// A plain TCP connection to 127.0.0.1:port.
class RawConnection {
 public:
  static absl::StatusOr<RawConnection> Connect(std::uint16_t port);
  RawConnection(RawConnection&& other) noexcept;
  RawConnection& operator=(RawConnection&&) = delete;
  ~RawConnection();

  absl::Status Send(std::string_view bytes);
  // Send() then ReadResponse(). A failed send (the server may close before
  // it has read everything) still reads what the server answered.
  absl::StatusOr<HttpResponse> Exchange(
      std::string_view bytes,
      absl::Time deadline = absl::Now() + absl::Seconds(10));
  // Reads one response: status line, headers and a Content-Length body (a
  // 1xx response has no body). Fails at `deadline` or if the peer closes
  // first.
  absl::StatusOr<HttpResponse> ReadResponse(
      absl::Time deadline = absl::Now() + absl::Seconds(10));
  // True if the peer closes its side (a read returns 0) before `deadline`,
  // discarding whatever else arrives.
  bool WaitForClose(absl::Time deadline = absl::Now() + absl::Seconds(10));
  // Closes the connection with a reset (SO_LINGER 0), as a crashed client
  // would.
  void Reset();

 private:
  explicit RawConnection(int fd) : fd_(fd) {}
  // Waits for readable data; false at the deadline.
  bool WaitReadable(absl::Time deadline);

  int fd_ = -1;
  std::string buffered_;
};

// Whether a TCP connection to 127.0.0.1:port is accepted.
bool CanConnect(std::uint16_t port);

}  // namespace convocore::http::testing

#endif  // TESTS_GATEWAY_HTTP_HTTP_TEST_CLIENT_H_
