#include "common.hpp"

#include <l04/bootstrap.hpp>
#include <l04/core/strings.hpp>
#include <l04/wire/openai_json.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <unistd.h>

namespace l04ctl {

int g_exit = k_ok;

int exit_code_for(l04::ErrorCode code) { return l04::exit_status(code); }

int report(const l04::Error& e) {
    std::string msg = "l04ctl: " + e.to_string();
    if (e.retry_after) msg += " (retry after " + std::to_string((e.retry_after->count() + 999) / 1000) + " s)";
    if (!e.details.empty()) msg += "\n  provider said: " + e.details.substr(0, 500);
    std::fprintf(stderr, "%s\n", msg.c_str());
    return exit_code_for(e.code);
}

std::string provider_env_difference(const l04::Settings& mine, const nlohmann::json& status) {
    if (!status.is_object() || !status.contains("provider_env") || !status["provider_env"].is_object()) return {};
    std::string out;
    for (const auto& [name, digest] : mine.provider_fingerprint()) {
        const auto& theirs = status["provider_env"];
        const std::string d = theirs.contains(name) && theirs[name].is_string() ? theirs[name].get<std::string>() : "";
        if (d != digest) out += (out.empty() ? "" : ", ") + name;
    }
    return out;
}

std::string daemon_provider_env_difference(const l04::Settings& mine) {
    l04::SocketClient c(mine.socket_path(), std::chrono::milliseconds(mine.get_duration_ms("client.status_timeout")));
    auto j = call_json(c, "GET", "/admin/status");
    if (!j) return {};
    return provider_env_difference(mine, *j);
}

int report_not_running(const Context& ctx) {
    std::fprintf(stderr,
                 "l04ctl: l04d is not running (socket %s). Start it with `l04ctl daemon start`, or use --no-daemon "
                 "to read the state files directly.\n",
                 ctx.settings.socket_path().c_str());
    return k_daemon;
}

int Context::load_for_daemon_control() {
    if (m_loaded) return k_ok;
    l04::SettingsSources src;
    src.user_config = globals.config;
    src.flags = setting_flags;
    if (auto s = l04::Settings::load(src)) {
        settings = std::move(*s);
        m_loaded = true;
        return k_ok;
    } else {
        // `daemon stop|status` need only the runtime directory: a broken
        // config file must not keep a running daemon from being stopped.
        std::fprintf(stderr, "l04ctl: warning: %s; using the environment and defaults to find l04d\n",
                     s.error().to_string().c_str());
    }
    src.read_files = false;
    auto s = l04::Settings::load(src);
    if (!s) return report(s.error());
    settings = std::move(*s);
    m_loaded = true;
    return k_ok;
}

int Context::load() {
    if (m_loaded) return k_ok;
    l04::SettingsSources src;
    src.user_config = globals.config;
    src.flags = setting_flags;
    auto s = l04::Settings::load(src);
    if (!s) return report(s.error());
    settings = std::move(*s);
    if (const char* nd = std::getenv("L04_NO_DAEMON"); nd && l04::parse_bool(nd).value_or(false))
        globals.no_daemon = true;
    m_loaded = true;
    return k_ok;
}

l04::Result<std::unique_ptr<l04::ApiClient>> Context::client(bool start_daemon, std::chrono::milliseconds read_timeout) {
    if (globals.no_daemon) {
        L04_TRY_ASSIGN(auto gw, l04::open_gateway(settings));
        return std::unique_ptr<l04::ApiClient>(new l04::InProcessClient(std::move(gw)));
    }
    const std::string sock = settings.socket_path();
    if (!l04::daemon_answers(sock)) {
        if (!start_daemon) return l04::fail(l04::ErrorCode::daemon_unavailable, "l04d is not running");
        l04::DaemonStart ds;
        if (!globals.config.empty()) ds.extra_args = {"--config", globals.config};
        L04_TRY(l04::ensure_daemon(settings, ds));
    }
    const std::int64_t request_ms =
        request_timeout_ms > 0 ? request_timeout_ms : settings.get_duration_ms("request.timeout");
    // l04d ends every request by its deadline (E4202 then); 5 s more covers
    // the answer's way back. A daemon silent past that is not responding.
    const auto wait = read_timeout.count() > 0 ? read_timeout : std::chrono::milliseconds(request_ms + 5'000);
    auto c = std::make_unique<l04::SocketClient>(sock, wait);
    c->set_state_dir(settings.state_dir());
    return std::unique_ptr<l04::ApiClient>(std::move(c));
}

bool Context::stdout_tty() const { return ::isatty(1); }
bool Context::stderr_tty() const { return ::isatty(2); }

static bool no_color() {
    const char* nc = std::getenv("NO_COLOR");
    return nc && *nc;
}
bool Context::color_stderr() const { return stderr_tty() && !no_color(); }
bool Context::color_stdout() const { return stdout_tty() && !no_color(); }

l04::Result<nlohmann::json> call_json(l04::ApiClient& c, const std::string& method, const std::string& path,
                                      const std::string& body) {
    l04::ClientRequest req;
    req.method = method;
    req.path = path;
    req.body = body;
    L04_TRY_ASSIGN(auto r, c.call(req));
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (r.status < 200 || r.status >= 300) {
        if (j.is_discarded())
            return l04::fail(l04::ErrorCode::internal_error, "l04d answered HTTP " + std::to_string(r.status));
        return l04::fail(l04::error_from_json(j, r.status));
    }
    if (j.is_discarded()) return l04::fail(l04::ErrorCode::parse_error, "l04d sent a body that is not JSON");
    return j;
}

void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> w(header.size());
    for (std::size_t i = 0; i < header.size(); ++i) w[i] = header[i].size();
    for (const auto& r : rows)
        for (std::size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
    auto line = [&](const std::vector<std::string>& r) {
        std::string s;
        for (std::size_t i = 0; i < r.size(); ++i) {
            s += r[i];
            if (i + 1 < r.size()) s += std::string(w[i] - r[i].size() + 2, ' ');
        }
        std::printf("%s\n", s.c_str());
    };
    line(header);
    for (const auto& r : rows) line(r);
}

bool ChatStream::feed(std::string_view piece) {
    m_pending.append(piece);
    std::size_t pos;
    while (!m_stop && (pos = m_pending.find("\n\n")) != std::string::npos) {
        const std::string ev = m_pending.substr(0, pos);
        m_pending.erase(0, pos + 2);
        for (const auto& line : l04::split(ev, '\n'))
            if (line.rfind("data:", 0) == 0) event(l04::trim(std::string_view(line).substr(5)));
    }
    return !m_stop;
}

void ChatStream::event(std::string_view data) {
    if (m_stop) return;
    if (data == "[DONE]") {
        done = true;
        return;
    }
    auto j = nlohmann::json::parse(data, nullptr, false);
    if (j.is_discarded()) return;
    if (j.contains("error")) {
        error = l04::error_from_json(j, 502);
        return;
    }
    if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
        const auto& c = j["choices"][0];
        if (c.contains("delta") && c["delta"].contains("content") && c["delta"]["content"].is_string()) {
            const auto& s = c["delta"]["content"].get_ref<const std::string&>();
            if (!s.empty()) {
                response.content += s;
                if (!m_on_text(s)) m_stop = true;
            }
        }
        if (c.contains("finish_reason") && c["finish_reason"].is_string()) response.finish_reason = c["finish_reason"];
    }
    if (j.contains("l04")) {
        auto f = l04::response_from_json(j);
        f.finish_reason = response.finish_reason;
        f.content = std::move(response.content);
        response = std::move(f);
    }
}

l04::Error ChatStream::http_error(int status) const {
    auto j = nlohmann::json::parse(m_pending, nullptr, false);
    return j.is_discarded() ? l04::Error(l04::ErrorCode::internal_error, "l04d answered HTTP " + std::to_string(status))
                            : l04::error_from_json(j, status);
}

}  // namespace l04ctl
