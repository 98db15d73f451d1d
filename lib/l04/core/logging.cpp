#include <l04/core/logging.hpp>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>

namespace l04 {

std::string json_escape(const std::string& s) {
    std::string out;
    out.reserve(s.size() + 8);
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out;
}

namespace {

// %* in a pattern: the message, JSON-escaped.
class JsonMessage final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        const std::string esc = json_escape(std::string(msg.payload.data(), msg.payload.size()));
        dest.append(esc.data(), esc.data() + esc.size());
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessage>(); }
};

// %& in a pattern: the message with control characters shown as \\xNN, so
// a newline in a client string (user, agent, model, request id) can never
// forge a log line of its own.
class SafeMessage final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        for (char c : std::string_view(msg.payload.data(), msg.payload.size())) {
            const auto u = static_cast<unsigned char>(c);
            if (u < 0x20 || u == 0x7f) {
                char esc[8];
                std::snprintf(esc, sizeof esc, "\\x%02x", u);
                dest.append(esc, esc + 4);
            } else {
                dest.push_back(c);
            }
        }
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<SafeMessage>(); }
};

}  // namespace

void setup_logging(const std::string& name, const std::string& level, const std::string& format) {
    auto logger = spdlog::get(name);
    if (!logger) logger = spdlog::stderr_color_mt(name);
    spdlog::set_default_logger(logger);
    if (format == "json") {
        auto f = std::make_unique<spdlog::pattern_formatter>();
        f->add_flag<JsonMessage>('*').set_pattern(
            R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","process":")" + name + R"(","pid":%P,"msg":"%*"})");
        spdlog::set_formatter(std::move(f));
    } else {
        auto f = std::make_unique<spdlog::pattern_formatter>();
        f->add_flag<SafeMessage>('&').set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ " + name + "[%P] %&");
        spdlog::set_formatter(std::move(f));
    }
    spdlog::set_level(spdlog::level::from_str(level));
    // Warnings and errors are flushed at once; request lines within a second
    // (a flush per request would cost a write(2) on every request).
    spdlog::flush_on(spdlog::level::warn);
    spdlog::flush_every(std::chrono::seconds(1));
}

}  // namespace l04
