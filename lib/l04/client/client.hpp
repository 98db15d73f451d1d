#pragma once
// How l04ctl talks to the pipeline: always through l04d's HTTP API, either
// over the daemon's Unix socket (SocketClient) or in-process with the same
// Api handler (InProcessClient, for --no-daemon). ensure_daemon() connects,
// starting l04d under a lock when nothing answers.
#include <l04/config/settings.hpp>
#include <l04/core/error.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace l04 {

class Gateway;
class Api;

struct ClientRequest {
    std::string method = "GET";
    std::string path;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

struct ClientResponse {
    int status = 0;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;                            // empty when streamed to on_body
    std::string header(const std::string& n) const {
        auto it = headers.find(n);
        return it == headers.end() ? std::string() : it->second;
    }
};

// Receives body pieces as they arrive; return false to stop reading.
using BodyFn = std::function<bool(std::string_view)>;

class ApiClient {
public:
    virtual ~ApiClient() = default;
    // With on_body set, the body is delivered piecewise and not kept.
    // Fails with E4098 when the daemon cannot be reached or drops the
    // connection.
    virtual Result<ClientResponse> call(const ClientRequest& req, const BodyFn& on_body = {}) = 0;
};

// Connects to a Unix socket per call.
class SocketClient final : public ApiClient {
public:
    // timeout: how long to wait for l04d to send anything (E4098 after it);
    // it should exceed the request's own timeout.
    explicit SocketClient(std::string socket_path, std::chrono::milliseconds timeout = std::chrono::minutes(10))
        : m_path(std::move(socket_path)), m_timeout(timeout) {}
    Result<ClientResponse> call(const ClientRequest& req, const BodyFn& on_body = {}) override;
    const std::string& path() const { return m_path; }
    // Sent as X-L04-State-Dir: an l04d serving another state directory
    // refuses the request (409, E4098) instead of mixing two users' state.
    void set_state_dir(std::string dir) { m_state_dir = std::move(dir); }
    // When a signal interrupts a read while *flag is true, the call ends
    // (E4098 "cancelled") and the connection closes: l04d cancels the request.
    void set_cancel_flag(const std::atomic<bool>* flag) { m_cancel = flag; }

private:
    std::string m_path;
    std::chrono::milliseconds m_timeout;
    std::string m_state_dir;
    const std::atomic<bool>* m_cancel = nullptr;
};

// Runs the API in this process against a gateway (l04ctl --no-daemon).
class InProcessClient final : public ApiClient {
public:
    explicit InProcessClient(std::unique_ptr<Gateway> gw);
    ~InProcessClient() override;
    Result<ClientResponse> call(const ClientRequest& req, const BodyFn& on_body = {}) override;

private:
    std::unique_ptr<Gateway> m_gw;
    std::unique_ptr<Api> m_api;
};

// Whether something answers on the socket (connect succeeds).
bool daemon_answers(const std::string& socket_path);

struct DaemonStart {
    std::string l04d_path;  // empty: next to this executable, then $PATH
    std::vector<std::string> extra_args;
    std::chrono::milliseconds ready_timeout{10000};
};

// Connects to l04d, starting it if nothing answers. Takes an exclusive lock
// on $runtime_dir/l04d.lock so that N parallel callers start exactly one
// daemon; a stale socket file is removed. Fails with E4098 naming the log.
Status ensure_daemon(const Settings& settings, const DaemonStart& start);

// Path of l04d's log file.
std::string daemon_log_path(const Settings& settings);

}  // namespace l04
