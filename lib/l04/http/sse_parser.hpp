#pragma once
// Incremental Server-Sent Events parser (the WHATWG "event stream"
// interpretation). Bytes may arrive in any split: a line, a CR/LF pair or a
// UTF-8 sequence may be cut anywhere between two feed() calls, and the events
// come out the same as if the whole body had been fed at once.
//
// Lines end in "\r\n", "\n" or "\r". A blank line dispatches the event being
// built; lines starting with ':' are comments; "data" lines are joined with
// "\n"; "event", "id" and "retry" set their fields; unknown fields are
// ignored. A leading UTF-8 BOM is skipped. finish() flushes a last line and
// event that the stream did not terminate with a blank line (some servers
// close the connection right after the last "data:" line).
#include <l04/core/error.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace l04 {

struct SseEvent {
    std::string event = "message";  // the "event:" field; "message" when absent
    std::string data;               // "data:" lines joined by "\n"
    std::string id;                 // the last event id seen on the stream
    std::optional<std::int64_t> retry_ms;
    bool operator==(const SseEvent&) const = default;
};

class SseParser {
public:
    // max_line: a single line longer than this fails with E4600 (a server
    // that never sends a line end must not grow memory without bound).
    explicit SseParser(std::size_t max_line = 16u << 20) : m_max_line(max_line) {}

    // Consumes bytes and appends every event they complete to `out`.
    // Fails with E4600 parse_error when a line exceeds max_line; the parser
    // is then unusable.
    Status feed(std::string_view bytes, std::vector<SseEvent>& out);
    // End of stream: processes an unterminated last line and dispatches a
    // pending event. Further feed() calls start a fresh stream state.
    Status finish(std::vector<SseEvent>& out);

    // Number of comment lines seen (": ping" keep-alives), for tests and metrics.
    std::size_t comments() const { return m_comments; }

private:
    Status consume(std::string_view bytes, std::vector<SseEvent>& out);
    void process_line(std::string_view line, std::vector<SseEvent>& out);
    void dispatch(std::vector<SseEvent>& out);

    std::size_t m_max_line;
    std::string m_line;       // bytes of the current, unterminated line
    bool m_after_cr = false;  // previous byte was '\r' (a following '\n' belongs to it)
    bool m_started = false;   // BOM check done
    std::string m_bom_buf;    // first bytes while checking for a BOM
    std::string m_event;
    std::string m_data;
    bool m_has_data = false;
    std::string m_last_id;
    std::optional<std::int64_t> m_retry;
    std::size_t m_comments = 0;
    bool m_failed = false;
};

}  // namespace l04
