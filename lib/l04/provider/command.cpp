// Command adapter: runs a local CLI (the Claude Code CLI `claude -p` is the
// default entry in models.toml) with the prompt on stdin and streams its
// stdout as chunks. fork/execve, no shell; the child gets its own process
// group so a timeout or a cancel kills it and everything it started.
//
// Prompt on stdin: a single user message is sent as is; anything richer
// (system prompt, several turns) as a plain transcript ("System:", "User:",
// "Assistant:", "Tool result:" paragraphs). An argument "{model}" is
// replaced by the model's provider string (ModelInfo::name).
//
// Exit status: 0 is success; otherwise stderr decides the code (auth →
// E4203, rate limit → E4401, overloaded → E4207, else E4200), a signal not
// sent by l04 is E4201 (retryable), the timeout E4202, a cancel E4604.
// Usage is always estimated (a CLI reports none).
#include <l04/config/environment.hpp>
#include <l04/core/clock.hpp>
#include <l04/core/strings.hpp>
#include <l04/provider/adapters.hpp>
#include <l04/provider/factory.hpp>
#include <l04/provider/http_common.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>


namespace l04 {

namespace {

// The child is a real process: its deadlines are real time.
struct steady {
    static Clock::duration now() { return SystemClock::instance().now(); }
};

constexpr std::size_t k_stderr_keep = 8192;
constexpr auto k_term_grace = std::chrono::milliseconds(200);


// Length of the longest prefix of s that does not end inside a UTF-8
// sequence (so a multi-byte character is never split across two chunks).
std::size_t utf8_complete_prefix(std::string_view s) {
    const std::size_t n = s.size();
    for (std::size_t back = 1; back <= 4 && back <= n; ++back) {
        const auto c = static_cast<unsigned char>(s[n - back]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
        std::size_t need = 1;
        if ((c & 0xE0) == 0xC0)
            need = 2;
        else if ((c & 0xF0) == 0xE0)
            need = 3;
        else if ((c & 0xF8) == 0xF0)
            need = 4;
        return back < need ? n - back : n;
    }
    return n;  // not UTF-8 at all: pass the bytes through
}

std::string render_prompt(const InferenceRequest& r) {
    bool has_system = !r.system_prompt.empty();
    for (const auto& m : r.messages) has_system = has_system || m.role == Role::system;
    if (!has_system && r.messages.size() == 1 && r.messages[0].role == Role::user) return r.messages[0].content;
    std::string out;
    auto para = [&](std::string_view label, const std::string& text) {
        if (!out.empty()) out += "\n\n";
        out += label;
        out += ' ';
        out += text;
    };
    if (!r.system_prompt.empty()) para("System:", r.system_prompt);
    for (const auto& m : r.messages) {
        switch (m.role) {
            case Role::system:
                para("System:", m.content);
                break;
            case Role::user:
                para("User:", m.content);
                break;
            case Role::assistant: {
                std::string text = m.content;
                for (const auto& tc : m.tool_calls) text += "\n[called tool " + tc.name + " with " + tc.arguments + "]";
                para("Assistant:", text);
                break;
            }
            case Role::tool:
                para("Tool result:", m.content);
                break;
        }
    }
    return out;
}

struct Fd {
    int fd = -1;
    Fd() = default;
    explicit Fd(int f) : fd(f) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }
    void reset() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};

bool make_pipe(Fd& r, Fd& w) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return false;
    r.fd = p[0];
    w.fd = p[1];
    return true;
}

// write() with SIGPIPE blocked for this thread (a child that exits without
// reading its stdin must not kill the gateway); EPIPE comes back as -1.
ssize_t write_nosigpipe(int fd, const char* p, std::size_t n) {
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t w = ::write(fd, p, n);
    const int saved = errno;
    if (w < 0 && errno == EPIPE) {
        timespec zero{0, 0};
        sigtimedwait(&pipe_set, nullptr, &zero);  // consume the pending SIGPIPE
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = saved;
    return w;
}

class CommandProvider final : public Provider {
public:
    CommandProvider(const ProviderConfig& cfg, Clock& clock)
        : m_id(cfg.info->id), m_argv(cfg.info->command), m_timeout_ms(cfg.info->timeout_ms), m_clock(clock) {}

    const std::string& id() const override { return m_id; }

    Result<InferenceResponse> complete(const ProviderRequest& req) override { return run(req, nullptr); }
    Result<InferenceResponse> stream(const ProviderRequest& req, const ChunkSink& sink) override {
        return run(req, &sink);
    }

    ProviderHealth health_check(std::chrono::milliseconds) override {
        ProviderHealth h;
        const std::string name = m_argv.empty() ? std::string() : m_argv[0];
        if (auto path = find_executable(name)) {
            h.state = HealthState::healthy;
            h.message = "command found at " + *path;
        } else {
            h.state = HealthState::unhealthy;
            h.message = "command '" + name + "' not found on PATH";
        }
        return h;
    }

private:
    Result<InferenceResponse> run(const ProviderRequest& req, const ChunkSink* sink);

    std::string m_id;
    std::vector<std::string> m_argv;
    std::int64_t m_timeout_ms;
    Clock& m_clock;
};

// One running child and its pipes.
struct Child {
    pid_t pid = -1;
    Fd in, out, err, pidfd;
    bool reaped = false;
    int status = 0;

    // Signals the whole process group.
    void signal_group(int sig) const {
        if (pid > 0) ::kill(-pid, sig);
    }
    bool try_reap() {
        if (reaped) return true;
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) reaped = true;
        return reaped;
    }
    // Waits up to `d` for the child to exit (pidfd when available).
    bool wait_for(std::chrono::milliseconds d) {
        const auto until = steady::now() + d;
        while (!try_reap()) {
            auto left = std::chrono::ceil<std::chrono::milliseconds>(until - steady::now());
            if (left.count() <= 0) return false;
            if (pidfd.fd >= 0) {
                pollfd p{pidfd.fd, POLLIN, 0};
                ::poll(&p, 1, static_cast<int>(left.count()));
            } else {
                ::poll(nullptr, 0, static_cast<int>(std::min<std::int64_t>(left.count(), 10)));
            }
        }
        return true;
    }
    // SIGTERM to the group, SIGKILL after a short grace, then reaped.
    void kill_and_reap() {
        if (pid <= 0 || reaped) {
            signal_group(SIGKILL);  // stragglers the child left behind
            return;
        }
        signal_group(SIGTERM);
        if (!wait_for(k_term_grace)) {
            signal_group(SIGKILL);
            ::waitpid(pid, &status, 0);
            reaped = true;
        }
        signal_group(SIGKILL);
    }
};

Result<InferenceResponse> CommandProvider::run(const ProviderRequest& req, const ChunkSink* sink) {
    if (m_argv.empty()) return fail(ErrorCode::provider_not_configured, "provider '" + m_id + "' has no command");
    auto exe = find_executable(m_argv[0]);
    if (!exe) {
        Error e(ErrorCode::provider_not_configured, "command '" + m_argv[0] +
                                                        "' not found on PATH; install it or edit [providers." + m_id +
                                                        "] in models.toml");
        e.retryable = false;
        return fail(std::move(e));
    }
    // Everything the child needs is prepared before fork: after it, the
    // child may only call async-signal-safe functions.
    std::vector<std::string> args = m_argv;
    for (auto& a : args)
        if (a == "{model}") a = req.model.name;
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string input = render_prompt(req.request);

    Child ch;
    Fd in_r, out_w, err_w, exec_r, exec_w;
    if (!make_pipe(in_r, ch.in) || !make_pipe(ch.out, out_w) || !make_pipe(ch.err, err_w) || !make_pipe(exec_r, exec_w))
        return fail(ErrorCode::internal_error, std::string("cannot create pipes: ") + std::strerror(errno));

    const auto started = steady::now();
    ch.pid = ::fork();
    if (ch.pid < 0) return fail(ErrorCode::internal_error, std::string("fork failed: ") + std::strerror(errno));
    if (ch.pid == 0) {
        ::setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        ::sigaction(SIGPIPE, &dfl, nullptr);
        if (::dup2(in_r.fd, 0) < 0 || ::dup2(out_w.fd, 1) < 0 || ::dup2(err_w.fd, 2) < 0) {
            int e = errno;
            (void)!::write(exec_w.fd, &e, sizeof e);
            ::_exit(127);
        }
        // Nothing else of the gateway's (sockets, databases) leaks into the CLI.
        ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
        ::execve(exe->c_str(), argv.data(), environment_block());
        int e = errno;
        (void)!::write(exec_w.fd, &e, sizeof e);
        ::_exit(127);
    }
    ::setpgid(ch.pid, ch.pid);  // also here: no race with an early kill
    in_r.reset();
    out_w.reset();
    err_w.reset();
    exec_w.reset();
    {
        int child_errno = 0;
        ssize_t n;
        do n = ::read(exec_r.fd, &child_errno, sizeof child_errno);
        while (n < 0 && errno == EINTR);
        if (n == static_cast<ssize_t>(sizeof child_errno)) {
            ::waitpid(ch.pid, nullptr, 0);
            ch.reaped = true;
            Error e(ErrorCode::provider_unavailable, "cannot run '" + *exe + "': " + std::strerror(child_errno));
            e.retryable = false;
            return fail(std::move(e));
        }
    }
    // glibc 2.36's <sys/pidfd.h> lacks extern "C": call the kernel directly.
    ch.pidfd.fd = static_cast<int>(::syscall(SYS_pidfd_open, ch.pid, 0));
    ::fcntl(ch.in.fd, F_SETFL, ::fcntl(ch.in.fd, F_GETFL) | O_NONBLOCK);

    auto limit = req.timeout;
    if (m_timeout_ms > 0) limit = std::min(limit, std::chrono::milliseconds(m_timeout_ms));
    const auto deadline = started + limit;

    InferenceResponse resp = detail::new_response(req, m_id);
    detail::Accumulator acc(sink);
    std::string pending;  // stdout bytes held back to complete a UTF-8 sequence
    std::string err_tail;
    std::size_t written = 0;
    if (input.empty()) ch.in.reset();
    enum class Stop { none, timeout, cancelled, caller_gone } stop = Stop::none;
    char buf[16384];

    while (ch.out.fd >= 0 || ch.err.fd >= 0 || !ch.try_reap()) {
        if (req.cancel && req.cancel->cancelled.load()) {
            stop = Stop::cancelled;
            break;
        }
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - steady::now());
        if (left.count() <= 0) {
            stop = Stop::timeout;
            break;
        }
        pollfd fds[4];
        nfds_t n = 0;
        int i_out = -1, i_err = -1, i_in = -1;
        if (ch.out.fd >= 0) {
            i_out = static_cast<int>(n);
            fds[n++] = {ch.out.fd, POLLIN, 0};
        }
        if (ch.err.fd >= 0) {
            i_err = static_cast<int>(n);
            fds[n++] = {ch.err.fd, POLLIN, 0};
        }
        if (ch.in.fd >= 0) {
            i_in = static_cast<int>(n);
            fds[n++] = {ch.in.fd, POLLOUT, 0};
        }
        if (ch.out.fd < 0 && ch.err.fd < 0 && ch.pidfd.fd >= 0) fds[n++] = {ch.pidfd.fd, POLLIN, 0};
        // Wake at least every 50 ms to notice a cancel from another thread.
        const int wait_ms = static_cast<int>(std::min<std::int64_t>(left.count(), 50));
        int rc = ::poll(fds, n, wait_ms);
        if (rc < 0) {
            if (errno == EINTR) continue;
            ch.kill_and_reap();
            return fail(ErrorCode::internal_error, std::string("poll failed: ") + std::strerror(errno));
        }
        if (i_in >= 0 && fds[i_in].revents) {
            if (fds[i_in].revents & (POLLERR | POLLHUP)) {
                ch.in.reset();  // the CLI closed its stdin: it will not read more
            } else {
                ssize_t w = write_nosigpipe(ch.in.fd, input.data() + written, input.size() - written);
                if (w > 0)
                    written += static_cast<std::size_t>(w);
                else if (w < 0 && errno != EAGAIN && errno != EINTR)
                    ch.in.reset();
                if (written >= input.size()) ch.in.reset();  // EOF tells the CLI the prompt is complete
            }
        }
        if (i_out >= 0 && fds[i_out].revents) {
            ssize_t r = ::read(ch.out.fd, buf, sizeof buf);
            if (r > 0) {
                pending.append(buf, static_cast<std::size_t>(r));
                const std::size_t ready = utf8_complete_prefix(pending);
                if (ready > 0) {
                    bool ok = acc.text(std::string_view(pending).substr(0, ready));
                    pending.erase(0, ready);
                    if (!ok) {
                        stop = Stop::caller_gone;
                        break;
                    }
                }
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                ch.out.reset();
            }
        }
        if (i_err >= 0 && fds[i_err].revents) {
            ssize_t r = ::read(ch.err.fd, buf, sizeof buf);
            if (r > 0) {
                err_tail.append(buf, static_cast<std::size_t>(r));
                if (err_tail.size() > k_stderr_keep) err_tail.erase(0, err_tail.size() - k_stderr_keep);
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                ch.err.reset();
            }
        }
    }

    const auto elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started).count();
    if (stop != Stop::none) {
        ch.kill_and_reap();
        if (stop == Stop::timeout) {
            Error e(ErrorCode::timeout, "command '" + m_argv[0] + "' did not finish within " +
                                            std::to_string(limit.count()) + " ms; it was killed");
            e.retryable = true;
            e.details = std::string(trim(err_tail));
            return fail(std::move(e));
        }
        if (stop == Stop::caller_gone) return fail(detail::caller_gone_error(m_id));
        Error e(ErrorCode::streaming_error, "command '" + m_argv[0] + "' cancelled by the caller; it was killed");
        e.retryable = false;
        return fail(std::move(e));
    }
    ch.signal_group(SIGKILL);  // anything the CLI left running in its group
    if (!pending.empty()) acc.text(pending);

    const std::string detail_text(trim(err_tail));
    if (WIFSIGNALED(ch.status)) {
        Error e(ErrorCode::provider_unavailable,
                "command '" + m_argv[0] + "' was killed by signal " + std::to_string(WTERMSIG(ch.status)));
        e.retryable = true;
        e.details = detail_text;
        return fail(std::move(e));
    }
    const int code = WIFEXITED(ch.status) ? WEXITSTATUS(ch.status) : -1;
    if (code != 0) {
        const std::string low = to_lower(detail_text);
        auto has = [&](const char* w) { return low.find(w) != std::string::npos; };
        Error e;
        const std::string what = "command '" + m_argv[0] + "' exited with status " + std::to_string(code);
        if (has("api key") || has("unauthorized") || has("authentication") || has("not logged in") || has("/login")) {
            e = Error(ErrorCode::auth_failed, what + " (authentication)");
            e.retryable = false;
        } else if (has("rate limit") || has("429")) {
            e = Error(ErrorCode::rate_limit_exceeded, what + " (rate limited)");
            e.retryable = true;
        } else if (has("overloaded") || has("529")) {
            e = Error(ErrorCode::provider_overloaded, what + " (overloaded)");
            e.retryable = true;
        } else {
            e = Error(ErrorCode::provider_error, what);
            e.retryable = false;
        }
        if (!detail_text.empty()) e.message += ": " + detail_text.substr(0, 300);
        e.details = detail_text;
        return fail(std::move(e));
    }

    resp.content = std::move(acc.content);
    resp.finish_reason = "stop";
    resp.metadata["provider_model"] = req.model.name;
    resp.metadata["command_exit_status"] = "0";
    resp.metadata["command_ms"] = std::to_string(elapsed_ms);
    detail::set_usage(resp, req.request, std::nullopt, std::nullopt);
    acc.finish(resp);
    return resp;
}

}  // namespace

std::unique_ptr<Provider> make_command_provider(const ProviderConfig& cfg, Clock& clock) {
    return std::make_unique<CommandProvider>(cfg, clock);
}

}  // namespace l04
