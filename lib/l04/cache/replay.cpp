#include <l04/cache/replay.hpp>

namespace l04 {

std::vector<std::string> stream_pieces(const std::string& answer) {
    // Split after spaces into pieces of about four words.
    std::vector<std::string> out;
    std::string cur;
    int words = 0;
    for (char c : answer) {
        cur += c;
        if (c == ' ' && ++words == 4) {
            out.push_back(std::move(cur));
            cur.clear();
            words = 0;
        }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    // Short answers still arrive in several pieces.
    while (!out.empty() && out.size() < 3 && out.back().size() >= 2) {
        std::string last = std::move(out.back());
        out.pop_back();
        auto half = last.size() / 2;
        // Never cut a UTF-8 sequence: step back to the start of a character.
        while (half > 0 && (static_cast<unsigned char>(last[half]) & 0xC0) == 0x80) --half;
        if (half == 0) {
            out.push_back(std::move(last));
            break;
        }
        out.push_back(last.substr(0, half));
        out.push_back(last.substr(half));
    }
    return out;
}

}  // namespace l04
