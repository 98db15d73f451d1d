#pragma once
// FakeTransport: a Transport that serves recorded responses (status line +
// headers file, body file) from memory, delivering the body in random
// pieces (seeded, so a failure can be replayed) and recording every request
// it was asked to perform. No network.
#include <l04/http/transport.hpp>

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace l04::test {

// A recorded ".headers" file: "HTTP/1.1 200 OK" then "Name: value" lines.
struct RecordedHead {
    int status = 0;
    std::string reason;
    std::vector<std::pair<std::string, std::string>> headers;  // as spelled in the file
};
RecordedHead parse_recorded_head(const std::string& text);
// Names lower-cased; repeated names joined with ", " (as CurlTransport does).
HttpResponseHead to_response_head(const RecordedHead& r);

struct FakeResponse {
    HttpResponseHead head;
    std::string body;
    // Deliver only the first cut_at bytes of the body...
    std::optional<std::size_t> cut_at;
    // ...and then fail with this (e.g. E4604 for a reset), or end cleanly.
    std::optional<Error> error_after_cut;
    // Fail before any byte (e.g. E4201 connect refused).
    std::optional<Error> error_before_head;
};

// Loads "wire/<dir>/<name>.headers" (when it exists) and the body file
// "wire/<dir>/<name>.<ext>" from the fixtures directory. Without a headers
// file the status is `status_if_no_headers` and Content-Type is JSON.
FakeResponse recorded(const std::string& rel_headers, const std::string& rel_body, int status_if_no_headers = 200);

class FakeTransport final : public Transport {
public:
    // Pieces are 1..max_piece bytes long (max_piece 0 = the whole body at once).
    explicit FakeTransport(std::uint64_t seed = 42, std::size_t max_piece = 64) : m_rng(seed), m_max_piece(max_piece) {}

    // Queues a response; perform() serves them in order and repeats the
    // last one once the queue has a single entry left.
    void push(FakeResponse r);
    Result<HttpResponseHead> perform(const HttpRequest& req, const HeadFn& on_head, const DataFn& on_data) override;

    std::vector<HttpRequest> requests() const;
    HttpRequest last_request() const;
    // Sizes of the body pieces delivered by the last perform().
    std::vector<std::size_t> last_pieces() const;

private:
    mutable std::mutex m_mu;
    std::deque<FakeResponse> m_queue;
    std::vector<HttpRequest> m_requests;
    std::vector<std::size_t> m_pieces;
    std::mt19937_64 m_rng;
    std::size_t m_max_piece;
};

}  // namespace l04::test
