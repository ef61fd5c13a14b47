#include "server/file_bytes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace laserd::server {

namespace {

absl::Status ErrnoStatus(const std::string& what, const std::string& path, int err) {
  const std::string msg = absl::StrCat(what, ": cannot read '", path, "': ", std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case EISDIR:
      return absl::FailedPreconditionError(msg);
    default:
      return absl::DataLossError(msg);
  }
}

}  // namespace

absl::StatusOr<std::string> ReadFileBytes(const std::string& what, const std::string& path) {
  if (path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": the path contains a NUL byte"));
  }
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(what, path, errno);
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    const int err = errno;
    close(fd);
    return ErrnoStatus(what, path, err);
  }
  if (S_ISDIR(sb.st_mode)) {
    close(fd);
    return ErrnoStatus(what, path, EISDIR);
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": '", path, "' is not a regular file"));
  }
  std::string bytes;
  bytes.reserve(static_cast<size_t>(sb.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      return ErrnoStatus(what, path, err);
    }
    bytes.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return bytes;
}

}  // namespace laserd::server
