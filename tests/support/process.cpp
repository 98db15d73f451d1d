#include "support/process.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <regex>
#include <poll.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace l04::test {

namespace {

void child_exec(const std::vector<std::string>& argv, const ProcOptions& opts) {
    for (const auto& k : opts.unset_env) ::unsetenv(k.c_str());
    for (const auto& [k, v] : opts.env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
}

}  // namespace

int wait_for_l04d_port(const std::string& log_path, std::chrono::milliseconds timeout) {
    const std::regex re("port ([0-9]+)\\)");
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        std::ifstream in(log_path);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::smatch m;
        if (text.find(" ready on ") != std::string::npos && std::regex_search(text, m, re)) return std::stoi(m[1]);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return 0;
}

std::string bin(const std::string& name) { return std::string(L04_BIN_DIR) + "/" + name; }

ProcResult run(const std::vector<std::string>& argv, const ProcOptions& opts) {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) return {};
    pid_t pid = ::fork();
    if (pid == 0) {
        if (opts.stdin_is_devnull) {
            int dn = ::open("/dev/null", O_RDONLY);
            ::dup2(dn, 0);
        } else {
            ::dup2(in[0], 0);
        }
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        child_exec(argv, opts);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    std::signal(SIGPIPE, SIG_IGN);
    if (!opts.stdin_data.empty()) {
        std::string_view d = opts.stdin_data;
        while (!d.empty()) {
            ssize_t n = ::write(in[1], d.data(), d.size());
            if (n <= 0) break;
            d.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    ::close(in[1]);
    ProcResult r;
    const auto deadline = std::chrono::steady_clock::now() + opts.timeout;
    bool out_open = true, err_open = true;
    while (out_open || err_open) {
        pollfd p[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            r.timed_out = true;
            ::kill(pid, SIGKILL);
            break;
        }
        int rc = ::poll(p, 2, static_cast<int>(std::min<long long>(left.count(), 1000)));
        if (rc < 0 && errno != EINTR) break;
        char buf[8192];
        for (int i = 0; i < 2; ++i) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = ::read(p[i].fd, buf, sizeof buf);
            if (n <= 0) {
                (i == 0 ? out_open : err_open) = false;
            } else {
                (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
            }
        }
    }
    ::close(out[0]);
    ::close(err[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
    return r;
}

int spawn(const std::vector<std::string>& argv, const ProcOptions& opts, const std::string& log_path) {
    pid_t pid = ::fork();
    if (pid == 0) {
        int dn = ::open("/dev/null", O_RDWR);
        ::dup2(dn, 0);
        int o = log_path.empty() ? dn : ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        ::dup2(o, 1);
        ::dup2(o, 2);
        child_exec(argv, opts);
    }
    return pid;
}

int wait_pid(int pid, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    auto wait = std::chrono::milliseconds(1);
    while (true) {
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0) return -1;
        if (std::chrono::steady_clock::now() >= deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(wait);
        wait = std::min(wait * 2, std::chrono::milliseconds(20));
    }
}

}  // namespace l04::test
