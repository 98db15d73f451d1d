#include <l04/http/http1_parser.hpp>

#include <l04/core/strings.hpp>

#include <limits>

namespace l04 {

namespace {

bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
        case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
        case '-': case '.': case '^': case '_': case '`': case '|': case '~': return true;
        default: return false;
    }
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Whether a comma-separated header value holds `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) {
    while (!value.empty()) {
        const auto comma = value.find(',');
        if (iequals(trim_ows(value.substr(0, comma)), token)) return true;
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
    return false;
}

// The last coding of a Transfer-Encoding value, lower-cased.
std::string last_coding(std::string_view value) {
    const auto comma = value.rfind(',');
    return to_lower(trim_ows(comma == std::string_view::npos ? value : value.substr(comma + 1)));
}

// Content-Length: digits, or identical comma-separated repeats of them.
bool parse_length(std::string_view value, std::uint64_t& out) {
    bool first = true;
    while (true) {
        const auto comma = value.find(',');
        const auto item = trim_ows(value.substr(0, comma));
        if (item.empty() || item.size() > 18) return false;
        std::uint64_t v = 0;
        for (char c : item) {
            if (c < '0' || c > '9') return false;
            v = v * 10 + static_cast<std::uint64_t>(c - '0');
        }
        if (!first && v != out) return false;
        out = v;
        first = false;
        if (comma == std::string_view::npos) return true;
        value.remove_prefix(comma + 1);
    }
}

}  // namespace

bool Http1ResponseParser::fail(std::string why) {
    m_state = State::failed;
    if (m_error.empty()) m_error = std::move(why);
    return false;
}

bool Http1ResponseParser::deliver(std::string_view piece, Sink& sink) {
    if (piece.empty()) return true;
    if (!sink.data(piece)) {
        m_cancelled = true;
        m_state = State::failed;
        return false;
    }
    return true;
}

bool Http1ResponseParser::deliver_counted(std::string_view& bytes, Sink& sink, State next) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(m_remaining, bytes.size()));
    if (!deliver(bytes.substr(0, n), sink)) return false;
    bytes.remove_prefix(n);
    m_remaining -= n;
    if (m_remaining == 0) m_state = next;
    return true;
}

bool Http1ResponseParser::take_line(std::string_view& bytes, std::size_t limit, bool& too_long) {
    const auto lf = bytes.find('\n');
    const auto take = lf == std::string_view::npos ? bytes.size() : lf;
    if (m_line.size() + take > limit) {
        too_long = true;
        return false;
    }
    m_line.append(bytes.substr(0, take));
    if (lf == std::string_view::npos) {
        bytes = {};
        return false;
    }
    bytes.remove_prefix(lf + 1);
    if (!m_line.empty() && m_line.back() == '\r') m_line.pop_back();
    return true;
}

bool Http1ResponseParser::parse_head(std::string_view head, Sink& sink) {
    // Status line.
    auto eol = head.find('\n');
    std::string_view line = head.substr(0, eol);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ')
        return fail("not an HTTP/1.x status line");
    const bool http11 = line[7] == '1';
    int status = 0;
    for (std::size_t i = 9; i < 12; ++i) {
        if (line[i] < '0' || line[i] > '9') return fail("bad status code");
        status = status * 10 + (line[i] - '0');
    }
    if (status < 100 || (line.size() > 12 && line[12] != ' ')) return fail("bad status code");

    HttpResponseHead h;
    h.status = status;
    std::string last_name;
    std::size_t count = 0;
    std::string_view rest = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 1);
    while (!rest.empty()) {
        eol = rest.find('\n');
        line = rest.substr(0, eol);
        rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        if (line.front() == ' ' || line.front() == '\t') {
            // obs-fold: continues the previous header's value.
            if (last_name.empty()) return fail("folded line before any header");
            auto& slot = h.headers[last_name];
            const auto more = trim_ows(line);
            if (!more.empty()) slot += (slot.empty() ? "" : " ") + std::string(more);
            continue;
        }
        const auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) return fail("bad header line");
        const auto name = line.substr(0, colon);
        for (char c : name)
            if (!is_tchar(c)) return fail("bad header name");
        if (++count > k_max_headers) return fail("too many headers");
        last_name = to_lower(name);
        const std::string value(trim_ows(line.substr(colon + 1)));
        auto& slot = h.headers[last_name];
        slot = slot.empty() ? value : slot + ", " + value;
    }

    if (status < 200) {
        if (status == 101) return fail("101 Switching Protocols was not asked for");
        return true;  // interim: the final head follows
    }
    auto header = [&](const char* n) -> const std::string* {
        auto it = h.headers.find(n);
        return it == h.headers.end() ? nullptr : &it->second;
    };
    const std::string* conn = header("connection");
    m_keep_alive = http11 ? !(conn && has_token(*conn, "close")) : (conn && has_token(*conn, "keep-alive"));
    if (m_head_request || status == 204 || status == 304) {
        m_state = State::done;
    } else if (const std::string* te = header("transfer-encoding")) {
        // In HTTP/1.0, Transfer-Encoding cannot be trusted (RFC 9112 6.1):
        // the body runs to the end of the connection.
        if (http11 && last_coding(*te) == "chunked") {
            m_state = State::chunk_size;
        } else {
            m_state = State::body_close;  // length unknown: to the end of the connection
            m_keep_alive = false;
        }
        // With both, Transfer-Encoding wins, and the connection is not reused.
        if (header("content-length")) m_keep_alive = false;
    } else if (const std::string* cl = header("content-length")) {
        if (!parse_length(*cl, m_remaining)) return fail("bad Content-Length");
        m_state = m_remaining == 0 ? State::done : State::body_length;
    } else {
        m_state = State::body_close;
        m_keep_alive = false;
    }
    m_head = std::move(h);
    m_head_seen = true;
    sink.head(m_head);
    return true;
}

bool Http1ResponseParser::feed(std::string_view bytes, Sink& sink) {
    m_bytes_seen += bytes.size();
    while (true) {
        switch (m_state) {
            case State::failed: return false;
            case State::done:
                if (!bytes.empty()) m_trailing_bytes = true;
                return true;
            case State::head: {
                if (bytes.empty()) return true;
                const std::size_t from = m_buf.size() >= 3 ? m_buf.size() - 3 : 0;
                m_buf.append(bytes);
                bytes = {};
                // The blank line ending the head: LF (CR) LF.
                std::size_t end = std::string::npos, body_at = 0;
                for (std::size_t i = from; i < m_buf.size(); ++i) {
                    if (m_buf[i] != '\n') continue;
                    if (i + 1 < m_buf.size() && m_buf[i + 1] == '\n') {
                        end = i + 1;
                        body_at = i + 2;
                        break;
                    }
                    if (i + 2 < m_buf.size() && m_buf[i + 1] == '\r' && m_buf[i + 2] == '\n') {
                        end = i + 1;
                        body_at = i + 3;
                        break;
                    }
                }
                if (end == std::string::npos) {
                    if (m_buf.size() > k_max_head) return fail("response head longer than 64 KiB");
                    return true;
                }
                if (end > k_max_head) return fail("response head longer than 64 KiB");
                const std::string head = m_buf.substr(0, end);
                m_carry = m_buf.substr(body_at);  // bytes no longer points into m_carry: it was copied above
                m_buf.clear();
                if (!parse_head(head, sink)) return false;
                // The rest: the body, or after an interim 1xx a new head.
                bytes = m_carry;
                continue;
            }
            case State::body_length:
                if (bytes.empty()) return true;
                if (!deliver_counted(bytes, sink, State::done)) return false;
                continue;
            case State::body_close:
                return deliver(bytes, sink);
            case State::chunk_size: {
                if (bytes.empty()) return true;
                bool too_long = false;
                if (!take_line(bytes, k_max_chunk_line, too_long)) {
                    if (too_long) return fail("chunk-size line too long");
                    return true;
                }
                std::string_view l = m_line;
                std::uint64_t size = 0;
                std::size_t digits = 0;
                for (; digits < l.size(); ++digits) {
                    const char c = l[digits];
                    int v;
                    if (c >= '0' && c <= '9') v = c - '0';
                    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
                    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
                    else break;
                    if (digits >= 15) return fail("chunk size too large");
                    size = size * 16 + static_cast<std::uint64_t>(v);
                }
                if (digits == 0) return fail("bad chunk size");
                const auto tail = trim_ows(l.substr(digits));
                if (!tail.empty() && tail.front() != ';') return fail("bad chunk size");
                m_line.clear();
                if (size == 0) {
                    m_state = State::trailers;
                } else {
                    m_remaining = size;
                    m_state = State::chunk_data;
                }
                continue;
            }
            case State::chunk_data:
                if (bytes.empty()) return true;
                if (!deliver_counted(bytes, sink, State::chunk_crlf)) return false;
                continue;
            case State::chunk_crlf: {
                if (bytes.empty()) return true;
                bool too_long = false;
                if (!take_line(bytes, 2, too_long)) {
                    if (too_long) return fail("chunk data not followed by CRLF");
                    return true;
                }
                if (!m_line.empty()) return fail("chunk data not followed by CRLF");
                m_state = State::chunk_size;
                continue;
            }
            case State::trailers: {
                if (bytes.empty()) return true;
                bool too_long = false;
                const std::size_t before = bytes.size();
                const bool whole = take_line(bytes, k_max_trailers, too_long);
                m_trailer_bytes += before - bytes.size();
                if (too_long || m_trailer_bytes > k_max_trailers) return fail("trailers longer than 8 KiB");
                if (!whole) return true;
                const bool blank = m_line.empty();
                m_line.clear();
                if (blank) m_state = State::done;
                continue;
            }
        }
    }
}

bool Http1ResponseParser::eof(Sink& sink) {
    (void)sink;
    switch (m_state) {
        case State::body_close: m_state = State::done; return true;
        case State::done: return true;
        case State::failed: return false;
        case State::head:
            return fail(m_bytes_seen == 0 ? "connection closed with no response" : "connection closed mid-head");
        default: return fail("connection closed mid-body");
    }
}

}  // namespace l04
