// l04ctl usage: requests, tokens and cost from the usage ledger.
#include "common.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>

namespace l04ctl {

void add_usage(CLI::App& app, Context& ctx) {
    struct Args {
        std::string since = "24h";
        std::string agent;
        bool json = false;
    };
    auto a = std::make_shared<Args>();
    auto* c = app.add_subcommand("usage", "Requests, tokens and cost from the usage ledger");
    c->add_option("--since", a->since, "Period to report (e.g. 24h, 7d)");
    c->add_option("--agent", a->agent, "Only this agent");
    c->add_flag("--json", a->json, "JSON output");
    c->callback([&ctx, a] {
        if ((g_exit = ctx.load())) return;
        auto client = ctx.client(true);
        if (!client) {
            g_exit = report(client.error());
            return;
        }
        std::string path = "/v1/usage?since=" + a->since;
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
        auto i = [&](const char* k) { return static_cast<long long>((*j)[k].get<long long>()); };
        std::printf("since %s: %lld requests (%lld errors, %lld cached), %lld prompt + %lld completion tokens, "
                    "$%.6f spent, $%.6f saved by the cache\n",
                    a->since.c_str(), i("requests"), i("errors"), i("cached"), i("prompt_tokens"),
                    i("completion_tokens"), (*j)["cost_usd"].get<double>(), (*j)["saved_usd"].get<double>());
    });
}

void add_limits(CLI::App& app, Context& ctx) {
    auto json_out = std::make_shared<bool>(false);
    auto* c = app.add_subcommand("limits", "Rate-limit buckets (level, capacity, refill) and circuit breakers");
    c->add_flag("--json", *json_out, "JSON output");
    c->callback([&ctx, json_out] {
        if ((g_exit = ctx.load())) return;
        auto client = ctx.client(true);
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
        for (const auto& b : (*j)["buckets"])
            rows.push_back({b["scope"].get<std::string>(), b["kind"].get<std::string>(), num(b["level"].get<double>()),
                            num(b["capacity"].get<double>()), num(b["refill_per_s"].get<double>() * 60.0) + "/min"});
        if (rows.empty()) std::printf("no rate-limit buckets yet (they appear with the first request that is not a cache hit)\n");
        else print_table({"SCOPE", "KIND", "LEVEL", "CAPACITY", "REFILL"}, rows);
        std::printf("\n");
        std::vector<std::vector<std::string>> crow;
        for (const auto& [id, c] : (*j)["circuits"].items())
            crow.push_back({id, c["state"].get<std::string>(), std::to_string(c["consecutive_failures"].get<int>()),
                            c["blocked_until"].is_null() ? "-" : c["blocked_until"].get<std::string>(),
                            c["last_error"].is_null() ? "" : c["last_error"].get<std::string>()});
        print_table({"PROVIDER", "CIRCUIT", "FAILURES", "BLOCKED UNTIL", "LAST ERROR"}, crow);
    });
}

}  // namespace l04ctl
