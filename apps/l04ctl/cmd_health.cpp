// l04ctl health: the gateway's health report. Never starts a daemon.
#include "common.hpp"

#include <l04/wire/admin_json.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>

namespace l04ctl {

void add_health(CLI::App& app, Context& ctx) {
    struct Args {
        bool json = false;
        bool no_probe = false;
    };
    auto a = std::make_shared<Args>();
    auto* c = app.add_subcommand("health", "Gateway and provider health (exit 1 when unhealthy, 8 when l04d is not running)");
    c->add_flag("--json", a->json, "JSON output (the health dict)");
    c->add_flag("--no-probe", a->no_probe, "Report circuit and configuration state without probing providers");
    c->callback([&ctx, a] {
        if ((g_exit = ctx.load())) return;
        auto client = ctx.client(false, std::chrono::seconds(30));
        if (!client) {
            g_exit = client.error().code == l04::ErrorCode::daemon_unavailable ? report_not_running(ctx) : report(client.error());
            return;
        }
        auto j = call_json(**client, "GET", a->no_probe ? "/health?probe=0" : "/health");
        if (!j) {
            g_exit = report(j.error());
            return;
        }
        const l04::HealthView h = l04::health_from_json(*j);
        const std::string& gw = h.gateway;
        if (a->json) {
            std::printf("%s\n", j->dump(2).c_str());
        } else {
            Style st{ctx.color_stdout()};
            auto colour = [&](const std::string& s) {
                return s == "healthy" ? st.green() : s == "degraded" ? st.yellow() : s == "unconfigured" ? st.dim() : st.red();
            };
            std::printf("gateway: %s%s%s  (l04 %s, pid %lld%s)\n", colour(gw), gw.c_str(), st.reset(), h.version.c_str(),
                        h.pid, h.daemon ? "" : ", in-process");
            std::printf("models: %lld   cache entries: %lld   queue: %lld pending, %lld active\n", h.total_models,
                        h.cache_entries, h.pending_requests, h.active_requests);
            std::vector<std::vector<std::string>> rows;
            for (const auto& p : h.providers) {
                char lat[32];
                std::snprintf(lat, sizeof lat, "%.1f ms", p.latency_ms);
                rows.push_back({p.id, std::string(colour(p.status)) + p.status + st.reset(), p.circuit,
                                p.status == "unconfigured" ? "" : lat, p.message});
            }
            print_table({"PROVIDER", "STATUS", "CIRCUIT", "PROBE", "NOTE"}, rows);
        }
        g_exit = gw == "unhealthy" ? k_internal : k_ok;
    });
}

}  // namespace l04ctl
