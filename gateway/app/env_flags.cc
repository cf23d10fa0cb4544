#include "gateway/app/env_flags.h"

#include <algorithm>
#include <cstdlib>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace convocore::app {
namespace {

constexpr absl::string_view kPrefix = "GATEWAY_";

absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

std::string EnvironmentVariableFor(std::string_view flag_name) {
  return absl::StrCat(kPrefix, absl::AsciiStrToUpper(Absl(flag_name)));
}

std::vector<std::string> FlagsDefinedIn(std::string_view file_suffix) {
  std::vector<std::string> names;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (absl::EndsWith(flag->Filename(), Absl(file_suffix))) {
      names.emplace_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<std::string> GetEnvironmentVariable(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

absl::Status ApplyEnvironmentToFlags(absl::Span<const std::string> flag_names,
                                     const EnvironmentLookup& lookup) {
  for (const std::string& name : flag_names) {
    const std::string variable = EnvironmentVariableFor(name);
    std::optional<std::string> value = lookup(variable);
    if (!value.has_value()) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) {
      return absl::InternalError(absl::StrCat("no flag --", name));
    }
    std::string error;
    if (!flag->ParseFrom(*value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat(variable, "=\"", *value,
                                                     "\" is not a valid --",
                                                     Absl(name), ": ", error));
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> UnknownGatewayVariables(
    absl::Span<const std::string> flag_names,
    const std::vector<std::string>& environment) {
  std::vector<std::string> unknown;
  for (const std::string& entry : environment) {
    const std::string name = entry.substr(0, entry.find('='));
    if (!absl::StartsWith(name, kPrefix)) continue;
    bool known = false;
    for (const std::string& flag : flag_names) {
      known |= EnvironmentVariableFor(flag) == name;
    }
    if (!known) unknown.push_back(name);
  }
  return unknown;
}

}  // namespace convocore::app
