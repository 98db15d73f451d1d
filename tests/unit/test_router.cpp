#include "support/test_util.hpp"

#include <l04/router/router.hpp>

#include <doctest/doctest.h>

#include <set>

using namespace l04;

namespace {

Registry fixed_registry() {
    auto r = Registry::parse(R"(
[providers.a]
kind = "openai"
[providers.b]
kind = "anthropic"
[providers.m]
kind = "mock"

[[models]]
id = "fast-cheap"
provider = "a"
capabilities = ["text", "streaming"]
context_window = 8000
max_output_tokens = 2000
input_price = 0.1
output_price = 0.2
latency_ms = 200
quality = 0.5

[[models]]
id = "smart"
provider = "b"
capabilities = ["text", "code", "vision", "tool_use", "streaming"]
context_window = 200000
max_output_tokens = 8000
input_price = 3
output_price = 15
latency_ms = 2000
quality = 0.95

[[models]]
id = "middle"
provider = "a"
capabilities = ["text", "code", "streaming"]
context_window = 32000
max_output_tokens = 4000
input_price = 0.5
output_price = 1.5
latency_ms = 800
quality = 0.75

[[models]]
id = "mock"
provider = "m"
capabilities = ["text", "streaming"]
context_window = 100000
)",
                             "fixed.toml");
    REQUIRE(r.has_value());
    return std::move(*r);
}

InferenceRequest prompt(const std::string& text = "hello") {
    InferenceRequest r;
    r.messages.push_back({Role::user, text, {}, {}, {}});
    return r;
}

ProviderAvailable all_up = [](const std::string&, std::string&) { return true; };

}  // namespace

TEST_CASE("router strategies on a fixed registry") {
    auto reg = fixed_registry();
    auto pick = [&](const std::string& strategy) {
        Router r(reg, {});
        auto req = prompt();
        req.strategy = strategy;
        auto d = r.route(req, all_up);
        REQUIRE(d.has_value());
        return d->primary->id;
    };
    CHECK(pick("fastest") == "fast-cheap");
    CHECK(pick("cheapest") == "fast-cheap");
    CHECK(pick("best_quality") == "smart");
    CHECK(pick("capability_match") == "fast-cheap");

    Router r(reg, {});
    auto req = prompt();
    req.strategy = "best_quality";
    auto d = r.route(req, all_up);
    REQUIRE(d);
    CHECK(d->fallbacks.size() == 2);  // mock is never routed to automatically
    CHECK(d->fallbacks[0]->id == "middle");
    CHECK(d->target == "route:best_quality:text");
    bool mock_dropped = false;
    for (const auto& n : d->notes)
        if (n.model == "mock") mock_dropped = !n.kept;
    CHECK(mock_dropped);
}

TEST_CASE("router filters: capabilities - context window - constraints - availability") {
    auto reg = fixed_registry();
    Router r(reg, {});
    auto req = prompt();
    req.capabilities = {"vision"};
    CHECK(r.route(req, all_up)->primary->id == "smart");

    auto big = prompt(std::string(40000, 'x'));  // ~10k tokens: too big for fast-cheap
    big.strategy = "cheapest";
    CHECK(r.route(big, all_up)->primary->id == "middle");

    auto ex = prompt();
    ex.strategy = "cheapest";
    ex.constraints.excluded_providers = {"a"};
    CHECK(r.route(ex, all_up)->primary->id == "smart");

    auto lat = prompt();
    lat.strategy = "best_quality";
    lat.constraints.max_latency_ms = 1000;
    CHECK(r.route(lat, all_up)->primary->id == "middle");

    auto down_a = [](const std::string& p, std::string& why) {
        if (p == "a") {
            why = "circuit open";
            return false;
        }
        return true;
    };
    auto any = prompt();
    any.strategy = "cheapest";
    CHECK(r.route(any, down_a)->primary->id == "smart");

    auto none = prompt();
    none.capabilities = {"embedding"};
    auto err = r.route(none, all_up);
    REQUIRE_FALSE(err);
    CHECK(err.error().code == ErrorCode::no_suitable_model);
    CHECK(err.error().message.find("lacks capability") != std::string::npos);
}

TEST_CASE("router: explicit models - unknown names - unknown strategies - round robin - fallback chain - weighted") {
    auto reg = fixed_registry();
    RouterConfig cfg;
    cfg.model_fallbacks["fast-cheap"] = {"middle", "smart"};
    cfg.fallback_chain = {"middle", "fast-cheap"};
    cfg.weights = {{"smart", 1.0}};
    Router r(reg, cfg);
    auto ex = prompt();
    ex.model = "fast-cheap";
    auto d = r.route(ex, all_up);
    REQUIRE(d);
    CHECK(d->explicit_model);
    CHECK(d->target == "fast-cheap");
    REQUIRE(d->fallbacks.size() == 2);
    CHECK(d->fallbacks[0]->id == "middle");

    auto typo = prompt();
    typo.model = "smrt";
    auto e = r.route(typo, all_up);
    REQUIRE_FALSE(e);
    CHECK(e.error().code == ErrorCode::model_not_found);
    CHECK(e.error().message.find("'smart'") != std::string::npos);

    auto bad = prompt();
    bad.strategy = "vibes";
    CHECK(r.route(bad, all_up).error().code == ErrorCode::invalid_strategy);

    std::set<std::string> seen;
    for (int i = 0; i < 3; ++i) {
        auto rr = prompt();
        rr.strategy = "round_robin";
        seen.insert(r.route(rr, all_up)->primary->id);
    }
    CHECK(seen.size() == 3);

    auto fb = prompt();
    fb.strategy = "fallback";
    auto fd = r.route(fb, all_up);
    REQUIRE(fd);
    CHECK(fd->primary->id == "middle");
    REQUIRE(fd->fallbacks.size() == 1);
    CHECK(fd->fallbacks[0]->id == "fast-cheap");

    for (int i = 0; i < 5; ++i) {
        auto w = prompt();
        w.strategy = "weighted";
        CHECK(r.route(w, all_up)->primary->id == "smart");  // the only model with weight
    }
}

TEST_CASE("router: preferred providers first - constraints are part of the cache target") {
    auto reg = fixed_registry();
    Router r(reg, {});
    auto req = prompt();
    req.strategy = "best_quality";
    req.constraints.preferred_providers = {"a"};
    auto d = r.route(req, all_up);
    REQUIRE(d);
    CHECK(d->primary->provider == "a");
    CHECK(d->primary->id == "middle");  // the best of the preferred provider
    auto plain = prompt();
    plain.strategy = "best_quality";
    auto streamed = plain;
    streamed.stream = true;
    CHECK(r.route(plain, all_up)->target == r.route(streamed, all_up)->target);
    auto excluded = plain;
    excluded.constraints.excluded_providers = {"b"};
    CHECK(r.route(excluded, all_up)->target != r.route(plain, all_up)->target);
    CHECK(r.route(req, all_up)->target != r.route(plain, all_up)->target);
}

TEST_CASE("router: every strategy alias routes as its canonical strategy") {
    auto reg = fixed_registry();
    const std::vector<std::pair<std::string, std::string>> same = {
        {"FASTEST", "fastest"},           {"CHEAPEST", "cheapest"},           {"BEST_QUALITY", "best_quality"},
        {"BALANCED", "balanced"},         {"CAPABILITY_MATCH", "capability_match"},
        {"capability_first", "capability_match"}, {"cost_optimized", "cheapest"},
        {"latency_optimized", "fastest"}, {"quality_optimized", "best_quality"}, {"cost", "cheapest"},
        {"latency", "fastest"},           {"quality", "best_quality"},        {"Best-Quality", "best_quality"},
        {"Cost Optimized", "cheapest"},   {"ROUND_ROBIN", "round_robin"},     {"Weighted", "weighted"}};
    for (const auto& pair : same) {
        const std::string alias = pair.first, canonical = pair.second;  // clang 14: no bindings in doctest macros
        CAPTURE(alias);
        auto s = parse_strategy(alias);
        REQUIRE(s.has_value());
        CHECK(strategy_name(*s) == canonical);
        Router r(reg, {});
        auto req = prompt();
        req.strategy = alias;
        auto d = r.route(req, all_up);
        REQUIRE(d);
        CHECK(d->strategy == canonical);  // the cache target and --explain show the canonical name
        CHECK(d->target.rfind("route:" + canonical + ":", 0) == 0);
    }
    for (const char* bad : {"", "fastestt", "best quality!", "cheap est"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_strategy(bad).has_value());
    }
    // Every alias is in the help text beside its canonical name.
    const std::string help = strategy_help();
    for (const auto& a : strategy_aliases()) CHECK(help.find(a.name) != std::string::npos);
}

TEST_CASE("router: fallback without a configured chain uses the balanced ranking and says so") {
    auto reg = fixed_registry();
    Router plain(reg, {});
    auto b = prompt();
    b.strategy = "balanced";
    auto bd = plain.route(b, all_up);
    REQUIRE(bd);
    auto f = prompt();
    f.strategy = "fallback";
    auto fd = plain.route(f, all_up);
    REQUIRE(fd);
    CHECK(fd->strategy == "fallback");
    CHECK(fd->primary == bd->primary);
    REQUIRE(fd->fallbacks.size() == bd->fallbacks.size());
    for (std::size_t i = 0; i < fd->fallbacks.size(); ++i) CHECK(fd->fallbacks[i] == bd->fallbacks[i]);
    CHECK(fd->note.find("balanced ranking") != std::string::npos);
    CHECK(bd->note.empty());
    // Excluding the primary's provider moves to the next in that ranking.
    f.constraints.excluded_providers = {bd->primary->provider};
    auto ex = plain.route(f, all_up);
    REQUIRE(ex);
    CHECK(ex->primary->provider != bd->primary->provider);
}

TEST_CASE("router: hints bind a named model - the configured default gives way to them") {
    auto reg = fixed_registry();
    Router r(reg, {});
    auto named = prompt();
    named.model = "smart";
    named.constraints.excluded_providers = {"b"};
    auto e = r.route(named, all_up);
    REQUIRE_FALSE(e);
    CHECK(e.error().code == ErrorCode::invalid_parameter);
    named.constraints.excluded_providers = {"nosuch"};
    CHECK(r.route(named, all_up).error().code == ErrorCode::invalid_parameter);
    named.constraints.excluded_providers.clear();
    named.constraints.max_latency_ms = 100;  // smart's typical latency is 2000 ms
    CHECK(r.route(named, all_up).error().code == ErrorCode::invalid_parameter);
    named.constraints.max_latency_ms.reset();
    named.strategy = "nonsense";  // checked even when a model makes it moot
    CHECK(r.route(named, all_up).error().code == ErrorCode::invalid_strategy);

    RouterConfig cfg;
    cfg.default_model = "smart";
    Router withdef(reg, cfg);
    auto plain = prompt();
    CHECK(withdef.route(plain, all_up)->primary->id == "smart");
    plain.constraints.excluded_providers = {"b"};
    auto d = withdef.route(plain, all_up);
    REQUIRE(d);
    CHECK(d->primary->provider == "a");
    CHECK_FALSE(d->explicit_model);
}
