#include <l04/http/http1_transport.hpp>
#include <l04/core/fiber.hpp>

#include <l04/core/clock.hpp>
#include <l04/core/strings.hpp>
#include <l04/http/curl_transport.hpp>
#include <l04/http/http1_parser.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>
#include <unordered_map>
#include <vector>

namespace l04 {

namespace {

using namespace std::chrono_literals;

// Idle connections kept per origin, and for how long.
constexpr std::size_t k_max_idle_per_origin = 64;
constexpr auto k_max_idle_age = std::chrono::seconds(60);
// The longest poll() between two looks at the cancel flag.
constexpr auto k_cancel_check = std::chrono::milliseconds(1000);
// The first read of a response; a read that fills the buffer doubles it up to
// the largest.
constexpr std::size_t k_first_read = 2048;
constexpr std::size_t k_max_read = 65536;

struct Target {
    std::string authority;  // host[:port] as written: the Host header
    std::string origin;     // http://host:port, for messages and the pool
    std::vector<std::pair<int, std::string>> addrs;  // (family, literal) to try in order
    int port = 80;
    std::string path;  // path and query, never empty
};

bool is_ipv4(const std::string& s) {
    in_addr a{};
    return ::inet_pton(AF_INET, s.c_str(), &a) == 1;
}
bool is_ipv6(const std::string& s) {
    in6_addr a{};
    return ::inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

// http://literal-or-localhost[:port][/path][?query][#fragment]; false for
// anything else (libcurl takes those).
bool parse_target(const std::string& url, Target& out) {
    if (url.size() < 8 || !iequals(std::string_view(url).substr(0, 7), "http://")) return false;
    const std::string_view rest = std::string_view(url).substr(7);
    const auto auth_end = rest.find_first_of("/?#");
    const std::string_view auth = rest.substr(0, auth_end);
    if (auth.empty() || auth.find('@') != std::string_view::npos) return false;
    std::string host;
    std::string_view port_part;
    if (auth.front() == '[') {
        const auto close = auth.find(']');
        if (close == std::string_view::npos) return false;
        host = std::string(auth.substr(1, close - 1));
        if (!is_ipv6(host)) return false;  // a zone id ("%25eth0") too: libcurl's
        const auto after = auth.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return false;
            port_part = after.substr(1);
        }
        out.addrs = {{AF_INET6, host}};
    } else {
        const auto colon = auth.find(':');
        host = std::string(auth.substr(0, colon));
        if (colon != std::string_view::npos) port_part = auth.substr(colon + 1);
        if (iequals(host, "localhost")) {
            out.addrs = {{AF_INET, "127.0.0.1"}, {AF_INET6, "::1"}};  // as libcurl: never asks a resolver
        } else if (is_ipv4(host)) {
            out.addrs = {{AF_INET, host}};
        } else {
            return false;
        }
    }
    if (!port_part.empty()) {
        if (port_part.size() > 5) return false;
        int p = 0;
        for (char c : port_part) {
            if (c < '0' || c > '9') return false;
            p = p * 10 + (c - '0');
        }
        if (p < 1 || p > 65535) return false;
        out.port = p;
    }
    std::string path = auth_end == std::string_view::npos ? std::string() : std::string(rest.substr(auth_end));
    if (const auto hash = path.find('#'); hash != std::string::npos) path.resize(hash);
    if (path.empty() || path.front() == '?') path.insert(0, "/");
    for (unsigned char c : path)
        if (c <= 0x20 || c == 0x7f) return false;  // libcurl decides what to do with those
    out.path = std::move(path);
    out.authority = std::string(auth);
    out.origin = "http://" + std::string(auth);
    return true;
}

// Header names are tokens; values carry no line breaks or NULs (a key with
// a newline in a config file must not become a second header).
bool header_ok(const std::string& name, const std::string& value) {
    if (name.empty()) return false;
    for (char c : name)
        if (c <= ' ' || c == ':' || c == 0x7f) return false;
    for (char c : value)
        if (c == '\r' || c == '\n' || c == '\0') return false;
    return true;
}

enum class Wait : std::uint8_t { ready, timeout, cancelled, failed };

// Closes the socket on every way out, a throwing callback included.
class Socket {
public:
    explicit Socket(int fd = -1) : m_fd(fd) {}
    ~Socket() { close(); }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    int get() const { return m_fd; }
    int release() { return std::exchange(m_fd, -1); }
    void reset(int fd) {
        close();
        m_fd = fd;
    }
    void close() {
        if (m_fd >= 0) ::close(std::exchange(m_fd, -1));
    }

private:
    int m_fd;
};

// One request on one connection.
struct Exchange final : Http1ResponseParser::Sink {
    const HttpRequest& req;
    const HeadFn& on_head;
    const DataFn& on_data;
    const Target& target;
    Clock& clock;
    Clock::duration deadline;
    HttpResponseHead got;
    bool head_sent = false;
    bool cancelled = false;

    Exchange(const HttpRequest& r, const HeadFn& h, const DataFn& d, const Target& t, Clock& c, Clock::duration dl)
        : req(r), on_head(h), on_data(d), target(t), clock(c), deadline(dl) {}

    void head(const HttpResponseHead& h) override {
        got = h;
        head_sent = true;
        if (on_head) on_head(got);
    }
    bool data(std::string_view piece) override {
        if ((req.cancel && req.cancel->load()) || !on_data(piece)) {
            cancelled = true;
            return false;
        }
        return true;
    }

    bool cancel_requested() const { return req.cancel && req.cancel->load(); }

    // Waits for events on fd until `until`, looking at the cancel flag at
    // least every k_cancel_check; `got` receives the events that came.
    Wait wait(int fd, short events, Clock::duration until, short* revents = nullptr) {
        while (true) {
            if (cancel_requested()) return Wait::cancelled;
            const auto left = until - clock.now();
            if (left <= Clock::duration::zero()) return Wait::timeout;
            const auto slice = std::min<Clock::duration>(left, k_cancel_check);
            // On a fiber (l04d) the fiber parks and the loop polls.
            const int n = wait_fd(fd, events, SystemClock::instance().now() + slice);
            if (n > 0) {
                if (revents) *revents = static_cast<short>(n);
                return Wait::ready;
            }
            if (n < 0 && errno != EINTR) return Wait::failed;
        }
    }
    // The deadline or the cancel flag, checked between reads that keep
    // finding data (wait() checks them only when there is none).
    Wait between_reads() const {
        if (cancel_requested()) return Wait::cancelled;
        if (clock.now() >= deadline) return Wait::timeout;
        return Wait::ready;
    }
};

class Http1Transport final : public Transport {
public:
    Result<HttpResponseHead> perform(const HttpRequest& req, const HeadFn& on_head, const DataFn& on_data) override {
        Target target;
        if (!parse_target(req.url, target))
            return fail(ErrorCode::internal_error, "the HTTP/1.1 client cannot send to this URL (a libcurl URL)");
        return perform(req, target, on_head, on_data);
    }
    // The request to an already parsed target (the URL is parsed once).
    Result<HttpResponseHead> perform(const HttpRequest& req, const Target& target, const HeadFn& on_head,
                                     const DataFn& on_data);

    ~Http1Transport() override {
        for (auto& [origin, conns] : m_idle)
            for (auto& c : conns) ::close(c.fd);
    }

private:
    struct Idle {
        int fd;
        Clock::duration since;
    };

    // An idle connection to the origin that still looks open, or -1.
    int take_idle(const std::string& origin) {
        const auto now = m_clock.now();
        std::lock_guard lk(m_mu);
        auto it = m_idle.find(origin);
        if (it == m_idle.end()) return -1;
        auto& v = it->second;
        while (!v.empty()) {
            const Idle c = v.back();
            v.pop_back();
            // Closed by the server, or sent something unasked: not reusable.
            pollfd p{c.fd, POLLIN | POLLRDHUP, 0};
            if (now - c.since > k_max_idle_age || ::poll(&p, 1, 0) != 0) {
                ::close(c.fd);
                continue;
            }
            return c.fd;
        }
        return -1;
    }
    void give_back(const std::string& origin, int fd) {
        const auto now = m_clock.now();
        std::lock_guard lk(m_mu);
        auto& v = m_idle[origin];
        // Taken last in, first out: the oldest would otherwise sit here
        // (closed by the server, in CLOSE_WAIT) while traffic continues.
        std::erase_if(v, [&](const Idle& c) {
            if (now - c.since <= k_max_idle_age) return false;
            ::close(c.fd);
            return true;
        });
        if (v.size() >= k_max_idle_per_origin) {
            ::close(fd);
            return;
        }
        v.push_back({fd, now});
    }

    Clock& m_clock = SystemClock::instance();
    std::mutex m_mu;
    std::unordered_map<std::string, std::vector<Idle>> m_idle;
};

Error make_error(ErrorCode code, std::string msg) {
    Error e(code, std::move(msg));
    e.retryable = true;
    return e;
}

std::string ms_text(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

// The request, in one buffer: one send() in the common case. The framing
// headers are this client's; a header with a line break is refused.
Result<std::string> request_bytes(const HttpRequest& req, const Target& target) {
    auto framing = [](const std::string& k) {
        return iequals(k, "content-length") || iequals(k, "transfer-encoding") || iequals(k, "connection") ||
               iequals(k, "expect");
    };
    std::string out;
    out.reserve(256 + req.body.size());
    out.append(req.method).append(" ").append(target.path).append(" HTTP/1.1\r\n");
    bool has_host = false, has_agent = false, has_accept = false;
    for (const auto& [k, v] : req.headers) {
        if (!header_ok(k, v))
            return fail(ErrorCode::internal_error,
                        "a request header for " + target.origin + " has a line break or an invalid name");
        has_host |= iequals(k, "host");
        has_agent |= iequals(k, "user-agent");
        has_accept |= iequals(k, "accept");
    }
    if (!has_host) out.append("Host: ").append(target.authority).append("\r\n");
    if (!has_agent) out.append("User-Agent: l04/" L04_VERSION "\r\n");
    if (!has_accept) out.append("Accept: */*\r\n");
    for (const auto& [k, v] : req.headers)
        if (!framing(k)) out.append(k).append(": ").append(v).append("\r\n");
    if ((req.method != "GET" && req.method != "HEAD") || !req.body.empty())
        out.append("Content-Length: ").append(std::to_string(req.body.size())).append("\r\n");
    out.append("\r\n").append(req.body);
    return out;
}

// A new connection to the first address of the target that answers.
Result<int> open_connection(const Target& target, Exchange& ex, Clock::duration deadline,
                            std::chrono::milliseconds connect_timeout) {
    std::string why = "no address";
    for (const auto& [family, literal] : target.addrs) {
        const int s = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s < 0) {
            if (why == "no address") why = std::strerror(errno);
            continue;
        }
        int one = 1;
        (void)::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        (void)::setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        int rc;
        if (family == AF_INET) {
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(static_cast<std::uint16_t>(target.port));
            ::inet_pton(AF_INET, literal.c_str(), &a.sin_addr);
            rc = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
        } else {
            sockaddr_in6 a{};
            a.sin6_family = AF_INET6;
            a.sin6_port = htons(static_cast<std::uint16_t>(target.port));
            ::inet_pton(AF_INET6, literal.c_str(), &a.sin6_addr);
            rc = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
        }
        if (rc != 0 && errno == EINPROGRESS) {
            switch (ex.wait(s, POLLOUT, deadline)) {
                case Wait::ready: {
                    int err = 0;
                    socklen_t len = sizeof err;
                    rc = ::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0 ? 0 : -1;
                    if (rc != 0) errno = err ? err : errno;
                    break;
                }
                case Wait::cancelled:
                    ::close(s);
                    return fail(make_error(ErrorCode::streaming_error,
                                           "transfer from " + target.origin + " cancelled by the caller"));
                case Wait::timeout:
                    ::close(s);
                    return fail(make_error(ErrorCode::timeout, "upstream " + target.origin +
                                                                   " timed out: no connection after " +
                                                                   ms_text(connect_timeout)));
                case Wait::failed: rc = -1; break;
            }
        }
        if (rc == 0) return s;
        if (why == "no address") why = std::strerror(errno);  // the first address's reason (localhost: 127.0.0.1's)
        ::close(s);
    }
    return fail(make_error(ErrorCode::provider_unavailable, "cannot reach " + target.origin + ": " + why));
}

}  // namespace

Result<HttpResponseHead> Http1Transport::perform(const HttpRequest& req, const Target& target, const HeadFn& on_head,
                                                 const DataFn& on_data) {
    const auto start = m_clock.now();
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(req.total_timeout);

    auto bytes = request_bytes(req, target);
    if (!bytes) return fail(bytes.error());
    const std::string& out = *bytes;

    for (int attempt = 0;; ++attempt) {
        Exchange ex(req, on_head, on_data, target, m_clock, deadline);
        auto cancelled_error = [&] {
            return make_error(ErrorCode::streaming_error, "transfer from " + target.origin + " cancelled by the caller");
        };
        auto timeout_error = [&] {
            const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(m_clock.now() - start);
            return make_error(ErrorCode::timeout, (ex.head_sent ? "upstream " + target.origin + " timed out mid-response after "
                                                                : "upstream " + target.origin + " timed out after ") +
                                                      ms_text(took));
        };
        auto stopped = [&](Wait w) { return fail(w == Wait::cancelled ? cancelled_error() : timeout_error()); };
        if (ex.cancel_requested()) return fail(cancelled_error());

        // A connection: an idle one (only on the first attempt), or a new one
        // (each attempt gets the whole connect timeout, within the total).
        Socket conn(attempt == 0 ? take_idle(target.origin) : -1);
        const bool reused = conn.get() >= 0;
        if (!reused) {
            const auto connect_deadline =
                std::min(deadline, m_clock.now() + std::chrono::duration_cast<Clock::duration>(req.connect_timeout));
            auto c = open_connection(target, ex, connect_deadline, req.connect_timeout);
            if (!c) return fail(c.error());
            conn.reset(*c);
        }
        const int fd = conn.get();

        // A reused connection the server closed meanwhile: nothing of the
        // request was read, so it is sent again on a new connection.
        auto stale = [&](bool nothing_back) { return reused && attempt == 0 && nothing_back; };

        // Send. A server may answer before it has read the whole body (413)
        // and stop reading: then its answer is read, as libcurl does.
        std::string_view pending = out;
        std::string send_why;
        bool answered_early = false;
        while (!pending.empty()) {
            const ssize_t n = ::send(fd, pending.data(), pending.size(), MSG_NOSIGNAL);
            if (n > 0) {
                pending.remove_prefix(static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                short events = 0;
                const auto w = ex.wait(fd, POLLOUT | POLLIN, deadline, &events);
                if (w == Wait::cancelled || w == Wait::timeout) return stopped(w);
                if (w == Wait::failed) {
                    send_why = "poll failed";
                    break;
                }
                if ((events & POLLIN) && !(events & POLLOUT)) {
                    answered_early = true;
                    break;
                }
                continue;
            }
            send_why = n < 0 ? std::strerror(errno) : "send returned 0";
            break;
        }
        if (!send_why.empty()) {
            if (stale(true)) continue;
            // Whatever the server said before it stopped reading, if anything.
            answered_early = true;
        }

        // Receive.
        Http1ResponseParser parser(req.method == "HEAD");
        // Small while reads are small (a stream's events): the thread keeps
        // every stack page it touched, for each of up to 10,000 streams. A
        // read that fills it moves on to a heap buffer twice the size, up to
        // 64 KiB (not from the start: an allocation of 1 KiB or more makes
        // malloc consolidate its fast bins first, 2% of l04d's CPU).
        char small[k_first_read];
        std::string big;
        char* buf = small;
        std::size_t buf_size = sizeof small;
        std::string broke;  // why the connection ended early ("" while fine)
        bool retry = false;
        while (!parser.done()) {
            const ssize_t n = ::recv(fd, buf, buf_size, 0);
            if (n > 0) {
                const auto got = static_cast<std::size_t>(n);
                if (!parser.feed(std::string_view(buf, got), ex)) break;
                if (got == buf_size && buf_size < k_max_read) {
                    big.resize(buf_size * 2);
                    buf = big.data();
                    buf_size = big.size();
                }
                if (const auto w = ex.between_reads(); w != Wait::ready && !parser.done()) return stopped(w);
                continue;
            }
            if (n == 0) {
                if (stale(parser.bytes_seen() == 0)) {
                    retry = true;
                    break;
                }
                parser.eof(ex);
                break;
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                const auto w = ex.wait(fd, POLLIN, deadline);
                if (w == Wait::ready) continue;
                if (w != Wait::failed) return stopped(w);
                broke = "poll failed";
                break;
            }
            if (stale(parser.bytes_seen() == 0)) {
                retry = true;
                break;
            }
            broke = std::strerror(errno);
            break;
        }
        if (retry) continue;
        if (parser.done() && broke.empty()) {
            // Not reused after an early answer: the rest of the request is
            // still in the connection as far as the server knows.
            if (parser.reusable() && !answered_early) give_back(target.origin, conn.release());
            return ex.got;
        }
        if (ex.cancelled || parser.cancelled()) return fail(cancelled_error());
        if (broke.empty()) broke = parser.error();
        if (!send_why.empty() && parser.bytes_seen() == 0) broke = send_why;
        if (ex.head_sent)
            return fail(make_error(ErrorCode::streaming_error,
                                   "connection to " + target.origin + " broke mid-response: " + broke));
        return fail(make_error(ErrorCode::provider_unavailable, "request to " + target.origin + " failed: " + broke));
    }
}

namespace {

// http1 where it applies, libcurl for the rest. libcurl is loaded on the
// first request that needs it: a daemon whose upstreams are all local never
// maps it (about 28 shared libraries: TLS, Kerberos, LDAP, SSH ...).
class ChoosingTransport final : public Transport {
public:
    explicit ChoosingTransport(bool proxy) : m_proxy(proxy) {}
    Result<HttpResponseHead> perform(const HttpRequest& req, const HeadFn& on_head, const DataFn& on_data) override {
        if (Target target; !m_proxy && parse_target(req.url, target)) return m_http1->perform(req, target, on_head, on_data);
        std::call_once(m_curl_once, [&] { m_curl = make_curl_transport(); });
        return m_curl->perform(req, on_head, on_data);
    }

private:
    bool m_proxy;
    std::shared_ptr<Http1Transport> m_http1 = std::make_shared<Http1Transport>();
    std::once_flag m_curl_once;
    std::shared_ptr<Transport> m_curl;
};

}  // namespace

bool http1_applies(const std::string& url, bool proxy_in_env) {
    Target t;
    return !proxy_in_env && parse_target(url, t);
}

std::shared_ptr<Transport> make_http1_transport() { return std::make_shared<Http1Transport>(); }

std::shared_ptr<Transport> make_transport(bool proxy_in_env) { return std::make_shared<ChoosingTransport>(proxy_in_env); }

}  // namespace l04
