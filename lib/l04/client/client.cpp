#include <l04/client/client.hpp>
#include <l04/config/environment.hpp>
#include <l04/core/clock.hpp>
#include <l04/core/strings.hpp>
#include <l04/gateway.hpp>
#include <l04/server/api.hpp>
#include <l04/store/db.hpp>

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <fcntl.h>
#include <atomic>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace l04 {

namespace {

Error unavailable(const std::string& msg) {
    Error e(ErrorCode::daemon_unavailable, msg);
    e.retryable = true;
    e.http_status = 503;
    return e;
}

int connect_unix(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) return -1;
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    // Before a byte of the prompt leaves: the process listening must be this
    // user's (or root's). A socket another user put in our place gets nothing.
    ucred peer{};
    socklen_t len = sizeof peer;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || (peer.uid != ::getuid() && peer.uid != 0)) {
        ::close(fd);
        errno = EACCES;
        return -1;
    }
    return fd;
}

bool send_all(int fd, std::string_view d) {
    while (!d.empty()) {
        ssize_t n = ::send(fd, d.data(), d.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        d.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

class FdReader {
public:
    explicit FdReader(int fd, const std::atomic<bool>* cancel = nullptr) : m_fd(fd), m_cancel(cancel) {}
    bool fill() {
        char tmp[16384];
        while (true) {
            ssize_t n = ::recv(m_fd, tmp, sizeof tmp, 0);
            if (n < 0 && errno == EINTR) {
                // A signal (Ctrl-C in `l04ctl chat`) that asked to stop.
                if (m_cancel && m_cancel->load()) {
                    cancelled = true;
                    return false;
                }
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) timed_out = true;
            if (n <= 0) return false;
            buf.append(tmp, static_cast<std::size_t>(n));
            return true;
        }
    }
    std::string buf;
    bool timed_out = false;
    bool cancelled = false;

private:
    int m_fd;
    const std::atomic<bool>* m_cancel;
};

// Writer that feeds an in-process Api response to a ClientResponse/BodyFn.
class LocalWriter final : public ResponseWriter {
public:
    LocalWriter(ClientResponse& out, const BodyFn& on_body) : m_out(out), m_on_body(on_body) {}
    bool send(int status, const HeaderList& headers, std::string_view body) override {
        if (m_started) return false;
        m_started = true;
        head(status, headers);
        return deliver(body);
    }
    bool begin_stream(int status, const HeaderList& headers) override {
        if (m_started) return false;
        m_started = true;
        head(status, headers);
        return true;
    }
    bool write(std::string_view d) override { return deliver(d); }
    bool end_stream() override { return m_ok; }
    bool started() const override { return m_started; }

private:
    void head(int status, const HeaderList& headers) {
        m_out.status = status;
        for (const auto& [k, v] : headers) m_out.headers[to_lower(k)] = v;
    }
    bool deliver(std::string_view d) {
        if (!m_ok) return false;
        if (m_on_body) m_ok = m_on_body(d);
        else m_out.body.append(d);
        return m_ok;
    }
    ClientResponse& m_out;
    const BodyFn& m_on_body;
    bool m_started = false;
    bool m_ok = true;
};

}  // namespace

Result<ClientResponse> SocketClient::call(const ClientRequest& req, const BodyFn& on_body) {
    int fd = connect_unix(m_path);
    if (fd < 0 && errno == EACCES)
        return fail(unavailable("refusing to talk to " + m_path + ": the process behind it is not yours"));
    if (fd < 0) return fail(unavailable("cannot connect to l04d at " + m_path + ": " + std::strerror(errno)));
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(m_timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((m_timeout.count() % 1000) * 1000);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const auto no_answer = [&] {
        // Name the process, so the user knows what to look at or kill.
        const auto slash = m_path.rfind('/');
        std::ifstream pid_in((slash == std::string::npos ? std::string(".") : m_path.substr(0, slash)) + "/l04d.pid");
        long pid = 0;
        pid_in >> pid;
        const std::string who = pid > 0 ? "l04d (pid " + std::to_string(pid) + ")" : std::string("l04d");
        const auto ms = m_timeout.count();
        return unavailable(who + " is not responding (nothing for " +
                           (ms < 1000 ? std::to_string(ms) + " ms" : std::to_string(ms / 1000) + " s") +
                           "); see `l04ctl daemon logs`, or stop it with `kill " + (pid > 0 ? std::to_string(pid) : std::string("<pid>")) + "`");
    };
    std::string out = req.method + " " + req.path + " HTTP/1.1\r\nHost: l04d\r\nConnection: close\r\n";
    for (const auto& [k, v] : req.headers) out += k + ": " + v + "\r\n";
    if (!m_state_dir.empty() && m_state_dir.find_first_of("\r\n") == std::string::npos)
        out += "X-L04-State-Dir: " + m_state_dir + "\r\n";
    if (!req.body.empty() || req.method == "POST" || req.method == "PUT")
        out += "Content-Type: application/json\r\nContent-Length: " + std::to_string(req.body.size()) + "\r\n";
    out += "\r\n";
    out += req.body;
    if (!send_all(fd, out)) {
        ::close(fd);
        return fail(unavailable("l04d closed the connection while the request was sent"));
    }
    FdReader rd(fd, m_cancel);
    ClientResponse resp;
    std::size_t head_end;
    while ((head_end = rd.buf.find("\r\n\r\n")) == std::string::npos) {
        if (!rd.fill()) {
            ::close(fd);
            if (rd.cancelled) return fail(unavailable("cancelled"));
            if (rd.timed_out) return fail(no_answer());
            return fail(unavailable("l04d closed the connection before answering (see `l04ctl daemon logs`)"));
        }
    }
    std::string_view head(rd.buf.data(), head_end);
    auto sp = head.find(' ');
    resp.status = sp == std::string_view::npos ? 0 : std::atoi(std::string(head.substr(sp + 1, 3)).c_str());
    std::size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos && pos < head.size()) {
        pos += 2;
        auto e = head.find("\r\n", pos);
        std::string_view h = head.substr(pos, e == std::string_view::npos ? std::string_view::npos : e - pos);
        auto colon = h.find(':');
        if (colon != std::string_view::npos) resp.headers[to_lower(trim(h.substr(0, colon)))] = std::string(trim(h.substr(colon + 1)));
        pos = e;
    }
    rd.buf.erase(0, head_end + 4);
    auto deliver = [&](std::string_view d) -> bool {
        if (on_body) return on_body(d);
        resp.body.append(d);
        return true;
    };
    bool ok = true;
    bool complete = false;
    if (to_lower(resp.header("transfer-encoding")).find("chunked") != std::string::npos) {
        while (ok) {
            std::size_t le;
            while ((le = rd.buf.find("\r\n")) == std::string::npos)
                if (!rd.fill()) { ok = false; break; }
            if (!ok) break;
            std::size_t n = std::strtoul(rd.buf.c_str(), nullptr, 16);
            rd.buf.erase(0, le + 2);
            if (n == 0) {
                complete = true;
                break;
            }
            while (rd.buf.size() < n + 2)
                if (!rd.fill()) { ok = false; break; }
            if (!ok) break;
            if (!deliver(std::string_view(rd.buf.data(), n))) {
                ::close(fd);
                return resp;
            }
            rd.buf.erase(0, n + 2);
        }
    } else if (auto cl = resp.header("content-length"); !cl.empty()) {
        std::size_t n = std::strtoull(cl.c_str(), nullptr, 10);
        while (rd.buf.size() < n)
            if (!rd.fill()) { ok = false; break; }
        if (ok) {
            deliver(std::string_view(rd.buf.data(), n));
            complete = true;
        }
    } else {
        while (rd.fill()) {}
        deliver(rd.buf);
        complete = true;
    }
    ::close(fd);
    if (rd.cancelled) return fail(unavailable("cancelled"));
    if (!complete && rd.timed_out) return fail(no_answer());
    if (!complete) {
        Error e(ErrorCode::streaming_error, "l04d's response was cut off (the daemon may have stopped; see `l04ctl daemon logs`)");
        e.retryable = true;
        return fail(std::move(e));
    }
    return resp;
}

InProcessClient::InProcessClient(std::unique_ptr<Gateway> gw) : m_gw(std::move(gw)) {
    ApiOptions o;
    o.in_process = true;
    o.started_ms = m_gw->clock().wall_ms();
    m_api = std::make_unique<Api>(*m_gw, o);
}

InProcessClient::~InProcessClient() = default;

Result<ClientResponse> InProcessClient::call(const ClientRequest& req, const BodyFn& on_body) {
    ServerRequest sr;
    sr.method = req.method;
    sr.target = req.path;
    auto q = req.path.find('?');
    sr.path = req.path.substr(0, q);
    if (q != std::string::npos) sr.query = req.path.substr(q + 1);
    for (const auto& [k, v] : req.headers) sr.headers[to_lower(k)] = v;
    sr.body = req.body;
    ClientResponse resp;
    LocalWriter w(resp, on_body);
    m_api->handle(sr, w);
    return resp;
}

bool daemon_answers(const std::string& socket_path) {
    int fd = connect_unix(socket_path);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

std::string daemon_log_path(const Settings& settings) { return settings.state_dir() + "/l04d.log"; }

namespace {

std::string find_l04d(const std::string& configured) {
    if (!configured.empty()) return configured;
    if (auto e = env_var("L04D_PATH"); e && !e->empty()) return *e;
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        std::string dir(exe);
        dir = dir.substr(0, dir.rfind('/'));
        std::string cand = dir + "/l04d";
        if (::access(cand.c_str(), X_OK) == 0) return cand;
    }
    return "l04d";
}

}  // namespace

Status ensure_daemon(const Settings& settings, const DaemonStart& start) {
    const std::string sock = settings.socket_path();
    if (daemon_answers(sock)) return {};
    const std::string rt = settings.runtime_dir();
    if (auto st = ensure_private_dir(rt); !st) return st;
    if (auto st = ensure_state_dir(settings.state_dir()); !st) return st;
    const std::string lock_path = rt + "/l04d.lock";
    int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lock < 0) return fail(unavailable("cannot open lock file " + lock_path + ": " + std::strerror(errno)));
    ::flock(lock, LOCK_EX);
    struct Unlock {
        int fd;
        ~Unlock() {
            ::flock(fd, LOCK_UN);
            ::close(fd);
        }
    } unlock{lock};
    // Someone else may have started it while we waited for the lock.
    if (daemon_answers(sock)) return {};
    ::unlink(sock.c_str());  // stale socket of a daemon that died

    const std::string l04d = find_l04d(start.l04d_path);
    const std::string log = daemon_log_path(settings);
    // A pipe back from the daemon's process: first its pid (so a daemon that
    // exits at once is noticed at once, not after ready_timeout), then, when
    // the log file cannot be opened, its stderr (so the reason is shown).
    int info[2];
    if (::pipe2(info, O_CLOEXEC) != 0) return fail(unavailable(std::string("pipe failed: ") + std::strerror(errno)));
    // Only what this start appends to the log can explain its failure.
    std::error_code size_ec;
    const auto log_size_before = std::filesystem::is_regular_file(log, size_ec) ? std::filesystem::file_size(log, size_ec) : 0;
    pid_t pid = ::fork();
    if (pid < 0) {
        ::close(info[0]);
        ::close(info[1]);
        return fail(unavailable(std::string("fork failed: ") + std::strerror(errno)));
    }
    if (pid == 0) {
        // Child: detach fully (double fork) so l04d is not our child.
        ::setsid();
        pid_t again = ::fork();
        if (again != 0) ::_exit(again < 0 ? 1 : 0);
        const std::int64_t self = ::getpid();
        (void)!::write(info[1], &self, sizeof self);
        int devnull = ::open("/dev/null", O_RDWR);
        int logfd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0600);
        if (devnull >= 0) ::dup2(devnull, 0);
        if (logfd >= 0) {
            ::dup2(logfd, 1);
            ::dup2(logfd, 2);
        } else {
            if (devnull >= 0) ::dup2(devnull, 1);
            ::dup2(info[1], 2);  // dup2 clears close-on-exec on the copy
        }
        for (int fd = 3; fd < 1024; ++fd) ::close(fd);
        std::vector<std::string> args{l04d, "--foreground", "--started-by-client"};
        args.insert(args.end(), start.extra_args.begin(), start.extra_args.end());
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execvp(argv[0], argv.data());
        std::fprintf(stderr, "l04ctl: cannot run %s: %s\n", l04d.c_str(), std::strerror(errno));
        ::_exit(127);
    }
    ::close(info[1]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::int64_t daemon_pid = 0;
    if (::read(info[0], &daemon_pid, sizeof daemon_pid) != static_cast<ssize_t>(sizeof daemon_pid)) daemon_pid = 0;
    ::fcntl(info[0], F_SETFL, ::fcntl(info[0], F_GETFL) | O_NONBLOCK);
    std::string early_stderr;
    auto drain = [&] {
        char buf[4096];
        ssize_t n;
        while (early_stderr.size() < 16384 && (n = ::read(info[0], buf, sizeof buf)) > 0)
            early_stderr.append(buf, static_cast<std::size_t>(n));
    };
    struct CloseFd {
        int fd;
        ~CloseFd() { ::close(fd); }
    } close_info{info[0]};
    // Gone: no such process, or a zombie nobody has reaped yet.
    auto gone = [&] {
        if (daemon_pid <= 0) return false;
        if (::kill(static_cast<pid_t>(daemon_pid), 0) != 0) return errno == ESRCH;
        std::FILE* f = std::fopen(("/proc/" + std::to_string(daemon_pid) + "/stat").c_str(), "r");
        if (!f) return false;
        char buf[512];
        const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
        std::fclose(f);
        buf[n] = 0;
        const char* p = std::strrchr(buf, ')');
        return p && p[1] == ' ' && p[2] == 'Z';
    };
    // Wait for readiness: a real process starting, polled with short waits
    // (real time).
    Clock& clock = SystemClock::instance();
    const auto deadline = clock.now() + start.ready_timeout;
    auto wait = std::chrono::milliseconds(1);
    while (clock.now() < deadline) {
        if (daemon_answers(sock)) return {};
        drain();
        if (gone()) {
            if (daemon_answers(sock)) return {};  // another start won the race
            drain();
            std::string why = std::string(trim(early_stderr));
            if (why.empty()) {
                // The reason is in the log, if l04d could write one: the
                // last line this start appended.
                std::ifstream in(log);
                in.seekg(static_cast<std::streamoff>(log_size_before));
                std::string line, last;
                while (std::getline(in, line))
                    if (!trim(line).empty()) last = line;
                why = last;
            }
            if (why.size() > 2000) why = why.substr(why.size() - 2000);
            return fail(unavailable("l04d exited at start" + (why.empty() ? std::string() : ": " + why) +
                                    (std::filesystem::is_regular_file(log) ? " (log: " + log + ")" : "")));
        }
        clock.sleep_for(wait);
        wait = std::min(wait * 2, std::chrono::milliseconds(50));
    }
    return fail(unavailable("l04d did not start within " + std::to_string(start.ready_timeout.count()) +
                            " ms; see " + log + " (or run `l04ctl daemon logs`)"));
}

}  // namespace l04
