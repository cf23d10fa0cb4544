#include "services/store/scoped_fd.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gateway/log/logger.h"

namespace convocore::store {

ScopedFd& ScopedFd::operator=(ScopedFd&& other) noexcept {
  if (this != &other) {
    ScopedFd old(fd_);  // closed (and a failure logged) on return
    fd_ = other.Release();
  }
  return *this;
}

ScopedFd::~ScopedFd() {
  if (fd_ < 0) return;
  if (close(fd_) != 0) {
    const int error = errno;
    log::Warning("cannot close a file descriptor of the event log",
                 {{"fd", fd_}, {"error", std::strerror(error)}});
  }
}

absl::Status ScopedFd::Close(absl::string_view what) {
  const int fd = Release();
  if (fd < 0 || close(fd) == 0) return absl::OkStatus();
  const int error = errno;
  return absl::UnavailableError(
      absl::StrCat("cannot close ", what, ": ", std::strerror(error)));
}

}  // namespace convocore::store
