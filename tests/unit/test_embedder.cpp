// Embedders: the built-in one's determinism and separation of near misses,
// and the HTTP embedders against recorded wire bodies through a fake Transport.
#include <doctest/doctest.h>

#include <l04/cache/embedder.hpp>
#include <l04/provider/embedders.hpp>
#include <l04/cache/hit_guard.hpp>
#include <support/test_util.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <random>

using namespace l04;

namespace {

// Returns a canned status and body; records the last request.
class FakeTransport final : public Transport {
public:
    int status = 200;
    std::string body;
    bool fail_connect = false;
    HttpRequest last;
    int calls = 0;
    Result<HttpResponseHead> perform(const HttpRequest& req, const HeadFn& on_head, const DataFn& on_data) override {
        last = req;
        ++calls;
        if (fail_connect) return fail(ErrorCode::provider_unavailable, "connection refused");
        HttpResponseHead h;
        h.status = status;
        if (on_head) on_head(h);
        if (on_data) on_data(body);
        return h;
    }
};

float cosine(const Vector& a, const Vector& b) { return dot(a.data(), b.data(), a.size()); }

float sim(BuiltinEmbedder& e, const std::string& a, const std::string& b) {
    return cosine(e.embed_one(a), e.embed_one(b));
}

double norm(const Vector& v) {
    double s = 0;
    for (float x : v) s += double(x) * x;
    return std::sqrt(s);
}

}  // namespace

TEST_CASE("builtin embedder: deterministic unit vectors of 384 dims") {
    BuiltinEmbedder e;
    CHECK(e.name() == "builtin-v2");
    CHECK(e.dimension() == 384);
    auto r = e.embed({"How do I reset my password?", "How do I reset my password?", ""});
    REQUIRE(r);
    REQUIRE(r->size() == 3);
    CHECK((*r)[0].size() == 384);
    CHECK((*r)[0] == (*r)[1]);
    CHECK(norm((*r)[0]) == doctest::Approx(1.0).epsilon(1e-5));
    CHECK(norm((*r)[2]) == 0.0);  // empty text: zero vector, never similar to anything
    // A second instance gives bit-identical vectors (no hidden state).
    BuiltinEmbedder e2;
    CHECK(e2.embed_one("How do I reset my password?") == (*r)[0]);
    // Non-default options are a different embedder.
    BuiltinEmbedderOptions o;
    o.bigram_weight = 0.1f;
    CHECK(BuiltinEmbedder(o).name() != "builtin-v2");
}

TEST_CASE("builtin embedder: tokens handle case - contractions - negation scope and numbers") {
    auto t = BuiltinEmbedder::tokens("Don't turn OFF the lights, close the door. It costs 3.50 dollars");
    CHECK(std::find(t.begin(), t.end(), "not") != t.end());
    CHECK(std::find(t.begin(), t.end(), "\xC2\xACturn") != t.end());  // negated
    CHECK(std::find(t.begin(), t.end(), "3.50") != t.end());
    CHECK(std::find(t.begin(), t.end(), "\xC2\xAClight") != t.end());
    CHECK(std::find(t.begin(), t.end(), "door") != t.end());  // negation scope stops at the comma
    auto c = BuiltinEmbedder::tokens("You cannot delete it");
    CHECK(std::find(c.begin(), c.end(), "not") != c.end());
    CHECK(std::find(c.begin(), c.end(), "\xC2\xAC" "delet") != c.end());
}

TEST_CASE("builtin embedder: rephrasings stay close - near misses fall below the default threshold or are refused") {
    BuiltinEmbedder e;
    CHECK(sim(e, "How do I reset my password?", "how do i reset my password") > 0.97f);
    CHECK(sim(e, "How do I reset my password?", "How can I reset my password?") > 0.85f);
    CHECK(sim(e, "What is the capital of France?", "Tell me the capital of France") > 0.85f);
    CHECK(sim(e, "List the files in the current directory", "list files in the current directory") > 0.85f);

    const std::pair<const char*, const char*> near[] = {
        {"Turn on the lights in the kitchen", "Turn off the lights in the kitchen"},
        {"How do I enable two-factor authentication?", "How do I disable two-factor authentication?"},
        {"What is 15 percent of 80?", "What is 25 percent of 80?"},
        {"I like cats", "I do not like cats"},
        {"The test passed", "The test did not pass"},
        {"Should I buy Tesla stock?", "Should I sell Tesla stock?"},
    };
    for (const auto& entry_ : near) {  // no structured binding: clang 14 cannot capture one in doctest's macros
        const auto& a = std::get<0>(entry_);
        const auto& b = std::get<1>(entry_);
        INFO(a << " | " << b);
        CHECK(sim(e, a, b) < 0.85f);
    }
    // Swapped entities keep every word: the vectors are close (0.87-0.88),
    // and the hit guard refuses them (hit_guard.hpp).
    const std::pair<const char*, const char*> swaps[] = {
        {"Book a flight from Paris to London", "Book a flight from London to Paris"},
        {"Convert 5 kilometers to miles", "Convert 5 miles to kilometers"},
    };
    for (const auto& entry_ : swaps) {  // no structured binding: clang 14 cannot capture one in doctest's macros
        const auto& a = std::get<0>(entry_);
        const auto& b = std::get<1>(entry_);
        INFO(a << " | " << b);
        const double s = sim(e, a, b);
        CHECK(s >= 0.85);  // the vectors alone would serve it
        const std::vector<SemanticCandidate> c = {{s, a, "answer"}};
        const auto choice = choose_semantic_hit(b, c, 0.85, 0.03, true);
        CHECK(choice.index == -1);
        CHECK(choice.refused == HitConflict::roles);
    }
    // Unrelated prompts are far apart.
    CHECK(sim(e, "What is the capital of France?", "Write a haiku about autumn leaves") < 0.3f);
}

TEST_CASE("ollama embedder parses /api/embed and validates the response") {
    auto t = std::make_shared<FakeTransport>();
    t->body = l04::test::fixture("wire/ollama/embed.json");
    OllamaEmbedder e(t, "http://127.0.0.1:11434/", "nomic-embed-text", 768);
    CHECK(e.name() == "ollama:nomic-embed-text");
    auto r = e.embed({"Hello world"});
    REQUIRE(r);
    REQUIRE(r->size() == 1);
    CHECK((*r)[0].size() == 768);
    CHECK(norm((*r)[0]) == doctest::Approx(1.0).epsilon(1e-5));
    CHECK(t->last.url == "http://127.0.0.1:11434/api/embed");
    const auto sent = nlohmann::json::parse(t->last.body);
    CHECK(sent["model"] == "nomic-embed-text");
    CHECK(sent["input"] == nlohmann::json::array({"Hello world"}));
    // The recorded numbers, in order (normalised here).
    auto raw = nlohmann::json::parse(l04::test::fixture("wire/ollama/embed.json"))["embeddings"][0].get<Vector>();
    REQUIRE(raw.size() == 768);
    CHECK(raw[0] == doctest::Approx(-0.006746773));
    CHECK(raw[767] == doctest::Approx(-0.004468476));
    normalize(raw);
    CHECK((*r)[0][0] == doctest::Approx(raw[0]));
    CHECK((*r)[0][767] == doctest::Approx(raw[767]));

    SUBCASE("wrong dimension") {
        OllamaEmbedder bad(t, "http://x", "nomic-embed-text", 384);
        auto b = bad.embed({"Hello world"});
        REQUIRE_FALSE(b);
        CHECK(b.error().code == ErrorCode::embedding_failed);
    }
    SUBCASE("count mismatch") {
        auto b = e.embed({"a", "b"});
        REQUIRE_FALSE(b);
        CHECK(b.error().code == ErrorCode::embedding_failed);
    }
    SUBCASE("HTTP error") {
        t->status = 404;
        t->body = R"({"error":"model \"nomic-embed-text\" not found, try pulling it first"})";
        auto b = e.embed({"Hello world"});
        REQUIRE_FALSE(b);
        CHECK(b.error().code == ErrorCode::embedding_failed);
        CHECK(b.error().message.find("404") != std::string::npos);
    }
    SUBCASE("garbage body") {
        t->body = "{not json";
        auto b = e.embed({"Hello world"});
        REQUIRE_FALSE(b);
        CHECK(b.error().code == ErrorCode::embedding_failed);
    }
    SUBCASE("transport failure") {
        t->fail_connect = true;
        auto b = e.embed({"Hello world"});
        REQUIRE_FALSE(b);
        CHECK(b.error().code == ErrorCode::embedding_failed);
    }
}

TEST_CASE("openai embedder parses /v1/embeddings - sends the key - never leaks it") {
    auto t = std::make_shared<FakeTransport>();
    t->body = l04::test::fixture("wire/openai/embeddings.json");
    OpenAIEmbedder e(t, "https://api.openai.com/v1", "sk-secret-123", "text-embedding-3-small", 256, true);
    auto r = e.embed({"Hello world"});
    REQUIRE(r);
    CHECK((*r)[0].size() == 256);
    CHECK(norm((*r)[0]) == doctest::Approx(1.0).epsilon(1e-5));
    CHECK(t->last.url == "https://api.openai.com/v1/embeddings");
    const auto sent = nlohmann::json::parse(t->last.body);
    CHECK(sent["model"] == "text-embedding-3-small");
    CHECK(sent["input"] == nlohmann::json::array({"Hello world"}));
    CHECK(sent["dimensions"] == 256);
    auto raw =
        nlohmann::json::parse(l04::test::fixture("wire/openai/embeddings.json"))["data"][0]["embedding"].get<Vector>();
    REQUIRE(raw.size() == 256);
    CHECK(raw[0] == doctest::Approx(-0.0039325873));
    CHECK(raw[255] == doctest::Approx(0.0011830473));
    normalize(raw);
    CHECK((*r)[0][0] == doctest::Approx(raw[0]));
    CHECK((*r)[0][255] == doctest::Approx(raw[255]));
    bool auth = false;
    for (const auto& [k, v] : t->last.headers)
        if (k == "Authorization" && v == "Bearer sk-secret-123") auth = true;
    CHECK(auth);

    t->status = 401;
    t->body = l04::test::fixture("wire/openai/error_401.json");
    auto b = e.embed({"Hello world"});
    REQUIRE_FALSE(b);
    CHECK(b.error().code == ErrorCode::embedding_failed);
    CHECK(b.error().message.find("sk-secret-123") == std::string::npos);
}

TEST_CASE("make_embedder builds each kind and rejects unknown ones") {
    auto t = std::make_shared<FakeTransport>();
    auto b = make_embedder(EmbedderConfig{}, t);
    REQUIRE(b);
    CHECK((*b)->name() == "builtin-v2");
    EmbedderConfig none;
    none.kind = "none";
    auto n = make_embedder(none, t);
    REQUIRE(n);
    CHECK(*n == nullptr);
    EmbedderConfig o;
    o.kind = "ollama";
    auto ol = make_embedder(o, t);
    REQUIRE(ol);
    CHECK((*ol)->dimension() == 768);
    EmbedderConfig oa;
    oa.kind = "openai";
    CHECK_FALSE(make_embedder(oa, t));  // no key
    oa.api_key = "k";
    auto oai = make_embedder(oa, t);
    REQUIRE(oai);
    CHECK((*oai)->dimension() == 1536);
    EmbedderConfig bad;
    bad.kind = "word2vec";
    auto x = make_embedder(bad, t);
    REQUIRE_FALSE(x);
    CHECK(x.error().code == ErrorCode::config_invalid);
}

TEST_CASE("dot: the run-time kernel agrees with a double-precision reference at every length") {
    std::mt19937 rng(7);
    std::normal_distribution<float> nd;
    for (std::size_t n : {0u, 1u, 3u, 7u, 8u, 9u, 31u, 32u, 33u, 384u, 385u, 768u, 1536u}) {
        std::vector<float> a(n), b(n);
        for (auto& x : a) x = nd(rng);
        for (auto& x : b) x = nd(rng);
        double ref = 0, mag = 0;
        for (std::size_t i = 0; i < n; ++i) {
            ref += double(a[i]) * b[i];
            mag += std::abs(double(a[i]) * b[i]);
        }
        INFO("n=" << n << " kernel=" << dot_kernel());
        CHECK(std::abs(dot(a.data(), b.data(), n) - ref) <= 1e-5 * (mag + 1));
    }
    const std::string k = dot_kernel();
    CHECK((k == "avx2+fma" || k == "portable"));
}

TEST_CASE("builtin embedder: common synonyms read as one word") {
    BuiltinEmbedder e;
    CHECK(BuiltinEmbedder::tokens("Utilize the API") == BuiltinEmbedder::tokens("use the API"));
    CHECK(BuiltinEmbedder::tokens("It generates a report") == BuiltinEmbedder::tokens("It creates a report"));
    CHECK(sim(e, "How can I obtain the logs quickly?", "How can I retrieve the logs rapidly?") > 0.99f);
    CHECK(sim(e, "Modify the config file", "Change the config file") > 0.99f);
    // Antonym axes still apply to the canonical word: "store" reads as "save", not as its opposite.
    CHECK(sim(e, "Store the results", "Save the results") > 0.99f);
}
