// overhead_bench: what l04d adds per request against an instant upstream on
// loopback. The upstream is the tests' FixtureServer answering with the
// recorded OpenAI chat completion; l04d runs as a subprocess with the cache
// and rate limits off (so every request goes upstream), reached over its TCP
// listener. Direct and gateway runs are interleaved so machine noise hits
// both. Prints tables. Usage: build/bin/overhead_bench [requests=5000] [seconds=5]
#include "support/daemon_env.hpp"
#include "support/fixture_server.hpp"
#include "support/process.hpp"
#include "support/test_util.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace {

using clk = std::chrono::steady_clock;

// Minimal keep-alive HTTP/1.1 client (Content-Length responses only).
class Conn {
public:
    explicit Conn(int port) {
        m_fd = ::socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        ::setsockopt(m_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(m_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            std::perror("connect");
            std::exit(1);
        }
    }
    ~Conn() { ::close(m_fd); }
    // Sends the request and reads one response; returns the status.
    int roundtrip(const std::string& req) {
        for (std::size_t off = 0; off < req.size();) {
            ssize_t n = ::send(m_fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return -1;
            off += static_cast<std::size_t>(n);
        }
        std::size_t head_end;
        while ((head_end = m_buf.find("\r\n\r\n")) == std::string::npos)
            if (!fill()) return -1;
        const int status = std::atoi(m_buf.c_str() + 9);
        auto cl = m_buf.find("ontent-Length:");
        if (cl == std::string::npos || cl > head_end) cl = m_buf.find("ontent-length:");
        std::size_t len = cl < head_end ? std::strtoull(m_buf.c_str() + cl + 14, nullptr, 10) : 0;
        while (m_buf.size() < head_end + 4 + len)
            if (!fill()) return -1;
        m_buf.erase(0, head_end + 4 + len);
        return status;
    }

private:
    bool fill() {
        char tmp[65536];
        ssize_t n = ::recv(m_fd, tmp, sizeof tmp, 0);
        if (n <= 0) return false;
        m_buf.append(tmp, static_cast<std::size_t>(n));
        return true;
    }
    int m_fd;
    std::string m_buf;
};

std::string request_for(const std::string& body) {
    return "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           "Authorization: Bearer bench\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
}

double pct(std::vector<double>& v, double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

std::vector<double> latencies(int port, const std::string& req, int n) {
    Conn c(port);
    std::vector<double> out;
    out.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        auto t0 = clk::now();
        int st = c.roundtrip(req);
        auto t1 = clk::now();
        if (st != 200) {
            std::fprintf(stderr, "overhead_bench: status %d\n", st);
            std::exit(1);
        }
        out.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    return out;
}

double throughput(int port, const std::string& req, int conns, double seconds) {
    std::atomic<long> done{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> ts;
    for (int i = 0; i < conns; ++i)
        ts.emplace_back([&] {
            Conn c(port);
            while (!stop) {
                if (c.roundtrip(req) != 200) std::exit(1);
                ++done;
            }
        });
    auto t0 = clk::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& t : ts) t.join();
    return static_cast<double>(done) / std::chrono::duration<double>(clk::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 5000;
    const double seconds = argc > 2 ? std::atof(argv[2]) : 5;
    std::signal(SIGPIPE, SIG_IGN);
    l04::test::FixtureServer upstream;
    auto route = l04::test::Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_nonstream.headers",
                                            "wire/openai/chat_nonstream.json");
    route.chunked = false;  // Content-Length framing: the bench client reads only that
    upstream.add(route);
    // The tests' isolated environment (temp state, runtime and config dirs).
    l04::test::DaemonEnv env;
    env.env().insert({{"OPENAI_API_KEY", "bench"}, {"OPENAI_BASE_URL", upstream.base_url() + "/v1"},
                      {"L04_CACHE_ENABLED", "false"}, {"L04_RATE_LIMIT_ENABLED", "false"}, {"L04_LOG_LEVEL", "info"}});
    env.env()["L04_IDLE_TIMEOUT"] = "60";  // an orphan (bench killed) exits by itself
    std::filesystem::create_directories(env.state_dir());
    const l04::test::ProcOptions o = env.options();
    const std::string log = env.log_path();
    int pid = l04::test::spawn({l04::test::bin("l04d"), "--foreground", "--listen", "127.0.0.1:0"}, o, log);
    const int port = l04::test::wait_for_l04d_port(log);
    if (port == 0) {
        std::fprintf(stderr, "overhead_bench: l04d did not start; log:\n%s\n", l04::test::read_file(log).c_str());
        return 1;
    }
    const std::string body = l04::test::fixture("wire/openai/chat_nonstream_request.json");
    auto json_model = [&](const std::string& model) {
        std::string b = body;
        auto pos = b.find("\"model\"");
        auto colon = b.find(':', pos);
        auto q1 = b.find('"', colon + 1);
        auto q2 = b.find('"', q1 + 1);
        return b.replace(q1 + 1, q2 - q1 - 1, model);
    };
    const std::string direct_req = request_for(body);
    const std::string gw_req = request_for(json_model("gpt-4o"));
    latencies(upstream.port(), direct_req, 200);  // warm-up
    latencies(port, gw_req, 200);

    std::printf("l04d overhead against an instant upstream (FixtureServer, recorded OpenAI answer), 1 connection,\n"
                "%d sequential requests per round, 3 rounds interleaved (µs)\n\n", n);
    std::printf("| round | direct p50 | direct p99 | l04d p50 | l04d p99 | added p50 | added p99 |\n");
    std::printf("|------:|-----------:|-----------:|---------:|---------:|----------:|----------:|\n");
    for (int round = 1; round <= 3; ++round) {
        auto d = latencies(upstream.port(), direct_req, n);
        auto g = latencies(port, gw_req, n);
        double d50 = pct(d, 0.5), d99 = pct(d, 0.99), g50 = pct(g, 0.5), g99 = pct(g, 0.99);
        std::printf("| %5d | %10.1f | %10.1f | %8.1f | %8.1f | %9.1f | %9.1f |\n", round, d50, d99, g50, g99, g50 - d50,
                    g99 - d99);
    }
    std::printf("\nThroughput, closed loop, %.0f s per cell (requests/s)\n\n", seconds);
    std::printf("| connections | direct | l04d |\n|---:|---:|---:|\n");
    for (int c : {1, 16, 64}) {
        double d = throughput(upstream.port(), direct_req, c, seconds);
        double g = throughput(port, gw_req, c, seconds);
        std::printf("| %d | %.0f | %.0f |\n", c, d, g);
    }
    ::kill(pid, SIGTERM);
    l04::test::wait_pid(pid, std::chrono::milliseconds(30000));
    upstream.stop();
    return 0;
}
