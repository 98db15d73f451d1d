#include <l04/http/sse_parser.hpp>

#include <algorithm>

namespace l04 {

namespace {
constexpr std::string_view k_bom = "\xEF\xBB\xBF";
}

Status SseParser::feed(std::string_view bytes, std::vector<SseEvent>& out) {
    if (m_failed) return fail(ErrorCode::parse_error, "event stream: parser used after a failure");
    if (!m_started) {
        // Wait until three bytes decide whether the stream starts with a BOM.
        m_bom_buf.append(bytes);
        const std::size_t n = std::min<std::size_t>(m_bom_buf.size(), 3);
        if (m_bom_buf.size() < 3 && std::string_view(m_bom_buf).substr(0, n) == k_bom.substr(0, n)) return {};
        m_started = true;
        std::string buf = std::move(m_bom_buf);
        m_bom_buf.clear();
        std::string_view rest = buf;
        if (rest.substr(0, 3) == k_bom) rest.remove_prefix(3);
        return consume(rest, out);
    }
    return consume(bytes, out);
}

Status SseParser::consume(std::string_view bytes, std::vector<SseEvent>& out) {
    std::size_t i = 0;
    if (m_after_cr && !bytes.empty()) {
        if (bytes[0] == '\n') i = 1;  // the LF of a CRLF split across two feeds
        m_after_cr = false;
    }
    while (i < bytes.size()) {
        const auto pos = bytes.find_first_of("\r\n", i);
        if (pos == std::string_view::npos) {
            m_line.append(bytes.substr(i));
            if (m_line.size() > m_max_line) {
                m_failed = true;
                return fail(ErrorCode::parse_error,
                            "event stream: a line exceeds " + std::to_string(m_max_line) + " bytes");
            }
            return {};
        }
        if (m_line.empty()) {
            process_line(bytes.substr(i, pos - i), out);
        } else {
            m_line.append(bytes.substr(i, pos - i));
            process_line(m_line, out);
            m_line.clear();
        }
        std::size_t next = pos + 1;
        if (bytes[pos] == '\r') {
            if (next < bytes.size()) {
                if (bytes[next] == '\n') ++next;
            } else {
                m_after_cr = true;
            }
        }
        i = next;
    }
    return {};
}

Status SseParser::finish(std::vector<SseEvent>& out) {
    if (m_failed) return fail(ErrorCode::parse_error, "event stream: parser used after a failure");
    if (!m_started) {
        // Fewer than three bytes, all a BOM prefix: treat them as content.
        m_started = true;
        std::string buf = std::move(m_bom_buf);
        m_bom_buf.clear();
        if (auto st = consume(buf, out); !st) return st;
    }
    if (!m_line.empty()) {
        std::string line = std::move(m_line);
        m_line.clear();
        process_line(line, out);
    }
    dispatch(out);
    m_after_cr = false;
    m_started = false;
    m_event.clear();
    m_data.clear();
    m_has_data = false;
    return {};
}

void SseParser::process_line(std::string_view line, std::vector<SseEvent>& out) {
    if (line.empty()) {
        dispatch(out);
        return;
    }
    if (line.front() == ':') {
        ++m_comments;
        return;
    }
    std::string_view field = line;
    std::string_view value;
    if (auto colon = line.find(':'); colon != std::string_view::npos) {
        field = line.substr(0, colon);
        value = line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
        m_data.append(value);
        m_data.push_back('\n');
        m_has_data = true;
    } else if (field == "event") {
        m_event.assign(value);
    } else if (field == "id") {
        if (value.find('\0') == std::string_view::npos) m_last_id.assign(value);
    } else if (field == "retry") {
        if (!value.empty() && value.size() <= 18 &&
            std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            std::int64_t v = 0;
            for (char c : value) v = v * 10 + (c - '0');
            m_retry = v;
        }
    }
    // Any other field is ignored, as the specification says.
}

void SseParser::dispatch(std::vector<SseEvent>& out) {
    if (!m_has_data) {
        m_event.clear();
        return;
    }
    SseEvent ev;
    if (!m_event.empty()) ev.event = std::move(m_event);
    m_data.pop_back();  // the "\n" after the last data line
    ev.data = std::move(m_data);
    ev.id = m_last_id;
    ev.retry_ms = m_retry;
    out.push_back(std::move(ev));
    m_event.clear();
    m_data.clear();
    m_has_data = false;
}

}  // namespace l04
