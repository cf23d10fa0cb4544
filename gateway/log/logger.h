// The gateway's logger: one line per event of note, plain (logfmt-like) or
// JSON, filtered by level, written to stderr with one write per line.
//
// Debian's Abseil has no absl/log and the gateway needs little: a message
// and key=value fields. Callers must never pass the workspace secret or a
// webhook payload as a field; the logger cannot tell them apart from other
// text.
//
//   log::Info("http server listening", {{"port", port}, {"threads", 4}});
#ifndef GATEWAY_LOG_LOGGER_H_
#define GATEWAY_LOG_LOGGER_H_

#include <concepts>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace convocore::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };
enum class Format { kPlain, kJson };

// "debug", "info", "warning" (or "warn"), "error".
absl::StatusOr<Level> ParseLevel(std::string_view text);
// "plain" or "json".
absl::StatusOr<Format> ParseFormat(std::string_view text);
std::string_view LevelName(Level level);

// One key=value of a log line. Numbers and booleans are JSON numbers and
// booleans in the JSON format; everything else is a string.
struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, bool v)
      : key(k), value(v ? "true" : "false"), quoted(false) {}
  template <std::integral T>
  Field(std::string_view k, T v)
      : key(k), value(std::to_string(v)), quoted(false) {}
  Field(std::string_view k, double v);
  Field(std::string_view k, absl::Duration v);
  Field(std::string_view k, const absl::Status& v);

  std::string_view key;
  std::string value;
  bool quoted = true;
};

// Sets the threshold and the format. Call once at startup; thread-safe.
void Configure(Level level, Format format);
// Replaces where lines go (default: stderr); nullptr restores stderr. Tests.
void SetSinkForTesting(std::function<void(std::string_view line)> sink);

bool Enabled(Level level);
void Log(Level level, std::string_view message,
         std::initializer_list<Field> fields = {});

inline void Debug(std::string_view message,
                  std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kDebug)) Log(Level::kDebug, message, fields);
}
inline void Info(std::string_view message,
                 std::initializer_list<Field> fields = {}) {
  Log(Level::kInfo, message, fields);
}
inline void Warning(std::string_view message,
                    std::initializer_list<Field> fields = {}) {
  Log(Level::kWarning, message, fields);
}
inline void Error(std::string_view message,
                  std::initializer_list<Field> fields = {}) {
  Log(Level::kError, message, fields);
}

// The line Log() would write, without the trailing newline; exposed for
// tests.
std::string FormatLine(Format format, absl::Time time, Level level,
                       std::string_view message,
                       std::initializer_list<Field> fields);

}  // namespace convocore::log

#endif  // GATEWAY_LOG_LOGGER_H_
