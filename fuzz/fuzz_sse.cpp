// The SSE parser fed arbitrary bytes, whole and split at every byte the
// input itself chooses: never a crash, and the same events either way.
#include <l04/http/sse_parser.hpp>

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    l04::SseParser whole;
    std::vector<l04::SseEvent> a;
    const bool ok_whole = whole.feed(in, a) && whole.finish(a);
    l04::SseParser split;
    std::vector<l04::SseEvent> b, part;
    bool ok_split = true;
    std::size_t pos = 0;
    while (pos < in.size() && ok_split) {
        const std::size_t n = 1 + (static_cast<unsigned char>(in[pos]) % 7);
        part.clear();
        ok_split = static_cast<bool>(split.feed(in.substr(pos, n), part));
        b.insert(b.end(), part.begin(), part.end());
        pos += n;
    }
    part.clear();
    if (ok_split) ok_split = static_cast<bool>(split.finish(part));
    b.insert(b.end(), part.begin(), part.end());
    if (ok_whole && ok_split && a.size() != b.size()) std::abort();  // splitting must not change the events
    return 0;
}
