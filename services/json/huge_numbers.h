// RapidJSON 1.1.0 refuses a number whose exponent or integer part is beyond
// a double's range (1e400), even when it hands numbers over as text. A
// parser that must keep such numbers swaps them, before an in-situ parse,
// for a valid number of the same length ("0.000"), and puts their text back
// when the parser reports a number at a swapped offset.
#ifndef SERVICES_JSON_HUGE_NUMBERS_H_
#define SERVICES_JSON_HUGE_NUMBERS_H_

#include <cstddef>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace convocore::json {

// False when `text` cannot hold a number RapidJSON refuses: it has no
// exponent of three or more digits and no 300 digits in a row. Cheap; lets
// almost every text skip SwapHugeNumbers().
bool MightHoldHugeNumber(absl::string_view text);

// Whether `token` is exactly one JSON number (RFC 8259 section 6).
bool IsJsonNumberToken(absl::string_view token);

// Swaps every well-formed number token of the JSON text `buffer` (outside
// strings) that RapidJSON might refuse for a same-length stand-in, and
// records its text in `swapped` by offset. Malformed tokens are left for the
// parser to refuse.
void SwapHugeNumbers(char* buffer, std::size_t size,
                     absl::flat_hash_map<std::size_t, std::string>* swapped);

}  // namespace convocore::json

#endif  // SERVICES_JSON_HUGE_NUMBERS_H_
