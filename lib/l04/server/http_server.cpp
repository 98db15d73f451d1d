#include <l04/server/http_server.hpp>
#include <l04/core/clock.hpp>
#include <l04/core/fiber.hpp>
#include <l04/core/strings.hpp>

#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

namespace l04 {

namespace {

// Socket deadlines bound real I/O: real time (core/clock's SystemClock).
using Steady = std::chrono::steady_clock;
Steady::time_point steady_now() { return Steady::time_point(SystemClock::instance().now()); }
std::int64_t steady_ns() { return SystemClock::instance().now().count(); }

const char* reason(int status) {
    switch (status) {
        case 200: return "OK";
        case 201: return "Created";
        case 204: return "No Content";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 413: return "Payload Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 431: return "Request Header Fields Too Large";
        case 501: return "Not Implemented";
        case 505: return "HTTP Version Not Supported";
        case 429: return "Too Many Requests";
        case 500: return "Internal Server Error";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        default: return "Status";
    }
}

// Sockets are non-blocking; a full send buffer waits (a fiber parks) until
// the client reads, as long as it takes: stop() shuts the socket down.
bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
            if (wait_fd(fd, POLLOUT, std::nullopt) < 0) return false;
            continue;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// Buffered reader over a non-blocking socket, with a deadline per read.
class Reader {
public:
    explicit Reader(int fd) : m_fd(fd) {}
    // Reads more bytes; false on EOF, error or timeout. `wait_first`: wait
    // for readiness before the first recv (between requests, when nothing
    // is there yet) instead of trying a recv that would find nothing.
    bool fill(std::chrono::milliseconds idle, bool wait_first) {
        return fill_until(steady_now() + idle, wait_first);
    }
    // The same with an absolute deadline.
    bool fill_until(std::chrono::steady_clock::time_point deadline, bool wait_first) {
        const Clock::duration until = deadline.time_since_epoch();
        while (true) {
            if (wait_first) {
                wait_first = false;
                // On a fiber it parks; the loop's epoll watches the socket.
                if (wait_fd(m_fd, POLLIN, until) <= 0) return false;
            }
            // Straight into the buffer, not through a stack array: every
            // stack page a connection ever touched stays resident, and
            // 10,000 streams each holding 16 KiB of it is 160 MB. Small
            // reads while the buffer is small (a request head), larger ones
            // for a body that keeps coming.
            const std::size_t old = m_buf.size();
            const std::size_t want = old < 4096 ? 4096 : 16384;
            m_buf.resize(old + want);
            ssize_t n = ::recv(m_fd, m_buf.data() + old, want, MSG_DONTWAIT);
            m_buf.resize(old + static_cast<std::size_t>(std::max<ssize_t>(0, n)));
            if (n > 0) return true;
            if (n == 0) return false;
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
            if (wait_fd(m_fd, POLLIN, until) <= 0) return false;
        }
    }
    std::string& buf() { return m_buf; }

private:
    int m_fd;
    std::string m_buf;
};

class SocketWriter final : public ResponseWriter {
public:
    SocketWriter(int fd, bool keep_alive, bool head_only, bool http10)
        : m_fd(fd), m_keep_alive(keep_alive), m_head_only(head_only), m_http10(http10) {}
    bool send(int status, const HeaderList& headers, std::string_view body) override {
        if (m_started) return false;
        m_started = true;
        std::string out = head(status, headers);
        out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
        if (!m_head_only) out.append(body);
        m_ok = write_all(m_fd, out);
        m_finished = true;
        return m_ok;
    }
    bool begin_stream(int status, const HeaderList& headers) override {
        if (m_started) return false;
        m_started = true;
        m_streaming = true;
        if (m_http10) m_keep_alive = false;  // HTTP/1.0 has no chunked encoding: the body ends at close
        std::string out = head(status, headers);
        out += m_http10 ? "\r\n" : "Transfer-Encoding: chunked\r\n\r\n";
        m_ok = write_all(m_fd, out);
        return m_ok;
    }
    bool write(std::string_view data) override {
        if (!m_ok || !m_streaming || data.empty() || m_head_only) return m_ok;
        if (m_http10) {
            m_ok = write_all(m_fd, data);
            return m_ok;
        }
        char size[32];
        std::snprintf(size, sizeof size, "%zx\r\n", data.size());
        std::string out = size;
        out.append(data);
        out += "\r\n";
        m_ok = write_all(m_fd, out);
        return m_ok;
    }
    bool end_stream() override {
        if (!m_streaming || m_finished) return m_ok;
        m_finished = true;
        if (m_ok && !m_http10 && !m_head_only) m_ok = write_all(m_fd, "0\r\n\r\n");
        return m_ok;
    }
    bool started() const override { return m_started; }
    bool finished() const { return m_finished; }
    bool ok() const { return m_ok; }
    bool keep_alive() const { return m_keep_alive; }

private:
    std::string head(int status, const HeaderList& headers) {
        std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\n";
        for (const auto& [k, v] : headers) {
            // A value from a client (a request id) can never add a header or
            // split the response: control characters are dropped.
            out += k + ": ";
            for (char c : v)
                if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out += c;
            out += "\r\n";
        }
        out += m_keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
        return out;
    }
    int m_fd;
    bool m_keep_alive;
    bool m_head_only;
    bool m_http10;
    bool m_started = false;
    bool m_streaming = false;
    bool m_finished = false;
    bool m_ok = true;
};

// Parses "a%20b" → "a b" (for paths).
std::string url_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

bool is_tchar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

void close_with(int fd, int status) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) +
                      "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    write_all(fd, out);
}

// A bare LF (or a CR not followed by LF) anywhere in bytes received so far.
bool bad_line_ends(std::string_view s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return true;
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] != '\n') return true;
    }
    return false;
}

}  // namespace

int parse_request_head(std::string_view head, ParsedHead& out, std::string& why) {
    out = ParsedHead{};
    if (head.size() > k_max_head_bytes) {
        why = "request head too large";
        return 431;
    }
    if (bad_line_ends(head) || (!head.empty() && head.back() == '\r')) {
        why = "lines must end with CR LF";
        return 400;
    }
    const auto line_end = std::min(head.find("\r\n"), head.size());
    const std::string_view line = head.substr(0, line_end);
    if (line.size() > k_max_request_line) {
        why = "request line too long";
        return 414;
    }
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string_view::npos ? std::string_view::npos : line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos ||
        sp1 == 0 || sp2 == sp1 + 1) {
        why = "malformed request line";
        return 400;
    }
    const std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                           version = line.substr(sp2 + 1);
    if (!std::all_of(method.begin(), method.end(), is_tchar)) {
        why = "malformed method";
        return 400;
    }
    for (char c : target)
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
            why = "malformed request target";
            return 400;
        }
    if (target.front() != '/' && target != "*") {
        why = "the request target must be a path";
        return 400;
    }
    if (version == "HTTP/1.0") out.http10 = true;
    else if (version != "HTTP/1.1") {
        why = "only HTTP/1.0 and HTTP/1.1 are served";
        return version.rfind("HTTP/", 0) == 0 ? 505 : 400;
    }
    ServerRequest& req = out.req;
    req.method = std::string(method);
    req.target = std::string(target);
    const auto q = req.target.find('?');
    req.path = url_decode(req.target.substr(0, q));
    if (q != std::string::npos) req.query = req.target.substr(q + 1);

    int content_lengths = 0, transfer_encodings = 0;
    std::size_t count = 0;
    std::size_t pos = line_end + 2;
    while (pos < head.size()) {
        auto e = head.find("\r\n", pos);
        if (e == std::string_view::npos) e = head.size();
        const std::string_view h = head.substr(pos, e - pos);
        pos = e + 2;
        if (++count > k_max_header_count) {
            why = "too many header fields";
            return 431;
        }
        if (!h.empty() && (h.front() == ' ' || h.front() == '\t')) {
            why = "obsolete line folding is not accepted";
            return 400;
        }
        const auto colon = h.find(':');
        if (colon == std::string_view::npos || colon == 0) {
            why = "malformed header field";
            return 400;
        }
        const std::string_view name = h.substr(0, colon);
        if (!std::all_of(name.begin(), name.end(), is_tchar)) {
            why = "malformed header field name";  // includes whitespace before the colon
            return 400;
        }
        std::string_view value = h.substr(colon + 1);  // optional whitespace is SP and HTAB only
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
        for (char c : value)
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
                why = "control character in a header value";
                return 400;
            }
        const std::string key = to_lower(name);
        if (key == "content-length") {
            ++content_lengths;
            if (value.empty() || value.size() > 15 ||
                !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
                why = "Content-Length must be digits";
                return 400;
            }
            out.content_length = static_cast<std::size_t>(std::stoull(std::string(value)));
        }
        if (key == "transfer-encoding") {
            ++transfer_encodings;
            if (to_lower(value) != "chunked") {
                why = "only Transfer-Encoding: chunked is accepted";
                return 501;
            }
        }
        auto& slot = req.headers[key];
        slot = slot.empty() ? std::string(value) : slot + ", " + std::string(value);
    }
    if (content_lengths > 1 || transfer_encodings > 1) {
        why = "a repeated Content-Length or Transfer-Encoding";
        return 400;
    }
    if (content_lengths && transfer_encodings) {
        why = "Transfer-Encoding together with Content-Length";
        return 400;
    }
    if (transfer_encodings && out.http10) {
        why = "chunked bodies need HTTP/1.1";
        return 400;
    }
    out.framing = transfer_encodings ? BodyFraming::chunked : content_lengths ? BodyFraming::length : BodyFraming::none;
    if (!out.http10 && req.headers.find("host") == req.headers.end()) {
        why = "HTTP/1.1 requests need a Host header";
        return 400;
    }
    return 0;
}

HttpServer::HttpServer(Handler handler, ServerOptions opts) : m_handler(std::move(handler)), m_opts(opts) {
    if (::pipe2(m_wake_pipe, O_CLOEXEC) != 0) m_wake_pipe[0] = m_wake_pipe[1] = -1;
    touch();
}

HttpServer::~HttpServer() {
    stop(std::chrono::milliseconds(0));
    {
        // No connection thread may outlive the server (they are detached and
        // use its members): their sockets are shut down, so each leaves
        // serve() as soon as its handler returns. (l04d ends with _Exit after
        // stop(grace) and never waits here for a handler stuck upstream.)
        std::unique_lock lk(m_mu);
        for (int fd : m_open_fds) ::shutdown(fd, SHUT_RDWR);
        m_cv.wait(lk, [&] { return m_connections.load() == 0; });
    }
    // Every connection's fiber has left serve(): the loop threads end.
    m_loops.reset();
    for (int fd : m_wake_pipe)
        if (fd >= 0) ::close(fd);
}

void HttpServer::touch() { m_last_activity_ns = steady_ns(); }

std::chrono::milliseconds HttpServer::idle_for() const {
    if (m_requests.load() > 0) return std::chrono::milliseconds(0);
    return std::chrono::milliseconds((steady_ns() - m_last_activity_ns.load()) / 1'000'000);
}

Status HttpServer::listen_unix(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof(addr.sun_path))
        return fail(ErrorCode::config_error, "socket path too long: " + path);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(ErrorCode::config_error, "socket(): " + std::string(std::strerror(errno)));
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    ::unlink(path.c_str());
    const mode_t old = ::umask(0177);
    int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::umask(old);
    if (rc != 0) {
        std::string err = std::strerror(errno);
        ::close(fd);
        return fail(ErrorCode::config_error, "cannot bind " + path + ": " + err);
    }
    ::chmod(path.c_str(), 0600);
    if (::listen(fd, 512) != 0) {
        ::close(fd);
        return fail(ErrorCode::config_error, "cannot listen on " + path);
    }
    m_listeners.push_back({fd, false, path});
    return {};
}

Status HttpServer::listen_tcp(const std::string& host_port) {
    auto colon = host_port.rfind(':');
    if (colon == std::string::npos)
        return fail(ErrorCode::config_invalid, "listen address '" + host_port + "' must be HOST:PORT");
    std::string host = host_port.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty() || host == "localhost") host = "127.0.0.1";
    int port = std::atoi(host_port.c_str() + colon + 1);
    const bool v6 = host.find(':') != std::string::npos;
    int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(ErrorCode::config_error, "socket(): " + std::string(std::strerror(errno)));
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    if (v6) {
        sockaddr_in6 a{};
        a.sin6_family = AF_INET6;
        a.sin6_port = htons(static_cast<uint16_t>(port));
        if (::inet_pton(AF_INET6, host.c_str(), &a.sin6_addr) != 1) {
            ::close(fd);
            return fail(ErrorCode::config_invalid, "bad listen address '" + host + "'");
        }
        rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
            ::close(fd);
            return fail(ErrorCode::config_invalid, "bad listen address '" + host + "' (use an IP address)");
        }
        rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    if (rc != 0 || ::listen(fd, 1024) != 0) {
        std::string err = std::strerror(errno);
        ::close(fd);
        return fail(ErrorCode::config_error, "cannot listen on " + host_port + ": " + err);
    }
    if (m_tcp_port == 0) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        m_tcp_port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                              : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    }
    m_listeners.push_back({fd, true, {}});
    return {};
}

Status HttpServer::adopt_fd(int fd, bool is_tcp) {
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    m_listeners.push_back({fd, is_tcp, {}});
    return {};
}

void HttpServer::start() {
    m_loops = std::make_unique<EventLoops>(EventLoops::Options{m_opts.io_threads, m_opts.thread_stack_bytes});
    for (const auto& l : m_listeners) m_accept_threads.emplace_back([this, l] { accept_loop(l); });
}

void HttpServer::accept_loop(Listener l) {
    while (!m_stopping.load()) {
        pollfd p[2] = {{l.fd, POLLIN, 0}, {m_wake_pipe[0], POLLIN, 0}};
        int rc = ::poll(p, m_wake_pipe[0] >= 0 ? 2 : 1, 500);
        if (rc <= 0 || !(p[0].revents & POLLIN)) continue;
        int fd = ::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) continue;
        if (l.tcp ? m_tcp_connections.load() >= m_opts.max_tcp_connections && !evict_unadmitted_tcp()
                  : m_unix_connections.load() >= m_opts.max_connections) {
            write_all(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            ::close(fd);
            continue;
        }
        if (l.tcp) {
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        } else if (m_opts.same_user_only) {
            // The socket is 0600 in a 0700 directory; this holds even if a
            // mode was loosened: only our own user (or root) is served.
            ucred peer{};
            socklen_t len = sizeof peer;
            if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 ||
                (peer.uid != ::getuid() && peer.uid != 0)) {
                ::close(fd);
                continue;
            }
        }
        {
            std::lock_guard lk(m_mu);
            m_open_fds.push_back(fd);
            if (l.tcp) m_tcp_conns[fd] = TcpConn{++m_tcp_seq, false};
        }
        ++m_connections;
        if (l.tcp) ++m_tcp_connections;
        else ++m_unix_connections;
        // Served on a fiber of one of the loop threads. The slot is given
        // back when the fiber's function goes, however it goes: serve()
        // returning, an exception, or a fiber that could not start.
        struct Slot {
            Slot(HttpServer* s, int f, bool t) : server(s), fd(f), tcp(t) {}
            Slot(const Slot&) = delete;
            Slot& operator=(const Slot&) = delete;
            ~Slot() { server->close_connection(fd, tcp); }
            HttpServer* server;
            int fd;
            bool tcp;
        };
        auto slot = std::make_shared<Slot>(this, fd, l.tcp);
        m_loops->spawn([slot] { slot->server->serve(slot->fd, slot->tcp); });
    }
}

bool HttpServer::evict_unadmitted_tcp() {
    std::lock_guard lk(m_mu);
    auto victim = m_tcp_conns.end();
    for (auto it = m_tcp_conns.begin(); it != m_tcp_conns.end(); ++it)
        if (!it->second.admitted && (victim == m_tcp_conns.end() || it->second.seq < victim->second.seq)) victim = it;
    if (victim == m_tcp_conns.end()) return false;
    // Its thread sees the end of the stream, closes the fd and gives the
    // slot back; the new connection is served meanwhile (one over, briefly).
    ::shutdown(victim->first, SHUT_RDWR);
    m_tcp_conns.erase(victim);
    return true;
}

bool HttpServer::set_idle(int fd, bool idle) {
    std::lock_guard lk(m_mu);
    if (!idle) {
        m_idle_fds.erase(fd);
        return true;
    }
    // Checked under the lock that stop() takes to shut idle connections
    // down: either this sees m_stopping, or stop() sees this connection.
    if (m_stopping.load()) return false;
    m_idle_fds.insert(fd);
    return true;
}

void HttpServer::serve(int fd, bool tcp) {
    Reader rd(fd);
    bool keep = true;
    while (keep && !m_stopping.load()) {
        // Wait (keep-alive idle) for the first byte, then the whole head must
        // arrive within header_timeout however slowly it trickles in. While
        // idle, stop() may shut the connection down.
        if (rd.buf().empty()) {
            if (!set_idle(fd, true)) break;
            const bool got = rd.fill(m_opts.keepalive_idle, true);
            set_idle(fd, false);
            if (!got) break;
        }
        const auto head_deadline = steady_now() + m_opts.header_timeout;
        std::size_t head_end;
        int early = 0;
        while ((head_end = rd.buf().find("\r\n\r\n")) == std::string::npos) {
            const std::string_view got = rd.buf();
            if (bad_line_ends(got.substr(0, got.size() - (got.back() == '\r' ? 1 : 0)))) early = 400;
            else if (got.find("\r\n") == std::string_view::npos && got.size() > k_max_request_line) early = 414;
            else if (got.size() > k_max_head_bytes) early = 431;
            if (early) break;
            if (!rd.fill_until(head_deadline, false)) {
                if (steady_now() >= head_deadline) early = 408;
                else keep = false;
                break;
            }
        }
        if (early) {
            close_with(fd, early);
            break;
        }
        if (!keep) break;
        ParsedHead ph;
        std::string why;
        if (int status = parse_request_head(std::string_view(rd.buf()).substr(0, head_end), ph, why); status != 0) {
            close_with(fd, status);
            break;
        }
        ServerRequest& req = ph.req;
        req.from_tcp = tcp;
        const bool http10 = ph.http10;
        rd.buf().erase(0, head_end + 4);
        if (m_opts.before_body) {
            SocketWriter early_w(fd, false, req.method == "HEAD", http10);
            if (!m_opts.before_body(req, early_w)) break;
        }
        if (tcp) {
            std::lock_guard lk(m_mu);
            if (auto it = m_tcp_conns.find(fd); it != m_tcp_conns.end()) it->second.admitted = true;
        }

        // Body.
        bool bad = false;
        int bad_status = 400;
        const auto body_deadline = steady_now() + m_opts.body_timeout;
        auto need = [&](auto&& done) {
            while (!done())
                if (!rd.fill_until(std::min(steady_now() + k_body_read_idle,
                                            body_deadline),
                                   false))
                    return false;
            return true;
        };
        if (ph.framing == BodyFraming::chunked) {
            while (!bad) {
                std::size_t le = std::string::npos;
                // The chunk-size line is bounded: a line that never ends is refused, not buffered.
                if (!need([&] {
                        le = rd.buf().find("\r\n");
                        if (le == std::string::npos && rd.buf().size() > k_max_chunk_line) bad = true;
                        return le != std::string::npos || bad;
                    }) ||
                    bad || le > k_max_chunk_line) {
                    bad = true;
                    break;
                }
                // Chunk size: hex digits, optional ";ext". Anything else is a bad request.
                std::size_t n = 0;
                const std::string_view size_line(rd.buf().data(), le);
                // CR LF only, no control characters (a bare LF is where two parsers disagree).
                if (std::any_of(size_line.begin(), size_line.end(),
                                [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
                    bad = true;
                    break;
                }
                auto [end_ptr, ec] = std::from_chars(size_line.data(), size_line.data() + size_line.size(), n, 16);
                if (ec != std::errc() || end_ptr == size_line.data() ||
                    (end_ptr != size_line.data() + size_line.size() && *end_ptr != ';')) {
                    bad = true;
                    break;
                }
                rd.buf().erase(0, le + 2);
                if (n == 0) {
                    // Trailers until an empty line, bounded in total.
                    std::size_t trailer_bytes = 0;
                    while (!bad) {
                        if (!need([&] {
                                le = rd.buf().find("\r\n");
                                if (le == std::string::npos && trailer_bytes + rd.buf().size() > k_max_trailer_bytes)
                                    bad = true;
                                return le != std::string::npos || bad;
                            }) ||
                            bad) {
                            bad = true;
                            break;
                        }
                        const std::string_view tl(rd.buf().data(), le);
                        if (!tl.empty() && (tl.front() == ' ' || tl.front() == '\t' ||
                                            std::any_of(tl.begin(), tl.end(), [](char c) {
                                                return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f;
                                            }))) {
                            bad = true;
                            break;
                        }
                        trailer_bytes += le + 2;
                        if (trailer_bytes > k_max_trailer_bytes) {
                            bad = true;
                            bad_status = 431;
                            break;
                        }
                        const bool last = le == 0;
                        rd.buf().erase(0, le + 2);
                        if (last) break;
                    }
                    break;
                }
                if (n > m_opts.max_body_bytes - req.body.size()) {
                    bad = true;
                    bad_status = 413;
                    break;
                }
                if (!need([&] { return rd.buf().size() >= n + 2; }) || rd.buf().compare(n, 2, "\r\n") != 0) {
                    bad = true;
                    break;
                }
                req.body.append(rd.buf(), 0, n);
                rd.buf().erase(0, n + 2);
            }
        } else if (ph.framing == BodyFraming::length) {
            const std::size_t n = ph.content_length;
            if (n > m_opts.max_body_bytes) {
                close_with(fd, 413);
                break;
            }
            if (!need([&] { return rd.buf().size() >= n; })) bad = true;
            if (!bad) {
                req.body = rd.buf().substr(0, n);
                rd.buf().erase(0, n);
            }
        }
        if (bad) {
            close_with(fd, bad_status);
            break;
        }

        const std::string conn = to_lower(req.header("connection"));
        keep = http10 ? conn == "keep-alive" : conn != "close";
        // Nothing of the next request has arrived: the read buffer (4 KiB
        // or more) goes back to the heap for the handler's length, which
        // for a stream is minutes (the next request allocates it again).
        if (rd.buf().empty()) rd.buf().shrink_to_fit();
        ++m_requests;
        touch();
        SocketWriter w(fd, keep && !m_stopping.load(), req.method == "HEAD", http10);
        try {
            m_handler(req, w);
        } catch (const std::exception& e) {
            // Never expected (the handler answers errors itself).
            spdlog::error("request handler threw: {}", e.what());
            keep = false;
        } catch (...) {
            spdlog::error("request handler threw");
            keep = false;
        }
        if (!w.started()) w.send(500, {{"Content-Type", "text/plain"}}, "handler produced no response\n");
        else w.end_stream();
        touch();
        {
            std::lock_guard lk(m_mu);
            --m_requests;
            m_cv.notify_all();
        }
        if (!w.ok() || !w.keep_alive()) keep = false;
    }
}

void HttpServer::close_connection(int fd, bool tcp) {
    {
        // Under the lock, before close: an eviction never hits a reused fd.
        std::lock_guard lk(m_mu);
        m_idle_fds.erase(fd);
        m_open_fds.erase(std::remove(m_open_fds.begin(), m_open_fds.end(), fd), m_open_fds.end());
        if (tcp) m_tcp_conns.erase(fd);
    }
    ::close(fd);
    {
        std::lock_guard lk(m_mu);
        if (tcp) --m_tcp_connections;
        else --m_unix_connections;
        --m_connections;
        // Under the lock: once stop() or the destructor sees no connection,
        // this thread touches nothing of the server's but the mutex it is
        // releasing (which POSIX allows to be destroyed once unlocked).
        m_cv.notify_all();
    }
}

void HttpServer::stop(std::chrono::milliseconds grace) {
    if (m_stopping.exchange(true) && m_accept_threads.empty()) {
        // already stopped
    }
    if (m_wake_pipe[1] >= 0) {
        char c = 1;
        (void)!::write(m_wake_pipe[1], &c, 1);
    }
    for (auto& t : m_accept_threads)
        if (t.joinable()) t.join();
    m_accept_threads.clear();
    for (auto& l : m_listeners) {
        ::close(l.fd);
        if (!l.unix_path.empty()) ::unlink(l.unix_path.c_str());
    }
    m_listeners.clear();
    std::unique_lock lk(m_mu);
    // In-flight requests finish; idle keep-alive connections are shut down
    // (a connection that turns idle later sees m_stopping).
    for (int fd : m_idle_fds) ::shutdown(fd, SHUT_RDWR);
    Clock& clock = SystemClock::instance();
    clock.wait_for(m_cv, lk, grace, [&] { return m_requests.load() == 0 && m_connections.load() == 0; });
    for (int fd : m_open_fds) ::shutdown(fd, SHUT_RDWR);
    clock.wait_for(m_cv, lk, std::chrono::milliseconds(2000), [&] { return m_connections.load() == 0; });
}

}  // namespace l04
