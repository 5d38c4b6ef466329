#include "tests/testing/subprocess.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace tlscache::testing {

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("no program");
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(pipe_fds[1], STDERR_FILENO);
    // Tests block signals in some threads; the child starts with none blocked.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  std::unique_ptr<Subprocess> process(new Subprocess());
  process->pid_ = pid;
  process->reader_ = std::thread([p = process.get(), fd = pipe_fds[0]] { p->ReadOutput(fd); });
  return process;
}

Subprocess::~Subprocess() {
  if (!reaped_) {
    kill(pid_, SIGKILL);
    (void)Wait(absl::Seconds(30));
  }
  if (reader_.joinable()) reader_.join();
}

void Subprocess::ReadOutput(int fd) {
  char buf[4096];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    absl::MutexLock lock(&mu_);
    output_.append(buf, n);
    output_cv_.SignalAll();
  }
  close(fd);
  absl::MutexLock lock(&mu_);
  output_closed_ = true;
  output_cv_.SignalAll();
}

void Subprocess::Signal(int signo) {
  if (!reaped_) kill(pid_, signo);
}

bool Subprocess::running() {
  if (reaped_) return false;
  return !Wait(absl::ZeroDuration()).ok();
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  if (reaped_) return exit_code_;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (r < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("waitpid: ", std::strerror(errno)));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("pid ", pid_, " still running"));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

absl::StatusOr<std::string> Subprocess::WaitForOutput(const std::string& text,
                                                      absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const size_t at = output_.find(text);
    if (at != std::string::npos) {
      size_t begin = output_.rfind('\n', at);
      begin = begin == std::string::npos ? 0 : begin + 1;
      size_t end = output_.find('\n', at);
      if (end == std::string::npos) end = output_.size();
      return output_.substr(begin, end - begin);
    }
    if (output_closed_ || absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("no '", text, "' in the output of pid ", pid_, ":\n", output_));
    }
    output_cv_.WaitWithDeadline(&mu_, deadline);
  }
}

std::string Subprocess::output() const {
  absl::MutexLock lock(&mu_);
  return output_;
}

absl::StatusOr<std::string> Subprocess::FullOutput(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const absl::Time deadline = absl::Now() + timeout;
  while (!output_closed_) {
    if (output_cv_.WaitWithDeadline(&mu_, deadline)) {
      return absl::DeadlineExceededError(absl::StrCat("pid ", pid_, " kept its output open"));
    }
  }
  return output_;
}

int PickFreePort() {
  // Below the kernel's ephemeral range (where client connections take their source ports),
  // so that the port stays free between this check and the server's bind.
  static std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> ports(20000, 32000);
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int port = ports(random);
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    if (free) return port;
  }
  return 0;
}

std::string BuiltBinary(const std::string& name) {
  return absl::StrCat(TLSCACHE_BIN_DIR, "/", name);
}

std::string FindInPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::vector<std::string> dirs =
      absl::StrSplit(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin", ':');
  for (const std::string& dir : dirs) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

}  // namespace tlscache::testing
