// l04ctl cache stats|clear|prune: the response cache.
#include "common.hpp"

#include <l04/core/strings.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>

namespace l04ctl {

void add_cache(CLI::App& app, Context& ctx) {
    auto* cache = app.add_subcommand("cache", "The response cache");
    cache->require_subcommand(1);

    auto json_stats = std::make_shared<bool>(false);
    auto* stats = cache->add_subcommand("stats", "Entries, hits, misses, hit rate (never starts l04d)");
    stats->add_flag("--json", *json_stats, "JSON output");
    stats->callback([&ctx, json_stats] {
        if ((g_exit = ctx.load())) return;
        auto client = ctx.client(false);
        if (!client) {
            g_exit = client.error().code == l04::ErrorCode::daemon_unavailable ? report_not_running(ctx) : report(client.error());
            return;
        }
        auto j = call_json(**client, "GET", "/v1/cache/stats");
        if (!j) {
            g_exit = report(j.error());
            return;
        }
        if (*json_stats) {
            std::printf("%s\n", j->dump(2).c_str());
            return;
        }
        auto i = [&](const char* k) { return static_cast<long long>((*j)[k].get<long long>()); };
        std::printf("enabled:        %s\n", (*j)["enabled"].get<bool>() ? "yes" : "no");
        std::printf("entries:        %lld (%lld bytes)\n", i("entries"), i("bytes"));
        std::printf("hits:           %lld (exact %lld, semantic %lld)\n", i("hits"), i("exact_hits"), i("semantic_hits"));
        std::printf("misses:         %lld\n", i("misses"));
        std::printf("hit rate:       %.1f%%\n", (*j)["hit_rate"].get<double>() * 100.0);
        std::printf("stores:         %lld   evictions: %lld   expired: %lld\n", i("stores"), i("evictions"), i("expired"));
        if (!(*j)["embedder"].get<std::string>().empty())
            std::printf("embedder:       %s (index %lld, deleted %lld, failures %lld)\n",
                        (*j)["embedder"].get<std::string>().c_str(), i("index_size"), i("index_deleted"),
                        i("embed_failures"));
        if (!(*j)["oldest"].is_null())
            std::printf("oldest/newest:  %s / %s\n", (*j)["oldest"].get<std::string>().c_str(),
                        (*j)["newest"].get<std::string>().c_str());
    });

    struct ClearArgs {
        std::string model, older_than;
    };
    auto ca = std::make_shared<ClearArgs>();
    auto* clear = cache->add_subcommand("clear", "Delete cached answers");
    clear->add_option("--model", ca->model, "Only entries of this model");
    clear->add_option("--older-than", ca->older_than, "Only entries older than this (e.g. 24h, 7d)");
    clear->callback([&ctx, ca] {
        if ((g_exit = ctx.load())) return;
        auto client = ctx.client(true);
        if (!client) {
            g_exit = report(client.error());
            return;
        }
        std::string path = "/v1/cache?";
        if (!ca->model.empty()) path += "model=" + ca->model + "&";
        if (!ca->older_than.empty()) path += "older_than=" + ca->older_than;
        auto j = call_json(**client, "DELETE", path);
        if (!j) {
            g_exit = report(j.error());
            return;
        }
        if (!ctx.globals.quiet) std::printf("deleted %lld entries\n", static_cast<long long>((*j)["deleted"].get<long long>()));
    });

    auto* prune = cache->add_subcommand("prune", "Delete expired entries and enforce the size bounds");
    prune->callback([&ctx] {
        if ((g_exit = ctx.load())) return;
        auto client = ctx.client(true);
        if (!client) {
            g_exit = report(client.error());
            return;
        }
        auto j = call_json(**client, "POST", "/v1/cache/prune");
        if (!j) {
            g_exit = report(j.error());
            return;
        }
        if (!ctx.globals.quiet) std::printf("removed %lld entries\n", static_cast<long long>((*j)["removed"].get<long long>()));
    });
}

}  // namespace l04ctl
