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
#include <l04/core/fiber.hpp>
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

// One running child and its pipes.
struct Child {
    pid_t pid = -1;
    Fd in, out, err, pidfd;
    bool reaped = false;
    int status = 0;

    // Starts `exe` in its own process group with stdin, stdout and stderr on
    // pipes. A failed execve comes back through a close-on-exec pipe as the
    // child's errno, so "cannot run" is told apart from "ran and failed".
    Status spawn(const std::string& exe, const std::vector<char*>& argv) {
        Fd in_r, out_w, err_w, exec_r, exec_w;
        if (!make_pipe(in_r, in) || !make_pipe(out, out_w) || !make_pipe(err, err_w) || !make_pipe(exec_r, exec_w))
            return fail(ErrorCode::internal_error, std::string("cannot create pipes: ") + std::strerror(errno));
        pid = ::fork();
        if (pid < 0) return fail(ErrorCode::internal_error, std::string("fork failed: ") + std::strerror(errno));
        if (pid == 0) {
            // Everything the child needs was prepared before fork: from here
            // on only async-signal-safe calls.
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
            ::execve(exe.c_str(), argv.data(), environment_block());
            int e = errno;
            (void)!::write(exec_w.fd, &e, sizeof e);
            ::_exit(127);
        }
        ::setpgid(pid, pid);  // also here: no race with an early kill
        exec_w.reset();       // the pipe ends the child owns close with this scope
        int child_errno = 0;
        ssize_t n;
        do n = ::read(exec_r.fd, &child_errno, sizeof child_errno);
        while (n < 0 && errno == EINTR);
        if (n == static_cast<ssize_t>(sizeof child_errno)) {
            ::waitpid(pid, nullptr, 0);
            reaped = true;
            Error e(ErrorCode::provider_unavailable, "cannot run '" + exe + "': " + std::strerror(child_errno));
            e.retryable = false;
            return fail(std::move(e));
        }
        // glibc 2.36's <sys/pidfd.h> lacks extern "C": call the kernel directly.
        pidfd.fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
        ::fcntl(in.fd, F_SETFL, ::fcntl(in.fd, F_GETFL) | O_NONBLOCK);
        return {};
    }

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

// Why the exchange with the child ended before the child did.
enum class Stop { none, timeout, cancelled, caller_gone };

// The exchange with a running child: the prompt into its stdin, its stdout
// to the accumulator in whole UTF-8 characters, the tail of its stderr kept
// for the error message.
class Exchange {
public:
    Exchange(Child& ch, std::string_view input, detail::Accumulator& acc) : m_ch(ch), m_input(input), m_acc(acc) {
        if (m_input.empty()) m_ch.in.reset();
    }

    // Runs until the child has exited and closed both pipes, the deadline
    // passes, the caller cancels or the sink refuses a chunk.
    Result<Stop> run(Clock::duration deadline, const CancelToken* cancel) {
        while (m_ch.out.fd >= 0 || m_ch.err.fd >= 0 || !m_ch.try_reap()) {
            if (cancel && cancel->cancelled.load()) return Stop::cancelled;
            auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - steady::now());
            if (left.count() <= 0) return Stop::timeout;
            pollfd fds[4];
            nfds_t n = 0;
            int i_out = -1, i_err = -1, i_in = -1;
            auto watch = [&](int fd, short events, int* index) {
                if (fd < 0) return;
                if (index) *index = static_cast<int>(n);
                fds[n++] = {fd, events, 0};
            };
            watch(m_ch.out.fd, POLLIN, &i_out);
            watch(m_ch.err.fd, POLLIN, &i_err);
            watch(m_ch.in.fd, POLLOUT, &i_in);
            if (m_ch.out.fd < 0 && m_ch.err.fd < 0) watch(m_ch.pidfd.fd, POLLIN, nullptr);
            // Wake at least every 50 ms to notice a cancel from another thread.
            const int wait_ms = static_cast<int>(std::min<std::int64_t>(left.count(), 50));
            if (::poll(fds, n, wait_ms) < 0) {
                if (errno == EINTR) continue;
                return fail(ErrorCode::internal_error, std::string("poll failed: ") + std::strerror(errno));
            }
            if (i_in >= 0 && fds[i_in].revents) feed_stdin(fds[i_in].revents);
            if (i_out >= 0 && fds[i_out].revents && !read_stdout()) return Stop::caller_gone;
            if (i_err >= 0 && fds[i_err].revents) read_stderr();
        }
        return Stop::none;
    }

    // The stdout bytes held back waiting for the rest of a UTF-8 sequence
    // (sent as they are once the child has exited).
    void flush() {
        if (!m_pending.empty()) m_acc.text(m_pending);
        m_pending.clear();
    }
    std::string err_text() const { return std::string(trim(m_err_tail)); }

private:
    void feed_stdin(short revents) {
        if (revents & (POLLERR | POLLHUP)) {
            m_ch.in.reset();  // the CLI closed its stdin: it will not read more
            return;
        }
        ssize_t w = write_nosigpipe(m_ch.in.fd, m_input.data() + m_written, m_input.size() - m_written);
        if (w > 0)
            m_written += static_cast<std::size_t>(w);
        else if (w < 0 && errno != EAGAIN && errno != EINTR)
            m_ch.in.reset();
        if (m_written >= m_input.size()) m_ch.in.reset();  // EOF tells the CLI the prompt is complete
    }
    // False when the sink refused the text (the caller has gone).
    bool read_stdout() {
        ssize_t r = ::read(m_ch.out.fd, m_buf, sizeof m_buf);
        if (r > 0) {
            m_pending.append(m_buf, static_cast<std::size_t>(r));
            const std::size_t ready = utf8_complete_prefix(m_pending);
            if (ready == 0) return true;
            const bool ok = m_acc.text(std::string_view(m_pending).substr(0, ready));
            m_pending.erase(0, ready);
            return ok;
        }
        if (r == 0 || (errno != EINTR && errno != EAGAIN)) m_ch.out.reset();
        return true;
    }
    void read_stderr() {
        ssize_t r = ::read(m_ch.err.fd, m_buf, sizeof m_buf);
        if (r > 0) {
            m_err_tail.append(m_buf, static_cast<std::size_t>(r));
            if (m_err_tail.size() > k_stderr_keep) m_err_tail.erase(0, m_err_tail.size() - k_stderr_keep);
        } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
            m_ch.err.reset();
        }
    }

    Child& m_ch;
    std::string_view m_input;
    detail::Accumulator& m_acc;
    std::size_t m_written = 0;
    std::string m_pending;  // stdout bytes held back to complete a UTF-8 sequence
    std::string m_err_tail;
    char m_buf[16384];
};

// The error for a child that ended without success: killed by a signal l04
// did not send (retryable), or a non-zero status whose stderr names the kind.
Error exit_error(const std::string& name, int status, const std::string& err_text) {
    if (WIFSIGNALED(status)) {
        Error e(ErrorCode::provider_unavailable,
                "command '" + name + "' was killed by signal " + std::to_string(WTERMSIG(status)));
        e.retryable = true;
        e.details = err_text;
        return e;
    }
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    const std::string low = to_lower(err_text);
    auto has = [&](const char* w) { return low.find(w) != std::string::npos; };
    const std::string what = "command '" + name + "' exited with status " + std::to_string(code);
    Error e;
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
    if (!err_text.empty()) e.message += ": " + err_text.substr(0, 300);
    e.details = err_text;
    return e;
}

class CommandProvider final : public Provider {
public:
    // The child is a real process: its deadlines are real time, not the
    // gateway's clock.
    explicit CommandProvider(const ProviderConfig& cfg)
        : m_id(cfg.info->id), m_argv(cfg.info->command), m_timeout_ms(cfg.info->timeout_ms) {}

    const std::string& id() const override { return m_id; }

    Result<InferenceResponse> complete(const ProviderRequest& req) override { return run_off_loop(req, nullptr); }
    Result<InferenceResponse> stream(const ProviderRequest& req, const ChunkSink& sink) override {
        return run_off_loop(req, &sink);
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
    // A child process is waited on with poll() and waitpid(): on a fiber
    // (l04d) that runs on a helper thread while the fiber waits.
    Result<InferenceResponse> run_off_loop(const ProviderRequest& req, const ChunkSink* sink) {
        return run_blocking_result([&] { return run(req, sink); });
    }
    Result<InferenceResponse> run(const ProviderRequest& req, const ChunkSink* sink);
    Error stop_error(Stop stop, std::chrono::milliseconds limit, const std::string& err_text) const;

    std::string m_id;
    std::vector<std::string> m_argv;
    std::int64_t m_timeout_ms;
};

Error CommandProvider::stop_error(Stop stop, std::chrono::milliseconds limit, const std::string& err_text) const {
    if (stop == Stop::caller_gone) return detail::caller_gone_error(m_id);
    if (stop == Stop::timeout) {
        Error e(ErrorCode::timeout, "command '" + m_argv[0] + "' did not finish within " +
                                        std::to_string(limit.count()) + " ms; it was killed");
        e.retryable = true;
        e.details = err_text;
        return e;
    }
    Error e(ErrorCode::streaming_error, "command '" + m_argv[0] + "' cancelled by the caller; it was killed");
    e.retryable = false;
    return e;
}

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
    std::vector<std::string> args = m_argv;
    for (auto& a : args)
        if (a == "{model}") a = req.model.name;
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string input = render_prompt(req.request);

    const auto started = steady::now();
    Child ch;
    L04_TRY(ch.spawn(*exe, argv));
    auto limit = req.timeout;
    if (m_timeout_ms > 0) limit = std::min(limit, std::chrono::milliseconds(m_timeout_ms));

    detail::Accumulator acc(sink);
    Exchange io(ch, input, acc);
    auto stop = io.run(started + limit, req.cancel);
    const auto elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started).count();
    if (!stop) {
        ch.kill_and_reap();
        return fail(std::move(stop).error());
    }
    if (*stop != Stop::none) {
        ch.kill_and_reap();
        return fail(stop_error(*stop, limit, io.err_text()));
    }
    ch.signal_group(SIGKILL);  // anything the CLI left running in its group
    io.flush();
    const int status = ch.status;
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) return fail(exit_error(m_argv[0], status, io.err_text()));

    InferenceResponse resp = detail::new_response(req, m_id);
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

std::unique_ptr<Provider> make_command_provider(const ProviderConfig& cfg, Clock&) {
    return std::make_unique<CommandProvider>(cfg);
}

}  // namespace l04
