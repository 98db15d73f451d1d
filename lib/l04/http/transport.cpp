#include <l04/http/transport.hpp>

namespace l04 {

Result<HttpResponse> perform_buffered(Transport& t, const HttpRequest& req) {
    HttpResponse out;
    auto r = t.perform(
        req, [&](const HttpResponseHead& h) { out.head = h; },
        [&](std::string_view d) {
            out.body.append(d);
            return true;
        });
    if (!r) return fail(r.error());
    out.head = *r;
    return out;
}

}  // namespace l04
