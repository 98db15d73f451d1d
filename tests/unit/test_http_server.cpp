#include "support/test_util.hpp"

#include <l04/client/client.hpp>
#include <l04/server/http_server.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <future>
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
        std::string bad = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n";
        ::send(fd, bad.data(), bad.size(), 0);
        CHECK(read_until(fd, "\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
        ::close(fd);
    }
    {
        int fd = connect_to(sock);
        std::string overflow = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc\r\n";
        ::send(fd, overflow.data(), overflow.size(), 0);
        CHECK(read_until(fd, "\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
        ::close(fd);
    }
    {
        int fd = connect_to(sock);
        std::string with_trailers =
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n"
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo";
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
