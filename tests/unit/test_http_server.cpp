#include "support/test_util.hpp"

#include <l04/client/client.hpp>
#include <l04/server/http_server.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <future>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

using namespace l04;

namespace {

int connect_to(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    return fd;
}

std::string read_until(int fd, const std::string& marker) {
    std::string got;
    char buf[4096];
    while (got.find(marker) == std::string::npos) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
}

}  // namespace

TEST_CASE("http server: fixed and streamed responses over a 0600 Unix socket") {
    test::TempDir d;
    const std::string sock = d.file("s.sock");
    HttpServer srv([](const ServerRequest& r, ResponseWriter& w) {
        if (r.path == "/echo") {
            w.send(200, {{"Content-Type", "text/plain"}, {"x-method", r.method}}, r.body + "|" + r.query);
        } else if (r.path == "/stream") {
            w.begin_stream(200, {{"Content-Type", "text/event-stream"}});
            for (int i = 0; i < 5; ++i) w.write("data: " + std::to_string(i) + "\n\n");
            w.end_stream();
        } else {
            w.send(404, {}, "nope");
        }
    });
    REQUIRE(srv.listen_unix(sock).has_value());
    srv.start();
    CHECK((std::filesystem::status(sock).permissions() & std::filesystem::perms::mask) ==
          (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));

    SocketClient c(sock);
    auto r = c.call({"POST", "/echo?a=1", "payload", {}});
    REQUIRE(r.has_value());
    CHECK(r->status == 200);
    CHECK(r->body == "payload|a=1");
    CHECK(r->header("x-method") == "POST");

    std::vector<std::string> pieces;
    auto s = c.call({"GET", "/stream", "", {}}, [&](std::string_view p) {
        pieces.emplace_back(p);
        return true;
    });
    REQUIRE(s.has_value());
    CHECK(pieces.size() == 5);
    CHECK(pieces[4] == "data: 4\n\n");
    CHECK(c.call({"GET", "/missing", "", {}})->status == 404);

    // Keep-alive and a chunked request body on one raw connection.
    int fd = connect_to(sock);
    std::string req1 = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    ::send(fd, req1.data(), req1.size(), 0);
    auto resp1 = read_until(fd, "abcde|");
    CHECK(resp1.find("HTTP/1.1 200 OK") == 0);
    CHECK(resp1.find("Connection: keep-alive") != std::string::npos);
    std::string req2 = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
    ::send(fd, req2.data(), req2.size(), 0);
    auto resp2 = read_until(fd, "hi|");
    CHECK(resp2.find("hi|") != std::string::npos);
    ::close(fd);
    srv.stop(std::chrono::milliseconds(5000));
    CHECK_FALSE(std::filesystem::exists(sock));
}

TEST_CASE("http server: stop() lets an in-flight request finish") {
    test::TempDir d;
    const std::string sock = d.file("s.sock");
    std::promise<void> entered;
    std::promise<void> release;
    auto release_f = release.get_future().share();
    HttpServer srv([&](const ServerRequest&, ResponseWriter& w) {
        entered.set_value();
        release_f.wait();
        w.send(200, {}, "done");
    });
    REQUIRE(srv.listen_unix(sock));
    srv.start();
    auto fut = std::async(std::launch::async, [&] { return SocketClient(sock).call({"GET", "/", "", {}}); });
    entered.get_future().wait();
    CHECK(srv.active_requests() == 1);
    auto stopper = std::async(std::launch::async, [&] { srv.stop(std::chrono::milliseconds(10000)); });
    // New connections are refused once stopping has begun.
    while (daemon_answers(sock)) std::this_thread::yield();
    release.set_value();
    stopper.get();
    auto r = fut.get();
    REQUIRE(r.has_value());
    CHECK(r->body == "done");
}

TEST_CASE("http server: malformed chunked bodies get 400 - trailers are consumed") {
    test::TempDir d;
    const std::string sock = d.file("s.sock");
    HttpServer srv([](const ServerRequest& r, ResponseWriter& w) { w.send(200, {}, "got:" + r.body); });
    REQUIRE(srv.listen_unix(sock));
    srv.start();
    {
        int fd = connect_to(sock);
        std::string bad = "POST / HTTP/1.1\r\nHost: l04d\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n";
        ::send(fd, bad.data(), bad.size(), 0);
        CHECK(read_until(fd, "\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
        ::close(fd);
    }
    {
        int fd = connect_to(sock);
        std::string overflow = "POST / HTTP/1.1\r\nHost: l04d\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc\r\n";
        ::send(fd, overflow.data(), overflow.size(), 0);
        CHECK(read_until(fd, "\r\n\r\n").rfind("HTTP/1.1 413", 0) == 0);  // larger than the body limit
        ::close(fd);
    }
    {
        int fd = connect_to(sock);
        std::string with_trailers =
            "POST / HTTP/1.1\r\nHost: l04d\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n"
            "POST / HTTP/1.1\r\nHost: l04d\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo";
        ::send(fd, with_trailers.data(), with_trailers.size(), 0);
        auto got = read_until(fd, "got:two");
        CHECK(got.find("got:ok") != std::string::npos);
        CHECK(got.find("got:two") != std::string::npos);
        CHECK(got.find("400") == std::string::npos);
        ::close(fd);
    }
    srv.stop(std::chrono::milliseconds(5000));
}

TEST_CASE("http server: an HTTP/1.0 client gets a streamed body without chunked framing") {
    test::TempDir d;
    const std::string sock = d.file("s.sock");
    HttpServer srv([](const ServerRequest&, ResponseWriter& w) {
        w.begin_stream(200, {{"Content-Type", "text/event-stream"}});
        w.write("data: a\n\n");
        w.write("data: b\n\n");
        w.end_stream();
    });
    REQUIRE(srv.listen_unix(sock));
    srv.start();
    int fd = connect_to(sock);
    std::string req = "GET /s HTTP/1.0\r\n\r\n";
    ::send(fd, req.data(), req.size(), 0);
    std::string got = read_until(fd, "\x01never");  // reads until the server closes
    ::close(fd);
    CHECK(got.find("Transfer-Encoding") == std::string::npos);
    CHECK(got.find("Connection: close") != std::string::npos);
    CHECK(got.substr(got.find("\r\n\r\n") + 4) == "data: a\n\ndata: b\n\n");
    srv.stop(std::chrono::milliseconds(5000));
}

TEST_CASE("http parser: RFC 9112 framing - one Content-Length of digits - exact chunked - no smuggling") {
    auto status = [](const std::string& head) {
        ParsedHead ph;
        std::string why;
        return parse_request_head(head, ph, why);
    };
    const std::string ok = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n";
    ParsedHead ph;
    std::string why;
    REQUIRE(parse_request_head(ok + "Content-Length: 12\r\nX-A: 1\r\nx-a: 2", ph, why) == 0);
    CHECK(ph.framing == BodyFraming::length);
    CHECK(ph.content_length == 12);
    CHECK(ph.req.header("x-a") == "1, 2");
    CHECK(ph.req.path == "/v1/chat/completions");
    REQUIRE(parse_request_head(ok + "Transfer-Encoding: Chunked", ph, why) == 0);
    CHECK(ph.framing == BodyFraming::chunked);
    REQUIRE(parse_request_head("GET /health?probe=0 HTTP/1.0", ph, why) == 0);  // HTTP/1.0: no Host needed
    CHECK(ph.http10);
    CHECK(ph.req.query == "probe=0");

    CHECK(status(ok + "Content-Length: 5\r\nContent-Length: 5") == 400);  // conflicting or repeated
    CHECK(status(ok + "Content-Length: 5\r\nContent-Length: 6") == 400);
    CHECK(status(ok + "Content-Length: +5") == 400);
    CHECK(status(ok + "Content-Length: 5xyz") == 400);
    CHECK(status(ok + "Content-Length: -1") == 400);
    CHECK(status(ok + "Content-Length: 99999999999999999999") == 400);
    CHECK(status(ok + "Transfer-Encoding: gzip, chunked") == 501);
    CHECK(status(ok + "Transfer-Encoding: xchunked") == 501);
    CHECK(status(ok + "Transfer-Encoding: chunked\r\nContent-Length: 5") == 400);  // smuggling shape
    CHECK(status(ok + "X-A: 1\r\n folded") == 400);                                 // obs-fold
    CHECK(status(ok + "Bad Name: 1") == 400);
    CHECK(status(ok + "Content-Length : 5") == 400);  // space before the colon
    CHECK(status(ok + "X-A: a\x01b") == 400);
    CHECK(status("POST / HTTP/1.1\nHost: x") == 400);  // bare LF
    CHECK(status("POST / HTTP/1.1\r\nHost: x\rY: 1") == 400);
    CHECK(status("POST / HTTP/2.0\r\nHost: x") == 505);
    CHECK(status("POST / FTP/1.1\r\nHost: x") == 400);
    CHECK(status("POST /  HTTP/1.1\r\nHost: x") == 400);
    CHECK(status("POST http://evil/ HTTP/1.1\r\nHost: x") == 400);
    CHECK(status("P(ST / HTTP/1.1\r\nHost: x") == 400);
    CHECK(status("POST / HTTP/1.1") == 400);  // HTTP/1.1 without Host
    CHECK(status("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x") == 414);
    std::string many = ok;
    for (int i = 0; i < 101; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
    many.resize(many.size() - 2);
    CHECK(status(many) == 431);
    CHECK(status(ok + "X-Big: " + std::string(70000, 'a')) == 431);
    // Whatever the bytes, no crash and a verdict.
    std::string junk;
    for (int i = 0; i < 2000; ++i) junk += static_cast<char>((i * 7919) & 0xff);
    CHECK(status(junk) >= 400);
    CHECK(status("") == 400);
}

TEST_CASE("http server: unbounded lines are refused, not buffered - a slow head times out") {
    test::TempDir d;
    const std::string sock = d.file("s.sock");
    ServerOptions o;
    o.header_timeout = std::chrono::milliseconds(150);
    HttpServer srv([](const ServerRequest& r, ResponseWriter& w) { w.send(200, {}, "got:" + r.body); }, o);
    REQUIRE(srv.listen_unix(sock));
    srv.start();
    {
        // A chunk-size line that never ends: 400 once it passes 1 KiB.
        int fd = connect_to(sock);
        std::string s = "POST / HTTP/1.1\r\nHost: l04d\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(4096, 'a');
        ::send(fd, s.data(), s.size(), 0);
        CHECK(read_until(fd, "\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
        ::close(fd);
    }
    {
        // A bare LF inside a chunk-size line or a trailer: refused.
        for (const std::string& body : {std::string("5;x\nGARBAGE\r\nhello\r\n0\r\n\r\n"),
                                       std::string("5\r\nhello\r\n0\r\nX: a\nY: b\r\n\r\n"),
                                       std::string("5\r\nhello\r\n0\r\n folded\r\n\r\n")}) {
            int fd = connect_to(sock);
            std::string s = "POST / HTTP/1.1\r\nHost: l04d\r\nTransfer-Encoding: chunked\r\n\r\n" + body;
            ::send(fd, s.data(), s.size(), 0);
            CHECK(read_until(fd, "\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
            ::close(fd);
        }
    }
    {
        // Trailers that never end: 400/431, not a growing buffer.
        int fd = connect_to(sock);
        std::string s = "POST / HTTP/1.1\r\nHost: l04d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
        for (int i = 0; i < 400; ++i) s += "X-T: " + std::string(40, 'b') + "\r\n";
        ::send(fd, s.data(), s.size(), 0);
        const auto got = read_until(fd, "\r\n\r\n");
        CHECK((got.rfind("HTTP/1.1 431", 0) == 0 || got.rfind("HTTP/1.1 400", 0) == 0));
        ::close(fd);
    }
    {
        // A head without an end: 431 past 64 KiB.
        int fd = connect_to(sock);
        std::string s = "POST / HTTP/1.1\r\nHost: l04d\r\nX-A: " + std::string(70000, 'c');
        ::send(fd, s.data(), s.size(), 0);
        CHECK(read_until(fd, "\r\n\r\n").rfind("HTTP/1.1 431", 0) == 0);
        ::close(fd);
    }
    {
        // Bare LF line ends: 400 at once (they used to hang until the idle timeout).
        int fd = connect_to(sock);
        std::string s = "GET /health HTTP/1.1\nHost: l04d\n\n";
        ::send(fd, s.data(), s.size(), 0);
        CHECK(read_until(fd, "\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
        ::close(fd);
    }
    {
        // Transfer-Encoding with Content-Length: refused and the connection
        // closed, so a smuggled second request is never served.
        int fd = connect_to(sock);
        std::string s = "POST / HTTP/1.1\r\nHost: l04d\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n"
                        "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: l04d\r\n\r\n";
        ::send(fd, s.data(), s.size(), 0);
        const auto got = read_until(fd, "\r\n\r\n\r\n");  // reads until close
        CHECK(got.rfind("HTTP/1.1 400", 0) == 0);
        CHECK(got.find("got:") == std::string::npos);
        ::close(fd);
    }
    {
        // One byte now and then keeps no connection alive past header_timeout.
        int fd = connect_to(sock);
        ::send(fd, "G", 1, 0);
        CHECK(read_until(fd, "\r\n\r\n").rfind("HTTP/1.1 408", 0) == 0);
        ::close(fd);
    }
    srv.stop(std::chrono::milliseconds(0));
}

namespace {
int connect_tcp(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    return fd;
}
}  // namespace

TEST_CASE("http server: a full TCP budget closes the oldest connection never admitted - admitted ones are kept") {
    ServerOptions o;
    o.max_tcp_connections = 3;
    std::atomic<int> admitted{0};
    o.before_body = [&](const ServerRequest&, ResponseWriter&) {
        ++admitted;
        return true;
    };
    HttpServer srv([](const ServerRequest&, ResponseWriter& w) { w.send(200, {}, "ok"); }, o);
    REQUIRE(srv.listen_tcp("127.0.0.1:0"));
    srv.start();
    const int port = srv.tcp_port();
    const std::string get = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    // One admitted keep-alive client.
    int keep = connect_tcp(port);
    ::send(keep, get.data(), get.size(), 0);
    REQUIRE(read_until(keep, "ok").find("200") != std::string::npos);
    // Two strangers that send nothing (or trickle a head) take the rest.
    int idle1 = connect_tcp(port);
    int idle2 = connect_tcp(port);
    ::send(idle2, "GE", 2, 0);
    // A new client is served: the oldest stranger made room.
    int fresh = connect_tcp(port);
    ::send(fresh, get.data(), get.size(), 0);
    CHECK(read_until(fresh, "ok").find("HTTP/1.1 200") == 0);
    char c;
    CHECK(::recv(idle1, &c, 1, 0) == 0);  // closed without an answer
    // The admitted keep-alive connection still works.
    ::send(keep, get.data(), get.size(), 0);
    CHECK(read_until(keep, "ok").find("HTTP/1.1 200") == 0);
    // Now every slot is admitted or taken by the newest stranger: the next
    // one pushes that stranger out, and with no stranger left the budget holds.
    int next = connect_tcp(port);
    ::send(next, get.data(), get.size(), 0);
    CHECK(read_until(next, "ok").find("HTTP/1.1 200") == 0);
    CHECK(::recv(idle2, &c, 1, 0) == 0);
    int over = connect_tcp(port);
    CHECK(read_until(over, "\r\n\r\n").find("HTTP/1.1 503") == 0);
    for (int fd : {keep, idle1, idle2, fresh, next, over}) ::close(fd);
    srv.stop(std::chrono::milliseconds(1000));
}
