#include "services/groups/group_state_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "services/store/posix_file.h"

namespace convocore::groups {

namespace posix = convocore::store::posix;

namespace {

constexpr absl::string_view kSuffix = ".group";
constexpr absl::string_view kTemporarySuffix = ".group.tmp";

class GroupStateDirectory final : public GroupStateStore {
 public:
  explicit GroupStateDirectory(std::string directory)
      : directory_(std::move(directory)) {}

  absl::StatusOr<std::vector<GroupState>> LoadAll() override {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<std::vector<std::string>> names = ListLocked();
    if (!names.ok()) return names.status();
    std::vector<GroupState> states;
    for (const std::string& name : *names) {
      const std::string path = absl::StrCat(directory_, "/", name);
      if (absl::EndsWith(name, kTemporarySuffix)) {
        // A save that crashed before its rename: the old state stands.
        if (absl::Status gone = posix::Unlink(path);
            !gone.ok() && !absl::IsNotFound(gone)) {
          return gone;
        }
        continue;
      }
      if (!absl::EndsWith(name, kSuffix)) continue;
      absl::StatusOr<store::ScopedFd> fd = posix::Open(path, O_RDONLY);
      if (!fd.ok()) return fd.status();
      absl::StatusOr<std::string> bytes = posix::ReadWhole(fd->get(), path);
      if (!bytes.ok()) return bytes.status();
      GroupState state;
      if (!state.ParseFromString(*bytes) || state.settings().name().empty()) {
        return absl::DataLossError(absl::StrCat(
            "consumer group state ", path,
            " cannot be parsed; move it away to start without that group"));
      }
      states.push_back(std::move(state));
    }
    return states;
  }

  absl::Status Save(const GroupState& state) override {
    absl::MutexLock lock(&mu_);
    const std::string path = PathOf(state.settings().name());
    const std::string temporary = absl::StrCat(path, ".tmp");
    {
      absl::StatusOr<store::ScopedFd> fd =
          posix::Open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (!fd.ok()) return fd.status();
      if (absl::Status s = posix::WriteAll(fd->get(), state.SerializeAsString(),
                                           0, temporary);
          !s.ok()) {
        return s;
      }
      if (absl::Status s = posix::SyncData(fd->get(), temporary); !s.ok()) {
        return s;
      }
    }
    if (absl::Status s = posix::Rename(temporary, path); !s.ok()) return s;
    return SyncDirectoryLocked();
  }

  absl::Status Remove(const std::string& name) override {
    absl::MutexLock lock(&mu_);
    absl::Status gone = posix::Unlink(PathOf(name));
    if (!gone.ok() && !absl::IsNotFound(gone)) return gone;
    return SyncDirectoryLocked();
  }

 private:
  std::string PathOf(const std::string& name) const {
    return absl::StrCat(directory_, "/", name, kSuffix);
  }

  absl::Status SyncDirectoryLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::StatusOr<store::ScopedFd> dir =
        posix::Open(directory_, O_RDONLY | O_DIRECTORY);
    if (!dir.ok()) return dir.status();
    return posix::SyncDirectory(dir->get(), directory_);
  }

  absl::StatusOr<std::vector<std::string>> ListLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    DIR* dir = opendir(directory_.c_str());
    if (dir == nullptr) {
      return posix::ErrnoError(errno, "list the consumer groups in",
                               directory_);
    }
    std::vector<std::string> names;
    while (const dirent* entry = readdir(dir))
      names.emplace_back(entry->d_name);
    closedir(dir);
    std::sort(names.begin(), names.end());
    return names;
  }

  const std::string directory_;
  absl::Mutex mu_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GroupStateStore>> OpenGroupStateDirectory(
    const std::string& directory) {
  if (mkdir(directory.c_str(), 0755) != 0 && errno != EEXIST) {
    return posix::ErrnoError(errno, "create the consumer group directory",
                             directory);
  }
  return std::make_unique<GroupStateDirectory>(directory);
}

}  // namespace convocore::groups
