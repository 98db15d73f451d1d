#include <l04/core/strings.hpp>
#include <l04/http/curl_transport.hpp>
#include <l04/core/fiber.hpp>

#include <l04/http/curl_api.hpp>

#include <mutex>
#include <vector>

namespace l04 {

namespace {

// Every libcurl call goes through the dlopen'ed table (see curl_api.hpp).
// Only reached after CurlTransport checked that libcurl loaded.
const CurlApi& curl() { return *curl_api(); }
#undef curl_easy_init
#define curl_easy_init curl().easy_init
#undef curl_easy_cleanup
#define curl_easy_cleanup curl().easy_cleanup
#undef curl_easy_reset
#define curl_easy_reset curl().easy_reset
#undef curl_easy_setopt
#define curl_easy_setopt curl().easy_setopt
#undef curl_easy_perform
#define curl_easy_perform curl().easy_perform
#undef curl_easy_getinfo
#define curl_easy_getinfo curl().easy_getinfo
#undef curl_easy_strerror
#define curl_easy_strerror curl().easy_strerror
#undef curl_share_init
#define curl_share_init curl().share_init
#undef curl_share_setopt
#define curl_share_setopt curl().share_setopt
#undef curl_share_cleanup
#define curl_share_cleanup curl().share_cleanup
#undef curl_slist_append
#define curl_slist_append curl().slist_append
#undef curl_slist_free_all
#define curl_slist_free_all curl().slist_free_all

// Idle upstream connections kept open for reuse, across all hosts. Above
// the pool of 64 handles: every pooled handle's connection stays warm.
constexpr long k_max_idle_connections = 256;

struct Transfer {
    const HeadFn* on_head;
    const DataFn* on_data;
    const std::atomic<bool>* cancel;
    CURL* h;
    HttpResponseHead head;
    bool head_sent = false;
    bool cancelled = false;

    void send_head() {
        if (head_sent) return;
        head_sent = true;
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        head.status = static_cast<int>(status);
        if (on_head && *on_head) (*on_head)(head);
    }
};

size_t header_cb(char* buf, size_t size, size_t n, void* ud) {
    auto* t = static_cast<Transfer*>(ud);
    std::string_view line(buf, size * n);
    if (line.rfind("HTTP/", 0) == 0) {
        t->head.headers.clear();  // a new response (after 100-continue)
        return size * n;
    }
    if (trim(line).empty()) {
        // End of a header block: deliver the head now unless it was an
        // interim 1xx response, so callers see status and headers before
        // the first body byte even when the body is slow to come.
        long status = 0;
        curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200) t->send_head();
        return size * n;
    }
    auto colon = line.find(':');
    if (colon != std::string_view::npos) {
        std::string name = to_lower(trim(line.substr(0, colon)));
        std::string value(trim(line.substr(colon + 1)));
        auto& slot = t->head.headers[name];
        slot = slot.empty() ? value : slot + ", " + value;
    }
    return size * n;
}

size_t write_cb(char* buf, size_t size, size_t n, void* ud) {
    auto* t = static_cast<Transfer*>(ud);
    t->send_head();
    if ((t->cancel && t->cancel->load()) || !(*t->on_data)(std::string_view(buf, size * n))) {
        t->cancelled = true;
        return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
    }
    return size * n;
}

int xferinfo_cb(void* ud, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(ud);
    if (t->cancel && t->cancel->load()) {
        t->cancelled = true;
        return 1;  // aborts the transfer (CURLE_ABORTED_BY_CALLBACK)
    }
    return 0;
}

bool is_connect_failure(CURLcode rc) {
    switch (rc) {
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_WEIRD_SERVER_REPLY:
            return true;
        default:
            return false;
    }
}

// "scheme://host:port" of a URL: error messages name the upstream but never
// its path or query (a key could be in a query string).
std::string origin_of(const std::string& url) {
    auto scheme = url.find("://");
    auto start = scheme == std::string::npos ? 0 : scheme + 3;
    auto end = url.find_first_of("/?#", start);
    std::string host = url.substr(0, end);
    if (auto at = host.find('@', start); at != std::string::npos) host.erase(start, at + 1 - start);  // user:pass@
    return host;
}

// Holds the connection cache, DNS cache and TLS sessions shared by every
// handle, so a connection opened by one request is reused by the next even
// when another pooled handle performs it.
class Share {
public:
    Share() {
        m_sh = curl_share_init();
        if (!m_sh) return;
        curl_share_setopt(m_sh, CURLSHOPT_LOCKFUNC, lock_cb);
        curl_share_setopt(m_sh, CURLSHOPT_UNLOCKFUNC, unlock_cb);
        curl_share_setopt(m_sh, CURLSHOPT_USERDATA, this);
        curl_share_setopt(m_sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(m_sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        curl_share_setopt(m_sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    }
    ~Share() {
        if (m_sh) curl_share_cleanup(m_sh);
    }
    Share(const Share&) = delete;
    Share& operator=(const Share&) = delete;
    CURLSH* get() const { return m_sh; }

private:
    static void lock_cb(CURL*, curl_lock_data data, curl_lock_access, void* ud) {
        static_cast<Share*>(ud)->mutex_for(data).lock();
    }
    static void unlock_cb(CURL*, curl_lock_data data, void* ud) { static_cast<Share*>(ud)->mutex_for(data).unlock(); }
    std::mutex& mutex_for(curl_lock_data d) {
        auto i = static_cast<std::size_t>(d);
        return m_mu[i < k_locks ? i : 0];
    }
    static constexpr std::size_t k_locks = CURL_LOCK_DATA_LAST;
    std::mutex m_mu[k_locks];
    CURLSH* m_sh = nullptr;
};

class CurlTransport final : public Transport {
public:
    CurlTransport() {
        if (curl_api(&m_load_error)) m_share = std::make_unique<Share>();
    }
    ~CurlTransport() override {
        for (CURL* h : m_pool) curl_easy_cleanup(h);
    }

    Result<HttpResponseHead> perform(const HttpRequest& req, const HeadFn& on_head, const DataFn& on_data) override {
        // The easy interface blocks its thread for the whole transfer: on a
        // fiber (l04d) it runs on a helper thread while the fiber waits, and
        // the callbacks (a stream's chunks to the client) run there too.
        return run_blocking_result([&] { return perform_here(req, on_head, on_data); });
    }

private:
    Result<HttpResponseHead> perform_here(const HttpRequest& req, const HeadFn& on_head, const DataFn& on_data) {
        if (!m_share) return fail(ErrorCode::provider_unavailable, m_load_error);
        CURL* h = take();
        if (!h) return fail(ErrorCode::internal_error, "libcurl could not create a handle");
        Transfer t{&on_head, &on_data, req.cancel, h, {}, false, false};
        curl_slist* hdrs = nullptr;
        for (const auto& [k, v] : req.headers) hdrs = curl_slist_append(hdrs, (k + ": " + v).c_str());
        hdrs = curl_slist_append(hdrs, "Expect:");
        if (m_share->get()) curl_easy_setopt(h, CURLOPT_SHARE, m_share->get());
        curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        if (req.method == "GET") {
            curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        } else {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method == "POST" ? nullptr : req.method.c_str());
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.data());
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
        }
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
        if (req.cancel) {
            curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
            curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
            curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        }
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connect_timeout.count()));
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(req.total_timeout.count()));
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt(h, CURLOPT_USERAGENT, "l04/" L04_VERSION);
        // The shared connection cache is trimmed to the finishing handle's
        // MAXCONNECTS (default 5) after every transfer: with more requests
        // in flight than that, finished connections were closed and the
        // next request connected again (measured: a connect() every 2.5
        // requests at 16 concurrent requests).
        curl_easy_setopt(h, CURLOPT_MAXCONNECTS, k_max_idle_connections);

        CURLcode rc = curl_easy_perform(h);
        curl_slist_free_all(hdrs);
        if (rc == CURLE_OK) t.send_head();
        give(h, rc == CURLE_OK);
        if (rc == CURLE_OK) return t.head;

        const std::string where = origin_of(req.url);
        const std::string what = curl_easy_strerror(rc);
        if (t.cancelled) return fail(ErrorCode::streaming_error, "transfer from " + where + " cancelled by the caller");
        Error e;
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            e = Error(ErrorCode::timeout, (t.head_sent ? "upstream " + where + " timed out mid-response: "
                                                       : "upstream " + where + " timed out: ") +
                                              what);
        } else if (t.head_sent) {
            e = Error(ErrorCode::streaming_error, "connection to " + where + " broke mid-response: " + what);
        } else if (is_connect_failure(rc)) {
            e = Error(ErrorCode::provider_unavailable, "cannot reach " + where + ": " + what);
        } else {
            e = Error(ErrorCode::provider_unavailable, "request to " + where + " failed: " + what);
        }
        e.retryable = true;
        return fail(std::move(e));
    }

private:
    CURL* take() {
        {
            std::lock_guard lk(m_mu);
            if (!m_pool.empty()) {
                CURL* h = m_pool.back();
                m_pool.pop_back();
                curl_easy_reset(h);
                return h;
            }
        }
        return curl_easy_init();
    }
    void give(CURL* h, bool reusable) {
        std::lock_guard lk(m_mu);
        if (reusable && m_pool.size() < 64)
            m_pool.push_back(h);
        else
            curl_easy_cleanup(h);
    }
    std::unique_ptr<Share> m_share;  // outlives the handles (cleaned up in ~CurlTransport)
    std::string m_load_error;
    std::mutex m_mu;
    std::vector<CURL*> m_pool;
};

}  // namespace

std::shared_ptr<Transport> make_curl_transport() {
    return std::make_shared<CurlTransport>();
}

}  // namespace l04
