// Reads HTTP/1.1 requests (RFC 9112) from a connection's bytes, one after
// another, however the bytes are split or joined: pipelined requests, a
// request cut at any byte. Strict where leniency lets two readers disagree on
// where a request ends (Content-Length values that differ or do not parse
// (equal repeats are one value, as RFC 9112 section 6.3 allows), Transfer-
// Encoding beside Content-Length, bare LF, obs-fold, whitespace before a
// colon), and bounded: the request line and headers by max_header_bytes and
// kMaxHeaderFields, the body by max_body_bytes, a chunk size by 2^60.
// Pure: no socket, no clock.
#ifndef GATEWAY_HTTP_REQUEST_PARSER_H_
#define GATEWAY_HTTP_REQUEST_PARSER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/http/request.h"

namespace convocore::http {

struct RequestLimits {
  // The request line and every header line with their CRLFs, and the blank
  // line; a chunked body's trailer section likewise.
  std::size_t max_header_bytes = 64 << 10;
  std::size_t max_body_bytes = 1 << 20;
};

// More header fields than this is 431, however few bytes they take.
inline constexpr std::size_t kMaxHeaderFields = 256;

class RequestParser {
 public:
  enum class State {
    // Everything given was consumed and the request is not complete yet.
    kNeedMore,
    // The request line and headers are complete (request() has them, but no
    // body yet); reported once per request. Parse() again for the body.
    kHeadComplete,
    // The request is complete; TakeRequest() it, and Parse() the rest.
    kComplete,
    // The request is malformed or over a limit: error_code() and
    // error_message() say how. Nothing more can be read from the
    // connection, whose framing is lost.
    kError,
  };

  struct Result {
    State state = State::kNeedMore;
    // How many bytes of the input were used; the rest belongs to what
    // follows and must be given again.
    std::size_t consumed = 0;
  };

  explicit RequestParser(RequestLimits limits) : limits_(limits) {}

  // Reads from `input`, which continues what earlier calls left unconsumed,
  // up to the next event: the head complete, the request complete, an
  // error, or the input used up.
  Result Parse(std::string_view input);

  // The request being read (head only until kComplete).
  const HttpRequest& request() const { return request_; }
  // Whether the request line has been read (request() has its method,
  // path and version).
  bool has_request_line() const { return has_request_line_; }
  // True between the first byte of a request and its completion.
  bool in_request() const { return in_request_; }
  // After kHeadComplete: the body length the headers declare, if any.
  bool has_content_length() const { return has_content_length_; }
  std::uint64_t content_length() const { return content_length_; }

  // After kComplete: the request, and the parser ready for the next.
  HttpRequest TakeRequest();

  // After kError: 400, 413, 414, 431, 501 or 505, and why, in our words.
  int error_code() const { return error_code_; }
  const std::string& error_message() const { return error_message_; }

 private:
  enum class Phase { kHead, kBody, kChunkSize, kChunkData, kChunkDataEnd,
                     kTrailers, kDone, kFailed };

  Result Fail(int code, std::string message, std::size_t consumed);
  // Parses the complete head in `head` (without its final blank line).
  bool ParseHead(std::string_view head);
  bool ParseRequestLine(std::string_view line);
  bool AddHeader(std::string_view line);
  // Checks the headers together and picks how the body is framed.
  bool FrameBody();
  // Appends to the body what `rest` holds of the `remaining_` bytes still
  // to come, and returns how many that was.
  std::size_t TakeBody(std::string_view rest);

  const RequestLimits limits_;
  Phase phase_ = Phase::kHead;
  HttpRequest request_;
  bool in_request_ = false;
  bool has_request_line_ = false;
  bool has_content_length_ = false;
  std::uint64_t content_length_ = 0;
  // Body bytes still to come (Content-Length) or of the current chunk.
  std::uint64_t remaining_ = 0;
  // Where the search for the end of the head or of a line resumes, and
  // (in the head) where the current line starts and how many lines ended.
  std::size_t scanned_ = 0;
  std::size_t line_start_ = 0;
  std::size_t lines_ = 0;
  // Where the request line ends, once it has (lines_ >= 1).
  std::size_t request_line_end_ = 0;
  std::size_t trailer_bytes_ = 0;
  int error_code_ = 0;
  std::string error_message_;
};

}  // namespace convocore::http

#endif  // GATEWAY_HTTP_REQUEST_PARSER_H_
