#pragma once
// An incremental parser of one HTTP/1.1 response, for the plain-HTTP
// upstream client (http1_transport). Bytes go in as they arrive, in pieces
// of any size; the final head comes out once (interim 1xx responses are
// skipped), then the body's payload in pieces (chunked framing removed).
//
// Framing follows RFC 9112 section 6.3: no body after HEAD, 1xx, 204 and
// 304; Transfer-Encoding ending in chunked (trailers read and dropped);
// Content-Length (identical comma-separated repeats allowed, anything else
// malformed); otherwise the body runs to the end of the connection. A
// message is reusable (keep-alive) only when it is HTTP/1.1 without
// "Connection: close" (or HTTP/1.0 with "keep-alive"), framed by length or
// chunks, and no byte follows it.
//
// Lenient where servers are (a bare LF ends a line; folded header lines
// continue the previous value) and strict where a mistake would change
// the answer (framing, sizes). Limits: a head of 64 KiB, 100 headers, a
// chunk-size line of 1 KiB, 8 KiB of trailers. Never throws; any input is
// safe (fuzzed: fuzz/fuzz_http1_response.cpp).
#include <l04/http/transport.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace l04 {

class Http1ResponseParser {
public:
    // What the parser hands on. data() returning false stops the parse
    // (the caller cancelled).
    struct Sink {
        virtual ~Sink() = default;
        virtual void head(const HttpResponseHead& h) = 0;
        virtual bool data(std::string_view piece) = 0;
    };

    explicit Http1ResponseParser(bool head_request = false) : m_head_request(head_request) {}

    // Feeds the next bytes. Returns false on a malformed response (error()
    // says why) or when sink.data() refused a piece (cancelled()); true
    // otherwise, including once done() (bytes after the end of the message
    // make it non-reusable).
    bool feed(std::string_view bytes, Sink& sink);
    // The connection was closed by the peer. Completes a body that runs to
    // the end of the connection; anything else unfinished is an error.
    bool eof(Sink& sink);

    bool done() const { return m_state == State::done; }
    bool head_seen() const { return m_head_seen; }
    bool cancelled() const { return m_cancelled; }
    // Whether the connection may carry another request.
    bool reusable() const { return done() && m_keep_alive && !m_trailing_bytes; }
    const std::string& error() const { return m_error; }
    const HttpResponseHead& response_head() const { return m_head; }
    // Bytes of response read so far (any: status line onwards).
    std::uint64_t bytes_seen() const { return m_bytes_seen; }

    static constexpr std::size_t k_max_head = 64 * 1024;
    static constexpr std::size_t k_max_headers = 100;
    static constexpr std::size_t k_max_chunk_line = 1024;
    static constexpr std::size_t k_max_trailers = 8 * 1024;

private:
    enum class State : std::uint8_t { head, body_length, body_close, chunk_size, chunk_data, chunk_crlf, trailers, done, failed };
    bool fail(std::string why);
    // Parses the complete head in m_buf (without the blank line); sets the
    // framing. Returns false on a malformed head.
    bool parse_head(std::string_view head, Sink& sink);
    bool deliver(std::string_view piece, Sink& sink);
    // Hands on up to m_remaining bytes from the front of bytes; `next` once
    // m_remaining reaches 0 (the end of a sized body or of a chunk).
    bool deliver_counted(std::string_view& bytes, Sink& sink, State next);
    // Takes one line (ending in LF, CR before it dropped) from the front of
    // bytes into m_line; true when a whole line is there.
    bool take_line(std::string_view& bytes, std::size_t limit, bool& too_long);

    bool m_head_request;
    State m_state = State::head;
    std::string m_buf;   // head bytes so far
    std::string m_carry; // bytes after a head, fed on
    std::string m_line;  // a chunk-size or trailer line so far
    std::size_t m_trailer_bytes = 0;
    std::uint64_t m_remaining = 0;  // of a Content-Length body or the current chunk
    std::uint64_t m_bytes_seen = 0;
    HttpResponseHead m_head;
    bool m_head_seen = false;
    bool m_keep_alive = false;
    bool m_trailing_bytes = false;
    bool m_cancelled = false;
    std::string m_error;
};

}  // namespace l04
