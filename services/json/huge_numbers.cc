#include "services/json/huge_numbers.h"

#include <cstring>
#include <string>

#include "absl/strings/ascii.h"

namespace convocore::json {

bool MightHoldHugeNumber(absl::string_view text) {
  std::size_t digits = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c >= '0' && c <= '9') {
      if (++digits >= 300) return true;
      continue;
    }
    digits = 0;
    if (c != 'e' && c != 'E') continue;
    std::size_t j = i + 1;
    if (j < text.size() && (text[j] == '+' || text[j] == '-')) ++j;
    std::size_t exponent_digits = 0;
    while (j < text.size() && text[j] >= '0' && text[j] <= '9') {
      ++exponent_digits;
      ++j;
    }
    if (exponent_digits >= 3) return true;
  }
  return false;
}

// Whether `token` is exactly one JSON number (RFC 8259 section 6).
bool IsJsonNumberToken(absl::string_view token) {
  std::size_t i = 0;
  const auto digits = [&] {
    const std::size_t from = i;
    while (i < token.size() && absl::ascii_isdigit(token[i])) ++i;
    return i - from;
  };
  if (i < token.size() && token[i] == '-') ++i;
  if (i < token.size() && token[i] == '0') {
    ++i;
  } else if (digits() == 0) {
    return false;
  }
  if (i < token.size() && token[i] == '.') {
    ++i;
    if (digits() == 0) return false;
  }
  if (i < token.size() && (token[i] == 'e' || token[i] == 'E')) {
    ++i;
    if (i < token.size() && (token[i] == '+' || token[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == token.size();
}

// Swaps every number token of `buffer` (outside strings) that RapidJSON
// might refuse for a same-length stand-in, recording its text by offset.
void SwapHugeNumbers(char* buffer, std::size_t size,
                     absl::flat_hash_map<std::size_t, std::string>* swapped) {
  std::size_t i = 0;
  while (i < size) {
    const char c = buffer[i];
    if (c == '"') {  // skip the string, escapes included
      for (++i; i < size && buffer[i] != '"'; ++i) {
        if (buffer[i] == '\\') ++i;
      }
      ++i;
      continue;
    }
    if (c != '-' && (c < '0' || c > '9')) {
      ++i;
      continue;
    }
    const std::size_t start = i;
    while (i < size && (absl::ascii_isdigit(buffer[i]) || buffer[i] == '-' ||
                        buffer[i] == '+' || buffer[i] == '.' ||
                        buffer[i] == 'e' || buffer[i] == 'E')) {
      ++i;
    }
    const absl::string_view token(buffer + start, i - start);
    // A token the parser refuses as malformed is left for it to refuse.
    const std::size_t digits_from = token[0] == '-' ? 1 : 0;
    const std::size_t length = token.size() - digits_from;
    if (length < 3 || !MightHoldHugeNumber(token) ||
        !IsJsonNumberToken(token)) {
      continue;
    }
    swapped->emplace(start, std::string(token));
    char* digits = buffer + start + digits_from;
    digits[0] = '0';
    digits[1] = '.';
    std::memset(digits + 2, '0', length - 2);
  }
}

}  // namespace convocore::json
