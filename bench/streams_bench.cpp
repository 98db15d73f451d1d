// streams_bench: the DESIGN.md streaming and memory budgets for l04d.
//  (a) resident memory idle after start and after a warm-up request (≤ 30 MB);
//  (b) N concurrent streaming requests through one l04d (default 1,000): all
//      complete, each stream's content in order and intact, peak resident
//      memory (≤ 200 MB), time to first byte and total time percentiles;
//  (c) chunks are forwarded as they arrive: against a paced upstream the first
//      delta reaches the client long before the upstream finishes, and every
//      delta arrives shortly after the upstream sent the event carrying it.
// The upstream is the tests' FixtureServer serving the recorded OpenAI stream
// (wire/openai/chat_stream_with_usage.sse) chunked in small pieces with a
// pause between pieces; l04d runs as a subprocess (cache and rate limits off,
// queue.provider_concurrency raised to N) reached over loopback TCP. The
// client is one thread with epoll over all N sockets. l04d is started with a
// soft open-file limit of 1,024 (the usual default) so its own raise to the
// hard limit is exercised. Everything is on 127.0.0.1, bounded in time, and
// only processes started here are signalled.
// Usage: build/bin/streams_bench [streams=1000] [delay_ms=100] [chunk_bytes=256]
//                                [provider_concurrency=max(64, streams)]
#include "support/daemon_env.hpp"
#include "support/fixture_server.hpp"
#include "support/process.hpp"
#include "support/test_util.hpp"

#include <l04/bootstrap.hpp>

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using clk = std::chrono::steady_clock;
using json = nlohmann::json;

double ms_since(clk::time_point t0, clk::time_point t) { return std::chrono::duration<double, std::milli>(t - t0).count(); }

// Fields of /proc/<pid>/status, in kB (Threads: a count).
struct ProcStatus {
    long rss_kb = 0;
    long hwm_kb = 0;
    long anon_kb = 0;
    long file_kb = 0;
    long threads = 0;
};

ProcStatus proc_status(int pid) {
    ProcStatus s;
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    auto value = [](const std::string& l) { return std::atol(l.c_str() + l.find(':') + 1); };
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) s.rss_kb = value(line);
        else if (line.rfind("VmHWM:", 0) == 0) s.hwm_kb = value(line);
        else if (line.rfind("RssAnon:", 0) == 0) s.anon_kb = value(line);
        else if (line.rfind("RssFile:", 0) == 0) s.file_kb = value(line);
        else if (line.rfind("Threads:", 0) == 0) s.threads = value(line);
    }
    return s;
}

std::size_t open_fds(int pid) {
    std::error_code ec;
    std::size_t n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++n;
    return n;
}

std::string limit_line(int pid, const std::string& name) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/limits");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(name, 0) == 0) return line;
    return "?";
}

double mb(long kb) { return static_cast<double>(kb) / 1024.0; }

// The recorded upstream stream, as the bench checks it: the concatenated
// content deltas, their count, and for each content event the byte offset
// just past its blank line (when a paced upstream has sent all of it).
struct Expected {
    std::string content;
    std::vector<std::size_t> content_event_ends;
};

Expected expected_from(const std::string& sse) {
    Expected e;
    std::size_t pos = 0;
    for (std::size_t end; (end = sse.find("\n\n", pos)) != std::string::npos; pos = end + 2) {
        std::string ev = sse.substr(pos, end - pos);
        if (ev.rfind("data: ", 0) != 0 || ev == "data: [DONE]") continue;
        auto j = json::parse(ev.substr(6), nullptr, false);
        if (j.is_discarded() || !j.contains("choices") || j["choices"].empty()) continue;
        const auto& d = j["choices"][0]["delta"];
        if (d.contains("content") && d["content"].is_string() && !d["content"].get<std::string>().empty()) {
            e.content += d["content"].get<std::string>();
            e.content_event_ends.push_back(end + 2);
        }
    }
    return e;
}

// One streaming request over a non-blocking socket: sends the request,
// decodes the chunked response and its SSE events as bytes arrive.
struct Stream {
    int fd = -1;
    std::string out;
    std::size_t sent = 0;
    std::string raw;   // undecoded bytes (head, then chunked framing)
    std::string sse;   // decoded body not yet split into events
    bool head_done = false;
    bool body_done = false;
    bool failed = false;
    std::string error;
    int status = 0;
    std::string content;
    int content_deltas = 0;
    int events = 0;
    bool done_marker = false;      // saw data: [DONE]
    bool event_after_done = false;  // an event followed [DONE]
    clk::time_point t_start, t_head, t_first_delta, t_end;
    std::vector<clk::time_point> delta_times;

    void fail(const std::string& why) {
        if (!failed) error = why;
        failed = true;
    }
    void on_event(const std::string& ev, clk::time_point now) {
        if (ev.rfind("data: ", 0) != 0) return;
        ++events;
        if (done_marker) event_after_done = true;
        const std::string payload = ev.substr(6);
        if (payload == "[DONE]") {
            done_marker = true;
            return;
        }
        auto j = json::parse(payload, nullptr, false);
        if (j.is_discarded()) return fail("an event is not JSON: " + payload.substr(0, 80));
        if (j.contains("error")) return fail("error event: " + j["error"].dump());
        if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return;
        const auto& d = j["choices"][0]["delta"];
        if (d.is_object() && d.contains("content") && d["content"].is_string()) {
            const std::string c = d["content"].get<std::string>();
            if (c.empty()) return;
            if (content_deltas == 0) t_first_delta = now;
            ++content_deltas;
            content += c;
            delta_times.push_back(now);
        }
    }
    // Consumes raw bytes; returns false once the response is complete or broken.
    void parse(clk::time_point now) {
        if (!head_done) {
            auto he = raw.find("\r\n\r\n");
            if (he == std::string::npos) return;
            status = std::atoi(raw.c_str() + 9);
            const std::string head = raw.substr(0, he);
            raw.erase(0, he + 4);
            head_done = true;
            t_head = now;
            if (status != 200) return fail("HTTP status " + std::to_string(status));
            std::string lower = head;
            std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
            if (lower.find("transfer-encoding: chunked") == std::string::npos) return fail("response is not chunked");
        }
        while (!body_done && !failed) {
            auto le = raw.find("\r\n");
            if (le == std::string::npos) return;
            const std::size_t n = std::strtoul(raw.c_str(), nullptr, 16);
            if (n == 0) {
                if (raw.size() < le + 4) return;  // "0\r\n\r\n"
                body_done = true;
                t_end = now;
                raw.erase(0, le + 4);
                break;
            }
            if (raw.size() < le + 2 + n + 2) return;
            sse.append(raw, le + 2, n);
            raw.erase(0, le + 2 + n + 2);
            for (std::size_t ee; (ee = sse.find("\n\n")) != std::string::npos;) {
                on_event(sse.substr(0, ee), now);
                sse.erase(0, ee + 2);
            }
        }
    }
};

struct RunResult {
    std::vector<Stream> streams;
    ProcStatus peak;            // largest VmRSS sample and most threads
    std::size_t peak_fds = 0;
    int max_in_flight = 0;      // streams with a head and no end, at once
    double wall_ms = 0;
};

int connect_nonblocking(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Runs n streams at once against port, sampling l04d's status while they run.
RunResult run_streams(int port, int l04d_pid, const std::string& request, int n, std::chrono::seconds limit) {
    RunResult rr;
    rr.streams.resize(static_cast<std::size_t>(n));
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    const auto t0 = clk::now();
    int open = 0;
    for (int i = 0; i < n; ++i) {
        Stream& s = rr.streams[static_cast<std::size_t>(i)];
        s.out = request;
        s.t_start = clk::now();
        s.fd = connect_nonblocking(port);
        if (s.fd < 0) {
            s.fail(std::string("connect: ") + std::strerror(errno));
            continue;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
        ev.data.u32 = static_cast<std::uint32_t>(i);
        ::epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev);
        ++open;
    }
    const auto deadline = t0 + limit;
    auto next_sample = t0;
    std::vector<epoll_event> evs(1024);
    char buf[65536];
    int in_flight = 0;
    while (open > 0 && clk::now() < deadline) {
        const int k = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 10);
        const auto now = clk::now();
        for (int e = 0; e < k; ++e) {
            Stream& s = rr.streams[evs[static_cast<std::size_t>(e)].data.u32];
            if (s.fd < 0) continue;
            const bool had_head = s.head_done;
            if ((evs[static_cast<std::size_t>(e)].events & EPOLLOUT) && s.sent < s.out.size()) {
                ssize_t w = ::send(s.fd, s.out.data() + s.sent, s.out.size() - s.sent, MSG_NOSIGNAL);
                if (w > 0) s.sent += static_cast<std::size_t>(w);
                else if (w < 0 && errno != EAGAIN) s.fail(std::string("send: ") + std::strerror(errno));
                if (s.sent == s.out.size()) {
                    epoll_event ev{};
                    ev.events = EPOLLIN | EPOLLRDHUP;
                    ev.data.u32 = evs[static_cast<std::size_t>(e)].data.u32;
                    ::epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
                }
            }
            if (evs[static_cast<std::size_t>(e)].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    ssize_t r = ::recv(s.fd, buf, sizeof buf, 0);
                    if (r > 0) {
                        s.raw.append(buf, static_cast<std::size_t>(r));
                        continue;
                    }
                    if (r == 0) {
                        if (!s.body_done) s.parse(now);
                        if (!s.body_done) s.fail("connection closed before the end of the body");
                    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                        s.fail(std::string("recv: ") + std::strerror(errno));
                    }
                    break;
                }
                s.parse(now);
            }
            if (!had_head && s.head_done) ++in_flight;
            rr.max_in_flight = std::max(rr.max_in_flight, in_flight);
            if (s.body_done || s.failed) {
                if (s.head_done) --in_flight;
                ::epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
                ::close(s.fd);
                s.fd = -1;
                --open;
            }
        }
        if (now >= next_sample) {
            ProcStatus st = proc_status(l04d_pid);
            rr.peak.rss_kb = std::max(rr.peak.rss_kb, st.rss_kb);
            rr.peak.anon_kb = std::max(rr.peak.anon_kb, st.anon_kb);
            rr.peak.threads = std::max(rr.peak.threads, st.threads);
            rr.peak_fds = std::max(rr.peak_fds, open_fds(l04d_pid));
            next_sample = now + std::chrono::milliseconds(50);
        }
    }
    rr.wall_ms = ms_since(t0, clk::now());
    for (auto& s : rr.streams)
        if (s.fd >= 0) {
            s.fail("not finished within the time limit");
            ::close(s.fd);
            s.fd = -1;
        }
    ::close(ep);
    return rr;
}

double pct(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// Checks every stream against the fixture; prints failures (a few) and
// returns how many streams passed.
int verify(const RunResult& rr, const Expected& want, bool quiet = false) {
    int good = 0, shown = 0;
    for (std::size_t i = 0; i < rr.streams.size(); ++i) {
        const Stream& s = rr.streams[i];
        std::string why = s.failed ? s.error : "";
        if (why.empty() && !s.body_done) why = "no end of body";
        if (why.empty() && s.content != want.content) why = "content differs: '" + s.content + "'";
        if (why.empty() && s.content_deltas != static_cast<int>(want.content_event_ends.size()))
            why = "delta count " + std::to_string(s.content_deltas);
        if (why.empty() && !s.done_marker) why = "no data: [DONE]";
        if (why.empty() && s.event_after_done) why = "an event after data: [DONE]";
        if (why.empty() && !s.sse.empty()) why = "bytes after the last event";
        if (why.empty()) ++good;
        else if (!quiet && shown++ < 5) std::printf("  stream %zu: %s\n", i, why.c_str());
    }
    return good;
}

std::string stream_request(const std::string& model) {
    std::string body = l04::test::fixture("wire/openai/chat_stream_with_usage_request.json");
    auto pos = body.find("\"model\"");
    auto q1 = body.find('"', body.find(':', pos) + 1);
    auto q2 = body.find('"', q1 + 1);
    body.replace(q1 + 1, q2 - q1 - 1, model);
    return "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           "Accept: text/event-stream\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 1000;
    const int delay_ms = argc > 2 ? std::atoi(argv[2]) : 100;
    const std::size_t chunk = argc > 3 ? static_cast<std::size_t>(std::atol(argv[3])) : 256;
    const int concurrency = argc > 4 ? std::atoi(argv[4]) : std::max(64, n);
    std::signal(SIGPIPE, SIG_IGN);

    // The bench holds n client sockets and the fixture server's n sockets.
    const std::uint64_t own_fds = l04::raise_fd_limit();
    if (own_fds < static_cast<std::uint64_t>(2 * n + 64)) {
        std::fprintf(stderr, "streams_bench: open-file limit %llu is too low for %d streams\n",
                     static_cast<unsigned long long>(own_fds), n);
        return 1;
    }

    l04::test::FixtureServer upstream;
    auto paced = [&](int delay, std::size_t piece) {
        auto r = l04::test::Route::recorded("POST", "/v1/chat/completions", "wire/openai/chat_stream_with_usage.headers",
                                            "wire/openai/chat_stream_with_usage.sse");
        r.chunked = true;
        r.chunk_size = piece;
        r.chunk_delay = std::chrono::milliseconds(delay);
        upstream.add(r);
        return r;
    };
    const auto fixture_route = paced(0, chunk);
    const Expected want = expected_from(fixture_route.body);

    // The tests' isolated environment (temp state, runtime and config dirs).
    l04::test::DaemonEnv env;
    env.env().insert({{"OPENAI_API_KEY", "bench"}, {"OPENAI_BASE_URL", upstream.base_url() + "/v1"},
                      {"L04_CACHE_ENABLED", "false"}, {"L04_RATE_LIMIT_ENABLED", "false"}, {"L04_LOG_LEVEL", "info"},
                      {"L04_QUEUE_PROVIDER_CONCURRENCY", std::to_string(concurrency)},
                      {"L04_MAX_CONNECTIONS", std::to_string(std::max(2048, n + 64))},
                      {"L04_MAX_TCP_CONNECTIONS", std::to_string(std::max(256, n + 64))}});
    env.env()["L04_IDLE_TIMEOUT"] = "0";
    std::filesystem::create_directories(env.state_dir());
    const l04::test::ProcOptions o = env.options();
    const std::string log = env.log_path();
    // l04d starts with the usual default soft limit (1,024) and must raise it.
    rlimit mine{};
    ::getrlimit(RLIMIT_NOFILE, &mine);
    rlimit child = mine;
    child.rlim_cur = std::min<rlim_t>(1024, mine.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &child);
    const auto t_spawn = clk::now();
    const int pid = l04::test::spawn({l04::test::bin("l04d"), "--foreground", "--listen", "127.0.0.1:0"}, o, log);
    ::setrlimit(RLIMIT_NOFILE, &mine);
    const int port = l04::test::wait_for_l04d_port(log);
    if (port == 0) {
        std::fprintf(stderr, "streams_bench: l04d did not start; log:\n%s\n", l04::test::read_file(log).c_str());
        ::kill(pid, SIGTERM);
        l04::test::wait_pid(pid, std::chrono::milliseconds(10000));
        return 1;
    }
    const double start_ms = ms_since(t_spawn, clk::now());
    const std::string req = stream_request("gpt-4o-mini");

    // (a) Idle and warm memory.
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const ProcStatus idle = proc_status(pid);
    const std::size_t idle_fds = open_fds(pid);
    RunResult warm = run_streams(port, pid, req, 1, std::chrono::seconds(30));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const ProcStatus warmed = proc_status(pid);
    const bool warm_ok = verify(warm, want) == 1;

    std::printf("l04d streaming and memory (DESIGN.md budgets); upstream: FixtureServer, %s\n",
                "wire/openai/chat_stream_with_usage.sse");
    std::printf("recorded stream: %zu bytes, %zu content deltas, content \"%s\"\n", fixture_route.body.size(),
                want.content_event_ends.size(), want.content.c_str());
    std::printf("l04d: started in %.0f ms with a soft open-file limit of %llu; now: %s\n\n", start_ms,
                static_cast<unsigned long long>(child.rlim_cur), limit_line(pid, "Max open files").c_str());
    std::printf("(a) resident memory\n\n");
    std::printf("| state | VmRSS MB | RssAnon MB | RssFile MB | threads | fds | budget |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---|\n");
    std::printf("| idle, 1 s after start | %.1f | %.1f | %.1f | %ld | %zu | ≤ 30 MB: %s |\n", mb(idle.rss_kb),
                mb(idle.anon_kb), mb(idle.file_kb), idle.threads, idle_fds, idle.rss_kb <= 30 * 1024 ? "met" : "MISSED");
    std::printf("| after one streamed request (%s) | %.1f | %.1f | %.1f | %ld | %zu | ≤ 30 MB: %s |\n",
                warm_ok ? "intact" : "FAILED", mb(warmed.rss_kb), mb(warmed.anon_kb), mb(warmed.file_kb),
                warmed.threads, open_fds(pid), warmed.rss_kb <= 30 * 1024 ? "met" : "MISSED");

    // (b) n concurrent streams, paced so they overlap.
    paced(delay_ms, chunk);
    const std::size_t pieces = (fixture_route.body.size() + chunk - 1) / chunk;
    const double upstream_ms = static_cast<double>(pieces - 1) * delay_ms;
    RunResult big = run_streams(port, pid, req, n, std::chrono::seconds(180));
    const ProcStatus after_big = proc_status(pid);
    std::printf("\n(b) %d concurrent streaming requests (gpt-4o-mini; upstream sends %zu pieces of %zu bytes, "
                "%d ms apart: %.0f ms per stream; queue.provider_concurrency %d)\n\n",
                n, pieces, chunk, delay_ms, upstream_ms, concurrency);
    const int good = verify(big, want);
    std::vector<double> head, first, total;
    for (const auto& s : big.streams) {
        if (!s.body_done || s.failed) continue;
        head.push_back(ms_since(s.t_start, s.t_head));
        first.push_back(ms_since(s.t_start, s.t_first_delta));
        total.push_back(ms_since(s.t_start, s.t_end));
    }
    std::printf("| streams | complete and intact | max in flight (client) | l04d peak threads | l04d peak fds | "
                "peak VmRSS MB (sampled) | VmHWM MB | RSS after MB | wall s |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    std::printf("| %d | %d | %d | %ld | %zu | %.1f | %.1f | %.1f | %.2f |\n\n", n, good, big.max_in_flight,
                big.peak.threads, big.peak_fds, mb(big.peak.rss_kb), mb(after_big.hwm_kb), mb(after_big.rss_kb),
                big.wall_ms / 1000.0);
    std::printf("| ms from connect | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|\n");
    std::printf("| response head | %.1f | %.1f | %.1f | %.1f |\n", pct(head, 0.5), pct(head, 0.9), pct(head, 0.99),
                pct(head, 1.0));
    std::printf("| first content delta | %.1f | %.1f | %.1f | %.1f |\n", pct(first, 0.5), pct(first, 0.9),
                pct(first, 0.99), pct(first, 1.0));
    std::printf("| end of stream | %.1f | %.1f | %.1f | %.1f |\n", pct(total, 0.5), pct(total, 0.9), pct(total, 0.99),
                pct(total, 1.0));
    // VmHWM is maintained lazily by the kernel; a sample can exceed it slightly.
    const long peak_kb = std::max(big.peak.rss_kb, after_big.hwm_kb);
    std::printf("\nbudget: all %d complete, in order and intact: %s; peak resident memory %.1f MB ≤ 200 MB: %s\n", n,
                good == n ? "met" : "MISSED", mb(peak_kb), peak_kb <= 200 * 1024 ? "met" : "MISSED");

    // (c) Forwarding as chunks arrive: 64-byte pieces 50 ms apart.
    const std::size_t c_chunk = 64;
    const int c_delay = 50;
    const int c_streams = 10;
    paced(c_delay, c_chunk);
    const std::size_t c_pieces = (fixture_route.body.size() + c_chunk - 1) / c_chunk;
    const double c_upstream_ms = static_cast<double>(c_pieces - 1) * c_delay;
    RunResult fw = run_streams(port, pid, req, c_streams, std::chrono::seconds(60));
    const int fw_good = verify(fw, want);
    std::vector<double> fw_first, fw_total, lag;
    for (const auto& s : fw.streams) {
        if (!s.body_done || s.failed) continue;
        fw_first.push_back(ms_since(s.t_start, s.t_first_delta));
        fw_total.push_back(ms_since(s.t_start, s.t_end));
        // Delta k is complete upstream once the piece holding its last byte is sent.
        for (std::size_t k = 0; k < s.delta_times.size() && k < want.content_event_ends.size(); ++k) {
            const double sent_ms = static_cast<double>((want.content_event_ends[k] - 1) / c_chunk) * c_delay;
            lag.push_back(ms_since(s.t_start, s.delta_times[k]) - sent_ms);
        }
    }
    std::printf("\n(c) forwarding: %d streams at once, upstream sends %zu pieces of %zu bytes %d ms apart "
                "(%.0f ms from first to last piece)\n\n",
                c_streams, c_pieces, c_chunk, c_delay, c_upstream_ms);
    std::printf("| measure (ms) | p50 | max |\n|---|---:|---:|\n");
    std::printf("| first content delta at the client | %.1f | %.1f |\n", pct(fw_first, 0.5), pct(fw_first, 1.0));
    std::printf("| upstream sends the first content delta at | %.0f | |\n",
                static_cast<double>((want.content_event_ends.front() - 1) / c_chunk) * c_delay);
    std::printf("| end of stream at the client | %.1f | %.1f |\n", pct(fw_total, 0.5), pct(fw_total, 1.0));
    std::printf("| each delta: arrival minus upstream send time (%zu deltas) | %.1f | %.1f |\n", lag.size(),
                pct(lag, 0.5), pct(lag, 1.0));
    const bool streamed = fw_good == c_streams && pct(fw_first, 1.0) < 0.25 * pct(fw_total, 0.5) &&
                          pct(lag, 1.0) < 4.0 * c_delay;
    std::printf("\nbudget: chunks forwarded as they arrive (%d/%d intact, first delta before 25%% of the stream, "
                "every delta within %d ms of its upstream send): %s\n",
                fw_good, c_streams, 4 * c_delay, streamed ? "met" : "MISSED");

    ::kill(pid, SIGTERM);
    const int rc = l04::test::wait_pid(pid, std::chrono::milliseconds(30000));
    upstream.stop();
    if (rc != 0) std::printf("\nl04d exit code %d; log tail:\n%s\n", rc, l04::test::read_file(log).substr(0, 2000).c_str());
    return good == n && warm_ok && streamed ? 0 : 1;
}
