#include <l04/http/curl_transport.hpp>
#include <l04/core/strings.hpp>

#include <curl/curl.h>

#include <mutex>
#include <vector>

namespace l04 {

namespace {

struct CurlGlobal {
    CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

struct Transfer {
    const HeadFn* on_head;
    const DataFn* on_data;
    HttpResponseHead head;
    bool head_sent = false;
    bool cancelled = false;
    long status = 0;

    void send_head(CURL* h) {
        if (head_sent) return;
        head_sent = true;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        head.status = static_cast<int>(status);
        if (*on_head) (*on_head)(head);
    }
};

struct Ctx {
    Transfer* t;
    CURL* h;
};

size_t header_cb(char* buf, size_t size, size_t n, void* ud) {
    auto* c = static_cast<Ctx*>(ud);
    std::string_view line(buf, size * n);
    if (line.rfind("HTTP/", 0) == 0) {
        c->t->head.headers.clear();  // a new response (after 100-continue or redirect)
        return size * n;
    }
    auto colon = line.find(':');
    if (colon != std::string_view::npos) {
        std::string name = to_lower(trim(line.substr(0, colon)));
        std::string value(trim(line.substr(colon + 1)));
        auto& slot = c->t->head.headers[name];
        slot = slot.empty() ? value : slot + ", " + value;
    }
    return size * n;
}

size_t write_cb(char* buf, size_t size, size_t n, void* ud) {
    auto* c = static_cast<Ctx*>(ud);
    c->t->send_head(c->h);
    if (!(*c->t->on_data)(std::string_view(buf, size * n))) {
        c->t->cancelled = true;
        return 0;  // aborts the transfer
    }
    return size * n;
}

class CurlTransport final : public Transport {
public:
    ~CurlTransport() override {
        for (CURL* h : m_pool) curl_easy_cleanup(h);
    }

    Result<HttpResponseHead> perform(const HttpRequest& req, const HeadFn& on_head, const DataFn& on_data) override {
        static CurlGlobal global;
        CURL* h = take();
        if (!h) return fail(ErrorCode::internal_error, "libcurl could not create a handle");
        Transfer t{&on_head, &on_data, {}, false, false, 0};
        Ctx ctx{&t, h};
        curl_slist* hdrs = nullptr;
        for (const auto& [k, v] : req.headers) hdrs = curl_slist_append(hdrs, (k + ": " + v).c_str());
        hdrs = curl_slist_append(hdrs, "Expect:");
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
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &ctx);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &ctx);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connect_timeout.count()));
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(req.total_timeout.count()));
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");

        CURLcode rc = curl_easy_perform(h);
        curl_slist_free_all(hdrs);
        if (rc == CURLE_OK) t.send_head(h);
        give(h, rc == CURLE_OK);
        if (rc == CURLE_OK) return t.head;
        if (t.cancelled) return fail(ErrorCode::streaming_error, "transfer cancelled by the caller");
        Error e;
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            e = Error(ErrorCode::timeout, std::string("upstream timed out: ") + curl_easy_strerror(rc));
        } else if (t.head_sent) {
            e = Error(ErrorCode::streaming_error, std::string("upstream connection broke mid-response: ") +
                                                      curl_easy_strerror(rc));
        } else {
            e = Error(ErrorCode::provider_unavailable, std::string("cannot reach upstream: ") + curl_easy_strerror(rc));
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
        if (reusable && m_pool.size() < 64) m_pool.push_back(h);
        else curl_easy_cleanup(h);
    }
    std::mutex m_mu;
    std::vector<CURL*> m_pool;
};

}  // namespace

std::shared_ptr<Transport> make_curl_transport() { return std::make_shared<CurlTransport>(); }

}  // namespace l04
