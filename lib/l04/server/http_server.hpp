#pragma once
// A small HTTP/1.1 server for l04d: Unix-socket and loopback-TCP listeners,
// each connection on a fiber of a few event-loop threads (core/fiber.hpp:
// the pipeline below stays synchronous and yields where it waits),
// keep-alive, Content-Length and chunked request bodies, fixed or chunked
// (streamed, flushed per write) responses.
// stop() stops accepting, lets in-flight requests finish and closes idle
// connections. No exceptions cross this API.
#include <l04/core/error.hpp>
#include <l04/core/fiber.hpp>

#include <atomic>
#include <cstdint>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

namespace l04 {

struct ServerRequest {
    std::string method;
    std::string target;  // path + query
    std::string path;
    std::string query;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;
    bool from_tcp = false;
    std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? std::string() : it->second;
    }
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Writes one response. Either send() once, or begin_stream(), write() any
// number of times, end_stream(). Every call returns false once the client
// has gone away.
class ResponseWriter {
public:
    virtual ~ResponseWriter() = default;
    virtual bool send(int status, const HeaderList& headers, std::string_view body) = 0;
    virtual bool begin_stream(int status, const HeaderList& headers) = 0;
    virtual bool write(std::string_view data) = 0;
    virtual bool end_stream() = 0;
    virtual bool started() const = 0;
};

using Handler = std::function<void(const ServerRequest&, ResponseWriter&)>;

// How a request's body is framed (RFC 9112 section 6).
enum class BodyFraming : std::uint8_t { none = 0, length = 1, chunked = 2 };

struct ParsedHead {
    ServerRequest req;
    bool http10 = false;
    BodyFraming framing = BodyFraming::none;
    std::size_t content_length = 0;
};

// Limits on what a client may send before the body.
inline constexpr std::size_t k_max_request_line = 8192;   // longer: 414
inline constexpr std::size_t k_max_head_bytes = 65536;    // longer: 431
// Within body_timeout, the longest a body may go without a byte arriving.
inline constexpr std::chrono::milliseconds k_body_read_idle{30'000};
inline constexpr std::size_t k_max_header_count = 100;    // more: 431
inline constexpr std::size_t k_max_chunk_line = 1024;     // chunk size + extensions
inline constexpr std::size_t k_max_trailer_bytes = 8192;  // all trailer lines

// Parses a request head (the bytes before CR LF CR LF) strictly, as RFC 9112
// asks of a server: CR LF line ends only, a request line of three parts with
// HTTP/1.0 or HTTP/1.1, token header names with no space before the colon,
// no obs-fold, one Content-Length of digits only, Transfer-Encoding exactly
// "chunked", never both. Returns 0, or the status to answer with (400, 414,
// 431, 501, 505) and sets `why`. Never throws; any input is safe.
int parse_request_head(std::string_view head, ParsedHead& out, std::string& why);

struct ServerOptions {
    std::size_t max_connections = 2048;
    // TCP connections have their own budget, so that TCP clients (which may
    // not even have authenticated yet) can never take the Unix socket's
    // slots from the owner.
    std::size_t max_tcp_connections = 256;
    // The whole head of a request must arrive within this, however slowly
    // its bytes trickle in (the keep-alive idle time is separate).
    std::chrono::milliseconds header_timeout{10000};
    std::size_t max_body_bytes = 32u << 20;
    std::chrono::milliseconds keepalive_idle{60000};
    // Each connection's fiber stack (mapped; only the pages touched are resident).
    std::size_t thread_stack_bytes = 256u << 10;
    // Event-loop threads; 0: one per core.
    std::size_t io_threads = 0;
    // Unix-socket peers must be this user or root (SO_PEERCRED).
    bool same_user_only = true;
    // Called with the head of each request before its body is read; when it
    // returns false it has answered, and the connection is closed. l04d
    // refuses TCP requests here (Host, Origin, token), so a refused client
    // never gets to send a 32 MiB body.
    std::function<bool(const ServerRequest&, ResponseWriter&)> before_body;
    // The whole body must arrive within this.
    std::chrono::milliseconds body_timeout{120000};
};

class HttpServer {
public:
    HttpServer(Handler handler, ServerOptions opts = {});
    ~HttpServer();

    // Binds a Unix socket at path (mode 0600; an existing stale socket file
    // is replaced). Fails with E4000 naming the path.
    Status listen_unix(const std::string& path);
    // Binds host:port ("127.0.0.1:8404"; port 0 = ephemeral).
    Status listen_tcp(const std::string& host_port);
    // Serves an already-listening socket (systemd socket activation).
    Status adopt_fd(int fd, bool is_tcp);
    // Port of the first TCP listener (after listen_tcp with port 0).
    int tcp_port() const { return m_tcp_port; }

    // Starts the event loops and accepts in background threads.
    void start();
    // Stops accepting; waits for in-flight requests to finish (up to grace),
    // then closes every connection.
    void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(30000));

    std::size_t active_connections() const { return m_connections.load(); }
    std::size_t active_requests() const { return m_requests.load(); }
    // Time since the last request started or finished.
    std::chrono::milliseconds idle_for() const;

private:
    struct Listener {
        int fd;
        bool tcp;
        std::string unix_path;
    };
    void accept_loop(Listener l);
    void serve(int fd, bool tcp);
    // Closes a connection's socket and gives its slot back (the last thing
    // done for a connection).
    void close_connection(int fd, bool tcp);
    // Marks a connection as waiting for its next request (stop() shuts
    // those down); false when stopping already.
    bool set_idle(int fd, bool idle);
    void touch();

    Handler m_handler;
    ServerOptions m_opts;
    std::vector<Listener> m_listeners;
    std::vector<std::thread> m_accept_threads;
    std::atomic<bool> m_stopping{false};
    std::atomic<std::size_t> m_connections{0};
    std::atomic<std::size_t> m_tcp_connections{0};
    std::atomic<std::size_t> m_unix_connections{0};
    std::atomic<std::size_t> m_requests{0};
    std::atomic<std::int64_t> m_last_activity_ns{0};
    int m_tcp_port = 0;
    int m_wake_pipe[2] = {-1, -1};
    mutable std::mutex m_mu;
    std::condition_variable m_cv;
    std::vector<int> m_open_fds;
    std::unordered_set<int> m_idle_fds;  // guarded by m_mu
    std::unique_ptr<EventLoops> m_loops;
    // TCP connections by fd: accept order, and whether a request on it has
    // been admitted (passed before_body: Host, Origin, token). When the TCP
    // budget is full, the oldest connection never admitted is closed to make
    // room, so idle or trickling strangers cannot keep a client out.
    struct TcpConn {
        std::uint64_t seq = 0;
        bool admitted = false;
    };
    std::map<int, TcpConn> m_tcp_conns;  // guarded by m_mu
    std::uint64_t m_tcp_seq = 0;
    // Closes (shutdown) the oldest unadmitted TCP connection; false if none.
    bool evict_unadmitted_tcp();
};

}  // namespace l04
