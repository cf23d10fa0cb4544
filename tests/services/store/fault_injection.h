// Ways to make a data directory fail for the disk store's tests and the
// gateway's integration tests: a small tmpfs filled to the last byte, a
// read-only bind mount, and the immutable attribute on an open file. Root
// ignores permission bits, so chmod cannot do it. Each needs root
// (CAP_SYS_ADMIN, CAP_LINUX_IMMUTABLE) and reports errno so that a test can
// skip with a clear message where that is not given.
#ifndef TESTS_SERVICES_STORE_FAULT_INJECTION_H_
#define TESTS_SERVICES_STORE_FAULT_INJECTION_H_

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>

namespace convocore::store::testing {

// A mount undone (lazily) on destruction, whatever happened.
class ScopedMount {
 public:
  ScopedMount() = default;
  ScopedMount(const ScopedMount&) = delete;
  ScopedMount& operator=(const ScopedMount&) = delete;
  ~ScopedMount() {
    if (!target_.empty()) umount2(target_.c_str(), MNT_DETACH);
  }

  // Mounts a tmpfs with `options` (e.g. "size=2m") on `target`; 0 or errno.
  int MountTmpfs(const std::filesystem::path& target, const char* options) {
    if (mount("tmpfs", target.c_str(), "tmpfs", 0, options) != 0) return errno;
    target_ = target;
    return 0;
  }

  // Bind-mounts `target` on itself, read-only; 0 or errno. Only possible
  // while no file below it is open for writing.
  int BindReadOnly(const std::filesystem::path& target) {
    if (mount(target.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      return errno;
    }
    target_ = target;
    return RemountBind(MS_RDONLY);
  }

  // Changes the flags of a bind mount (0: read-write again); 0 or errno.
  int RemountBind(unsigned long flags) {
    return mount(nullptr, target_.c_str(), nullptr,
                 MS_REMOUNT | MS_BIND | flags, nullptr) == 0
               ? 0
               : errno;
  }

 private:
  std::filesystem::path target_;
};

// Writes `path` until its file system has no byte left; false if `path`
// cannot be created.
inline bool FillFileSystem(const std::filesystem::path& path) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const std::string chunk(64 << 10, 'f');
  while (write(fd, chunk.data(), chunk.size()) ==
         static_cast<ssize_t>(chunk.size())) {
  }
  // Whatever partial block remains, a one-byte write now fails too.
  while (write(fd, "f", 1) == 1) {
  }
  close(fd);
  return true;
}

// Sets or clears the immutable attribute (chattr +i) of `path`; 0 or errno.
// Writes to a file already open then fail with EPERM.
inline int SetImmutable(const std::filesystem::path& path, bool immutable) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  int flags = 0;
  int error = 0;
  if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
    error = errno;
  } else {
    flags = immutable ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) error = errno;
  }
  close(fd);
  return error;
}

}  // namespace convocore::store::testing

#endif  // TESTS_SERVICES_STORE_FAULT_INJECTION_H_
