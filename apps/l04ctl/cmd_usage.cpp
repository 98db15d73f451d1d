// l04ctl usage: requests, tokens and cost from the usage ledger.
#include "common.hpp"

#include <l04/wire/admin_json.hpp>

#include <l04/core/strings.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>

namespace l04ctl {

void add_usage(CLI::App& app, Context& ctx) {
    struct Args {
        std::string since = "24h";
        std::string by;
        std::string agent;
        bool json = false;
        bool csv = false;
    };
    auto a = std::make_shared<Args>();
    auto* c = app.add_subcommand("usage", "Requests, tokens, cost, cache savings and latency from the usage ledger");
    c->add_option("--since", a->since, "Period: a duration (24h, 7d) or a date (2026-11-01)");
    c->add_option("--by", a->by, "Group by model, provider, agent or day");
    c->add_option("--agent", a->agent, "Only this agent");
    c->add_flag("--json", a->json, "JSON output");
    c->add_flag("--csv", a->csv, "CSV output (one row per group)");
    c->callback([&ctx, a] {
        if ((g_exit = ctx.load())) return;
        auto client = ctx.client(true, std::chrono::milliseconds(ctx.settings.get_duration_ms("client.status_timeout")));
        if (!client) {
            g_exit = report(client.error());
            return;
        }
        std::string path = "/v1/usage?since=" + a->since;
        if (!a->by.empty()) path += "&by=" + a->by;
        if (!a->agent.empty()) path += "&agent=" + a->agent;
        auto j = call_json(**client, "GET", path);
        if (!j) {
            g_exit = report(j.error());
            return;
        }
        if (a->json) {
            std::printf("%s\n", j->dump(2).c_str());
            return;
        }
        using l04::json_field;
        using nlohmann::json;
        const json groups = a->by.empty() ? json::array({json_field<json>(*j, "total", json::object())})
                                          : json_field<json>(*j, "groups", json::array());
        auto i = [](const json& g, const char* k) { return std::to_string(json_field<long long>(g, k, 0)); };
        auto f = [](double v, const char* fmt) {
            char b[32];
            std::snprintf(b, sizeof b, fmt, v);
            return std::string(b);
        };
        const std::string first = a->by.empty() ? "PERIOD" : a->by;
        std::vector<std::string> header{first, "requests", "errors", "cached", "prompt_tokens", "completion_tokens",
                                        "cost_usd", "saved_usd", "p50_ms", "p95_ms"};
        std::vector<std::vector<std::string>> rows;
        for (const auto& g : groups)
            rows.push_back({a->by.empty() ? "since " + json_field<std::string>(*j, "since", "?") : json_field<std::string>(g, "key", ""),
                            i(g, "requests"), i(g, "errors"), i(g, "cached"), i(g, "prompt_tokens"),
                            i(g, "completion_tokens"), f(json_field(g, "cost_usd", 0.0), "%.6f"),
                            f(json_field(g, "saved_usd", 0.0), "%.6f"), f(json_field(g, "p50_latency_ms", 0.0), "%.1f"),
                            f(json_field(g, "p95_latency_ms", 0.0), "%.1f")});
        if (a->csv) {
            for (std::size_t k = 0; k < header.size(); ++k) std::printf("%s%s", k ? "," : "", header[k].c_str());
            std::printf("\n");
            for (const auto& r : rows) {
                for (std::size_t k = 0; k < r.size(); ++k) {
                    std::string v = r[k];
                    if (v.find_first_of(",\"") != std::string::npos) {
                        std::string q = "\"";
                        for (char ch : v) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
                        v = q + "\"";
                    }
                    std::printf("%s%s", k ? "," : "", v.c_str());
                }
                std::printf("\n");
            }
            return;
        }
        print_table({a->by.empty() ? "PERIOD" : l04::to_lower(a->by), "REQUESTS", "ERRORS", "CACHED", "PROMPT", "COMPLETION",
                     "COST $", "SAVED $", "P50 MS", "P95 MS"},
                    rows);
    });
}

void add_limits(CLI::App& app, Context& ctx) {
    auto json_out = std::make_shared<bool>(false);
    auto* c = app.add_subcommand("limits", "Rate-limit buckets (level, capacity, refill) and circuit breakers");
    c->add_flag("--json", *json_out, "JSON output");
    c->callback([&ctx, json_out] {
        if ((g_exit = ctx.load())) return;
        auto client = ctx.client(true, std::chrono::milliseconds(ctx.settings.get_duration_ms("client.status_timeout")));
        if (!client) {
            g_exit = report(client.error());
            return;
        }
        auto j = call_json(**client, "GET", "/v1/limits");
        if (!j) {
            g_exit = report(j.error());
            return;
        }
        if (*json_out) {
            std::printf("%s\n", j->dump(2).c_str());
            return;
        }
        std::vector<std::vector<std::string>> rows;
        auto num = [](double v) {
            char b[32];
            std::snprintf(b, sizeof b, "%.1f", v);
            return std::string(b);
        };
        using l04::json_field;
        using nlohmann::json;
        for (const auto& b : json_field<json>(*j, "buckets", json::array()))
            rows.push_back({json_field<std::string>(b, "scope", ""), json_field<std::string>(b, "kind", ""),
                            num(json_field(b, "level", 0.0)), num(json_field(b, "capacity", 0.0)),
                            num(json_field(b, "refill_per_s", 0.0) * 60.0) + "/min"});
        if (rows.empty()) std::printf("no rate-limit buckets yet (they appear with the first request that is not a cache hit)\n");
        else print_table({"SCOPE", "KIND", "LEVEL", "CAPACITY", "REFILL"}, rows);
        std::printf("\n");
        std::vector<std::vector<std::string>> crow;
        const json circuits = json_field<json>(*j, "circuits", json::object());
        if (circuits.is_object())
            for (const auto& [id, circuit] : circuits.items())
                crow.push_back({id, json_field<std::string>(circuit, "state", "unknown"),
                                std::to_string(json_field<long long>(circuit, "consecutive_failures", 0)),
                                json_field<std::string>(circuit, "blocked_until", "-"),
                                json_field<std::string>(circuit, "last_error", "")});
        print_table({"PROVIDER", "CIRCUIT", "FAILURES", "BLOCKED UNTIL", "LAST ERROR"}, crow);
    });
}

}  // namespace l04ctl
