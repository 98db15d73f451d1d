#include "support/fake_transport.hpp"
#include "support/test_util.hpp"

#include <l04/core/strings.hpp>

#include <filesystem>

namespace l04::test {

RecordedHead parse_recorded_head(const std::string& text) {
    RecordedHead r;
    bool first = true;
    for (auto line : split(text, '\n')) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (first) {
            first = false;
            // "HTTP/1.1 200 OK", "HTTP/2.0 429 Too Many Requests", "HTTP/1.1 529"
            auto sp = line.find(' ');
            if (sp == std::string::npos) continue;
            auto rest = line.substr(sp + 1);
            auto sp2 = rest.find(' ');
            r.status = std::stoi(rest.substr(0, sp2));
            if (sp2 != std::string::npos) r.reason = rest.substr(sp2 + 1);
            continue;
        }
        if (line.empty()) continue;
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        r.headers.emplace_back(std::string(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
    }
    return r;
}

HttpResponseHead to_response_head(const RecordedHead& r) {
    HttpResponseHead h;
    h.status = r.status;
    for (const auto& [k, v] : r.headers) {
        auto& slot = h.headers[to_lower(k)];
        slot = slot.empty() ? v : slot + ", " + v;
    }
    return h;
}

FakeResponse recorded(const std::string& rel_headers, const std::string& rel_body, int status_if_no_headers) {
    FakeResponse f;
    if (!rel_headers.empty() && std::filesystem::exists(fixture_path(rel_headers))) {
        f.head = to_response_head(parse_recorded_head(fixture(rel_headers)));
    } else {
        f.head.status = status_if_no_headers;
        f.head.headers["content-type"] = "application/json";
    }
    if (!rel_body.empty()) f.body = fixture(rel_body);
    return f;
}

void FakeTransport::push(FakeResponse r) {
    std::lock_guard lk(m_mu);
    m_queue.push_back(std::move(r));
}

Result<HttpResponseHead> FakeTransport::perform(const HttpRequest& req, const HeadFn& on_head, const DataFn& on_data) {
    FakeResponse r;
    {
        std::lock_guard lk(m_mu);
        m_requests.push_back(req);
        m_pieces.clear();
        if (m_queue.empty()) return fail(ErrorCode::internal_error, "FakeTransport: no response queued");
        r = m_queue.front();
        if (m_queue.size() > 1) m_queue.pop_front();
    }
    if (r.error_before_head) return fail(*r.error_before_head);
    if (on_head) on_head(r.head);
    const std::size_t end = r.cut_at ? std::min(*r.cut_at, r.body.size()) : r.body.size();
    std::size_t pos = 0;
    while (pos < end) {
        std::size_t n = end - pos;
        if (m_max_piece > 0) {
            std::lock_guard lk(m_mu);
            n = std::min<std::size_t>(n, std::uniform_int_distribution<std::size_t>(1, m_max_piece)(m_rng));
        }
        {
            std::lock_guard lk(m_mu);
            m_pieces.push_back(n);
        }
        if (req.cancel && req.cancel->load())
            return fail(ErrorCode::streaming_error, "FakeTransport: transfer cancelled by the caller");
        if (!on_data(std::string_view(r.body).substr(pos, n)))
            return fail(ErrorCode::streaming_error, "FakeTransport: transfer cancelled by the caller");
        pos += n;
    }
    if (r.cut_at && r.error_after_cut) return fail(*r.error_after_cut);
    return r.head;
}

std::vector<HttpRequest> FakeTransport::requests() const {
    std::lock_guard lk(m_mu);
    return m_requests;
}

HttpRequest FakeTransport::last_request() const {
    std::lock_guard lk(m_mu);
    return m_requests.empty() ? HttpRequest{} : m_requests.back();
}

std::vector<std::size_t> FakeTransport::last_pieces() const {
    std::lock_guard lk(m_mu);
    return m_pieces;
}

}  // namespace l04::test
