#include "gateway/log/logger.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gateway/log/json_string.h"

namespace convocore::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<Format> g_format{Format::kPlain};

absl::Mutex g_sink_mu;
std::function<void(std::string_view)>* g_sink ABSL_GUARDED_BY(g_sink_mu) =
    nullptr;

absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }

void WriteToStderr(std::string_view line) {
  while (!line.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to report it
    line.remove_prefix(static_cast<std::size_t>(n));
  }
}

// A logfmt value: bare when it is a plain token, quoted otherwise.
void AppendPlainValue(std::string* out, std::string_view value) {
  bool bare = !value.empty();
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || c == '"' || c == '=' || c == '\\' || u == 0x7F) {
      bare = false;
      break;
    }
  }
  if (bare) {
    out->append(value);
  } else {
    AppendJsonString(out, value);
  }
}

}  // namespace

absl::StatusOr<Level> ParseLevel(std::string_view text) {
  const std::string lower = absl::AsciiStrToLower(Absl(text));
  if (lower == "debug") return Level::kDebug;
  if (lower == "info") return Level::kInfo;
  if (lower == "warning" || lower == "warn") return Level::kWarning;
  if (lower == "error") return Level::kError;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown log level \"", Absl(text), "\" (debug, info, warning, error)"));
}

absl::StatusOr<Format> ParseFormat(std::string_view text) {
  const std::string lower = absl::AsciiStrToLower(Absl(text));
  if (lower == "plain") return Format::kPlain;
  if (lower == "json") return Format::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log format \"", Absl(text), "\" (plain, json)"));
}

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "info";
}

Field::Field(std::string_view k, double v)
    : key(k), value(absl::StrCat(v)), quoted(false) {}
Field::Field(std::string_view k, absl::Duration v)
    : key(k), value(absl::FormatDuration(v)) {}
Field::Field(std::string_view k, const absl::Status& v)
    : key(k), value(v.ToString()) {}

void Configure(Level level, Format format) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
  g_format.store(format, std::memory_order_relaxed);
}

void SetSinkForTesting(std::function<void(std::string_view)> sink) {
  absl::MutexLock lock(&g_sink_mu);
  delete g_sink;
  g_sink = sink ? new std::function<void(std::string_view)>(std::move(sink))
                : nullptr;
}

bool Enabled(Level level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

std::string FormatLine(Format format, absl::Time time, Level level,
                       std::string_view message,
                       std::initializer_list<Field> fields) {
  const std::string timestamp =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone());
  std::string line;
  if (format == Format::kJson) {
    absl::StrAppend(&line, "{\"time\":\"", timestamp, "\",\"level\":\"",
                    Absl(LevelName(level)), "\",\"message\":");
    AppendJsonString(&line, message);
    for (const Field& field : fields) {
      line.push_back(',');
      AppendJsonString(&line, field.key);
      line.push_back(':');
      if (field.quoted) {
        AppendJsonString(&line, field.value);
      } else {
        line.append(field.value);
      }
    }
    line.push_back('}');
    return line;
  }
  std::string level_name = absl::AsciiStrToUpper(Absl(LevelName(level)));
  absl::StrAppend(&line, timestamp, " ", level_name, " ");
  // The message is free text; only line breaks would break the format.
  for (char c : message) {
    if (c == '\n' || c == '\r') {
      line.push_back(' ');
    } else {
      line.push_back(c);
    }
  }
  for (const Field& field : fields) {
    line.push_back(' ');
    line.append(field.key);
    line.push_back('=');
    AppendPlainValue(&line, field.value);
  }
  return line;
}

void Log(Level level, std::string_view message,
         std::initializer_list<Field> fields) {
  if (!Enabled(level)) return;
  std::string line = FormatLine(g_format.load(std::memory_order_relaxed),
                                absl::Now(), level, message, fields);
  line.push_back('\n');
  absl::MutexLock lock(&g_sink_mu);
  if (g_sink != nullptr) {
    (*g_sink)(line);
  } else {
    WriteToStderr(line);
  }
}

}  // namespace convocore::log
