// The upstream client's HTTP/1.1 response parser on arbitrary bytes, fed
// whole and again in pieces (the size taken from the first byte): the same
// verdict, head and body both ways, never a crash; a reusable message is
// done; an error has a reason.
#include <l04/http/http1_parser.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

struct Collect final : l04::Http1ResponseParser::Sink {
    int heads = 0;
    int status = 0;
    std::string body;
    void head(const l04::HttpResponseHead& h) override {
        ++heads;
        status = h.status;
    }
    bool data(std::string_view p) override {
        body.append(p);
        return true;
    }
};

struct Outcome {
    bool ok, done, reusable;
    Collect c;
};

Outcome run(std::string_view in, std::size_t step, bool head_request) {
    Outcome o{};
    l04::Http1ResponseParser p(head_request);
    bool ok = true;
    for (std::size_t i = 0; ok && i < in.size(); i += step) ok = p.feed(in.substr(i, step), o.c);
    if (ok) ok = p.eof(o.c);
    o.ok = ok;
    o.done = p.done();
    o.reusable = p.reusable();
    if (!ok && p.error().empty() && !p.cancelled()) std::abort();
    if (o.reusable && !o.done) std::abort();
    if (o.c.heads > 1) std::abort();
    if (o.c.heads == 1 && (o.c.status < 200 || o.c.status > 999)) std::abort();
    return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t step = 1 + data[0] % 16;
    const bool head_request = data[0] & 0x80;
    const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    const Outcome whole = run(in, in.size() + 1, head_request);
    const Outcome pieces = run(in, step, head_request);
    if (whole.ok != pieces.ok || whole.done != pieces.done || whole.reusable != pieces.reusable ||
        whole.c.heads != pieces.c.heads || whole.c.status != pieces.c.status)
        std::abort();
    // A body that completed is the same both ways; a failed one may differ
    // only in how much arrived before the failure.
    if (whole.ok && whole.c.body != pieces.c.body) std::abort();
    return 0;
}
