// --subscriber_tokens_file: read at start, and again on SIGHUP or when the
// file changes (Kubernetes swaps a mounted Secret's files by symlink, which
// changes the inode that the path resolves to).
#ifndef GATEWAY_APP_TOKENS_FILE_H_
#define GATEWAY_APP_TOKENS_FILE_H_

#include <sys/types.h>

#include <ctime>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/auth/subscriber_tokens.h"

namespace convocore::app {

// The file's tokens. FAILED_PRECONDITION naming the path and the reason
// (unreadable, or what SubscriberTokens::Parse() said, with the line).
absl::StatusOr<std::shared_ptr<const auth::SubscriberTokens>>
ReadSubscriberTokensFile(const std::string& path);

// What tells one version of a file from the next, through symlinks.
struct FileVersion {
  bool exists = false;
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  timespec modified{};
  timespec changed{};

  static FileVersion Of(const std::string& path);
  bool operator==(const FileVersion& other) const;
};

}  // namespace convocore::app

#endif  // GATEWAY_APP_TOKENS_FILE_H_
