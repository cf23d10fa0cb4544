// JSON string quoting for text we do not control (parser messages, request
// paths, field names): the result is always a valid JSON string, whatever
// the bytes, so that error bodies and JSON log lines always parse.
#ifndef GATEWAY_LOG_JSON_STRING_H_
#define GATEWAY_LOG_JSON_STRING_H_

#include <string>
#include <string_view>

namespace convocore::log {

// Appends `text` as a quoted JSON string: quotes, backslashes and control
// characters escaped, each byte that is not part of valid UTF-8 replaced by
// U+FFFD.
void AppendJsonString(std::string* out, std::string_view text);

}  // namespace convocore::log

#endif  // GATEWAY_LOG_JSON_STRING_H_
