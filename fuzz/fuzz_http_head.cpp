// l04d's HTTP/1.1 request-head parser on arbitrary bytes: a verdict, never a
// crash; an accepted head has a method, a target starting with '/' and at
// most one framing.
#include <l04/server/http_server.hpp>

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    l04::ParsedHead h;
    std::string why;
    const int status = l04::parse_request_head(in, h, why);
    if (status == 0) {
        if (h.req.method.empty() || (h.req.target.empty() || (h.req.target[0] != '/' && h.req.target != "*")))
            std::abort();
    } else if (status < 400 || status > 505 || why.empty()) {
        std::abort();
    }
    return 0;
}
