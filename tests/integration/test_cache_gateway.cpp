// The semantic cache through the whole pipeline: Gateway + mock provider +
// real SQLite state directory, restarted between requests.
#include <doctest/doctest.h>

#include <l04/gateway.hpp>
#include <support/test_util.hpp>

using namespace l04;

namespace {

std::unique_ptr<Gateway> open_gateway(const std::string& state_dir, ManualClock& clock) {
    GatewayOptions o;
    auto reg = Registry::load({l04::test::models_toml_path()});
    REQUIRE(reg);
    o.registry = std::move(*reg);
    o.clock = &clock;
    o.state_dir = state_dir;
    auto g = Gateway::create(std::move(o));
    REQUIRE(g);
    return std::move(*g);
}

InferenceRequest ask(const std::string& prompt) {
    InferenceRequest r;
    r.model = "mock";
    r.messages.push_back(Message{Role::user, prompt, "", "", {}});
    return r;
}

}  // namespace

TEST_CASE("gateway: exact and semantic hits - per-request threshold - across a restart") {
    l04::test::TempDir dir;
    ManualClock clock;
    {
        auto g = open_gateway(dir.str(), clock);
        auto first = g->execute(ask("Please tell me the capital of France"));
        REQUIRE(first);
        CHECK(first->cache_hit == CacheHit::none);

        auto again = g->execute(ask("Please tell me the capital of France"));
        REQUIRE(again);
        CHECK(again->cache_hit == CacheHit::exact);
        CHECK(again->content == first->content);

        auto para = g->execute(ask("tell me the capital of France"));
        REQUIRE(para);
        CHECK(para->cache_hit == CacheHit::semantic);
        CHECK(para->similarity >= 0.85);
        CHECK(para->similarity < 1.0);
        CHECK(para->content == first->content);

        auto strict = ask("tell me the capital of France!");
        strict.cache_similarity_threshold = 1.0;  // only an identical vector would do
        auto s = g->execute(strict);
        REQUIRE(s);
        CHECK(s->cache_hit != CacheHit::semantic);

        auto other = g->execute(ask("Write a haiku about autumn leaves"));
        REQUIRE(other);
        CHECK(other->cache_hit == CacheHit::none);
        auto st = g->cache_stats();
        CHECK(st.exact_hits == 1);
        CHECK(st.semantic_hits == 1);
        CHECK(st.embedder == "builtin-v2");
    }
    // Restart: the index is loaded from its file (or rebuilt) and still hits.
    auto g = open_gateway(dir.str(), clock);
    auto para = g->execute(ask("please tell me the capital of france?"));
    REQUIRE(para);
    CHECK(para->cache_hit != CacheHit::none);
    auto st = g->cache_stats();
    CHECK(st.index_loaded);
    CHECK(st.index_size >= 2);
}
