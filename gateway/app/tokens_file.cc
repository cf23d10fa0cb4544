#include "gateway/app/tokens_file.h"

#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "gateway/app/options.h"

namespace convocore::app {

absl::StatusOr<std::shared_ptr<const auth::SubscriberTokens>>
ReadSubscriberTokensFile(const std::string& path) {
  absl::StatusOr<std::string> text =
      ReadFlagFile("subscriber_tokens_file", path);
  if (!text.ok()) return text.status();
  absl::StatusOr<auth::SubscriberTokens> tokens =
      auth::SubscriberTokens::Parse(*text);
  if (!tokens.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--subscriber_tokens_file ", path, ": ", tokens.status().message()));
  }
  return std::make_shared<const auth::SubscriberTokens>(*std::move(tokens));
}

FileVersion FileVersion::Of(const std::string& path) {
  FileVersion version;
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) return version;
  version.exists = true;
  version.device = info.st_dev;
  version.inode = info.st_ino;
  version.size = info.st_size;
  version.modified = info.st_mtim;
  version.changed = info.st_ctim;
  return version;
}

bool FileVersion::operator==(const FileVersion& other) const {
  return exists == other.exists && device == other.device &&
         inode == other.inode && size == other.size &&
         modified.tv_sec == other.modified.tv_sec &&
         modified.tv_nsec == other.modified.tv_nsec &&
         changed.tv_sec == other.changed.tv_sec &&
         changed.tv_nsec == other.changed.tv_nsec;
}

}  // namespace convocore::app
