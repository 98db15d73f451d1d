// l04ctl embed: embeddings through l04d's /v1/embeddings (the same model
// registry, limits, breaker, cache, ledger and metrics as prompts).
//   l04ctl embed "some text"                one vector, as a JSON array
//   printf 'a\nb\n' | l04ctl embed --lines  one input per line, one array per line
//   l04ctl embed --json TEXT                the whole OpenAI-shaped answer
#include "common.hpp"

#include <l04/core/strings.hpp>
#include <l04/wire/openai_json.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <unistd.h>

namespace l04ctl {

namespace {

struct EmbedArgs {
    std::vector<std::string> text;
    std::string model, agent, timeout;
    std::optional<std::int64_t> dimensions;
    bool lines = false, json = false, no_cache = false, no_stdin = false;
};

int run_embed(Context& ctx, const EmbedArgs& a) {
    if (int rc = ctx.load()) return rc;
    std::vector<std::string> inputs;
    std::string joined;
    for (const auto& t : a.text) joined += (joined.empty() ? "" : " ") + t;
    if (!joined.empty()) {
        inputs.push_back(joined);
    } else if (!a.no_stdin) {
        if (::isatty(0) && !ctx.globals.quiet)
            std::fprintf(stderr, "l04ctl: reading the text from the terminal; end with Ctrl-D\n");
        std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
        if (a.lines) {
            // Each line as written (only its line ending removed); blank lines skipped.
            std::size_t start = 0;
            while (start < in.size()) {
                std::size_t nl = in.find('\n', start);
                if (nl == std::string::npos) nl = in.size();
                std::string line = in.substr(start, nl - start);
                if (!line.empty() && line.back() == '\r') line.pop_back();
                if (!l04::trim(line).empty()) inputs.push_back(std::move(line));
                start = nl + 1;
            }
        } else {
            while (!in.empty() && (in.back() == '\n' || in.back() == '\r')) in.pop_back();
            if (!in.empty()) inputs.push_back(std::move(in));
        }
    }
    if (inputs.empty())
        return report(l04::Error(l04::ErrorCode::invalid_parameter,
                                 "nothing to embed: give TEXT or pipe it on stdin (--lines: one text per line)"));
    nlohmann::json body{{"input", inputs}};
    if (!a.model.empty()) body["model"] = a.model;
    if (a.dimensions) body["dimensions"] = *a.dimensions;
    nlohmann::json g = nlohmann::json::object();
    g["agent"] = !a.agent.empty() ? a.agent : ctx.settings.get("agent");
    if (a.no_cache) g["cache"] = "bypass";
    if (!a.timeout.empty()) {
        auto ms = l04::parse_duration_ms(a.timeout);
        if (!ms || *ms <= 0) return report(l04::Error(l04::ErrorCode::invalid_parameter, "--timeout must be a duration like 30s"));
        g["timeout"] = static_cast<double>(*ms) / 1000.0;
        ctx.request_timeout_ms = *ms;
    }
    body["l04"] = std::move(g);
    auto client = ctx.client(true);
    if (!client) return report(client.error());
    auto j = call_json(**client, "POST", "/v1/embeddings", l04::to_wire(body));
    if (!j) return report(j.error());
    if (a.json) {
        std::printf("%s\n", j->dump(2).c_str());
        return k_ok;
    }
    if (!j->contains("data") || !(*j)["data"].is_array())
        return report(l04::Error(l04::ErrorCode::parse_error, "l04d's embeddings answer has no data"));
    for (const auto& d : (*j)["data"]) {
        if (!d.is_object() || !d.contains("embedding"))
            return report(l04::Error(l04::ErrorCode::parse_error, "l04d's embeddings answer has an item without a vector"));
        std::printf("%s\n", d["embedding"].dump().c_str());
    }
    if (ctx.globals.verbose > 0) {
        // Facts for people; a daemon of another version may lack some.
        const nlohmann::json f = j->contains("l04") && (*j)["l04"].is_object() ? (*j)["l04"] : nlohmann::json::object();
        const nlohmann::json u = j->contains("usage") && (*j)["usage"].is_object() ? (*j)["usage"] : nlohmann::json::object();
        auto str = [](const nlohmann::json& o, const char* k) {
            return o.contains(k) && o[k].is_string() ? o[k].get<std::string>() : std::string("?");
        };
        auto num = [](const nlohmann::json& o, const char* k) {
            return o.contains(k) && o[k].is_number() ? o[k].get<long long>() : -1LL;
        };
        std::fprintf(stderr, "l04ctl: %s via %s, %lld tokens, %lld of %zu from the cache\n", str(f, "model_id").c_str(),
                     str(f, "provider").c_str(), num(u, "prompt_tokens"), num(f, "cached_inputs"), inputs.size());
    }
    return k_ok;
}

}  // namespace

void add_embed(CLI::App& app, Context& ctx) {
    auto a = std::make_shared<EmbedArgs>();
    auto* c = app.add_subcommand("embed", "Embed text: one JSON array of numbers per input on stdout");
    c->footer(
        "Input: TEXT words joined with spaces; without TEXT, stdin (whole, or one text per line with --lines).\n"
        "Models: those with the embedding capability (`l04ctl models list --capability embedding`); without -m,\n"
        "the cheapest whose provider is configured. mock-embed works offline (hashed words, not semantic).\n"
        "Vectors are cached exactly per (model, dimensions, text); --no-cache skips the cache.");
    c->add_option("text", a->text, "Text to embed (joined with spaces)");
    c->add_option("-m,--model", a->model, "Embedding model id or alias");
    c->add_option("--dimensions", a->dimensions, "A shorter vector, for models that offer one (text-embedding-3-*)")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{65536}));
    c->add_flag("--lines", a->lines, "Each non-empty line of stdin is its own input");
    c->add_flag("--json", a->json, "Print l04d's whole answer (OpenAI's embeddings list, with usage and l04 facts)");
    c->add_flag("--no-cache", a->no_cache, "Neither read nor write the embedding cache");
    c->add_option("--agent", a->agent, "Agent identity for limits and usage (default: config `agent`)");
    c->add_option("--timeout", a->timeout, "Give up after this long (e.g. 30s)");
    c->add_flag("--no-stdin", a->no_stdin, "Never read standard input");
    c->callback([&ctx, a] { g_exit = run_embed(ctx, *a); });
}

}  // namespace l04ctl
