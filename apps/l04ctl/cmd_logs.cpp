// l04ctl logs: the prompt log (logs.db in the state directory) - list and
// search past prompts and answers, show one, remove them.
#include "common.hpp"

#include <l04/core/clock.hpp>
#include <l04/core/strings.hpp>
#include <l04/log/prompt_log.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>

namespace l04ctl {

namespace {

struct LogsArgs {
    std::size_t n = 10;
    bool json = false;
    std::string query, model, since, cid;
    std::vector<std::int64_t> ids;
    std::string older_than;
};

// The first line of s, at most max code points, with "..." when cut.
std::string snippet(const std::string& s, std::size_t max) {
    std::string line = s.substr(0, s.find('\n'));
    std::size_t cps = 0, i = 0;
    for (; i < line.size(); ++i) {
        if ((static_cast<unsigned char>(line[i]) & 0xC0) != 0x80) {
            if (cps == max) break;
            ++cps;
        }
    }
    const bool cut = i < line.size() || line.size() < s.size();
    line.resize(i);
    for (char& c : line)
        if (c == '\t' || c == '\r') c = ' ';
    return cut ? line + "..." : line;
}

l04::Result<std::unique_ptr<l04::PromptLog>> open_log(Context& ctx) {
    return l04::PromptLog::open(ctx.settings.state_dir());
}

int list(Context& ctx, const LogsArgs& a) {
    if (int rc = ctx.load()) return rc;
    auto log = open_log(ctx);
    if (!log) return report(log.error());
    l04::LogQuery q;
    q.limit = a.n;
    q.text = a.query;
    q.model = a.model;
    q.conversation_id = a.cid;
    if (!a.since.empty()) {
        auto ms = l04::parse_duration_ms(a.since);
        if (!ms) return report(l04::Error(l04::ErrorCode::invalid_parameter, "--since must be a duration like 2h or 7d"));
        q.since_ms = l04::SystemClock::instance().wall_ms() - *ms;
    }
    auto rows = (*log)->list(q);
    if (!rows) return report(rows.error());
    std::reverse(rows->begin(), rows->end());  // oldest first: the newest ends up next to the prompt
    if (a.json) {
        for (const auto& p : *rows) std::printf("%s\n", l04::logged_prompt_json(p).dump().c_str());
        return k_ok;
    }
    if (rows->empty()) {
        if (!ctx.globals.quiet)
            std::fprintf(stderr, "l04ctl: no logged prompts%s\n",
                         ctx.settings.get_bool("log.prompts") ? "" : " (log.prompts is false: nothing is recorded)");
        return k_ok;
    }
    std::vector<std::vector<std::string>> table;
    for (const auto& p : *rows)
        table.push_back({std::to_string(p.id), l04::iso8601_utc(p.ts_ms).substr(0, 19), p.model, p.conversation_id,
                         snippet(p.prompt, 40), snippet(p.response, 40)});
    print_table({"ID", "TIME (UTC)", "MODEL", "CONVERSATION", "PROMPT", "ANSWER"}, table);
    return k_ok;
}

int show(Context& ctx, const LogsArgs& a) {
    if (int rc = ctx.load()) return rc;
    auto log = open_log(ctx);
    if (!log) return report(log.error());
    int rc = k_ok;
    for (auto id : a.ids) {
        auto p = (*log)->get(id);
        if (!p) return report(p.error());
        if (!*p) {
            rc = report(l04::Error(l04::ErrorCode::invalid_request, "no logged prompt " + std::to_string(id)));
            continue;
        }
        const auto& r = **p;
        if (a.json) {
            std::printf("%s\n", l04::logged_prompt_json(r).dump(2).c_str());
            continue;
        }
        std::printf("id %lld, conversation %s, %s, %s via %s, %lld+%lld tokens, $%.6f%s\n", static_cast<long long>(r.id),
                    r.conversation_id.c_str(), l04::iso8601_utc(r.ts_ms).c_str(), r.model.c_str(), r.provider.c_str(),
                    static_cast<long long>(r.prompt_tokens), static_cast<long long>(r.completion_tokens), r.cost_usd,
                    r.cached ? ", from the cache" : "");
        if (!r.system.empty()) std::printf("\n## System\n\n%s\n", r.system.c_str());
        std::printf("\n## Prompt\n\n%s\n\n## Answer\n\n%s\n", r.prompt.c_str(), r.response.c_str());
    }
    return rc;
}

int remove(Context& ctx, const LogsArgs& a) {
    if (int rc = ctx.load()) return rc;
    if (a.ids.empty() == a.older_than.empty())
        return report(l04::Error(l04::ErrorCode::invalid_parameter, "give log ids or --older-than DURATION (not both)"));
    auto log = open_log(ctx);
    if (!log) return report(log.error());
    int removed = 0;
    if (!a.older_than.empty()) {
        auto ms = l04::parse_duration_ms(a.older_than);
        if (!ms) return report(l04::Error(l04::ErrorCode::invalid_parameter, "--older-than must be a duration like 30d"));
        auto n = (*log)->remove_older_than(l04::SystemClock::instance().wall_ms() - *ms);
        if (!n) return report(n.error());
        removed = *n;
    } else {
        for (auto id : a.ids) {
            auto n = (*log)->remove(id);
            if (!n) return report(n.error());
            if (*n == 0) return report(l04::Error(l04::ErrorCode::invalid_request, "no logged prompt " + std::to_string(id)));
            removed += *n;
        }
    }
    if (!ctx.globals.quiet) std::printf("removed %d logged prompt(s)\n", removed);
    return k_ok;
}

}  // namespace

void add_logs(CLI::App& app, Context& ctx) {
    auto a = std::make_shared<LogsArgs>();
    auto* c = app.add_subcommand("logs", "List and search past prompts and answers (the prompt log)");
    c->footer("The log is logs.db in the state directory (mode 0600). log.prompts = false records nothing;\n"
              "log.retention = 30d deletes older entries. `l04ctl prompt -c` continues the newest conversation.");
    c->require_subcommand(0, 1);
    c->add_option("-n,--count", a->n, "How many (the newest)")->capture_default_str();
    c->add_flag("--json", a->json, "One JSON object a line");
    c->add_option("-q,--query", a->query, "Full-text search: entries whose prompt or answer has every word");
    c->add_option("-m,--model", a->model, "Only this model");
    c->add_option("--since", a->since, "Only entries newer than this (e.g. 2h, 7d)");
    c->add_option("--cid", a->cid, "Only this conversation");
    c->callback([&ctx, a, c] {
        if (c->get_subcommands().empty()) g_exit = list(ctx, *a);
    });

    auto* s = c->add_subcommand("show", "Show logged prompts in full");
    s->add_option("id", a->ids, "Log id(s)")->required();
    s->add_flag("--json", a->json, "As JSON");
    s->callback([&ctx, a] { g_exit = show(ctx, *a); });

    auto* r = c->add_subcommand("rm", "Remove logged prompts");
    r->add_option("id", a->ids, "Log id(s)");
    r->add_option("--older-than", a->older_than, "Remove every entry older than this (e.g. 30d)");
    r->callback([&ctx, a] { g_exit = remove(ctx, *a); });
}

}  // namespace l04ctl
