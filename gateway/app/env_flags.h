// Flags from the environment, as a sidecar is configured: each flag --name
// has an environment variable GATEWAY_NAME (upper case), applied before the
// command line is parsed, so that a command-line flag wins over its variable
// and the variable over the default.
#ifndef GATEWAY_APP_ENV_FLAGS_H_
#define GATEWAY_APP_ENV_FLAGS_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace convocore::app {

// "GATEWAY_HTTP_PORT" for "http_port".
std::string EnvironmentVariableFor(std::string_view flag_name);

// The names of the flags (ABSL_FLAG) defined in the source file whose path
// ends with `file_suffix`, sorted.
std::vector<std::string> FlagsDefinedIn(std::string_view file_suffix);

// The value of an environment variable, or nullopt when unset.
using EnvironmentLookup =
    std::function<std::optional<std::string>(const std::string& name)>;
// The process environment.
std::optional<std::string> GetEnvironmentVariable(const std::string& name);

// For each flag in `flag_names` (registered with ABSL_FLAG), parses the
// value of its environment variable, when set, into the flag. The first
// value that does not parse is an error naming the variable and the flag.
absl::Status ApplyEnvironmentToFlags(absl::Span<const std::string> flag_names,
                                     const EnvironmentLookup& lookup);

// Variables that start with "GATEWAY_" but name no flag in `flag_names`:
// likely typos, worth a warning. `environment` is the process's "NAME=value"
// list (environ).
std::vector<std::string> UnknownGatewayVariables(
    absl::Span<const std::string> flag_names,
    const std::vector<std::string>& environment);

}  // namespace convocore::app

#endif  // GATEWAY_APP_ENV_FLAGS_H_
