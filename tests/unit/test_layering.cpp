// Rules that check themselves (in the spirit of Envoy's check_format): the
// include graph between lib/l04's folders, the stages that must not see JSON
// or HTTP, and the single places that read clocks and the environment. The
// allowed graph is docs/NOTES.md's "Layers" block, so the document and the
// code cannot drift apart. A failure names the file, the line and the rule.
#include "support/test_util.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

const std::string k_lib = std::string(L04_SOURCE_DIR) + "/lib/l04";

// docs/NOTES.md: the lines between "```layers" and "```", each
// "folder: allowed dependencies".
std::map<std::string, std::set<std::string>> allowed_layers() {
    std::map<std::string, std::set<std::string>> out;
    std::ifstream in(std::string(L04_SOURCE_DIR) + "/docs/NOTES.md");
    std::string line;
    bool inside = false;
    while (std::getline(in, line)) {
        if (!inside) {
            inside = line == "```layers";
            continue;
        }
        if (line == "```") break;
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::istringstream deps(line.substr(colon + 1));
        std::set<std::string>& allowed = out[line.substr(0, colon)];
        for (std::string d; deps >> d;) allowed.insert(d);
    }
    return out;
}

// The layer a file of lib/l04 belongs to: its folder; the top-level files
// (gateway.*, gateway_extra.cpp, bootstrap.*) are the "gateway" layer.
std::string layer_of_path(const fs::path& rel) {
    auto it = rel.begin();
    if (std::next(it) == rel.end()) return "gateway";
    return it->string();
}

// The layer an include names: <l04/cache/x.hpp> → cache, <l04/gateway.hpp> → gateway.
std::string layer_of_include(const std::string& inc) {
    const auto slash = inc.find('/');
    if (slash == std::string::npos) return "gateway";
    return inc.substr(0, slash);
}

struct Source {
    std::string rel;    // relative to lib/l04
    std::string layer;
    std::vector<std::string> lines;  // with // comments and string literals blanked
};

std::string strip(const std::string& line) {
    std::string out;
    bool in_str = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (in_str) {
            if (c == '\\') ++i;
            else if (c == '"') {
                in_str = false;
                out += '"';
            }
            continue;
        }
        if (c == '/' && i + 1 < line.size() && line[i + 1] == '/') break;
        if (c == '"') in_str = true;
        out += c;
    }
    return out;
}

std::vector<Source> sources() {
    std::vector<Source> out;
    for (const auto& e : fs::recursive_directory_iterator(k_lib)) {
        if (!e.is_regular_file()) continue;
        const auto ext = e.path().extension();
        if (ext != ".cpp" && ext != ".hpp") continue;
        Source s;
        const fs::path rel = fs::relative(e.path(), k_lib);
        s.rel = rel.string();
        s.layer = layer_of_path(rel);
        std::ifstream in(e.path());
        for (std::string line; std::getline(in, line);) s.lines.push_back(line);
        out.push_back(std::move(s));
    }
    return out;
}

// Lines of `s` (1-based) whose code (comments and strings removed) matches re.
std::vector<std::string> offending(const Source& s, const std::regex& re) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < s.lines.size(); ++i)
        if (std::regex_search(strip(s.lines[i]), re))
            out.push_back("lib/l04/" + s.rel + ":" + std::to_string(i + 1) + ": " + s.lines[i]);
    return out;
}

// The patterns each rule refuses, used by the rules and by the test that
// plants a violation of each.
const std::regex& json_http_include() {
    static const std::regex re(R"re(#\s*include\s*<(nlohmann/|curl/|simdjson|l04/http/curl))re");
    return re;
}
// The condition-variable form (lock first) is what is refused; Clock's own
// wait_for(cv, lock, d, pred) goes through the injected clock.
const std::regex& clock_use() {
    static const std::regex re(
        R"re(steady_clock::now|system_clock::now|high_resolution_clock|this_thread::sleep_(for|until)|\busleep\s*\(|\bnanosleep\s*\(|\bclock_gettime\s*\(|\btime\s*\(\s*(nullptr|NULL|0)\s*\)|\.wait_(for|until)\s*\(\s*(lk|lock|l)\b)re");
    return re;
}
const std::regex& env_use() {
    static const std::regex re(R"re(\b(secure_)?getenv\s*\(|\benviron\b|\bsetenv\s*\(|\bputenv\s*\()re");
    return re;
}

void report(const std::string& rule, const std::vector<std::string>& hits) {
    for (const auto& h : hits) FAIL_CHECK(rule << "\n  " << h);
}

}  // namespace

TEST_CASE("layering: every include between lib/l04 folders is an edge docs/NOTES.md allows") {
    const auto allowed = allowed_layers();
    REQUIRE_MESSAGE(allowed.size() >= 10, "docs/NOTES.md has no ```layers block");
    const std::regex inc(R"re(^\s*#\s*include\s*<l04/([^>]+)>)re");
    std::set<std::string> layers_seen;
    int edges = 0;
    for (const auto& s : sources()) {
        layers_seen.insert(s.layer);
        if (!allowed.count(s.layer)) {
            FAIL_CHECK("lib/l04/" << s.rel << ": folder '" << s.layer
                                      << "' is not in docs/NOTES.md's layer list");
            continue;
        }
        for (std::size_t i = 0; i < s.lines.size(); ++i) {
            std::smatch m;
            if (!std::regex_search(s.lines[i], m, inc)) continue;
            const std::string to = layer_of_include(m[1].str());
            if (to == s.layer) continue;
            ++edges;
            if (!allowed.at(s.layer).count(to))
                FAIL_CHECK("lib/l04/" << s.rel << ":" << i + 1 << " includes <l04/" << m[1].str() << ">: layer '"
                                          << s.layer << "' may not depend on '" << to
                                          << "' (docs/NOTES.md, Layers)");
        }
    }
    CHECK(edges > 50);
    // The document lists no folder that does not exist.
    for (const auto& entry : allowed) {
        const std::string layer = entry.first;
        CAPTURE(layer);
        CHECK(layers_seen.count(layer) == 1);
        for (const auto& d : entry.second) CHECK(allowed.count(d) == 1);
    }
}

TEST_CASE("layering: the allowed graph has no cycle") {
    const auto allowed = allowed_layers();
    std::map<std::string, int> state;  // 0 new, 1 on the path, 2 done
    std::vector<std::string> path;
    std::function<bool(const std::string&)> visit = [&](const std::string& n) {
        if (state[n] == 1) return false;
        if (state[n] == 2) return true;
        state[n] = 1;
        path.push_back(n);
        for (const auto& d : allowed.at(n))
            if (allowed.count(d) && !visit(d)) return false;
        path.pop_back();
        state[n] = 2;
        return true;
    };
    for (const auto& [layer, deps] : allowed) {
        std::string trail;
        const bool ok = visit(layer);
        for (const auto& p : path) trail += p + " → ";
        CHECK_MESSAGE(ok, "a cycle through " << trail);
        if (!ok) break;
    }
}

TEST_CASE("layering: router - limit - cache and queue include neither JSON nor HTTP libraries") {
    const std::regex& forbidden = json_http_include();
    for (const auto& s : sources()) {
        if (s.layer != "router" && s.layer != "limit" && s.layer != "cache" && s.layer != "queue") continue;
        report("a decision stage includes a JSON or HTTP library (JSON and HTTP belong to provider/, wire/, server/)",
               offending(s, forbidden));
    }
}

TEST_CASE("layering: only core/clock reads a clock - sleeps or waits with a timeout") {
    const std::regex& forbidden = clock_use();
    int checked = 0;
    for (const auto& s : sources()) {
        if (s.rel.rfind("core/clock.", 0) == 0) continue;
        ++checked;
        report("reads a clock, sleeps or waits with a timeout outside core/clock: take a Clock& (or use "
               "SystemClock::instance() for real I/O)",
               offending(s, forbidden));
    }
    CHECK(checked > 80);
}

TEST_CASE("layering: only config reads the environment") {
    const std::regex& forbidden = env_use();
    for (const auto& s : sources()) {
        if (s.layer == "config") continue;
        report("reads the environment outside config/ (use a setting, or config/environment.hpp)",
               offending(s, forbidden));
    }
}

TEST_CASE("layering: the checks see a violation - a planted line is caught") {
    // The rules above would pass vacuously if the patterns matched nothing:
    // each must catch the line it exists for.
    Source s;
    s.rel = "router/planted.cpp";
    s.layer = "router";
    s.lines = {"#include <nlohmann/json.hpp>", "auto t = std::chrono::steady_clock::now();",
               "m_cv.wait_for(lk, std::chrono::milliseconds(50));", "const char* p = std::getenv(\"PATH\");",
               "// std::getenv in a comment is fine", "log(\"steady_clock::now in a string is fine\");",
               "clock.wait_for(m_cv, lk, d, pred);"};
    CHECK(offending(s, json_http_include()).size() == 1);
    CHECK(offending(s, clock_use()).size() == 2);
    CHECK(offending(s, env_use()).size() == 1);
    CHECK(layer_of_include("gateway.hpp") == "gateway");
    CHECK(layer_of_include("cache/response_cache.hpp") == "cache");
    CHECK(layer_of_path(fs::path("gateway_extra.cpp")) == "gateway");
    CHECK(layer_of_path(fs::path("limit/sqlite_rate_limiter.hpp")) == "limit");
}
