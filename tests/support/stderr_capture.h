// What this process writes to stderr while `write` runs (log lines), read
// through a pipe. The pipe holds 64 KiB: enough for a test's few lines.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace segments::testing {

template <typename Write>
std::string CaptureStderr(Write write) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) throw std::runtime_error("pipe failed");
  std::fflush(stderr);
  const int saved = ::dup(2);
  ::dup2(pipe_fds[1], 2);
  write();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  ::close(pipe_fds[1]);
  std::string written;
  char buffer[4096];
  for (ssize_t got; (got = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) {
    written.append(buffer, static_cast<size_t>(got));
  }
  ::close(pipe_fds[0]);
  return written;
}

}  // namespace segments::testing
