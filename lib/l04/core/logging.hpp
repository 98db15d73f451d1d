#pragma once
// Logging set-up shared by l04d and l04ctl: spdlog to stderr, as text or as
// one JSON object per line (message escaped, so every line parses).
#include <string>

namespace l04 {

// format: "text" or "json". level: trace, debug, info, warn, error, off.
void setup_logging(const std::string& name, const std::string& level, const std::string& format);

// Escapes s for inclusion in a JSON string.
std::string json_escape(const std::string& s);

}  // namespace l04
