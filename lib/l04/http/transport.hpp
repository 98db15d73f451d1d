#pragma once
// Transport: one HTTP exchange with an upstream. The body is delivered to
// on_data as it arrives (so streams are forwarded chunk by chunk, never
// buffered whole); on_data returning false cancels the transfer. Tests inject
// a fake; production uses make_transport() (http1_transport.hpp): a lean
// HTTP/1.1 client for http:// to literal addresses and localhost, libcurl
// for the rest (keep-alive pool, TLS, HTTP/2 where offered, proxies from the
// environment).
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

struct HttpRequest {
    std::string method = "POST";
    std::string url;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    // Time to establish the connection (TCP + TLS) and for the whole exchange.
    std::chrono::milliseconds connect_timeout{10000};
    std::chrono::milliseconds total_timeout{120000};
    // When set and it becomes true, the transfer is abandoned (E4604) even
    // while the upstream sends nothing (checked about once a second while
    // idle, at every received piece otherwise).
    const std::atomic<bool>* cancel = nullptr;
};

struct HttpResponseHead {
    int status = 0;
    std::map<std::string, std::string> headers;  // names lower-cased
};

// Called once with the status and headers before any body bytes.
using HeadFn = std::function<void(const HttpResponseHead&)>;
// Called with each piece of the body; return false to cancel.
using DataFn = std::function<bool(std::string_view)>;

class Transport {
public:
    virtual ~Transport() = default;
    // Performs the request. on_head is called once, before the first body
    // byte; on_data with each body piece. Returns the head once the body has
    // been fully delivered. Fails with E4202 (timeout, retryable), E4201
    // (cannot connect, or the connection broke before a response; retryable)
    // or E4604 (cancelled by the caller, or the connection broke mid-body).
    // HTTP error statuses are NOT errors here: the caller maps them (see
    // error_from_http). Error messages never contain request headers (keys).
    virtual Result<HttpResponseHead> perform(const HttpRequest& req, const HeadFn& on_head, const DataFn& on_data) = 0;
};

// Convenience: collects the whole body.
struct HttpResponse {
    HttpResponseHead head;
    std::string body;
};
Result<HttpResponse> perform_buffered(Transport& t, const HttpRequest& req);

}  // namespace l04
