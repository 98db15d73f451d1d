#include <l04/http/ndjson_parser.hpp>

namespace l04 {

Status NdjsonParser::feed(std::string_view bytes, std::vector<std::string>& out) {
    if (m_failed) return fail(ErrorCode::parse_error, "ndjson stream: parser used after a failure");
    std::size_t i = 0;
    while (i < bytes.size()) {
        const auto pos = bytes.find('\n', i);
        if (pos == std::string_view::npos) {
            m_line.append(bytes.substr(i));
            if (m_line.size() > m_max_line) {
                m_failed = true;
                return fail(ErrorCode::parse_error,
                            "ndjson stream: a line exceeds " + std::to_string(m_max_line) + " bytes");
            }
            return {};
        }
        if (m_line.empty()) {
            emit(bytes.substr(i, pos - i), out);
        } else {
            m_line.append(bytes.substr(i, pos - i));
            emit(m_line, out);
            m_line.clear();
        }
        i = pos + 1;
    }
    return {};
}

Status NdjsonParser::finish(std::vector<std::string>& out) {
    if (m_failed) return fail(ErrorCode::parse_error, "ndjson stream: parser used after a failure");
    if (!m_line.empty()) {
        std::string line = std::move(m_line);
        m_line.clear();
        emit(line, out);
    }
    return {};
}

void NdjsonParser::emit(std::string_view line, std::vector<std::string>& out) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;  // blank
    out.emplace_back(line);
}

}  // namespace l04
