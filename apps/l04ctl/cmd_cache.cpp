// l04ctl cache stats|search|clear|prune: the response cache.
#include "common.hpp"

#include <l04/wire/admin_json.hpp>

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
        auto client = ctx.client(false, std::chrono::milliseconds(ctx.settings.get_duration_ms("client.status_timeout")));
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
        const l04::CacheStatsView v = l04::cache_stats_from_json(*j);
        const l04::CacheStats& c = v.stats;
        auto n = [](std::int64_t x) { return static_cast<long long>(x); };
        std::printf("enabled:        %s\n", c.enabled ? "yes" : "no");
        std::printf("entries:        %lld (%lld bytes)\n", n(c.entries), n(c.bytes));
        std::printf("hits:           %lld (exact %lld, semantic %lld)\n", n(c.exact_hits + c.semantic_hits),
                    n(c.exact_hits), n(c.semantic_hits));
        std::printf("misses:         %lld\n", n(c.misses));
        std::printf("hit rate:       %.1f%%\n", c.hit_rate() * 100.0);
        std::printf("stores:         %lld   evictions: %lld   expired: %lld\n", n(c.stores), n(c.evictions), n(c.expired));
        if (!c.embedder.empty()) {
            std::printf("semantic:       on, threshold %.2f, guard %s, margin %.2f\n", c.similarity_threshold,
                        c.semantic_guard ? "on" : "off", c.semantic_margin);
            std::printf("refused:        %lld by the guard, %lld as ambiguous\n", n(c.guard_refusals), n(c.ambiguous));
            std::printf("embedder:       %s (index %lld, deleted %lld, failures %lld)%s\n", c.embedder.c_str(),
                        n(c.index_size), n(c.index_deleted), n(c.embed_failures),
                        c.index_loaded ? "" : ", index not loaded yet");
        } else {
            std::printf("semantic:       off (exact matches only)\n");
        }
        if (!v.oldest.empty()) std::printf("oldest/newest:  %s / %s\n", v.oldest.c_str(), v.newest.c_str());
    });

    struct SearchArgs {
        std::vector<std::string> text;
        int k = 5;
        bool json = false;
    };
    auto sa = std::make_shared<SearchArgs>();
    auto* search = cache->add_subcommand(
        "search", "Cached prompts nearest to TEXT: similarity, and whether each would be served (to tune the threshold)");
    search->add_option("text", sa->text, "Text to search for (the words are joined with spaces)")->required();
    search->add_option("-k", sa->k, "How many entries (1-100)")->check(CLI::Range(1, 100));
    search->add_flag("--json", sa->json, "JSON output");
    search->callback([&ctx, sa] {
        if ((g_exit = ctx.load())) return;
        auto client = ctx.client(true, std::chrono::milliseconds(ctx.settings.get_duration_ms("client.status_timeout")));
        if (!client) {
            g_exit = report(client.error());
            return;
        }
        std::string text;
        for (std::size_t i = 0; i < sa->text.size(); ++i) text += (i ? " " : "") + sa->text[i];
        auto j = call_json(**client, "GET",
                           "/v1/cache/search?q=" + l04::url_encode(text) + "&k=" + std::to_string(sa->k));
        if (!j) {
            g_exit = report(j.error());
            return;
        }
        if (sa->json) {
            std::printf("%s\n", j->dump(2).c_str());
            return;
        }
        std::vector<std::vector<std::string>> rows;
        for (const auto& h : l04::json_field<nlohmann::json>(*j, "results", nlohmann::json::array())) {
            char sim[32];
            std::snprintf(sim, sizeof sim, "%.3f", l04::json_field(h, "similarity", 0.0));
            std::string prompt = l04::json_field<std::string>(h, "prompt", "");
            for (auto& c : prompt)
                if (c == '\n' || c == '\r' || c == '\t') c = ' ';
            if (prompt.size() > 72) {
                std::size_t cut = 69;  // never inside a UTF-8 sequence
                while (cut > 0 && (static_cast<unsigned char>(prompt[cut]) & 0xC0) == 0x80) --cut;
                prompt = prompt.substr(0, cut) + "...";
            }
            const std::string refused = l04::json_field<std::string>(h, "guard", "");
            std::string flags = l04::json_field(h, "above_threshold", false) && refused.empty() ? "yes" : "no";
            if (!refused.empty()) flags += ",guard:" + refused;
            if (l04::json_field(h, "expired", false)) flags += ",expired";
            rows.push_back({sim, flags, l04::json_field<std::string>(h, "model", ""),
                            l04::json_field<std::string>(h, "scope", "").substr(0, 8),
                            std::to_string(l04::json_field<long long>(h, "hits", 0)), prompt});
        }
        if (!ctx.globals.quiet)
            std::fprintf(stderr, "embedder %s, threshold %.2f; a hit also needs the same scope (model, system prompt, "
                                 "parameters, earlier turns), the hit guard's consent and no rival answer as close\n",
                         l04::json_field<std::string>(*j, "embedder", "").c_str(), l04::json_field(*j, "threshold", 0.0));
        if (rows.empty()) {
            if (!ctx.globals.quiet) std::fprintf(stderr, "no entries with an embedding in the cache\n");
            return;
        }
        print_table({"SIMILARITY", "HIT", "MODEL", "SCOPE", "HITS", "PROMPT"}, rows);
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
        auto client = ctx.client(true, std::chrono::milliseconds(ctx.settings.get_duration_ms("client.status_timeout")));
        if (!client) {
            g_exit = report(client.error());
            return;
        }
        std::string path = "/v1/cache?";
        if (!ca->model.empty()) path += "model=" + l04::url_encode(ca->model) + "&";
        if (!ca->older_than.empty()) path += "older_than=" + l04::url_encode(ca->older_than);
        auto j = call_json(**client, "DELETE", path);
        if (!j) {
            g_exit = report(j.error());
            return;
        }
        if (!ctx.globals.quiet) std::printf("deleted %lld entries\n", l04::json_field<long long>(*j, "deleted", 0));
    });

    auto* prune = cache->add_subcommand("prune", "Delete expired entries and enforce the size bounds");
    prune->callback([&ctx] {
        if ((g_exit = ctx.load())) return;
        auto client = ctx.client(true, std::chrono::milliseconds(ctx.settings.get_duration_ms("client.status_timeout")));
        if (!client) {
            g_exit = report(client.error());
            return;
        }
        auto j = call_json(**client, "POST", "/v1/cache/prune");
        if (!j) {
            g_exit = report(j.error());
            return;
        }
        if (!ctx.globals.quiet) std::printf("removed %lld entries\n", l04::json_field<long long>(*j, "removed", 0));
    });
}

}  // namespace l04ctl
