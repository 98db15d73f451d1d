// The plain-HTTP upstream client: its incremental response parser (every
// framing, fed whole and byte by byte), which URLs it takes, and the
// transport's keep-alive, stale-connection and header rules against the
// FixtureServer on 127.0.0.1. The provider tests in test_provider_http.cpp
// run over it too (and again over libcurl: L04_TEST_TRANSPORT=curl).
#include <doctest/doctest.h>

#include <l04/http/http1_parser.hpp>
#include <l04/http/http1_transport.hpp>

#include "support/fixture_server.hpp"
#include "support/test_util.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <string>
#include <thread>
#include <vector>

using namespace l04;

namespace {

struct Collect final : Http1ResponseParser::Sink {
    int heads = 0;
    HttpResponseHead h;
    std::string body;
    std::size_t refuse_after = std::string::npos;  // refuse once the body is this long
    void head(const HttpResponseHead& x) override {
        ++heads;
        h = x;
    }
    bool data(std::string_view p) override {
        if (body.size() >= refuse_after) return false;
        body.append(p);
        return true;
    }
};

struct Parsed {
    bool ok = false;
    bool done = false;
    bool reusable = false;
    std::string error;
    Collect c;
};

// Feeds the bytes in pieces of `step` (0: whole), then eof when asked.
Parsed parse(const std::string& bytes, std::size_t step = 0, bool then_eof = false, bool head_request = false) {
    Parsed out;
    Http1ResponseParser p(head_request);
    bool ok = true;
    if (step == 0) {
        ok = p.feed(bytes, out.c);
    } else {
        for (std::size_t i = 0; ok && i < bytes.size(); i += step)
            ok = p.feed(std::string_view(bytes).substr(i, step), out.c);
    }
    if (ok && then_eof) ok = p.eof(out.c);
    out.ok = ok;
    out.done = p.done();
    out.reusable = p.reusable();
    out.error = p.error();
    return out;
}

// The same result whole, byte by byte and in 7-byte pieces.
Parsed parse_all_ways(const std::string& bytes, bool then_eof = false, bool head_request = false) {
    const auto whole = parse(bytes, 0, then_eof, head_request);
    for (std::size_t step : {1, 7}) {
        const auto piecewise = parse(bytes, step, then_eof, head_request);
        CHECK(piecewise.ok == whole.ok);
        CHECK(piecewise.done == whole.done);
        CHECK(piecewise.reusable == whole.reusable);
        CHECK(piecewise.c.body == whole.c.body);
        CHECK(piecewise.c.heads == whole.c.heads);
        CHECK(piecewise.c.h.status == whole.c.h.status);
    }
    return whole;
}

// A message parsed whole: complete, with this reusability and body.
void check_whole(const Parsed& p, bool reusable, const std::string& body) {
    CHECK(p.ok);
    CHECK(p.done);
    CHECK(p.reusable == reusable);
    CHECK(p.c.body == body);
}

}  // namespace

TEST_CASE("http1 parser: Content-Length - chunked - to the end of the connection") {
    auto a = parse_all_ways("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"bc\"}\n");
    CHECK(a.ok);
    CHECK(a.done);
    CHECK(a.reusable);
    CHECK(a.c.heads == 1);
    CHECK(a.c.h.status == 200);
    CHECK(a.c.h.headers.at("content-type") == "application/json");
    CHECK(a.c.body == "{\"a\":\"bc\"}\n");

    // Chunks with extensions, upper-case hex, trailers.
    check_whole(parse_all_ways("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=v\r\nhello\r\nA\r\n, "
                               "world!!!\r\n0\r\nX-Trailer: 1\r\n\r\n"),
                true, "hello, world!!!");

    // No length: the body is everything until the peer closes.
    check_whole(parse_all_ways("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", true), false,
                "all of it");

    // Transfer-Encoding not ending in chunked: to the end, not reusable.
    check_whole(parse_all_ways("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", true), false, "zz");

    // HTTP/1.0 cannot frame by Transfer-Encoding (RFC 9112 6.1): to the end.
    check_whole(parse_all_ways("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", true), false,
                "2\r\nok\r\n0\r\n\r\n");

    // Both: chunked wins, and the connection is not reused.
    check_whole(
        parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
        false, "ok");

    // Identical repeated lengths are one length.
    check_whole(parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"), true, "ok");
}

TEST_CASE("http1 parser: no body after HEAD - 204 - 304 - and interim 1xx responses are skipped") {
    auto a = parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", false, true);
    CHECK(a.done);
    CHECK(a.reusable);
    CHECK(a.c.body.empty());
    auto b = parse_all_ways("HTTP/1.1 204 No Content\r\n\r\n");
    CHECK(b.done);
    CHECK(b.c.h.status == 204);
    auto c = parse_all_ways("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n");
    CHECK(c.done);
    auto d = parse_all_ways("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n"
                            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 2\r\n\r\n{}");
    CHECK(d.ok);
    CHECK(d.done);
    CHECK(d.c.heads == 1);  // only the final head is handed on
    CHECK(d.c.h.status == 429);
    CHECK(d.c.h.headers.at("retry-after") == "7");
    CHECK(d.c.h.headers.count("link") == 0);
    CHECK(d.c.body == "{}");
    auto e = parse_all_ways("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n");
    CHECK_FALSE(e.ok);
    CHECK(e.c.heads == 0);
}

TEST_CASE("http1 parser: keep-alive rules - lenient line ends - folded and repeated headers") {
    CHECK_FALSE(parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").reusable);
    CHECK_FALSE(parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").reusable);
    CHECK(parse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n").reusable);
    CHECK(parse("HTTP/1.1 200 OK\r\nConnection: keep-alive, Upgrade\r\nContent-Length: 0\r\n\r\n").reusable);
    // Bytes after the end of the message: not reused.
    auto t = parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA");
    CHECK(t.done);
    CHECK(t.c.body == "ok");
    CHECK_FALSE(t.reusable);

    auto lf = parse_all_ways("HTTP/1.1 200 OK\nContent-Length: 3\nX-A: 1\n\nabc");
    CHECK(lf.ok);
    CHECK(lf.c.body == "abc");
    CHECK(lf.c.h.headers.at("x-a") == "1");
    auto fold = parse_all_ways("HTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\nSet-Thing: 1\r\nSet-Thing: 2\r\nContent-Length: 0\r\n\r\n");
    CHECK(fold.ok);
    CHECK(fold.c.h.headers.at("x-long") == "a b");
    CHECK(fold.c.h.headers.at("set-thing") == "1, 2");
    // No reason phrase is fine.
    CHECK(parse("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").done);
}

TEST_CASE("http1 parser: malformed framing and limits are errors - never a guessed body") {
    for (const char* bad : {
             "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok",
             "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
             "HTTP/2 200\r\n\r\n",
             "ICY 200 OK\r\n\r\n",
             "HTTP/1.1 2000 OK\r\n\r\n",
             "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
             "HTTP/1.1 200 OK\r\n: x\r\n\r\n",
             "HTTP/1.1 200 OK\r\n folded-first\r\n\r\n",
         }) {
        CAPTURE(bad);
        auto r = parse(bad);
        CHECK_FALSE(r.ok);
        CHECK_FALSE(r.error.empty());
        CHECK(r.c.body.size() <= 2);  // only a whole chunk before a broken one was handed on
    }
    // Limits.
    CHECK_FALSE(parse("HTTP/1.1 200 OK\r\nX: " + std::string(70000, 'a') + "\r\n\r\n").ok);
    std::string many = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i < 101; ++i) many += "X-" + std::to_string(i) + ": 1\r\n";
    CHECK_FALSE(parse(many + "\r\n").ok);
    CHECK_FALSE(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + std::string(2000, 'e') + "\r\n").ok);
    CHECK_FALSE(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + std::string(9000, 't') + "\r\n").ok);

    // Cut short: an error at eof, with what had arrived delivered.
    auto cut = parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, true);
    CHECK_FALSE(cut.ok);
    CHECK(cut.c.body == "abc");
    CHECK(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 0, true).error == "connection closed mid-body");
    CHECK(parse("", 0, true).error == "connection closed with no response");
    CHECK(parse("HTTP/1.1 20", 0, true).error == "connection closed mid-head");

    // A sink that refuses stops the parse: cancelled, not malformed.
    Collect c;
    c.refuse_after = 3;
    Http1ResponseParser p;
    CHECK(p.feed("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc", c));
    CHECK_FALSE(p.feed("def", c));
    CHECK(p.cancelled());
    CHECK(c.body == "abc");
}

TEST_CASE("http1 transport: which URLs it takes - the rest go to libcurl") {
    for (const char* yes : {"http://127.0.0.1:18080/v1/chat/completions", "http://localhost:11434/api/chat",
                            "HTTP://LOCALHOST/", "http://[::1]:8000/v1", "http://10.0.0.7", "http://127.0.0.1:80?x=1#frag"}) {
        CAPTURE(yes);
        CHECK(http1_applies(yes, false));
        CHECK_FALSE(http1_applies(yes, true));  // a proxy variable: libcurl applies it
    }
    for (const char* no : {"https://127.0.0.1/v1", "http://api.example.com/v1", "http://user:pw@127.0.0.1/",
                           "http://127.0.0.1:0/", "http://127.0.0.1:65536/", "http://[fe80::1%25eth0]:80/",
                           "http://127.0.0.1/a b", "http://", "ftp://127.0.0.1/", "http://127.1/"}) {
        CAPTURE(no);
        CHECK_FALSE(http1_applies(no, false));
    }
}

TEST_CASE("http1 transport: a reused connection the server closed is sent again once - on a new connection") {
    test::FixtureServer server;
    auto ok = test::Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_nonstream.headers",
                                    "wire/openai/chat_nonstream.json");
    server.add(ok);
    auto t = make_http1_transport();
    HttpRequest req;
    req.url = server.base_url() + "/v1/chat/completions";
    req.body = "{\"model\":\"x\"}";
    auto r1 = perform_buffered(*t, req);
    REQUIRE(r1);
    CHECK(r1->head.status == 200);
    // The next request on that kept-alive connection finds it closed.
    test::Route drop = ok;
    drop.when_body_contains = "second";
    drop.times = 1;
    drop.fault = test::Fault::close_without_answer;
    server.add(drop);
    req.body = "{\"model\":\"second\"}";
    auto r2 = perform_buffered(*t, req);
    REQUIRE(r2);
    CHECK(r2->head.status == 200);
    CHECK(server.connections_accepted() == 2);
    CHECK(server.requests().size() == 3);  // the dropped one, then its resend

    // On a new connection the same fault is an error, not a resend.
    auto fresh = make_http1_transport();
    drop.times = 1;
    drop.when_body_contains = "third";
    server.add(drop);
    req.body = "{\"model\":\"third\"}";
    auto r3 = perform_buffered(*fresh, req);
    REQUIRE_FALSE(r3);
    CHECK(r3.error().code == ErrorCode::provider_unavailable);
    CHECK(r3.error().retryable);
    CHECK(r3.error().message.find("request to " + server.base_url() + " failed") != std::string::npos);
}

TEST_CASE("http1 transport: headers with line breaks are refused - framing headers are the client's own") {
    test::FixtureServer server;
    server.add(test::Route::recorded("POST", "/v1/x", "wire/openai/chat_nonstream.headers", "wire/openai/chat_nonstream.json"));
    auto t = make_http1_transport();
    HttpRequest req;
    req.url = server.base_url() + "/v1/x";
    req.body = "abc";
    req.headers = {{"Authorization", "Bearer sk-SECRET\r\nX-Injected: 1"}};
    auto bad = perform_buffered(*t, req);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("SECRET") == std::string::npos);
    CHECK(server.requests().empty());  // nothing was sent

    req.headers = {{"Authorization", "Bearer k"}, {"Content-Length", "999"}, {"Connection", "close"}, {"X-Mine", "1"}};
    auto r = perform_buffered(*t, req);
    REQUIRE(r);
    auto got = server.requests();
    REQUIRE(got.size() == 1);
    CHECK(got[0].body == "abc");
    CHECK(got[0].headers.at("content-length") == "3");
    CHECK(got[0].headers.count("connection") == 0);
    CHECK(got[0].headers.at("x-mine") == "1");
    CHECK(got[0].headers.at("host") == server.base_url().substr(7));
    CHECK(got[0].headers.at("user-agent").rfind("l04/", 0) == 0);
}

TEST_CASE("http1 transport: a body larger than the socket buffers is sent whole - and the answer read whole") {
    test::FixtureServer server;
    auto route = test::Route::recorded("POST", "/v1/big", "wire/openai/chat_nonstream.headers",
                                       "wire/openai/chat_nonstream.json");
    route.body = std::string(3 << 20, 'r');  // an answer larger than one read
    server.add(route);
    auto t = make_http1_transport();
    HttpRequest req;
    req.url = server.base_url() + "/v1/big";
    req.body = std::string(5 << 20, 'q');
    auto r = perform_buffered(*t, req);
    REQUIRE(r);
    CHECK(r->head.status == 200);
    CHECK(r->body == route.body);
    auto got = server.requests();
    REQUIRE(got.size() == 1);
    CHECK(got[0].body.size() == req.body.size());
    CHECK(got[0].body == req.body);
}

TEST_CASE("http1 transport: an answer sent before the body was read (413) is the answer - not a send failure") {
    // A server that reads the head only, answers 413 and stops reading: the
    // client's send blocks on full buffers, and the answer is what it must
    // report, as libcurl does.
    const int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(ls >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(ls, 4) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    std::promise<void> client_done;
    auto done = client_done.get_future();
    std::thread server([&] {
        const int c = ::accept(ls, nullptr, nullptr);
        if (c < 0) return;
        std::string head;
        char ch;
        while (head.find("\r\n\r\n") == std::string::npos && ::recv(c, &ch, 1, 0) == 1) head += ch;
        const std::string answer =
            "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"error\":\"big\"}\r\n";
        (void)::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
        // Keep the connection (unread body and all) until the client is done:
        // closing with unread data would reset it and drop the answer.
        done.wait();
        ::close(c);
    });
    auto t = make_http1_transport();
    HttpRequest req;
    req.url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/v1/chat/completions";
    req.body = std::string(32 << 20, 'b');  // far more than the socket buffers hold
    req.total_timeout = std::chrono::milliseconds(20000);
    auto r = perform_buffered(*t, req);
    client_done.set_value();
    server.join();
    ::close(ls);
    REQUIRE(r);
    CHECK(r->head.status == 413);
    CHECK(r->body == "{\"error\":\"big\"}\r\n");
}
