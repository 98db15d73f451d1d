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

}  // namespace l04ctl
