// The NDJSON parser fed arbitrary bytes in pieces: never a crash.
#include <l04/http/ndjson_parser.hpp>

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    l04::NdjsonParser p;
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos < in.size()) {
        const std::size_t n = 1 + (static_cast<unsigned char>(in[pos]) % 13);
        if (!p.feed(in.substr(pos, n), out)) return 0;
        pos += n;
    }
    (void)p.finish(out);
    return 0;
}
