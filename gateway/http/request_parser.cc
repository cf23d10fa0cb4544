#include "gateway/http/request_parser.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace convocore::http {
namespace {

// A chunk-size line longer than this (hex digits and extensions) is refused.
constexpr std::size_t kMaxChunkLine = 1024;
// 2^60: more hex digits than this is refused before any arithmetic.
constexpr std::size_t kMaxChunkSizeDigits = 15;
// 19 digits always fit an std::uint64_t; a longer Content-Length (without
// leading zeros) counts as larger than any limit.
constexpr std::size_t kMaxLengthDigits = 19;
// How much of a client's value an error message quotes.
constexpr std::size_t kMaxQuoted = 40;

absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }

// RFC 9110 §5.6.2.
bool IsTchar(unsigned char c) {
  if (absl::ascii_isalnum(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return IsTchar(static_cast<unsigned char>(c));
  });
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string Quoted(std::string_view s) {
  std::string out(s.substr(0, kMaxQuoted));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '"') c = '?';
  }
  if (s.size() > kMaxQuoted) out += "...";
  return absl::StrCat("\"", out, "\"");
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(Absl(a), Absl(b));
}

// The path of a request target, without query or fragment: origin-form
// "/p?q", absolute-form "http://host:port/p?q" (RFC 9112 §3.2.2), "*".
// Anything else is kept as sent (no route matches it).
std::string PathOf(std::string_view target) {
  auto cut_query = [](std::string_view s) {
    return s.substr(0, std::min(s.find('?'), s.find('#')));
  };
  if (target.front() == '/') return std::string(cut_query(target));
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() >= scheme.size() &&
        EqualsIgnoreCase(target.substr(0, scheme.size()), scheme)) {
      std::string_view rest = target.substr(scheme.size());
      const std::size_t path = rest.find_first_of("/?#");
      if (path == std::string_view::npos || rest[path] != '/') return "/";
      return std::string(cut_query(rest.substr(path)));
    }
  }
  return std::string(target);
}

}  // namespace

RequestParser::Result RequestParser::Fail(int code, std::string message,
                                          std::size_t consumed) {
  phase_ = Phase::kFailed;
  error_code_ = code;
  error_message_ = std::move(message);
  return {State::kError, consumed};
}

RequestParser::Result RequestParser::Parse(std::string_view input) {
  std::size_t used = 0;
  for (;;) {
    std::string_view rest = input.substr(used);
    switch (phase_) {
      case Phase::kFailed:
        return {State::kError, used};
      case Phase::kDone:
        return {State::kComplete, used};
      case Phase::kHead: {
        if (!in_request_) {
          // RFC 9112 §2.2: empty lines before a request line are ignored.
          while (rest.size() >= 2 && rest[0] == '\r' && rest[1] == '\n') {
            rest.remove_prefix(2);
            used += 2;
          }
          if (rest.empty() || (rest.size() == 1 && rest[0] == '\r')) {
            return {State::kNeedMore, used};
          }
          if (rest[0] == '\n') {
            return Fail(400, "malformed HTTP request: a bare LF line ending",
                        used);
          }
          in_request_ = true;
          scanned_ = line_start_ = lines_ = request_line_end_ = 0;
        }
        std::optional<std::size_t> head_end;
        while (scanned_ < rest.size()) {
          const std::size_t lf = rest.find('\n', scanned_);
          if (lf == std::string_view::npos) {
            scanned_ = rest.size();
            break;
          }
          scanned_ = lf + 1;
          if (lf == 0 || rest[lf - 1] != '\r') {
            return Fail(400, "malformed HTTP request: a bare LF line ending",
                        used);
          }
          if (lf - 1 == line_start_) {  // the blank line
            head_end = lf + 1;
            break;
          }
          line_start_ = lf + 1;
          if (++lines_ == 1) request_line_end_ = line_start_;
          if (lines_ > kMaxHeaderFields + 1) {
            return Fail(431,
                        absl::StrCat("the request has more than ",
                                     kMaxHeaderFields, " header fields"),
                        used);
          }
        }
        const std::size_t head_bytes = head_end ? *head_end : rest.size();
        if (head_bytes > limits_.max_header_bytes &&
            (lines_ == 0 || request_line_end_ > limits_.max_header_bytes)) {
          // The request line alone is over the limit: its target is what is
          // too long (RFC 9112 section 3).
          return Fail(414,
                      absl::StrCat("the request line is longer than the limit "
                                   "of ",
                                   limits_.max_header_bytes, " bytes"),
                      used);
        }
        if (head_bytes > limits_.max_header_bytes) {
          return Fail(431,
                      absl::StrCat("the request line and headers are larger "
                                   "than the limit of ",
                                   limits_.max_header_bytes, " bytes"),
                      used);
        }
        if (!head_end) return {State::kNeedMore, used};
        // Without the blank line's CRLF, and the last line's.
        if (!ParseHead(rest.substr(0, *head_end - 4))) {
          return {State::kError, used};
        }
        used += *head_end;
        scanned_ = 0;
        if (!FrameBody()) return {State::kError, used};
        return {State::kHeadComplete, used};
      }
      case Phase::kBody: {
        used += TakeBody(rest);
        if (remaining_ > 0) return {State::kNeedMore, used};
        phase_ = Phase::kDone;
        break;
      }
      case Phase::kChunkSize: {
        const std::size_t lf = rest.find('\n', scanned_);
        if (lf == std::string_view::npos) {
          if (rest.size() > kMaxChunkLine) {
            return Fail(400, "malformed chunked body: a chunk-size line is "
                             "too long", used);
          }
          scanned_ = rest.size();
          return {State::kNeedMore, used};
        }
        if (lf == 0 || rest[lf - 1] != '\r') {
          return Fail(400, "malformed chunked body: a bare LF line ending",
                      used);
        }
        const std::string_view line = rest.substr(0, lf - 1);
        std::size_t digits = 0;
        while (digits < line.size() &&
               absl::ascii_isxdigit(static_cast<unsigned char>(line[digits]))) {
          ++digits;
        }
        if (digits == 0) {
          return Fail(400, absl::StrCat("malformed chunked body: invalid "
                                        "chunk size ", Quoted(line)),
                      used);
        }
        if (digits > kMaxChunkSizeDigits) {
          return Fail(400, absl::StrCat("malformed chunked body: the chunk "
                                        "size ", Quoted(line.substr(0, digits)),
                                        " is too large"),
                      used);
        }
        const std::string_view after = TrimOws(line.substr(digits));
        if (!after.empty() && after.front() != ';') {
          return Fail(400, absl::StrCat("malformed chunked body: invalid "
                                        "chunk size ", Quoted(line)),
                      used);
        }
        std::uint64_t size = 0;
        for (char c : line.substr(0, digits)) {
          size = size * 16 + (absl::ascii_isdigit(static_cast<unsigned char>(c))
                                  ? c - '0'
                                  : absl::ascii_tolower(c) - 'a' + 10);
        }
        if (size > limits_.max_body_bytes - request_.body.size()) {
          return Fail(413, absl::StrCat("the body is larger than the limit of ",
                                        limits_.max_body_bytes, " bytes"),
                      used);
        }
        used += lf + 1;
        scanned_ = 0;
        if (size == 0) {
          phase_ = Phase::kTrailers;
          trailer_bytes_ = 0;
        } else {
          remaining_ = size;
          phase_ = Phase::kChunkData;
        }
        break;
      }
      case Phase::kChunkData: {
        used += TakeBody(rest);
        if (remaining_ > 0) return {State::kNeedMore, used};
        phase_ = Phase::kChunkDataEnd;
        break;
      }
      case Phase::kChunkDataEnd: {
        if (rest.size() < 2) {
          if (!rest.empty() && rest[0] != '\r') {
            return Fail(400, "malformed chunked body: a chunk's data is not "
                             "followed by CRLF", used);
          }
          return {State::kNeedMore, used};
        }
        if (rest[0] != '\r' || rest[1] != '\n') {
          return Fail(400, "malformed chunked body: a chunk's data is not "
                           "followed by CRLF", used);
        }
        used += 2;
        phase_ = Phase::kChunkSize;
        break;
      }
      case Phase::kTrailers: {
        const std::size_t lf = rest.find('\n', scanned_);
        if (lf == std::string_view::npos) {
          if (trailer_bytes_ + rest.size() > limits_.max_header_bytes) {
            return Fail(431, absl::StrCat("the trailer section is larger than "
                                          "the limit of ",
                                          limits_.max_header_bytes, " bytes"),
                        used);
          }
          scanned_ = rest.size();
          return {State::kNeedMore, used};
        }
        if (lf == 0 || rest[lf - 1] != '\r') {
          return Fail(400, "malformed chunked body: a bare LF line ending",
                      used);
        }
        trailer_bytes_ += lf + 1;
        if (trailer_bytes_ > limits_.max_header_bytes) {
          return Fail(431, absl::StrCat("the trailer section is larger than "
                                        "the limit of ",
                                        limits_.max_header_bytes, " bytes"),
                      used);
        }
        const std::string_view line = rest.substr(0, lf - 1);
        used += lf + 1;
        scanned_ = 0;
        if (line.empty()) {
          phase_ = Phase::kDone;
          break;
        }
        // Trailer fields are read and dropped: nothing here needs them.
        if (line.front() == ' ' || line.front() == '\t' ||
            line.find(':') == std::string_view::npos) {
          return Fail(400, "malformed chunked body: an invalid trailer field",
                      used);
        }
        break;
      }
    }
  }
}

bool RequestParser::ParseHead(std::string_view head) {
  std::size_t at = head.find("\r\n");
  if (!ParseRequestLine(head.substr(0, at))) return false;
  while (at != std::string_view::npos) {
    const std::size_t start = at + 2;
    at = head.find("\r\n", start);
    if (!AddHeader(head.substr(start, at == std::string_view::npos
                                          ? std::string_view::npos
                                          : at - start))) {
      return false;
    }
  }
  return true;
}

bool RequestParser::ParseRequestLine(std::string_view line) {
  // RFC 9112 §3: method SP request-target SP HTTP-version, single spaces.
  const std::size_t first = line.find(' ');
  const std::size_t second =
      first == std::string_view::npos ? first : line.find(' ', first + 1);
  if (second == std::string_view::npos ||
      line.find(' ', second + 1) != std::string_view::npos) {
    Fail(400, absl::StrCat("malformed HTTP request line ", Quoted(line)), 0);
    return false;
  }
  const std::string_view method = line.substr(0, first);
  const std::string_view target = line.substr(first + 1, second - first - 1);
  const std::string_view version = line.substr(second + 1);
  if (!IsToken(method)) {
    Fail(400, absl::StrCat("malformed HTTP request: invalid method ",
                           Quoted(method)), 0);
    return false;
  }
  if (target.empty() ||
      std::any_of(target.begin(), target.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f;
      })) {
    Fail(400, absl::StrCat("malformed HTTP request: invalid request target ",
                           Quoted(target)), 0);
    return false;
  }
  if (version == "HTTP/1.1") {
    request_.version = HttpVersion::kHttp11;
  } else if (version == "HTTP/1.0") {
    request_.version = HttpVersion::kHttp10;
  } else if (version.size() == 8 && absl::StartsWith(Absl(version), "HTTP/") &&
             absl::ascii_isdigit(static_cast<unsigned char>(version[5])) &&
             version[6] == '.' &&
             absl::ascii_isdigit(static_cast<unsigned char>(version[7]))) {
    Fail(505, absl::StrCat("HTTP version ", Quoted(version),
                           " is not supported; send HTTP/1.1"), 0);
    return false;
  } else {
    Fail(400, absl::StrCat("malformed HTTP request: invalid HTTP version ",
                           Quoted(version)), 0);
    return false;
  }
  request_.method = std::string(method);
  request_.path = PathOf(target);
  has_request_line_ = true;
  return true;
}

bool RequestParser::AddHeader(std::string_view line) {
  if (line.empty()) return true;
  if (line.front() == ' ' || line.front() == '\t') {
    Fail(400, "malformed HTTP request: obsolete line folding in a header "
              "field", 0);
    return false;
  }
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    Fail(400, absl::StrCat("malformed HTTP request: a header line without a "
                           "colon ", Quoted(line)), 0);
    return false;
  }
  const std::string_view name = line.substr(0, colon);
  if (!IsToken(name)) {
    Fail(400, absl::StrCat("malformed HTTP request: invalid header name ",
                           Quoted(name)), 0);
    return false;
  }
  const std::string_view value = TrimOws(line.substr(colon + 1));
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t') || u == 0x7f) {
      Fail(400, absl::StrCat("malformed HTTP request: a control character in "
                             "header ", Quoted(name)), 0);
      return false;
    }
  }
  request_.headers.emplace_back(std::string(name), std::string(value));
  return true;
}

bool RequestParser::FrameBody() {
  int hosts = 0;
  std::optional<std::uint64_t> length;
  std::string codings;
  for (const auto& [name, value] : request_.headers) {
    if (EqualsIgnoreCase(name, "Host")) {
      ++hosts;
    } else if (EqualsIgnoreCase(name, "Content-Length")) {
      // A list of the same value ("5, 5") is one length (RFC 9110 §8.6).
      std::string_view values = value;
      for (;;) {
        const std::size_t comma = values.find(',');
        const std::string_view one = TrimOws(values.substr(0, comma));
        std::uint64_t parsed = 0;
        if (one.empty() ||
            !std::all_of(one.begin(), one.end(), [](char c) {
              return absl::ascii_isdigit(static_cast<unsigned char>(c));
            })) {
          Fail(400, absl::StrCat("invalid Content-Length ", Quoted(value),
                                 ": not a number of bytes"), 0);
          return false;
        }
        // A number too long for 64 bits is larger than any limit.
        const std::string_view zeros = one.substr(
            0, std::min(one.find_first_not_of('0'), one.size() - 1));
        const std::string_view significant = one.substr(zeros.size());
        if (significant.size() > kMaxLengthDigits) {
          parsed = UINT64_MAX;
        } else {
          for (char c : significant) parsed = parsed * 10 + (c - '0');
        }
        if (length && *length != parsed) {
          Fail(400, "conflicting Content-Length values", 0);
          return false;
        }
        length = parsed;
        if (comma == std::string_view::npos) break;
        values.remove_prefix(comma + 1);
      }
    } else if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
      if (!codings.empty()) codings += ',';
      codings += value;
    }
  }
  if (request_.version == HttpVersion::kHttp11 && hosts == 0) {
    Fail(400, "an HTTP/1.1 request without a Host header", 0);
    return false;
  }
  if (hosts > 1) {
    Fail(400, "more than one Host header", 0);
    return false;
  }
  if (!codings.empty()) {
    if (length) {
      Fail(400, "both Transfer-Encoding and Content-Length", 0);
      return false;
    }
    if (request_.version == HttpVersion::kHttp10) {
      Fail(400, "Transfer-Encoding in an HTTP/1.0 request", 0);
      return false;
    }
    std::string_view list = codings;
    bool chunked_last = false;
    for (;;) {
      const std::size_t comma = list.find(',');
      const std::string_view coding = TrimOws(list.substr(0, comma));
      if (!coding.empty()) {
        if (chunked_last) {
          Fail(400, "a transfer coding after chunked", 0);
          return false;
        }
        if (!EqualsIgnoreCase(coding, "chunked")) {
          Fail(501, absl::StrCat("transfer coding ", Quoted(coding),
                                 " is not supported; send the body as is "
                                 "or chunked"), 0);
          return false;
        }
        chunked_last = true;
      }
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
    if (!chunked_last) {
      Fail(400, "an empty Transfer-Encoding", 0);
      return false;
    }
    phase_ = Phase::kChunkSize;
    return true;
  }
  has_content_length_ = length.has_value();
  content_length_ = length.value_or(0);
  if (content_length_ > limits_.max_body_bytes) {
    Fail(413, absl::StrCat("the body is larger than the limit of ",
                           limits_.max_body_bytes, " bytes"), 0);
    return false;
  }
  remaining_ = content_length_;
  phase_ = remaining_ > 0 ? Phase::kBody : Phase::kDone;
  if (remaining_ > 0) request_.body.reserve(remaining_);
  return true;
}

std::size_t RequestParser::TakeBody(std::string_view rest) {
  const auto n = static_cast<std::size_t>(
      std::min<std::uint64_t>(remaining_, rest.size()));
  request_.body.append(rest.data(), n);
  remaining_ -= n;
  return n;
}

HttpRequest RequestParser::TakeRequest() {
  HttpRequest request = std::move(request_);
  request_ = HttpRequest();
  phase_ = Phase::kHead;
  in_request_ = false;
  has_request_line_ = false;
  has_content_length_ = false;
  content_length_ = 0;
  remaining_ = 0;
  scanned_ = line_start_ = lines_ = request_line_end_ = 0;
  trailer_bytes_ = 0;
  return request;
}

}  // namespace convocore::http
