#include "support/fixture_server.hpp"
#include "support/fake_transport.hpp"
#include "support/test_util.hpp"

#include <l04/core/strings.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace l04::test {

namespace {

bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

bool is_framing_header(const std::string& name) {
    const std::string n = to_lower(name);
    return n == "content-length" || n == "transfer-encoding" || n == "connection" || n == "keep-alive" ||
           n == "content-encoding";
}

std::string hex(std::size_t n) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%zx", n);
    return buf;
}

}  // namespace

Route Route::recorded(std::string method, std::string path, const std::string& rel_headers, const std::string& rel_body,
                      int status_if_no_headers) {
    Route r;
    r.method = std::move(method);
    r.path = std::move(path);
    if (!rel_headers.empty() && std::filesystem::exists(fixture_path(rel_headers))) {
        RecordedHead h = parse_recorded_head(fixture(rel_headers));
        r.status = h.status;
        r.reason = h.reason;
        r.headers = h.headers;
        for (const auto& [k, v] : h.headers)
            if (iequals(k, "transfer-encoding") && to_lower(v).find("chunked") != std::string::npos) r.chunked = true;
    } else {
        r.status = status_if_no_headers;
        r.reason = "";
        r.headers = {{"Content-Type", "application/json"}};
    }
    if (!rel_body.empty()) r.body = fixture(rel_body);
    return r;
}

FixtureServer::FixtureServer() {
    if (::pipe2(m_wake, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    m_listen = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (m_listen < 0) throw std::runtime_error("socket failed");
    int one = 1;
    ::setsockopt(m_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(m_listen, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(m_listen, SOMAXCONN) != 0)
        throw std::runtime_error(std::string("bind/listen failed: ") + std::strerror(errno));
    socklen_t len = sizeof addr;
    ::getsockname(m_listen, reinterpret_cast<sockaddr*>(&addr), &len);
    m_port = ntohs(addr.sin_port);
    m_acceptor = std::thread([this] { accept_loop(); });
}

FixtureServer::~FixtureServer() {
    stop();
}

void FixtureServer::stop() {
    if (m_stopping.exchange(true)) {
        if (m_acceptor.joinable()) m_acceptor.join();
        return;
    }
    (void)!::write(m_wake[1], "x", 1);
    {
        std::lock_guard lk(m_mu);
        for (int fd : m_conns) ::shutdown(fd, SHUT_RDWR);
    }
    m_cv.notify_all();
    if (m_acceptor.joinable()) m_acceptor.join();
    std::vector<std::thread> threads;
    {
        std::lock_guard lk(m_mu);
        threads.swap(m_threads);
    }
    for (auto& t : threads) t.join();
    ::close(m_listen);
    ::close(m_wake[0]);
    ::close(m_wake[1]);
}

void FixtureServer::add(Route r) {
    std::lock_guard lk(m_mu);
    for (auto& existing : m_routes)
        if (existing.method == r.method && existing.path == r.path &&
            existing.when_body_contains == r.when_body_contains && existing.times == 0 && r.times == 0) {
            existing = std::move(r);
            return;
        }
    m_routes.push_back(std::move(r));
}

std::string FixtureServer::base_url() const {
    return "http://127.0.0.1:" + std::to_string(m_port);
}

std::vector<ReceivedRequest> FixtureServer::requests() const {
    std::lock_guard lk(m_mu);
    return m_requests;
}

const Route* FixtureServer::find_route(const std::string& method, const std::string& target, const std::string& body) {
    const std::string bare = target.substr(0, target.find('?'));
    auto matches = [&](const Route& r) {
        return r.method == method && (r.path.find('?') != std::string::npos ? r.path == target : r.path == bare);
    };
    for (auto& r : m_routes) {
        if (r.when_body_contains.empty() && r.times == 0) continue;
        if (!matches(r)) continue;
        if (!r.when_body_contains.empty() && body.find(r.when_body_contains) == std::string::npos) continue;
        if (r.times > 0) {
            auto& used = m_used[&r - m_routes.data()];
            if (used >= r.times) continue;
            ++used;
        }
        return &r;
    }
    for (const auto& r : m_routes)
        if (r.when_body_contains.empty() && r.times == 0 && matches(r)) return &r;
    return nullptr;
}

void FixtureServer::accept_loop() {
    while (!m_stopping) {
        pollfd fds[2] = {{m_listen, POLLIN, 0}, {m_wake[0], POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (fds[1].revents || m_stopping) return;
        int fd = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ++m_accepted;
        std::lock_guard lk(m_mu);
        m_conns.push_back(fd);
        m_threads.emplace_back([this, fd] { serve(fd); });
    }
}

bool FixtureServer::wait_readable(int fd) {
    for (;;) {
        pollfd fds[2] = {{fd, POLLIN, 0}, {m_wake[0], POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (fds[1].revents || m_stopping) return false;
        return true;
    }
}

bool FixtureServer::read_request(int fd, std::string& buf, ReceivedRequest& out) {
    char tmp[8192];
    std::size_t head_end;
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!wait_readable(fd)) return false;
        ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) return false;
        buf.append(tmp, static_cast<std::size_t>(n));
    }
    std::string head = buf.substr(0, head_end);
    buf.erase(0, head_end + 4);
    auto lines = split(head, '\n');
    if (lines.empty()) return false;
    std::string first(trim(lines[0]));
    auto sp1 = first.find(' ');
    auto sp2 = first.rfind(' ');
    if (sp1 == std::string::npos || sp2 == sp1) return false;
    out.method = first.substr(0, sp1);
    out.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
    for (std::size_t i = 1; i < lines.size(); ++i) {
        auto colon = lines[i].find(':');
        if (colon == std::string::npos) continue;
        out.headers[to_lower(trim(lines[i].substr(0, colon)))] = std::string(trim(lines[i].substr(colon + 1)));
    }
    std::size_t length = 0;
    if (auto it = out.headers.find("content-length"); it != out.headers.end()) length = std::stoul(it->second);
    while (buf.size() < length) {
        if (!wait_readable(fd)) return false;
        ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) return false;
        buf.append(tmp, static_cast<std::size_t>(n));
    }
    out.body = buf.substr(0, length);
    buf.erase(0, length);
    return true;
}

void FixtureServer::serve(int fd) {
    std::string buf;
    bool reset = false;
    while (!m_stopping) {
        ReceivedRequest req;
        if (!read_request(fd, buf, req)) break;
        Route route;
        bool found = false;
        {
            std::lock_guard lk(m_mu);
            m_requests.push_back(req);
            if (const Route* r = find_route(req.method, req.target, req.body)) {
                route = *r;
                found = true;
            }
        }
        if (!found) {
            route.status = 404;
            route.reason = "Not Found";
            route.headers = {{"Content-Type", "application/json"}};
            route.body = R"({"error":{"message":"no route for )" + req.method + " " + req.target + R"("}})";
        }
        if (route.fault == Fault::close_without_answer) break;

        std::string head = "HTTP/1.1 " + std::to_string(route.status) + " " + route.reason + "\r\n";
        for (const auto& [k, v] : route.headers)
            if (!is_framing_header(k)) head += k + ": " + v + "\r\n";
        head += route.chunked ? "Transfer-Encoding: chunked\r\n"
                              : "Content-Length: " + std::to_string(route.body.size()) + "\r\n";
        head += "\r\n";
        if (!send_all(fd, head)) break;

        const bool faulty = route.fault == Fault::reset_mid_body || route.fault == Fault::stall_mid_body;
        const std::size_t end = faulty ? std::min(route.fault_at, route.body.size()) : route.body.size();
        bool ok = true;
        if (route.chunked) {
            const std::size_t step = std::max<std::size_t>(1, route.chunk_size);
            for (std::size_t pos = 0; ok && pos < end; pos += step) {
                if (pos > 0 && route.chunk_delay.count() > 0) {
                    std::unique_lock lk(m_mu);
                    if (m_cv.wait_for(lk, route.chunk_delay, [this] { return m_stopping.load(); })) {
                        ok = false;
                        break;
                    }
                }
                const std::size_t n = std::min(step, end - pos);
                ok = send_all(fd, hex(n) + "\r\n" + route.body.substr(pos, n) + "\r\n");
            }
            if (ok && !faulty) ok = send_all(fd, "0\r\n\r\n");
        } else {
            ok = send_all(fd, std::string_view(route.body).substr(0, end));
        }
        if (!ok) break;
        if (route.fault == Fault::reset_mid_body) {
            reset = true;
            break;
        }
        if (route.fault == Fault::stall_mid_body) {
            std::unique_lock lk(m_mu);
            m_cv.wait_for(lk, max_stall, [this] { return m_stopping.load(); });
            break;
        }
        auto conn = req.headers.find("connection");
        if (conn != req.headers.end() && iequals(conn->second, "close")) break;
    }
    if (reset) {
        linger l{1, 0};  // close with RST instead of FIN
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    {
        std::lock_guard lk(m_mu);
        m_conns.erase(std::remove(m_conns.begin(), m_conns.end(), fd), m_conns.end());
    }
    ::close(fd);
}

}  // namespace l04::test
