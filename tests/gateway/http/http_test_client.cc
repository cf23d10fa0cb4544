#include "tests/gateway/http/http_test_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace convocore::http::testing {
namespace {

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

size_t WriteHeader(char* data, size_t size, size_t count, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  absl::string_view line(data, size * count);
  if (absl::StartsWith(line, "HTTP/")) {
    headers->clear();  // a new response (after a 100 Continue)
  }
  const std::size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    (*headers)[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * count;
}

// Parses the status line and headers of `head` (without the blank line).
absl::StatusOr<HttpResponse> ParseHead(absl::string_view head) {
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  HttpResponse response;
  std::vector<absl::string_view> status = absl::StrSplit(lines[0], ' ');
  if (status.size() < 2 || !absl::StartsWith(status[0], "HTTP/1.") ||
      !absl::SimpleAtoi(status[1], &response.code)) {
    return absl::InternalError(absl::StrCat("bad status line: ", lines[0]));
  }
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const std::size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) continue;
    response.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  return response;
}

}  // namespace

HttpClient::HttpClient() : curl_(curl_easy_init()) {}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

absl::StatusOr<HttpResponse> HttpClient::Request(
    std::string_view method, std::string_view url, std::string_view body,
    const std::vector<std::string>& headers) {
  CURL* curl = static_cast<CURL*>(curl_);
  HttpResponse response;
  const std::string url_string(url);
  const std::string method_string(method);
  curl_easy_setopt(curl, CURLOPT_URL, url_string.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method_string.c_str());
  curl_easy_setopt(curl, CURLOPT_NOBODY, method == "HEAD" ? 1L : 0L);
  if (method == "POST" || method == "PUT" || !body.empty()) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body.size()));
  } else {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method_string.c_str());
  }
  curl_slist* list = nullptr;
  bool has_expect = false;
  bool has_content_type = false;
  for (const std::string& header : headers) {
    list = curl_slist_append(list, header.c_str());
    has_expect |= absl::StartsWithIgnoreCase(header, "expect:");
    has_content_type |= absl::StartsWithIgnoreCase(header, "content-type:");
  }
  if (!has_expect) list = curl_slist_append(list, "Expect:");
  // libcurl labels POST bodies as form data unless told otherwise; an empty
  // value removes the header altogether.
  if (!has_content_type) list = curl_slist_append(list, "Content-Type:");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &WriteHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response.headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10'000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(list);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat(
        "curl ", method_string, " ", url_string, ": ", curl_easy_strerror(rc)));
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.code);
  curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &response.new_connections);
  return response;
}

absl::StatusOr<RawConnection> RawConnection::Connect(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    const int error = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("connect to port ", port, ": ", strerror(error)));
  }
  return RawConnection(fd);
}

RawConnection::RawConnection(RawConnection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      buffered_(std::move(other.buffered_)) {}

RawConnection::~RawConnection() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status RawConnection::Send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError("send failed");
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<HttpResponse> RawConnection::Exchange(std::string_view bytes,
                                                     absl::Time deadline) {
  Send(bytes).IgnoreError();
  return ReadResponse(deadline);
}

bool RawConnection::WaitReadable(absl::Time deadline) {
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    pollfd p{fd_, POLLIN, 0};
    const int rc = ::poll(&p, 1,
                          static_cast<int>(absl::ToInt64Milliseconds(
                              left + absl::Milliseconds(1))));
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) return false;
  }
}

absl::StatusOr<HttpResponse> RawConnection::ReadResponse(absl::Time deadline) {
  for (;;) {
    const std::size_t head_end = buffered_.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      absl::StatusOr<HttpResponse> response =
          ParseHead(absl::string_view(buffered_).substr(0, head_end));
      if (!response.ok()) return response.status();
      std::size_t length = 0;
      if (response->code >= 200) {
        auto it = response->headers.find("content-length");
        if (it != response->headers.end()) {
          if (!absl::SimpleAtoi(it->second, &length)) {
            return absl::DataLossError("bad content-length");
          }
        }
      }
      if (buffered_.size() >= head_end + 4 + length) {
        response->body = buffered_.substr(head_end + 4, length);
        buffered_.erase(0, head_end + 4 + length);
        return response;
      }
    }
    if (!WaitReadable(deadline)) {
      return absl::DeadlineExceededError(
          absl::StrCat("no complete response; got \"", buffered_, "\""));
    }
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::UnavailableError(absl::StrCat(
          "connection closed before a full response; got \"", buffered_, "\""));
    }
    buffered_.append(chunk, static_cast<std::size_t>(n));
  }
}

bool RawConnection::WaitForClose(absl::Time deadline) {
  for (;;) {
    if (!WaitReadable(deadline)) return false;
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n == 0) return true;
    if (n < 0 && errno != EINTR && errno != EAGAIN) return true;  // reset
  }
}

void RawConnection::Reset() {
  linger option{.l_onoff = 1, .l_linger = 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &option, sizeof(option));
  ::close(fd_);
  fd_ = -1;
}

bool CanConnect(std::uint16_t port) {
  return RawConnection::Connect(port).ok();
}

}  // namespace convocore::http::testing
