#pragma once
// FixtureServer: a small threaded HTTP/1.1 server on 127.0.0.1 (ephemeral
// port, plain POSIX sockets) for tests. Routes serve recorded bodies with
// their recorded headers (framing headers replaced by the server's own:
// Content-Length, or chunked transfer in small pieces, optionally paced by
// Route::chunk_delay). Connections are
// kept alive; accepted connections are counted so a test can assert reuse.
// Faults: connection reset mid-body, a stall mid-body (bounded by
// max_stall; stop() ends it at once), closing without an answer. Status
// faults (429 + Retry-After, 503) and malformed JSON are ordinary routes.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace l04::test {

enum class Fault : std::uint8_t {
    none = 0,
    reset_mid_body = 1,        // send fault_at body bytes, then RST the connection
    stall_mid_body = 2,        // send fault_at body bytes, then go silent
    close_without_answer = 3,  // read the request, close without a byte
};

struct Route {
    std::string method = "POST";
    std::string path;  // matched against the request target without its query,
                       // or with it when the route's path has a '?'
    int status = 200;
    std::string reason = "OK";
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    bool chunked = false;  // Transfer-Encoding: chunked in pieces of chunk_size
    std::size_t chunk_size = 64;
    // Pause before every chunked piece after the first (a paced upstream, so
    // streams overlap and forwarding can be timed). Bounded like a stall:
    // stop() ends it at once.
    std::chrono::milliseconds chunk_delay{0};
    Fault fault = Fault::none;
    std::size_t fault_at = 0;
    // Conditions: only requests whose body contains this text; only the
    // first `times` such requests (0: all). Conditional routes are tried
    // before plain ones, so "the first 2 calls for prompt X get a 429" sits
    // beside the normal answer.
    std::string when_body_contains;
    std::size_t times = 0;

    // A route from recorded files under the fixtures dir ("wire/openai/x.headers",
    // "wire/openai/x.sse"). Without a headers file: status_if_no_headers and JSON.
    // Chunked when the recording says Transfer-Encoding: chunked.
    static Route recorded(std::string method, std::string path, const std::string& rel_headers,
                          const std::string& rel_body, int status_if_no_headers = 200);
};

struct ReceivedRequest {
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;
};

class FixtureServer {
public:
    // Binds and starts serving. Throws std::runtime_error when it cannot bind
    // (tests only).
    FixtureServer();
    ~FixtureServer();
    FixtureServer(const FixtureServer&) = delete;
    FixtureServer& operator=(const FixtureServer&) = delete;

    // Adds or replaces the route for (method, path).
    void add(Route r);
    // "http://127.0.0.1:<port>"
    std::string base_url() const;
    int port() const { return m_port; }
    std::size_t connections_accepted() const { return m_accepted.load(); }
    std::vector<ReceivedRequest> requests() const;
    // Stops accepting, ends stalls, closes connections and joins every thread.
    void stop();

    // Upper bound of a stall, so a forgotten server never hangs a test run.
    std::chrono::milliseconds max_stall{10000};

private:
    void accept_loop();
    void serve(int fd);
    bool read_request(int fd, std::string& buf, ReceivedRequest& out);
    bool wait_readable(int fd);
    const Route* find_route(const std::string& method, const std::string& target, const std::string& body);

    int m_listen = -1;
    int m_wake[2] = {-1, -1};  // written once on stop(): wakes every poll
    int m_port = 0;
    std::atomic<bool> m_stopping{false};
    std::atomic<std::size_t> m_accepted{0};
    mutable std::mutex m_mu;
    std::condition_variable m_cv;
    std::vector<Route> m_routes;
    std::map<std::size_t, std::size_t> m_used;  // route index -> requests served (routes with `times`)
    std::vector<ReceivedRequest> m_requests;
    std::vector<std::thread> m_threads;
    std::vector<int> m_conns;
    std::thread m_acceptor;
};

}  // namespace l04::test
