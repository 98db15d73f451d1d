#pragma once
// Incremental newline-delimited JSON splitter (Ollama's /api/chat stream,
// application/x-ndjson). Bytes may arrive in any split; each complete line
// comes out once, without its "\n" or "\r\n". Blank lines are skipped. The
// lines are not parsed here: the adapter parses each one into its own types.
#include <l04/core/error.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace l04 {

class NdjsonParser {
public:
    // max_line: a single line longer than this fails with E4600.
    explicit NdjsonParser(std::size_t max_line = 16u << 20) : m_max_line(max_line) {}

    // Consumes bytes and appends every line they complete to `out`.
    // Fails with E4600 parse_error when a line exceeds max_line.
    Status feed(std::string_view bytes, std::vector<std::string>& out);
    // End of stream: emits a last line that had no "\n".
    Status finish(std::vector<std::string>& out);

private:
    void emit(std::string_view line, std::vector<std::string>& out);
    std::size_t m_max_line;
    std::string m_line;
    bool m_failed = false;
};

}  // namespace l04
